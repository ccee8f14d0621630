// API keys of a tenant, for the admin API: create (the key is in that answer only), list, read
// with usage, revoke, rotate with an overlap. Owned by a user or by a tenant-bound machine client
// (a service account). A key's permissions are a subset of its owner's (and of its creator's) when
// it is made; at use they are cut down again to what the owner holds then (verifier.ts).
// Every change is in one tenant-scoped transaction with its audit entry and its outbox event.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { UsageTracker } from './usage.ts';
import type { Database } from '../store/database.ts';
import { withTenant } from '../store/tenant-scope.ts';
import { sha256Hex } from '../security/crypto.ts';
import { ConflictError, NotFoundError, ValidationError } from '../errors.ts';
import type { AuditService } from '../audit/service.ts';
import type { OutboxService } from '../outbox/service.ts';
import type { RbacService } from '../rbac/service.ts';
import type { UserService } from '../users/service.ts';
import type { ClientService } from '../clients/service.ts';
import { originOf, type ChangeOrigin } from '../audit/origin.ts';
import { generateKey, maskedKey } from './format.ts';
import { apiKeyQueries, isoDay, type ApiKeyRow, type KeyPermission, type UsageRow } from './queries.ts';
import { MAX_ALLOWED_IPS } from './ip-allow-list.ts';
import { isCidr } from '../security/cidr.ts';
import type { ApiKeyVerifier, OwnerType } from './verifier.ts';

export type { KeyPermission } from './queries.ts';

export const DEFAULT_OVERLAP_SECONDS = 86400;
export const MAX_OVERLAP_SECONDS = 30 * 86400;
export const USAGE_DAYS = 30;

export type KeyStatus = 'active' | 'rotating' | 'expired' | 'revoked';

export interface ApiKey {
  id: string;
  tenantId: string;
  name: string;
  // Recognises the key (prefix, environment, public id) without being usable.
  display: string;
  owner: { type: OwnerType; id: string };
  permissions: KeyPermission[];
  allowedIps: string[] | null;
  rateLimit: number;
  expiresAt: Date | null;
  revokedAt: Date | null;
  replacedBy: string | null;
  status: KeyStatus;
  createdAt: Date;
  createdBy: { type: string; id: string } | null;
  lastUsedAt: Date | null;
  lastUsedIp: string | null;
}

export interface NewApiKey {
  name: string;
  owner: { type: OwnerType; id: string };
  permissions: KeyPermission[];
  expiresAt?: Date | null;
  allowedIps?: string[] | null;
  rateLimit?: number | null;
}

export interface ApiKeyServiceOptions {
  db: Database;
  rbac: Pick<RbacService, 'effectiveAccess' | 'checkPermissions'>;
  users: Pick<UserService, 'findById'>;
  clients: Pick<ClientService, 'get'>;
  audit: Pick<AuditService, 'record'>;
  outbox: Pick<OutboxService, 'enqueue'>;
  verifier: Pick<ApiKeyVerifier, 'changed'>;
  usage?: Pick<UsageTracker, 'forget'>;
  environment: string;
  defaultRateLimit: number;
  now: () => Date;
}

const key = (p: KeyPermission) => `${p.api} ${p.permission}`;

