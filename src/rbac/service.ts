// Roles per tenant (a DAG of inclusions), their permissions on API resources, and who holds them.
// Effective permissions are resolved once per subject and cached in the hot store under the
// tenant's RBAC epoch; any change draws a new epoch, so every instance stops using the old answers
// at once.
import { randomUUID } from 'node:crypto';
import type { Database } from '../store/database.ts';
import type { HotStore } from '../store/hot-store.ts';
import { withTenant, type TenantTransaction } from '../store/tenant-scope.ts';
import type { ApiResourceService } from '../oidc/api-resources.ts';
import { ConflictError, NotFoundError, ValidationError, VersionMismatchError } from '../errors.ts';
import { rbacQueries, type RoleRow } from './queries.ts';

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

export function createRbacService(db: Database, hot: HotStore, apis: ApiResourceService) {
  const epochKey = (tenantId: string) => `rbac:{${tenantId}}:epoch`;

  async function epoch(tenantId: string): Promise<string> {
    const current = await hot.get(epochKey(tenantId));
    if (current) return current;
    const fresh = randomUUID();
    return (await hot.setIfAbsent(epochKey(tenantId), fresh, 30 * 86400)) ? fresh : ((await hot.get(epochKey(tenantId))) ?? fresh);
  }

  async function changed(tenantId: string): Promise<void> {
    await hot.set(epochKey(tenantId), randomUUID(), 30 * 86400);
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
      options: { system?: boolean; trx?: Database; permissionsChecked?: boolean } = {},
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
        return toRole(trx, await requireRole(trx, id));
      });
      await changed(tenantId);
      return role;
    },

    async updateRole(
      tenantId: string,
      roleId: string,
      expectedVersion: number,
      input: { name?: string; description?: string; permissions?: Array<{ api: string; permission: string }> },
    ): Promise<Role> {
      const permissions = input.permissions ? await validPermissions(input.permissions) : undefined;
      const role = await withTenant(db, tenantId, async (trx) => {
        const current = await requireRole(trx, roleId);
        if (current.system && input.name && input.name !== current.name) throw new ValidationError('system roles cannot be renamed', { name: 'system role' });
        if (input.name && input.name.toLowerCase() !== current.name.toLowerCase() && (await rbacQueries.findRoleByName(trx, input.name))) {
          throw new ConflictError(`a role named ${input.name} exists`, { name: 'already taken' });
        }
        const updated = await rbacQueries.updateRole(trx, roleId, expectedVersion, { name: input.name, description: input.description });
        if (!updated) throw new VersionMismatchError(`the role changed since version ${expectedVersion}; read it again`);
        if (permissions) await rbacQueries.replacePermissions(trx, tenantId, roleId, permissions);
        return toRole(trx, updated);
      });
      await changed(tenantId);
      return role;
    },

    async deleteRole(tenantId: string, roleId: string): Promise<void> {
      await withTenant(db, tenantId, async (trx) => {
        const role = await requireRole(trx, roleId);
        if (role.system) throw new ValidationError('system roles cannot be deleted');
        await rbacQueries.deleteRole(trx, roleId);
      });
      await changed(tenantId);
    },

    // Makes `roleId` include `includedRoleId`; refuses a cycle.
    async include(tenantId: string, roleId: string, includedRoleId: string): Promise<void> {
      await withTenant(db, tenantId, async (trx) => {
        await rbacQueries.lockTenantRoles(trx, tenantId);
        const [role, included] = [await requireRole(trx, roleId), await requireRole(trx, includedRoleId)];
        if (await rbacQueries.reaches(trx, included.id, role.id)) {
          throw new ValidationError(`${role.name} cannot include ${included.name}: ${included.name} already includes ${role.name}, which would make a cycle`, { includes: 'would create a cycle' });
        }
        await rbacQueries.addInclusion(trx, tenantId, role.id, included.id);
      });
      await changed(tenantId);
    },

    async exclude(tenantId: string, roleId: string, includedRoleId: string): Promise<void> {
      const removed = await withTenant(db, tenantId, (trx) => rbacQueries.removeInclusion(trx, roleId, includedRoleId));
      if (!removed) throw new NotFoundError('the role does not include that role');
      await changed(tenantId);
    },

    async assign(tenantId: string, roleId: string, subjectType: SubjectType, subjectId: string, trx?: Database): Promise<void> {
      await withTenant(trx ?? db, tenantId, async (scoped) => {
        await requireRole(scoped, roleId);
        await rbacQueries.assign(scoped, tenantId, roleId, subjectType, subjectId);
      });
      await changed(tenantId);
    },

    async unassign(tenantId: string, roleId: string, subjectType: SubjectType, subjectId: string): Promise<void> {
      const removed = await withTenant(db, tenantId, (trx) => rbacQueries.unassign(trx, roleId, subjectType, subjectId));
      if (!removed) throw new NotFoundError('the subject does not hold that role');
      await changed(tenantId);
    },

    async rolesOf(tenantId: string, subjectType: SubjectType, subjectId: string): Promise<Array<{ id: string; name: string }>> {
      const rows = await withTenant(db, tenantId, (trx) => rbacQueries.directRoles(trx, subjectType, subjectId));
      return rows.map((row) => ({ id: row.id, name: row.name }));
    },

    async roleIdByName(tenantId: string, name: string): Promise<string | undefined> {
      return (await withTenant(db, tenantId, (trx) => rbacQueries.findRoleByName(trx, name)))?.id;
    },

    // Roles held directly or through inclusion, and the permissions they carry per API.
    async effectiveAccess(tenantId: string, subjectType: SubjectType, subjectId: string): Promise<EffectiveAccess> {
      const key = `rbac:{${tenantId}}:${await epoch(tenantId)}:${subjectType}:${subjectId}`;
      const cached = await hot.get(key);
      if (cached) return JSON.parse(cached);
      const rows = await withTenant(db, tenantId, (trx) => rbacQueries.effective(trx, subjectType, subjectId));
      const roles = [...new Set(rows.map((row) => row.name))].sort();
      const permissions: Record<string, string[]> = {};
      for (const row of rows) {
        if (!row.api_identifier || !row.permission) continue;
        (permissions[row.api_identifier] ??= []).push(row.permission);
      }
      for (const api of Object.keys(permissions)) permissions[api] = [...new Set(permissions[api])].sort();
      const access = { roles, permissions };
      await hot.set(key, JSON.stringify(access), CACHE_SECONDS);
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
  };
  return service;
}

export type RbacService = ReturnType<typeof createRbacService>;
