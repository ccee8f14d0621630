// Per-tenant IP rules (docs/security.md): for each surface (sign-in, admin API, API keys) an
// allow list and a deny list of CIDR ranges. A denied range always wins; a non-empty allow list
// admits only its ranges; no rules admit everyone. Compiled lists are cached per instance and
// evicted everywhere on change, so the check on every admin API call costs no query.
import { z } from 'zod';
import type { Knex } from 'knex';
import type { Database } from '../store/database.ts';
import type { HotStore } from '../store/hot-store.ts';
import { BroadcastCache } from '../store/local-cache.ts';
import { withTenant } from '../store/tenant-scope.ts';
import type { AuditPerson, AuditService } from '../audit/service.ts';
import { changeDetails } from '../audit/mask.ts';
import { originOf, type ChangeOrigin, type RequestContext } from '../audit/origin.ts';
import { VersionMismatchError } from '../errors.ts';
import { countIpBlocked } from '../ops/metrics.ts';
import { addressList, isCidr, type AddressList } from './cidr.ts';
import { ipRulesQueries, type IpRulesRow } from './ip-rules-queries.ts';

export const IP_SURFACES = ['login', 'adminApi', 'apiKeys'] as const;
export type IpSurface = (typeof IP_SURFACES)[number];

const MAX_RANGES = 500;
// A refused address is recorded once per tenant, surface and this many seconds, so a client
// hammering a closed door cannot flood the audit trail; the metric counts every refusal.
const BLOCK_RECORD_WINDOW_SECONDS = 300;
const range = z.string().trim().max(64).refine(isCidr, { message: 'must be an IPv4 or IPv6 address or CIDR range, such as 10.0.0.0/8 or 2001:db8::/32' });
const surfaceRules = z
  .object({ allow: z.array(range).max(MAX_RANGES).default([]), deny: z.array(range).max(MAX_RANGES).default([]) })
  .strict()
  .default({ allow: [], deny: [] });

export const ipRulesSchema = z.object({ login: surfaceRules, adminApi: surfaceRules, apiKeys: surfaceRules }).strict();

export type IpRules = z.infer<typeof ipRulesSchema>;
export type IpRulesInput = z.input<typeof ipRulesSchema>;

export interface StoredIpRules {
  rules: IpRules;
  // 0: the tenant has never had rules.
  version: number;
  updatedAt?: Date;
}

export const NO_IP_RULES: IpRules = { login: { allow: [], deny: [] }, adminApi: { allow: [], deny: [] }, apiKeys: { allow: [], deny: [] } };

interface CompiledSurface {
  allow: AddressList;
  deny: AddressList;
}

type Compiled = Record<IpSurface, CompiledSurface>;

function compile(rules: IpRules): Compiled {
  const surface = (name: IpSurface) => ({ allow: addressList(rules[name].allow), deny: addressList(rules[name].deny) });
  return { login: surface('login'), adminApi: surface('adminApi'), apiKeys: surface('apiKeys') };
}

export function admits(rules: CompiledSurface, address: string): boolean {
  if (rules.deny.has(address)) return false;
  return rules.allow.size === 0 || rules.allow.has(address);
}

export interface IpRuleDependencies {
  db: Database;
  hot: HotStore;
  audit: Pick<AuditService, 'record'>;
}

export interface IpBlockNote {
  // Who was refused, when known (the admin API's principal, an API key).
  actor?: AuditPerson;
  context?: RequestContext;
}

export interface IpRuleService {
  get(tenantId: string): Promise<StoredIpRules>;
  // Replaces all rules of the tenant; expectedVersion is the version read (If-Match).
  replace(tenantId: string, input: IpRulesInput, expectedVersion: number, origin?: ChangeOrigin): Promise<StoredIpRules>;
  // Whether the tenant's rules admit this address on this surface (no side effects).
  allows(tenantId: string, surface: IpSurface, address: string): Promise<boolean>;
  // allows(), and a refusal is recorded: security.ip_blocked in the tenant's trail and the
  // idp_ip_blocked_total metric. Returns false when the caller must refuse the request.
  check(tenantId: string, surface: IpSurface, address: string, note?: IpBlockNote): Promise<boolean>;
  // Whether the tenant has any rule for the surface (a use from an unknown address is then refused).
  restricts(tenantId: string, surface: IpSurface): Promise<boolean>;
  start(): Promise<void>;
}

function toStored(row: IpRulesRow | undefined): StoredIpRules {
  if (!row) return { rules: NO_IP_RULES, version: 0 };
  return { rules: ipRulesSchema.parse(row.rules), version: row.version, updatedAt: row.updated_at };
}

export function createIpRuleService(deps: IpRuleDependencies): IpRuleService {
  const { db, audit } = deps;
  const cache = new BroadcastCache<Compiled>(deps.hot, 'ip-rules:changed', { max: 10_000, ttlSeconds: 60 });

  async function read(tenantId: string, trx?: Knex.Transaction): Promise<StoredIpRules> {
    if (trx) return toStored(await ipRulesQueries.find(trx, tenantId));
    return withTenant(db, tenantId, async (scoped) => toStored(await ipRulesQueries.find(scoped, tenantId)));
  }

  async function compiled(tenantId: string): Promise<Compiled> {
    return (await cache.get(tenantId, async () => compile((await read(tenantId)).rules)))!;
  }

  async function allows(tenantId: string, surface: IpSurface, address: string): Promise<boolean> {
    return admits((await compiled(tenantId))[surface], address);
  }

  return {
    get: (tenantId) => read(tenantId),
    async replace(tenantId, input, expectedVersion, origin) {
      const rules = ipRulesSchema.parse(input);
      const stored = await withTenant(db, tenantId, async (trx) => {
        const before = await read(tenantId, trx);
        if (before.version !== expectedVersion) throw new VersionMismatchError(`the IP rules changed since version ${expectedVersion}; read them again`);
        const row = before.version === 0 ? await ipRulesQueries.insert(trx, tenantId, rules) : await ipRulesQueries.update(trx, tenantId, expectedVersion, rules);
        if (!row) throw new VersionMismatchError(`the IP rules changed since version ${expectedVersion}; read them again`);
        await audit.record(trx, {
          tenantId,
          type: 'tenant.ip_rules.update',
          outcome: 'success',
          ...originOf(origin),
          target: { ref: tenantId },
          details: changeDetails(before.rules, rules),
        });
        return toStored(row);
      });
      await cache.invalidate(tenantId);
      return stored;
    },
    allows,
    async check(tenantId, surface, address, note = {}) {
      if (await allows(tenantId, surface, address)) return true;
      countIpBlocked(surface);
      const seen = await deps.hot.increment(`ip-blocked:${tenantId}:${surface}:${address}`, BLOCK_RECORD_WINDOW_SECONDS);
      if (seen > 1) return false;
      await audit.record(undefined, {
        tenantId,
        type: 'security.ip_blocked',
        outcome: 'failure',
        actor: note.actor,
        details: { surface },
        context: note.context ?? { ip: address },
      });
      return false;
    },
    async restricts(tenantId, surface) {
      const rules = (await compiled(tenantId))[surface];
      return rules.allow.size > 0 || rules.deny.size > 0;
    },
    start: () => cache.start(),
  };
}