export function createApiKeyService(options: ApiKeyServiceOptions) {
  const { db, now } = options;

  function view(row: ApiKeyRow): ApiKey {
    const at = now().getTime();
    const expiresAt = row.expires_at ? new Date(row.expires_at) : null;
    const status: KeyStatus = row.revoked_at ? 'revoked' : expiresAt && expiresAt.getTime() <= at ? 'expired' : row.replaced_by ? 'rotating' : 'active';
    return {
      id: row.id,
      tenantId: row.tenant_id,
      name: row.name,
      display: maskedKey(row.environment, row.public_id),
      owner: { type: row.owner_type, id: row.owner_id },
      permissions: row.permissions,
      allowedIps: row.allowed_ips,
      rateLimit: row.rate_limit ?? options.defaultRateLimit,
      expiresAt,
      revokedAt: row.revoked_at ? new Date(row.revoked_at) : null,
      replacedBy: row.replaced_by,
      status,
      createdAt: new Date(row.created_at),
      createdBy: row.created_by_type && row.created_by_id ? { type: row.created_by_type, id: row.created_by_id } : null,
      lastUsedAt: row.last_used_at ? new Date(row.last_used_at) : null,
      lastUsedIp: row.last_used_ip,
    };
  }

  // What the audit trail shows of a key: never its secret or digest. The owner is the entry's
  // target (a person's pseudonym in the chain), not a field here.
  function auditView(row: ApiKeyRow) {
    return { name: row.name, permissions: row.permissions.map(key).sort(), expiresAt: row.expires_at ? new Date(row.expires_at).toISOString() : null, allowedIps: row.allowed_ips, rateLimit: row.rate_limit };
  }

  async function record(trx: Knex.Transaction, row: ApiKeyRow, type: string, details: Record<string, unknown>, origin: ChangeOrigin | undefined): Promise<void> {
    const target = { type: row.owner_type, id: row.owner_id };
    await options.audit.record(trx, { tenantId: row.tenant_id, type, outcome: 'success', ...originOf(origin), target, details: { apiKeyId: row.id, ...details } });
  }

  async function existing(trx: Knex.Transaction, tenantId: string, id: string): Promise<ApiKeyRow> {
    const row = await apiKeyQueries.find(trx, tenantId, id);
    if (!row) throw new NotFoundError('no such API key in this tenant');
    return row;
  }

  async function checkOwner(tenantId: string, owner: { type: OwnerType; id: string }): Promise<void> {
    const ownerTenant = owner.type === 'user' ? (await options.users.findById(owner.id))?.tenantId : (await options.clients.get(owner.id))?.tenantId;
    if (ownerTenant !== tenantId) {
      throw new ValidationError('the owner must be an active user or a machine client of this tenant', { 'body.owner': `no active ${owner.type} ${owner.id} in this tenant` });
    }
  }

  function checkInput(input: Pick<NewApiKey, 'expiresAt' | 'allowedIps' | 'permissions'>): void {
    const fields: Record<string, string> = {};
    if (input.expiresAt && input.expiresAt.getTime() <= now().getTime()) fields['body.expiresAt'] = 'must be in the future';
    if (input.allowedIps && input.allowedIps.length > MAX_ALLOWED_IPS) fields['body.allowedIps'] = `at most ${MAX_ALLOWED_IPS} entries`;
    for (const [index, entry] of (input.allowedIps ?? []).entries()) {
      if (!isCidr(entry)) fields[`body.allowedIps.${index}`] = 'must be an IPv4 or IPv6 address or CIDR range, such as 203.0.113.0/24 or 2001:db8::/32';
    }
    if (!input.permissions.length) fields['body.permissions'] = 'name at least one permission';
    if (Object.keys(fields).length) throw new ValidationError('invalid API key', fields);
  }

  return {
    // `creatorHolds` tells whether whoever creates the key holds a permission: a key never carries
    // more than its owner or its creator (an administrator cannot mint a key above their own rights).
    async create(tenantId: string, input: NewApiKey, creatorHolds: (permission: KeyPermission) => Promise<boolean>, origin?: ChangeOrigin): Promise<{ apiKey: ApiKey; key: string }> {
      checkInput(input);
      const permissions = [...new Map(input.permissions.map((p) => [key(p), { api: p.api, permission: p.permission }])).values()];
      await options.rbac.checkPermissions(permissions);
      await checkOwner(tenantId, input.owner);
      const held = (await options.rbac.effectiveAccess(tenantId, input.owner.type, input.owner.id)).permissions;
      const beyondOwner = permissions.filter((p) => !held[p.api]?.includes(p.permission));
      if (beyondOwner.length) {
        throw new ValidationError('an API key can only carry permissions its owner holds', { 'body.permissions': `the owner does not hold: ${beyondOwner.map(key).join(', ')}` });
      }
      const beyondCreator: KeyPermission[] = [];
      for (const permission of permissions) if (!(await creatorHolds(permission))) beyondCreator.push(permission);
      if (beyondCreator.length) {
        throw new ValidationError('an API key can only carry permissions you hold yourself', { 'body.permissions': `you do not hold: ${beyondCreator.map(key).join(', ')}` });
      }
      const generated = generateKey(options.environment);
      const actor = originOf(origin).actor;
      const created = await withTenant(db, tenantId, async (trx) => {
        const row = await apiKeyQueries.insert(trx, {
          id: randomUUID(),
          tenant_id: tenantId,
          public_id: generated.publicId,
          environment: options.environment,
          secret_sha256: sha256Hex(generated.secret),
          name: input.name,
          owner_type: input.owner.type,
          owner_id: input.owner.id,
          permissions,
          allowed_ips: input.allowedIps?.length ? [...new Set(input.allowedIps)] : null,
          rate_limit: input.rateLimit ?? null,
          expires_at: input.expiresAt ?? null,
          created_by_type: actor.type,
          created_by_id: actor.id ?? null,
          created_at: now(),
        });
        await record(trx, row, 'apikey.create', { after: auditView(row) }, origin);
        await options.outbox.enqueue(trx, { tenantId, type: 'apikey.created', data: { apiKeyId: row.id, ownerType: row.owner_type, ownerId: row.owner_id } });
        return row;
      });
      return { apiKey: view(created), key: generated.key };
    },

    list: (tenantId: string, query: { limit: number; before?: { createdAt: Date; id: string }; ownerType?: OwnerType; ownerId?: string }) =>
      withTenant(db, tenantId, async (trx) => (await apiKeyQueries.list(trx, tenantId, query)).map(view)),

    // The key with its requests per day (the last USAGE_DAYS days, as of the last usage flush).
    get: (tenantId: string, id: string) =>
      withTenant(db, tenantId, async (trx): Promise<ApiKey & { usage: UsageRow[] }> => {
        const row = await existing(trx, tenantId, id);
        const since = isoDay(new Date(now().getTime() - USAGE_DAYS * 86400_000));
        return { ...view(row), usage: await apiKeyQueries.usage(trx, tenantId, id, since) };
      }),

    // An erasure (GDPR) of the owner: their keys go with their usage and last-use addresses, in the
    // caller's transaction. The keys stopped working when the owner was deleted in it.
    async eraseOwnedBy(trx: Knex.Transaction, tenantId: string, ownerType: OwnerType, ownerId: string): Promise<number> {
      const ids = await apiKeyQueries.deleteOwnedBy(trx, tenantId, ownerType, ownerId);
      await options.usage?.forget(ids);
      return ids.length;
    },

    async revoke(tenantId: string, id: string, origin?: ChangeOrigin): Promise<void> {
      await withTenant(db, tenantId, async (trx) => {
        const current = await existing(trx, tenantId, id);
        const row = await apiKeyQueries.revoke(trx, tenantId, id, now());
        if (!row) throw new ConflictError('the API key is already revoked');
        await record(trx, current, 'apikey.revoke', { name: current.name }, origin);
        await options.outbox.enqueue(trx, { tenantId, type: 'apikey.revoked', data: { apiKeyId: id, ownerType: row.owner_type, ownerId: row.owner_id } });
      });
      await options.verifier.changed(tenantId);
    },

    // A new key with the old one's name, owner, permissions, expiry, allow-list and limit; the old
    // key keeps working for `overlapSeconds` (never beyond its own expiry), then stops.
    async rotate(tenantId: string, id: string, overlapSeconds: number, origin?: ChangeOrigin): Promise<{ apiKey: ApiKey; key: string; previous: ApiKey }> {
      const generated = generateKey(options.environment);
      const actor = originOf(origin).actor;
      const at = now();
      const result = await withTenant(db, tenantId, async (trx) => {
        const old = await existing(trx, tenantId, id);
        if (old.revoked_at) throw new ConflictError('a revoked API key cannot be rotated');
        if (old.replaced_by) throw new ConflictError('the API key was already rotated: rotate its successor');
        if (old.expires_at && new Date(old.expires_at).getTime() <= at.getTime()) throw new ConflictError('an expired API key cannot be rotated');
        const successor = await apiKeyQueries.insert(trx, {
          id: randomUUID(),
          tenant_id: tenantId,
          public_id: generated.publicId,
          environment: options.environment,
          secret_sha256: sha256Hex(generated.secret),
          name: old.name,
          owner_type: old.owner_type,
          owner_id: old.owner_id,
          permissions: old.permissions,
          allowed_ips: old.allowed_ips,
          rate_limit: old.rate_limit,
          expires_at: old.expires_at,
          created_by_type: actor.type,
          created_by_id: actor.id ?? null,
          created_at: at,
        });
        const previous = await apiKeyQueries.supersede(trx, tenantId, id, successor.id, new Date(at.getTime() + overlapSeconds * 1000));
        if (!previous) throw new ConflictError('the API key changed while it was being rotated: read it again');
        await record(trx, old, 'apikey.rotate', { successorId: successor.id, overlapSeconds, previousExpiresAt: previous.expires_at ? new Date(previous.expires_at).toISOString() : null }, origin);
        await options.outbox.enqueue(trx, { tenantId, type: 'apikey.rotated', data: { apiKeyId: id, successorId: successor.id, overlapEndsAt: previous.expires_at ? new Date(previous.expires_at).toISOString() : null } });
        return { successor, previous };
      });
      await options.verifier.changed(tenantId);
      return { apiKey: view(result.successor), key: generated.key, previous: view(result.previous) };
    },
  };
}

export type ApiKeyService = ReturnType<typeof createApiKeyService>;
