// Verifying a presented API key, on every use (admin API, the verification endpoint, token
// exchange). In order, cheapest first:
//   1. format, environment and checksum, offline: a mangled key never reaches a store;
//   2. the key record by public id from a per-instance cache, then PostgreSQL. A cached record is
//      used only while its tenant's API-key generation is the one it was read under: revoking or
//      rotating a key, or suspending or deleting an owner, draws a new generation and announces
//      it, so every instance stops using what it cached at once (src/store/shared-epochs.ts: the
//      generation is held in memory, read again each second at most);
//   3. the secret's SHA-256 against the stored digest, in constant time;
//   4. revoked, expired, IP allow-list;
//   5. the owner still active (users cached under the same generation; clients through the client
//      cache) and the tenant active (cached for cacheSeconds);
//   6. the owner's permissions now (RBAC, cached under the tenant's epoch in the same way):
//      the key grants what it names AND the owner still holds;
//   7. the per-key rate limit (counted in the hot store, in leases: src/security/leased-rate-limiter.ts;
//      for matching secrets only), then usage counted in memory (usage.ts).
// So a verification of a key in use needs no round trip to Redis or PostgreSQL.
import { LRUCache } from 'lru-cache';
import type { HotStore } from '../store/hot-store.ts';
import type { Database } from '../store/database.ts';
import { digestsEqual, sha256Hex } from '../security/crypto.ts';
import { createRateLimiter, type RateLimiter } from '../security/rate-limiter.ts';
import { createLeasedRateLimiter } from '../security/leased-rate-limiter.ts';
import { SharedEpochs } from '../store/shared-epochs.ts';
import type { RbacService } from '../rbac/service.ts';
import type { UserService } from '../users/service.ts';
import type { ClientService } from '../clients/service.ts';
import type { TenantService } from '../tenants/service.ts';
import type { Logger } from 'pino';
import { parseKey } from './format.ts';
import { findByPublicId, type ApiKeyRow, type KeyPermission } from './queries.ts';
import { addressList, type AddressList } from '../security/cidr.ts';
import type { UsageTracker } from './usage.ts';

export type OwnerType = 'user' | 'client';

export interface VerifiedKey {
  id: string;
  publicId: string;
  tenantId: string;
  name: string;
  owner: { type: OwnerType; id: string };
  // What the key grants now: its permissions that the owner still holds.
  permissions: KeyPermission[];
  expiresAt: Date | null;
}

export type Refusal = 'malformed' | 'unknown' | 'revoked' | 'expired' | 'ip_not_allowed' | 'owner_inactive' | 'tenant_inactive';

export type Verification =
  | { ok: true; key: VerifiedKey }
  | { ok: false; reason: Refusal }
  | { ok: false; reason: 'rate_limited'; retryAfterSeconds: number };

interface CachedKey {
  id: string;
  publicId: string;
  tenantId: string;
  name: string;
  secretSha256: string;
  ownerType: OwnerType;
  ownerId: string;
  permissions: KeyPermission[];
  allowList?: AddressList;
  rateLimit: number | null;
  expiresAt: number | null;
  revoked: boolean;
  // The tenant's API-key generation when this was read.
  generation: string;
}

export interface VerifierOptions {
  db: Database;
  hot: HotStore;
  rbac: Pick<RbacService, 'effectiveAccess'>;
  users: Pick<UserService, 'findById'>;
  clients: Pick<ClientService, 'get'>;
  tenants: Pick<TenantService, 'get'>;
  usage: UsageTracker;
  environment: string;
  cacheSeconds: number;
  rateLimit: { points: number; windowSeconds: number };
  now: () => Date;
  log?: Logger;
}

export function cacheEntry(row: ApiKeyRow, generation: string): CachedKey {
  return {
    id: row.id,
    publicId: row.public_id,
    tenantId: row.tenant_id,
    name: row.name,
    secretSha256: row.secret_sha256,
    ownerType: row.owner_type,
    ownerId: row.owner_id,
    permissions: row.permissions,
    allowList: row.allowed_ips?.length ? addressList(row.allowed_ips) : undefined,
    rateLimit: row.rate_limit,
    expiresAt: row.expires_at ? new Date(row.expires_at).getTime() : null,
    revoked: row.revoked_at !== null,
    generation,
  };
}

