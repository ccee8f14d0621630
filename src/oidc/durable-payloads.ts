// Queries on oidc_payloads, the durable home of long-lived oidc-provider models.
import { LRUCache } from 'lru-cache';
import type { AdapterPayload } from 'oidc-provider';
import type { Database } from '../store/database.ts';
import { batchedByKey, batchedWriteSets } from '../store/batching.ts';

export interface DurableRow {
  payload: AdapterPayload;
  expiresIn: number;
}

interface StoredRow {
  id: string;
  payload: AdapterPayload | string;
  consumed_at: Date | string | null;
  expires_at: Date | string | null;
  // A refresh token's grant, read with it.
  grant_payload?: AdapterPayload | string | null;
  grant_expires_at?: Date | string | null;
}

function durableRow(stored: AdapterPayload | string, consumedAt: Date | string | null, expiresAt: Date | string | null): DurableRow {
  const payload: AdapterPayload = typeof stored === 'string' ? JSON.parse(stored) : stored;
  if (consumedAt) payload.consumed = Math.floor(new Date(consumedAt).getTime() / 1000);
  const expiresIn = expiresAt ? Math.floor((new Date(expiresAt).getTime() - Date.now()) / 1000) : Infinity;
  return { payload, expiresIn };
}

interface Consumption {
  id: string;
  consumed_at: Date | string;
}

interface Upsert {
  id: string;
  payload: AdapterPayload;
  expiresIn: number;
}

// One set of statement batches per database and model, whichever adapter instance asks.
const perDatabase = new WeakMap<Database, Map<string, ReturnType<typeof createDurablePayloads>>>();

export function durablePayloads(db: Database, model: string) {
  let models = perDatabase.get(db);
  if (!models) perDatabase.set(db, (models = new Map()));
  let rows = models.get(model);
  if (!rows) models.set(model, (rows = createDurablePayloads(db, model)));
  return rows;
}

function createDurablePayloads(db: Database, model: string) {
  const table = () => db('oidc_payloads');
  const live = () => table().where({ model }).where((q) => q.whereNull('expires_at').orWhere('expires_at', '>', db.fn.now()));

  // oidc-provider looks a refresh token's grant up right after the token: the token is read with
  // its grant, and the grant waits for that lookup (single use, a second at most, dropped when the
  // grant is stored or destroyed meanwhile) instead of two more round trips (the Redis cache, then
  // PostgreSQL).
  const readsGrant = model === 'RefreshToken';
  const readTogether = new LRUCache<string, DurableRow>({ max: 10_000, ttl: 1000 });
  const findRows = batchedByKey(
    (ids): Promise<StoredRow[]> =>
      readsGrant
        ? db('oidc_payloads as t')
            .leftJoin('oidc_payloads as g', (join) => join.on('g.id', '=', 't.grant_id').andOnVal('g.model', '=', 'Grant'))
            .where('t.model', model)
            .whereIn('t.id', ids)
            .where((q) => q.whereNull('t.expires_at').orWhere('t.expires_at', '>', db.fn.now()))
            .select('t.id', 't.payload', 't.consumed_at', 't.expires_at', 'g.payload as grant_payload', 'g.expires_at as grant_expires_at')
        : live().whereIn('id', ids).select('id', 'payload', 'consumed_at', 'expires_at'),
    (row) => row.id,
  );
  const update = (ids: readonly string[]) =>
    table().where({ model }).whereIn('id', ids).whereNull('consumed_at').update({ consumed_at: db.fn.now() }, ['id', 'consumed_at']);
  const insert = (items: readonly Upsert[]) => {
    const now = Date.now();
    const rows = items.map(({ id, payload, expiresIn }) => ({
      model,
      id,
      payload: JSON.stringify(payload),
      grant_id: payload.grantId ?? null,
      uid: payload.uid ?? null,
      user_code: payload.userCode ?? null,
      account_id: payload.accountId ?? null,
      expires_at: expiresIn ? new Date(now + expiresIn * 1000) : null,
    }));
    return table().insert(rows).onConflict(['model', 'id']).merge(['payload', 'grant_id', 'uid', 'user_code', 'account_id', 'expires_at']);
  };
  // Consumptions and stores of one turn in one statement: a rotation's consumption of the old
  // refresh token and store of the new one commit together (src/oidc/adapter.ts).
  const write = batchedWriteSets<Upsert, Consumption>({
    keyOf: (item) => item.id,
    async run(consumes, upserts) {
      if (!upserts.length) return update(consumes);
      if (!consumes.length) return insert(upserts).then(() => []);
      const result = await db.raw('WITH consumed AS (?), stored AS (?) SELECT id, consumed_at FROM consumed', [update(consumes), insert(upserts)]);
      return result.rows;
    },
  });

  const consuming = new Map<string, Promise<void>>();

  return {
    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      readTogether.delete(id);
      await write.store({ id, payload, expiresIn });
    },

    async find(id: string): Promise<DurableRow | undefined> {
      // A consumption its caller did not wait for (src/oidc/adapter.ts) is seen by every later find.
      const consumption = consuming.get(id);
      if (consumption) await consumption;
      const row = await findRows(id);
      if (!row) return undefined;
      const found = durableRow(row.payload, row.consumed_at, row.expires_at);
      const grantId = found.payload.grantId;
      if (row.grant_payload && typeof grantId === 'string') {
        const grant = durableRow(row.grant_payload, null, row.grant_expires_at ?? null);
        if (grant.expiresIn > 0) durablePayloads(db, 'Grant').keepReadTogether(grantId, grant);
      }
      return found;
    },

    keepReadTogether(id: string, row: DurableRow): void {
      readTogether.set(id, row);
    },

    // A row read together with another a moment ago, once.
    takeReadTogether(id: string): DurableRow | undefined {
      const row = readTogether.get(id);
      if (row) readTogether.delete(id);
      return row;
    },

    async idByUid(uid: string): Promise<string | undefined> {
      const row = await live().andWhere({ uid }).first('id');
      return row?.id;
    },

    async idByUserCode(userCode: string): Promise<string | undefined> {
      const row = await live().andWhere({ user_code: userCode }).first('id');
      return row?.id;
    },

    // Returns the consumption time in epoch seconds when this call consumed it.
    async consume(id: string): Promise<number | undefined> {
      const pending = write.consume(id);
      const settled = pending.then(
        () => undefined,
        () => undefined,
      );
      consuming.set(id, settled);
      void settled.then(() => consuming.get(id) === settled && consuming.delete(id));
      const row = await pending;
      return row ? Math.floor(new Date(row.consumed_at).getTime() / 1000) : undefined;
    },

    async destroy(id: string): Promise<void> {
      readTogether.delete(id);
      await table().where({ model, id }).delete();
    },

    async destroyByGrantId(grantId: string): Promise<string[]> {
      const rows = await table().where({ model, grant_id: grantId }).delete(['id']);
      return rows.map((row: { id: string }) => row.id);
    },
  };
}

