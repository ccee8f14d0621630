// Tenants: the isolation unit. Creating one creates its system roles in the same transaction.
import { randomUUID } from 'node:crypto';
import { isUuid } from '../ids.ts';
import type { Database } from '../store/database.ts';
import type { HotStore } from '../store/hot-store.ts';
import { LRUCache } from 'lru-cache';
import { BroadcastCache } from '../store/local-cache.ts';
import type { RbacService } from '../rbac/service.ts';
import { ConflictError, NotFoundError, ValidationError, VersionMismatchError, fieldErrors } from '../errors.ts';
import { tenantQueries, type TenantRow } from './queries.ts';
import { tenantPoliciesSchema, type TenantPolicies } from './policies.ts';
import { attributeSchemaSchema, type AttributeSchema } from './attribute-schema.ts';
import { systemRoleDefinitions } from './system-roles.ts';
import { brandingSchema, type TenantBranding } from './branding.ts';
import { DEFAULT_TENANT_ID } from './constants.ts';
import type { Knex } from 'knex';
import type { AuditService } from '../audit/service.ts';
import { originOf, type ChangeOrigin } from '../audit/origin.ts';
import { changeDetails } from '../audit/mask.ts';

export interface Tenant {
  id: string;
  slug: string;
  displayName: string;
  emailDomains: string[];
  status: 'active' | 'disabled';
  policies: TenantPolicies;
  userAttributeSchema: AttributeSchema;
  selfRegistration: boolean;
  branding: TenantBranding;
  platform: boolean;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

export interface TenantInput {
  slug: string;
  displayName: string;
  emailDomains?: string[];
  policies?: unknown;
  userAttributeSchema?: unknown;
  selfRegistration?: boolean;
  branding?: unknown;
}

const SLUG = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const DOMAIN = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;

function toTenant(row: TenantRow): Tenant {
  return {
    id: row.id,
    slug: row.slug,
    displayName: row.display_name,
    emailDomains: row.email_domains,
    status: row.status,
    policies: tenantPoliciesSchema.parse(row.policies ?? {}),
    userAttributeSchema: attributeSchemaSchema.parse(row.user_attribute_schema ?? {}),
    selfRegistration: row.self_registration,
    branding: brandingSchema.parse(row.branding ?? {}),
    platform: row.platform,
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function parsePolicies(value: unknown): TenantPolicies {
  const parsed = tenantPoliciesSchema.safeParse(value ?? {});
  if (!parsed.success) throw new ValidationError('invalid tenant policies', fieldErrors('policies', parsed.error.issues));
  return parsed.data;
}

function parseBranding(value: unknown): TenantBranding {
  const parsed = brandingSchema.safeParse(value ?? {});
  if (!parsed.success) throw new ValidationError('invalid branding', fieldErrors('branding', parsed.error.issues));
  return parsed.data;
}

function parseAttributeSchema(value: unknown): AttributeSchema {
  const parsed = attributeSchemaSchema.safeParse(value ?? {});
  if (!parsed.success) throw new ValidationError('invalid user attribute schema', fieldErrors('userAttributeSchema', parsed.error.issues));
  return parsed.data;
}

function checkDomains(domains: string[]): string[] {
  const normalised = domains.map((domain) => domain.trim().toLowerCase());
  const bad = normalised.findIndex((domain) => !DOMAIN.test(domain));
  if (bad >= 0) throw new ValidationError(`${domains[bad]} is not a domain name`, { [`emailDomains.${bad}`]: 'not a domain name' });
  return [...new Set(normalised)];
}

// What an audit entry shows of a tenant: its settings, none of them personal.
function auditView(tenant: Tenant): Record<string, unknown> {
  const { id: _id, version: _version, createdAt: _createdAt, updatedAt: _updatedAt, ...settings } = tenant;
  return settings;
}

// Creating and deleting tenants is the platform's business, recorded in the platform tenant's trail
// (a deleted tenant's own trail stays in the database but no longer reads through the API); a
// tenant's changes are recorded in its own. Each in the transaction of the change.
export function createTenantService(db: Database, rbac: RbacService, adminApi: () => string, hot: HotStore, audit: Pick<AuditService, 'record'>) {
  const queries = tenantQueries(db);

  async function record(trx: Knex.Transaction, trailOf: string, type: string, details: Record<string, unknown>, origin: ChangeOrigin | undefined, tenantId = trailOf): Promise<void> {
    await audit.record(trx, { tenantId: trailOf, type, outcome: 'success', ...originOf(origin), target: { ref: tenantId }, details });
  }

  // The policies are read on hot paths (every refresh asks for the session policy); a change
  // evicts them on every instance.
  // Tenants are read on every sign-in and admin call and change rarely: cached per instance, evicted
  // on every instance at a change (at most a minute stale if a change notice is lost). Slugs never
  // change, so a slug maps to its id until the tenant is gone.
  const tenantCache = new BroadcastCache<Tenant>(hot, 'tenants:changed', { max: 10_000, ttlSeconds: 60 });
  const slugIds = new LRUCache<string, string>({ max: 10_000 });

  async function cachedTenant(id: string): Promise<Tenant> {
    const tenant = await tenantCache.get(id, async () => toTenant(await requireTenant(id)));
    return tenant!;
  }

  async function requireTenant(id: string): Promise<TenantRow> {
    const row = isUuid(id) ? await queries.find(id) : undefined;
    if (!row) throw new NotFoundError(`no tenant ${id}`);
    return row;
  }

  // Permissions are checked before the transaction opens; the roles are written inside it.
  async function checkSystemRoles(platform: boolean) {
    const definitions = systemRoleDefinitions(adminApi(), platform);
    for (const definition of definitions) await rbac.checkPermissions(definition.permissions);
    return definitions;
  }

  async function createSystemRoles(trx: Database, tenantId: string, definitions: Awaited<ReturnType<typeof checkSystemRoles>>): Promise<void> {
    for (const definition of definitions) {
      await rbac.createRole(tenantId, definition, { system: true, trx, permissionsChecked: true });
    }
  }

  return {
    async create(input: TenantInput, origin?: ChangeOrigin): Promise<Tenant> {
      if (!SLUG.test(input.slug)) throw new ValidationError('invalid slug', { slug: 'lower-case letters, digits and -, at most 63 characters' });
      if (await queries.findBySlug(input.slug)) throw new ConflictError(`a tenant with slug ${input.slug} exists`, { slug: 'already taken' });
      const row = {
        id: randomUUID(),
        slug: input.slug,
        display_name: input.displayName,
        email_domains: checkDomains(input.emailDomains ?? []),
        status: 'active' as const,
        policies: parsePolicies(input.policies),
        user_attribute_schema: parseAttributeSchema(input.userAttributeSchema),
        self_registration: input.selfRegistration ?? false,
        branding: parseBranding(input.branding),
      };
      const definitions = await checkSystemRoles(false);
      return db.transaction(async (trx) => {
        await queries.insert(trx, row);
        await createSystemRoles(trx, row.id, definitions);
        const tenant = toTenant((await tenantQueries(trx).find(row.id))!);
        await record(trx, DEFAULT_TENANT_ID, 'tenant.create', changeDetails(null, auditView(tenant)), origin, tenant.id);
        return tenant;
      });
    },

    // The platform tenant exists from the first migration; its system roles need the admin API.
    async ensurePlatformRoles(platformTenantId: string): Promise<void> {
      if ((await rbac.listRoles(platformTenantId)).some((role) => role.system)) return;
      const definitions = await checkSystemRoles(true);
      await db.transaction((trx) => createSystemRoles(trx, platformTenantId, definitions));
    },

    // A copy: callers may change what they get without changing the cache.
    async get(id: string): Promise<Tenant> {
      return structuredClone(await cachedTenant(id));
    },

    async policies(id: string): Promise<TenantPolicies> {
      return structuredClone((await cachedTenant(id)).policies);
    },

    start: () => tenantCache.start(),

    async findBySlug(slug: string): Promise<Tenant | undefined> {
      const knownId = slugIds.get(slug);
      if (knownId) {
        const tenant = await cachedTenant(knownId).catch(() => undefined);
        if (tenant?.slug === slug) return structuredClone(tenant);
        slugIds.delete(slug);
      }
      const row = await queries.findBySlug(slug);
      if (row) slugIds.set(slug, row.id);
      return row ? toTenant(row) : undefined;
    },

    // Active tenants that claim the domain of an e-mail address (home-realm discovery at login).
    async findByEmailDomain(domain: string): Promise<Tenant[]> {
      if (!domain || domain.length > 253) return [];
      return (await queries.findByEmailDomain(domain)).map(toTenant);
    },

    async list(limit: number, after?: { createdAt: Date; id: string }): Promise<Tenant[]> {
      return (await queries.list(limit, after)).map(toTenant);
    },

    async update(id: string, expectedVersion: number, input: Partial<Omit<TenantInput, 'slug'>> & { status?: 'active' | 'disabled' }, origin?: ChangeOrigin): Promise<Tenant> {
      const current = await requireTenant(id);
      if (current.platform && input.status === 'disabled') throw new ValidationError('the platform tenant cannot be disabled', { status: 'platform tenant' });
      const changes: Partial<TenantRow> = {};
      if (input.displayName !== undefined) changes.display_name = input.displayName;
      if (input.emailDomains !== undefined) changes.email_domains = checkDomains(input.emailDomains);
      if (input.policies !== undefined) changes.policies = parsePolicies(input.policies);
      if (input.userAttributeSchema !== undefined) changes.user_attribute_schema = parseAttributeSchema(input.userAttributeSchema);
      if (input.selfRegistration !== undefined) changes.self_registration = input.selfRegistration;
      if (input.branding !== undefined) changes.branding = parseBranding(input.branding);
      if (input.status !== undefined) changes.status = input.status;
      const tenant = await db.transaction(async (trx) => {
        const updated = await tenantQueries(trx).update(id, expectedVersion, changes);
        if (!updated) throw new VersionMismatchError(`the tenant changed since version ${expectedVersion}; read it again`);
        // At the version the caller read, the row read before is the state this change replaced.
        const after = toTenant(updated);
        await record(trx, id, 'tenant.update', changeDetails(auditView(toTenant(current)), auditView(after)), origin);
        return after;
      });
      await tenantCache.invalidate(id);
      return tenant;
    },

    // Removes the tenant and, through foreign keys, everything it owns. With expectedVersion
    // (If-Match), only at the version the caller read.
    async delete(id: string, origin?: ChangeOrigin, expectedVersion?: number): Promise<void> {
      const tenant = await requireTenant(id);
      if (tenant.platform) throw new ValidationError('the platform tenant cannot be deleted');
      await db.transaction(async (trx) => {
        if (!(await tenantQueries(trx).delete(id, expectedVersion))) {
          if (expectedVersion !== undefined && (await tenantQueries(trx).find(id))) throw new VersionMismatchError(`the tenant changed since version ${expectedVersion}; read it again`);
          throw new NotFoundError(`no tenant ${id}`);
        }
        await record(trx, DEFAULT_TENANT_ID, 'tenant.delete', changeDetails(auditView(toTenant(tenant)), null), origin, id);
      });
      await tenantCache.invalidate(id);
    },
  };
}

export type TenantService = ReturnType<typeof createTenantService>;
