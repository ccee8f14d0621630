// Roles per tenant (a DAG of inclusions), their permissions on API resources, and who holds them.
// Effective permissions are resolved once per subject and cached under the tenant's RBAC epoch, in
// the hot store and in each instance's memory; any change draws a new epoch and announces it, so
// every instance stops using the old answers at once (src/store/shared-epochs.ts).
import { randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { SharedEpochs } from '../store/shared-epochs.ts';
import type { Database } from '../store/database.ts';
import type { HotStore } from '../store/hot-store.ts';
import { withTenant, type TenantTransaction } from '../store/tenant-scope.ts';
import type { ApiResourceService } from '../oidc/api-resources.ts';
import { ConflictError, NotFoundError, ValidationError, VersionMismatchError } from '../errors.ts';
import { rbacQueries, type RoleRow } from './queries.ts';
import type { AuditService } from '../audit/service.ts';
import { originOf, type ChangeOrigin } from '../audit/origin.ts';
import { changeDetails } from '../audit/mask.ts';
import type { OutboxService } from '../outbox/service.ts';

export type SubjectType = 'user' | 'client';

export const SYSTEM_ROLES = ['root-admin', 'admin', 'agent', 'staff', 'client'] as const;

export interface Role {
  id: string;
  name: string;
  description: string;
  system: boolean;
  version: number;
  permissions: Array<{ api: string; permission: string }>;
  includes: string[];
}

export interface EffectiveAccess {
  roles: string[];
  // API identifier -> permissions
  permissions: Record<string, string[]>;
}

const CACHE_SECONDS = 300;

// Every change to a role, its inclusions or its holders is recorded in the transaction that makes
// it: an audit entry and a role.changed event.
export interface RbacRecorder {
  audit: Pick<AuditService, 'record'>;
  outbox: Pick<OutboxService, 'enqueue'>;
}

type RoleChange = 'created' | 'updated' | 'deleted' | 'included' | 'excluded' | 'assigned' | 'unassigned';

function frozen(access: EffectiveAccess): EffectiveAccess {
  for (const list of Object.values(access.permissions)) Object.freeze(list);
  Object.freeze(access.permissions);
  Object.freeze(access.roles);
  return Object.freeze(access);
}

export function createRbacService(db: Database, hot: HotStore, apis: ApiResourceService, recorder: RbacRecorder) {
  const epochs = new SharedEpochs(hot, { key: (tenantId) => `rbac:{${tenantId}}:epoch`, channel: 'rbac:epoch-changed' });
  // Answers this instance resolved or read, each with the epoch it was made under.
  const resolved = new LRUCache<string, { epoch: string; access: EffectiveAccess }>({ max: 50_000, ttl: CACHE_SECONDS * 1000 });

  async function changed(tenantId: string): Promise<void> {
    await epochs.renew(tenantId);
  }

  // Sequential on purpose: a transaction is one connection, and it runs one query at a time.
  async function toRole(trx: TenantTransaction, row: RoleRow): Promise<Role> {
    const permissions = await rbacQueries.permissionsOf(trx, row.id);
    const includes = await rbacQueries.includedRoles(trx, row.id);
    return {
      id: row.id,
      name: row.name,
      description: row.description,
      system: row.system,
      version: row.version,
      permissions: permissions.map((p) => ({ api: p.api_identifier, permission: p.permission })),
      includes,
    };
  }

  // The audit entry targets the role, or for an assignment the user or client who gains or loses
  // it (so their pseudonym, not their id, is in the chain); the event names the role and the change.
  async function recordChange(
    trx: TenantTransaction,
    tenantId: string,
    roleId: string,
    change: RoleChange,
    what: { details?: Record<string, unknown>; includedRoleId?: string; subject?: { type: SubjectType; id: string } },
    origin: ChangeOrigin | undefined,
  ): Promise<void> {
    const auditType = { created: 'role.create', updated: 'role.update', deleted: 'role.delete', included: 'role.include', excluded: 'role.exclude', assigned: 'role.assign', unassigned: 'role.unassign' }[change];
    const target = what.subject ? { type: what.subject.type, id: what.subject.id } : { ref: roleId };
    const details = { ...(what.subject ? { roleId } : {}), ...(what.includedRoleId ? { includedRoleId: what.includedRoleId } : {}), ...what.details };
    await recorder.audit.record(trx, { tenantId, type: auditType, outcome: 'success', ...originOf(origin), target, details });
    const changed = Array.isArray(what.details?.changes) ? { changed: (what.details.changes as Array<{ field: string }>).map((c) => c.field) } : {};
    const subject = what.subject ? { subjectType: what.subject.type, subjectId: what.subject.id } : {};
    const included = what.includedRoleId ? { includedRoleId: what.includedRoleId } : {};
    await recorder.outbox.enqueue(trx, { tenantId, type: 'role.changed', data: { roleId, change, ...changed, ...included, ...subject } });
  }

  // What an audit entry shows of a role: all of it is configuration, none of it personal.
  function roleView(role: Role) {
    return { name: role.name, description: role.description, permissions: role.permissions.map((p) => `${p.api} ${p.permission}`).sort(), includes: [...role.includes].sort() };
  }

  async function requireRole(trx: TenantTransaction, roleId: string): Promise<RoleRow> {
    const row = await rbacQueries.findRole(trx, roleId);
    if (!row) throw new NotFoundError(`no role ${roleId} in this tenant`);
    return row;
  }

  async function validPermissions(permissions: Array<{ api: string; permission: string }>) {
    for (const [index, { api, permission }] of permissions.entries()) {
      const resource = await apis.find(api);
      if (!resource) throw new ValidationError(`unknown API ${api}`, { [`permissions[${index}].api`]: 'not a registered API' });
      if (!resource.scopes.includes(permission)) {
        throw new ValidationError(`${api} has no permission ${permission}`, { [`permissions[${index}].permission`]: `not one of ${resource.scopes.join(', ')}` });
      }
    }
    return permissions.map((p) => ({ api_identifier: p.api, permission: p.permission }));
  }

  const service = {
    async listRoles(tenantId: string): Promise<Role[]> {
      return withTenant(db, tenantId, async (trx) => {
        const roles: Role[] = [];
        for (const row of await rbacQueries.listRoles(trx)) roles.push(await toRole(trx, row));
        return roles;
      });
    },

    async getRole(tenantId: string, roleId: string): Promise<Role> {
      return withTenant(db, tenantId, async (trx) => toRole(trx, await requireRole(trx, roleId)));
    },

    async createRole(
      tenantId: string,
      input: { name: string; description?: string; permissions?: Array<{ api: string; permission: string }>; includes?: string[] },
      options: { system?: boolean; trx?: Database; permissionsChecked?: boolean; origin?: ChangeOrigin } = {},
    ): Promise<Role> {
      // Inside a caller's transaction the permissions were checked before it began: on PGlite the
      // transaction holds the only connection.
      const permissions = options.permissionsChecked
        ? (input.permissions ?? []).map((p) => ({ api_identifier: p.api, permission: p.permission }))
        : await validPermissions(input.permissions ?? []);
      const role = await withTenant(options.trx ?? db, tenantId, async (trx) => {
        if (await rbacQueries.findRoleByName(trx, input.name)) throw new ConflictError(`a role named ${input.name} exists`, { name: 'already taken' });
        const id = randomUUID();
        await rbacQueries.insertRole(trx, { id, tenant_id: tenantId, name: input.name, description: input.description ?? '', system: options.system ?? false });
        await rbacQueries.replacePermissions(trx, tenantId, id, permissions);
        for (const included of input.includes ?? []) {
          await requireRole(trx, included);
          await rbacQueries.addInclusion(trx, tenantId, id, included);
        }
        const created = await toRole(trx, await requireRole(trx, id));
        // A tenant's system roles come with the tenant, whose creation is recorded.
        if (!options.system) await recordChange(trx, tenantId, id, 'created', { details: changeDetails(null, roleView(created)) }, options.origin);
        return created;
      });
      await changed(tenantId);
      return role;
    },

    async updateRole(
      tenantId: string,
      roleId: string,
      expectedVersion: number,
      input: { name?: string; description?: string; permissions?: Array<{ api: string; permission: string }> },
      origin?: ChangeOrigin,
    ): Promise<Role> {
      const permissions = input.permissions ? await validPermissions(input.permissions) : undefined;
      const role = await withTenant(db, tenantId, async (trx) => {
        const current = await requireRole(trx, roleId);
        const before = await toRole(trx, current);
        if (current.system && input.name && input.name !== current.name) throw new ValidationError('system roles cannot be renamed', { name: 'system role' });
        if (input.name && input.name.toLowerCase() !== current.name.toLowerCase() && (await rbacQueries.findRoleByName(trx, input.name))) {
          throw new ConflictError(`a role named ${input.name} exists`, { name: 'already taken' });
        }
        const updated = await rbacQueries.updateRole(trx, roleId, expectedVersion, { name: input.name, description: input.description });
        if (!updated) throw new VersionMismatchError(`the role changed since version ${expectedVersion}; read it again`);
        if (permissions) await rbacQueries.replacePermissions(trx, tenantId, roleId, permissions);
        const after = await toRole(trx, updated);
        await recordChange(trx, tenantId, roleId, 'updated', { details: changeDetails(roleView(before), roleView(after)) }, origin);
        return after;
      });
      await changed(tenantId);
      return role;
    },

    // With expectedVersion (If-Match), only at the version the caller read.
    async deleteRole(tenantId: string, roleId: string, origin?: ChangeOrigin, expectedVersion?: number): Promise<void> {
      await withTenant(db, tenantId, async (trx) => {
        const role = await requireRole(trx, roleId);
        if (role.system) throw new ValidationError('system roles cannot be deleted');
        const before = await toRole(trx, role);
        const deleted = await rbacQueries.deleteRole(trx, roleId, expectedVersion);
        if (!deleted && expectedVersion !== undefined) throw new VersionMismatchError(`the role changed since version ${expectedVersion}; read it again`);
        await recordChange(trx, tenantId, roleId, 'deleted', { details: changeDetails(roleView(before), null) }, origin);
      });
      await changed(tenantId);
    },

    // Makes `roleId` include `includedRoleId`; refuses a cycle.
    async include(tenantId: string, roleId: string, includedRoleId: string, origin?: ChangeOrigin): Promise<void> {
      await withTenant(db, tenantId, async (trx) => {
        await rbacQueries.lockTenantRoles(trx, tenantId);
        const [role, included] = [await requireRole(trx, roleId), await requireRole(trx, includedRoleId)];
        if (await rbacQueries.reaches(trx, included.id, role.id)) {
          throw new ValidationError(`${role.name} cannot include ${included.name}: ${included.name} already includes ${role.name}, which would make a cycle`, { includes: 'would create a cycle' });
        }
        if (await rbacQueries.addInclusion(trx, tenantId, role.id, included.id)) {
          await recordChange(trx, tenantId, role.id, 'included', { includedRoleId: included.id }, origin);
        }
      });
      await changed(tenantId);
    },

    async exclude(tenantId: string, roleId: string, includedRoleId: string, origin?: ChangeOrigin): Promise<void> {
      const removed = await withTenant(db, tenantId, async (trx) => {
        const done = await rbacQueries.removeInclusion(trx, roleId, includedRoleId);
        if (done) await recordChange(trx, tenantId, roleId, 'excluded', { includedRoleId }, origin);
        return done;
      });
      if (!removed) throw new NotFoundError('the role does not include that role');
      await changed(tenantId);
    },

    async assign(tenantId: string, roleId: string, subjectType: SubjectType, subjectId: string, options: { trx?: Database; origin?: ChangeOrigin } = {}): Promise<void> {
      await withTenant(options.trx ?? db, tenantId, async (scoped) => {
        await requireRole(scoped, roleId);
        if (await rbacQueries.assign(scoped, tenantId, roleId, subjectType, subjectId)) {
          await recordChange(scoped, tenantId, roleId, 'assigned', { subject: { type: subjectType, id: subjectId } }, options.origin);
        }
      });
      await changed(tenantId);
    },

    async unassign(tenantId: string, roleId: string, subjectType: SubjectType, subjectId: string, origin?: ChangeOrigin): Promise<void> {
      const removed = await withTenant(db, tenantId, async (trx) => {
        const done = await rbacQueries.unassign(trx, roleId, subjectType, subjectId);
        if (done) await recordChange(trx, tenantId, roleId, 'unassigned', { subject: { type: subjectType, id: subjectId } }, origin);
        return done;
      });
      if (!removed) throw new NotFoundError('the subject does not hold that role');
      await changed(tenantId);
    },

    async rolesOf(tenantId: string, subjectType: SubjectType, subjectId: string): Promise<Array<{ id: string; name: string }>> {
      const rows = await withTenant(db, tenantId, (trx) => rbacQueries.directRoles(trx, subjectType, subjectId));
      return rows.map((row) => ({ id: row.id, name: row.name }));
    },

    // Each role of the tenant with the users holding it, directly or inherited (reports).
    async holdersByRole(tenantId: string): Promise<Array<{ id: string; name: string; userIds: string[] }>> {
      return withTenant(db, tenantId, async (trx) => {
        const roles = await rbacQueries.listRoles(trx);
        const pairs = await rbacQueries.holders(trx, tenantId);
        const holders = Map.groupBy(pairs, (pair) => pair.role_id);
        return roles.map((role) => ({ id: role.id, name: role.name, userIds: (holders.get(role.id) ?? []).map((pair) => pair.user_id) }));
      });
    },

    async roleIdByName(tenantId: string, name: string): Promise<string | undefined> {
      return (await withTenant(db, tenantId, (trx) => rbacQueries.findRoleByName(trx, name)))?.id;
    },

    // Roles held directly or through inclusion, and the permissions they carry per API. Shared
    // between callers: frozen.
    async effectiveAccess(tenantId: string, subjectType: SubjectType, subjectId: string): Promise<EffectiveAccess> {
      const key = `rbac:{${tenantId}}:access:${subjectType}:${subjectId}`;
      const current = await epochs.current(tenantId);
      const known = resolved.get(key);
      if (known?.epoch === current) return known.access;
      // An entry made under an older epoch predates a change and is resolved again.
      const cached = await hot.get(key);
      if (cached) {
        const entry = JSON.parse(cached) as { epoch: string; access: EffectiveAccess };
        if (entry.epoch === current) {
          const access = frozen(entry.access);
          resolved.set(key, { epoch: current, access });
          return access;
        }
      }
      const rows = await withTenant(db, tenantId, (trx) => rbacQueries.effective(trx, subjectType, subjectId));
      const roles = [...new Set(rows.map((row) => row.name))].sort();
      const permissions: Record<string, string[]> = {};
      for (const row of rows) {
        if (!row.api_identifier || !row.permission) continue;
        (permissions[row.api_identifier] ??= []).push(row.permission);
      }
      for (const api of Object.keys(permissions)) permissions[api] = [...new Set(permissions[api])].sort();
      const access = frozen({ roles, permissions });
      await hot.set(key, JSON.stringify({ epoch: current, access }), CACHE_SECONDS);
      resolved.set(key, { epoch: current, access });
      return access;
    },

    async check(tenantId: string, subjectType: SubjectType, subjectId: string, api: string, permission: string): Promise<boolean> {
      const access = await service.effectiveAccess(tenantId, subjectType, subjectId);
      return access.permissions[api]?.includes(permission) ?? false;
    },

    async checkPermissions(permissions: Array<{ api: string; permission: string }>): Promise<void> {
      await validPermissions(permissions);
    },

    // Called when API permissions change outside RBAC (an API loses a permission).
    invalidate: changed,

    // Listens for other instances' changes.
    start: () => epochs.start(),
  };
  return service;
}

export type RbacService = ReturnType<typeof createRbacService>;