export function createVerifier(options: VerifierOptions) {
  const keys = new LRUCache<string, CachedKey | { missing: true }>({ max: 50_000, ttl: options.cacheSeconds * 1000 });
  const owners = new LRUCache<string, { tenantId: string | undefined; generation: string }>({ max: 50_000, ttl: options.cacheSeconds * 1000 });
  // A tenant being disabled reaches keys within cacheSeconds (the tenant service has no change notice).
  const tenants = new LRUCache<string, { active: boolean }>({ max: 10_000, ttl: options.cacheSeconds * 1000 });
  const limiters = new Map<number, RateLimiter>();
  // Requests that got past the offline checks to a lookup (cache or store): the tests' witness
  // that a mangled key is refused without one.
  const stats = { lookups: 0 };

  function limiterFor(points: number): RateLimiter {
    let limiter = limiters.get(points);
    if (!limiter) {
      limiter = createLeasedRateLimiter(createRateLimiter(options.hot, { name: 'apikey', points, durationSeconds: options.rateLimit.windowSeconds, log: options.log }));
      limiters.set(points, limiter);
    }
    return limiter;
  }

  const generations = new SharedEpochs(options.hot, { key: (tenantId) => `apikeys:{${tenantId}}:generation`, channel: 'apikeys:generation-changed' });
  const generation = (tenantId: string) => generations.current(tenantId);

  // The generation must be read before the row: a row read first could predate a revocation
  // whose new generation the later read already sees, and would then be trusted until it expires.
  // `known`: the tenant's generation, read just now (the key's tenant never changes). Without it,
  // the first read only names the tenant and the row is read again after its generation.
  async function load(publicId: string, known?: string): Promise<CachedKey | { missing: true }> {
    let current = known;
    let row = await findByPublicId(options.db, publicId);
    if (row && current === undefined) {
      current = await generation(row.tenant_id);
      row = await findByPublicId(options.db, publicId);
    }
    const entry = row ? cacheEntry(row, current!) : ({ missing: true } as const);
    keys.set(publicId, entry);
    return entry;
  }

  async function ownerActive(key: CachedKey, current: string): Promise<boolean> {
    if (key.ownerType === 'client') return (await options.clients.get(key.ownerId))?.tenantId === key.tenantId;
    let owner = owners.get(key.ownerId);
    if (!owner || owner.generation !== current) {
      owner = { tenantId: (await options.users.findById(key.ownerId))?.tenantId, generation: current };
      owners.set(key.ownerId, owner);
    }
    return owner.tenantId === key.tenantId;
  }

  async function tenantActive(tenantId: string): Promise<boolean> {
    let known = tenants.get(tenantId);
    if (!known) {
      const tenant = await options.tenants.get(tenantId).catch(() => undefined);
      known = { active: tenant?.status === 'active' };
      tenants.set(tenantId, known);
    }
    return known.active;
  }

  return {
    stats,

    // `ip`: the address the key is used from (the admin API's caller, or the one a resource server
    // reports). `count`: a use of the key (rate limited and counted); false for a look only.
    async verify(presented: string, ip: string | undefined, count = true): Promise<Verification> {
      const parsed = parseKey(presented);
      if (!parsed || parsed.environment !== options.environment) return { ok: false, reason: 'malformed' };
      stats.lookups++;
      const secretSha256 = sha256Hex(parsed.secret);
      const matches = (entry: CachedKey | { missing: true }): entry is CachedKey => {
        // An unknown id costs a digest comparison too.
        if (!('missing' in entry)) return digestsEqual(secretSha256, entry.secretSha256);
        digestsEqual(secretSha256, secretSha256);
        return false;
      };
      let key = keys.get(parsed.publicId) ?? (await load(parsed.publicId));
      if (!matches(key)) return { ok: false, reason: 'unknown' };
      // Counted only once the secret matched: knowing a key's public id is not enough to exhaust
      // its limit. Sent beside the generation and RBAC reads; awaited after the checks.
      const limited = count ? limiterFor(key.rateLimit ?? options.rateLimit.points).consume(key.id) : undefined;
      limited?.catch(() => {});
      const [current, held] = await Promise.all([generation(key.tenantId), options.rbac.effectiveAccess(key.tenantId, key.ownerType, key.ownerId).then((access) => access.permissions)]);
      if (current !== key.generation) {
        key = await load(parsed.publicId, current);
        if (!matches(key)) return { ok: false, reason: 'unknown' };
      }
      if (key.revoked) return { ok: false, reason: 'revoked' };
      if (key.expiresAt !== null && key.expiresAt <= options.now().getTime()) return { ok: false, reason: 'expired' };
      if (key.allowList && (!ip || !key.allowList.has(ip))) return { ok: false, reason: 'ip_not_allowed' };
      const [active, tenantOk] = await Promise.all([ownerActive(key, current), tenantActive(key.tenantId)]);
      if (!active) return { ok: false, reason: 'owner_inactive' };
      if (!tenantOk) return { ok: false, reason: 'tenant_inactive' };
      const permissions = key.permissions.filter(({ api, permission }) => held[api]?.includes(permission));
      const decision = await limited;
      if (decision && !decision.allowed) return { ok: false, reason: 'rate_limited', retryAfterSeconds: decision.retryAfterSeconds };
      // Counted in memory, published to the hot store once a second (usage.ts).
      if (count) options.usage.record(key.tenantId, key.id, ip ?? 'unknown');
      return {
        ok: true,
        key: {
          id: key.id,
          publicId: key.publicId,
          tenantId: key.tenantId,
          name: key.name,
          owner: { type: key.ownerType, id: key.ownerId },
          permissions,
          expiresAt: key.expiresAt === null ? null : new Date(key.expiresAt),
        },
      };
    },

    // After a key of the tenant was revoked or rotated, or an owner suspended or deleted: every
    // instance reads again what it cached of the tenant's keys and owners, at their next use.
    async changed(tenantId: string): Promise<void> {
      await generations.renew(tenantId);
    },

    // Listens for other instances' changes.
    start: () => generations.start(),
  };
}

export type ApiKeyVerifier = ReturnType<typeof createVerifier>;
