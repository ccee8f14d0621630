// Registered APIs (resource servers). Tokens requested with `resource=<identifier>` are JWTs
// whose audience is the API and whose scopes are limited to the API's scopes.
import type { Knex } from 'knex';
import type { Database } from '../store/database.ts';
import { storableText } from '../store/text.ts';
import type { HotStore } from '../store/hot-store.ts';
import { BroadcastCache } from '../store/local-cache.ts';
import type { AuditService } from '../audit/service.ts';
import { originOf, type ChangeOrigin } from '../audit/origin.ts';
import { changeDetails } from '../audit/mask.ts';
import { DEFAULT_TENANT_ID } from '../tenants/constants.ts';

export interface ApiResource {
  identifier: string;
  name: string;
  scopes: string[];
  accessTokenTtl: number | null;
  signingAlg: string | null;
}

interface Row {
  identifier: string;
  name: string;
  scopes: string[];
  access_token_ttl: number | null;
  signing_alg: string | null;
}

const toResource = (row: Row): ApiResource => ({
  identifier: row.identifier,
  name: row.name,
  scopes: row.scopes,
  accessTokenTtl: row.access_token_ttl,
  signingAlg: row.signing_alg,
});

// APIs belong to the platform: registrations and removals are recorded in the platform tenant's
// trail, in their transaction.
export function createApiResourceService(db: Database, hot: HotStore, audit: Pick<AuditService, 'record'>) {
  const cache = new BroadcastCache<{ resource?: ApiResource }>(hot, 'api-resources:changed', { max: 10_000, ttlSeconds: 60 });
  const record = (trx: Knex.Transaction, type: string, identifier: string, details: Record<string, unknown>, origin: ChangeOrigin | undefined) =>
    audit.record(trx, { tenantId: DEFAULT_TENANT_ID, type, outcome: 'success', ...originOf(origin), target: { ref: identifier }, details });
  return {
    start: () => cache.start(),
    async find(identifier: string): Promise<ApiResource | undefined> {
      if (!storableText(identifier)) return undefined;
      const entry = await cache.get(identifier, async () => {
        const row = await db('api_resources').where({ identifier }).first();
        return { resource: row ? toResource(row) : undefined };
      });
      return entry?.resource;
    },
    async list(): Promise<ApiResource[]> {
      return (await db('api_resources').select('*').orderBy('identifier')).map(toResource);
    },
    async create(input: { identifier: string; name: string; scopes: string[]; accessTokenTtl?: number; signingAlg?: string }, origin?: ChangeOrigin) {
      const row = {
        identifier: input.identifier,
        name: input.name,
        scopes: input.scopes,
        access_token_ttl: input.accessTokenTtl ?? null,
        signing_alg: input.signingAlg ?? null,
      };
      await db.transaction(async (trx) => {
        await trx('api_resources').insert(row);
        await record(trx, 'api.create', input.identifier, changeDetails(null, { ...toResource(row) }), origin);
      });
      await cache.invalidate(input.identifier);
    },
    // Registers an API the provider itself serves (the admin API), adding permissions it lacks.
    async ensure(input: { identifier: string; name: string; scopes: readonly string[] }) {
      const existing = await db('api_resources').where({ identifier: input.identifier }).first();
      if (!existing) {
        await db('api_resources').insert({ identifier: input.identifier, name: input.name, scopes: [...input.scopes] }).onConflict('identifier').ignore();
      } else if (input.scopes.some((scope) => !existing.scopes.includes(scope))) {
        await db('api_resources').where({ identifier: input.identifier }).update({ scopes: [...new Set([...existing.scopes, ...input.scopes])] });
      } else {
        return;
      }
      await cache.invalidate(input.identifier);
    },
    async delete(identifier: string, origin?: ChangeOrigin): Promise<boolean> {
      const deleted = await db.transaction(async (trx) => {
        const [row] = await trx('api_resources').where({ identifier }).delete('*');
        if (row) await record(trx, 'api.delete', identifier, changeDetails({ ...toResource(row) }, null), origin);
        return Boolean(row);
      });
      await cache.invalidate(identifier);
      return deleted;
    },
  };
}

export type ApiResourceService = ReturnType<typeof createApiResourceService>;
