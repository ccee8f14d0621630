// Queries on oidc_payloads, the durable home of long-lived oidc-provider models.
import type { AdapterPayload } from 'oidc-provider';
import type { Database } from '../store/database.ts';

export interface DurableRow {
  payload: AdapterPayload;
  expiresIn: number;
}

export function durablePayloads(db: Database, model: string) {
  const table = () => db('oidc_payloads');
  const live = () => table().where({ model }).where((q) => q.whereNull('expires_at').orWhere('expires_at', '>', db.fn.now()));

  return {
    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const row = {
        model,
        id,
        payload: JSON.stringify(payload),
        grant_id: payload.grantId ?? null,
        uid: payload.uid ?? null,
        user_code: payload.userCode ?? null,
        account_id: payload.accountId ?? null,
        expires_at: expiresIn ? new Date(Date.now() + expiresIn * 1000) : null,
      };
      await table().insert(row).onConflict(['model', 'id']).merge(['payload', 'grant_id', 'uid', 'user_code', 'account_id', 'expires_at']);
    },

    async find(id: string): Promise<DurableRow | undefined> {
      const row = await live().andWhere({ id }).first('payload', 'consumed_at', 'expires_at');
      if (!row) return undefined;
      const payload: AdapterPayload = typeof row.payload === 'string' ? JSON.parse(row.payload) : row.payload;
      if (row.consumed_at) payload.consumed = Math.floor(new Date(row.consumed_at).getTime() / 1000);
      const expiresIn = row.expires_at ? Math.floor((new Date(row.expires_at).getTime() - Date.now()) / 1000) : Infinity;
      return { payload, expiresIn };
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
      const rows = await table()
        .where({ model, id })
        .whereNull('consumed_at')
        .update({ consumed_at: db.fn.now() }, ['consumed_at']);
      return rows[0] ? Math.floor(new Date(rows[0].consumed_at).getTime() / 1000) : undefined;
    },

    async destroy(id: string): Promise<void> {
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