// Removes expired rows in bounded batches; returns how many it removed.
export async function purgeExpiredPayloads(db: Database, batchSize = 1000, maxBatches = 20): Promise<number> {
  let removed = 0;
  for (let batch = 0; batch < maxBatches; batch++) {
    const result = await db.raw(
      `DELETE FROM oidc_payloads WHERE (model, id) IN (
         SELECT model, id FROM oidc_payloads WHERE expires_at < now() LIMIT ?)`,
      [batchSize],
    );
    const count = result.rowCount ?? result.affectedRows ?? 0;
    removed += count;
    if (count < batchSize) break;
  }
  return removed;
}

// Models that belong to an account and outlive a request: what must go when the account's access ends.
export const ACCOUNT_MODELS = ['Session', 'Grant', 'RefreshToken'] as const;

export interface AccountPayload {
  model: (typeof ACCOUNT_MODELS)[number];
  id: string;
  grantId: string | null;
  // Grants a session holds for its clients (oidc-provider keeps them in the session payload).
  sessionGrantIds: string[];
}

// Every durable Session, Grant and RefreshToken of an account, expired or not.
export async function accountPayloads(db: Database, accountId: string): Promise<AccountPayload[]> {
  const rows: Array<{ model: AccountPayload['model']; id: string; grant_id: string | null; payload: AdapterPayload | string }> = await db('oidc_payloads')
    .where({ account_id: accountId })
    .whereIn('model', [...ACCOUNT_MODELS])
    .select('model', 'id', 'grant_id', 'payload');
  return rows.map((row) => {
    const payload: AdapterPayload = typeof row.payload === 'string' ? JSON.parse(row.payload) : row.payload;
    const authorizations = row.model === 'Session' ? Object.values((payload.authorizations ?? {}) as Record<string, { grantId?: string }>) : [];
    return {
      model: row.model,
      id: row.id,
      grantId: row.model === 'Grant' ? row.id : row.grant_id,
      sessionGrantIds: authorizations.map((authorization) => authorization.grantId).filter((grantId): grantId is string => typeof grantId === 'string'),
    };
  });
}

// What a person consented to: a Grant per client, with the scopes and claims given for OpenID
// Connect and per API (resource indicator), and the ones refused.
export interface AccountGrant {
  grantId: string;
  clientId: string;
  openid: { scope: string[]; claims: string[] };
  resources: Record<string, string[]>;
  rejected: { scope: string[]; claims: string[] };
  grantedAt: Date | null;
  expiresAt: Date | null;
}

const words = (value: unknown): string[] => (typeof value === 'string' ? value.split(' ').filter(Boolean) : []);
const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : []);
const epoch = (value: unknown): Date | null => (typeof value === 'number' ? new Date(value * 1000) : null);

// The live (unexpired) Grants of an account, newest first.
export async function accountGrants(db: Database, accountId: string): Promise<AccountGrant[]> {
  const rows: Array<{ id: string; payload: AdapterPayload | string }> = await db('oidc_payloads')
    .where({ account_id: accountId, model: 'Grant' })
    .where((q) => q.whereNull('expires_at').orWhere('expires_at', '>', db.fn.now()))
    .select('id', 'payload');
  return rows
    .map((row) => {
      const payload = (typeof row.payload === 'string' ? JSON.parse(row.payload) : row.payload) as Record<string, any>;
      const resources = Object.fromEntries(Object.entries((payload.resources ?? {}) as Record<string, unknown>).map(([resource, scope]) => [resource, words(scope)]));
      return {
        grantId: row.id,
        clientId: String(payload.clientId ?? ''),
        openid: { scope: words(payload.openid?.scope), claims: strings(payload.openid?.claims) },
        resources,
        rejected: { scope: words(payload.rejected?.scope), claims: strings(payload.rejected?.claims) },
        grantedAt: epoch(payload.iat),
        expiresAt: epoch(payload.exp),
      };
    })
    .sort((a, b) => (b.grantedAt?.getTime() ?? 0) - (a.grantedAt?.getTime() ?? 0));
}
