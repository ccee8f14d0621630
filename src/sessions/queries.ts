// The user_sessions table. Every function takes a transaction from withTenant (row-level security
// confines it to the tenant; the explicit tenant_id filters are there for the indexes).
import type { TenantTransaction } from '../store/tenant-scope.ts';
import type { Database } from '../store/database.ts';

export interface UserSessionRow {
  id: string;
  tenant_id: string;
  user_id: string;
  sid: string;
  client_ids: string[];
  user_agent: string | null;
  browser: string | null;
  os: string | null;
  device: string | null;
  ip: string | null;
  amr: string[];
  created_at: Date;
  last_active_at: Date;
  ended_at: Date | null;
}

export type NewUserSessionRow = Omit<UserSessionRow, 'ended_at'>;

export interface TenantSessionFilter {
  userId?: string;
  clientId?: string;
  ip?: string;
  createdAfter?: Date;
  lastActiveAfter?: Date;
  // Rows last active before this or created before that count as expired (policy and session TTL).
  activeSince: Date;
  createdSince?: Date;
}

const COLUMNS = ['id', 'tenant_id', 'user_id', 'sid', 'client_ids', 'user_agent', 'browser', 'os', 'device', 'ip', 'amr', 'created_at', 'last_active_at', 'ended_at'];

export const sessionQueries = {
  // One row per provider session: a later sign-in or authorization in the same session adds its
  // client, refreshes the device details and the time; an ended row is not revived. An
  // authorization that brings nothing new within a minute of the last write writes nothing (silent
  // SSO renewals must not write per request). Says whether it wrote.
  async upsert(trx: TenantTransaction, row: NewUserSessionRow, staleBefore: Date): Promise<boolean> {
    const written = await trx('user_sessions')
      .insert(row)
      .onConflict(['tenant_id', 'sid'])
      .merge({
        client_ids: trx.raw('ARRAY(SELECT DISTINCT unnest(user_sessions.client_ids || excluded.client_ids))'),
        user_agent: trx.raw('excluded.user_agent'),
        browser: trx.raw('excluded.browser'),
        os: trx.raw('excluded.os'),
        device: trx.raw('excluded.device'),
        ip: trx.raw('excluded.ip'),
        amr: trx.raw('excluded.amr'),
        last_active_at: trx.raw('excluded.last_active_at'),
      })
      .where('user_sessions.user_id', row.user_id)
      .whereNull('user_sessions.ended_at')
      .where((changed) =>
        changed
          .where('user_sessions.last_active_at', '<', staleBefore)
          .orWhereRaw('NOT (user_sessions.client_ids @> excluded.client_ids)')
          .orWhereRaw('user_sessions.ip IS DISTINCT FROM excluded.ip')
          .orWhereRaw('user_sessions.user_agent IS DISTINCT FROM excluded.user_agent')
          .orWhereRaw('user_sessions.amr IS DISTINCT FROM excluded.amr'),
      )
      .returning('id');
    return written.length > 0;
  },

  // At most one write a minute per session: rows touched since `staleBefore` are left alone.
  // Says whether it wrote.
  async touch(trx: TenantTransaction, tenantId: string, sid: string, now: Date, staleBefore: Date): Promise<boolean> {
    const updated = await trx('user_sessions').where({ tenant_id: tenantId, sid }).whereNull('ended_at').where('last_active_at', '<', staleBefore).update({ last_active_at: now });
    return updated > 0;
  },

  findOpenBySidAnyUser(trx: TenantTransaction, tenantId: string, sid: string): Promise<UserSessionRow | undefined> {
    return trx('user_sessions').where({ tenant_id: tenantId, sid }).whereNull('ended_at').first(COLUMNS);
  },

  // A new sign-in in the same provider session (the old one had expired): the row starts again.
  async restart(trx: TenantTransaction, tenantId: string, id: string, now: Date): Promise<void> {
    await trx('user_sessions').where({ tenant_id: tenantId, id }).whereNull('ended_at').update({ created_at: now, last_active_at: now, client_ids: '{}' });
  },

  // Keyset page of a tenant's open sessions, oldest sign-in first.
  listTenant(trx: TenantTransaction, tenantId: string, filter: TenantSessionFilter, limit: number, after?: { createdAt: Date; id: string }): Promise<UserSessionRow[]> {
    const query = tenantFilter(trx, tenantId, filter).orderBy([{ column: 'created_at' }, { column: 'id' }]).limit(limit).select(COLUMNS);
    if (after) query.whereRaw('(created_at, id) > (?, ?)', [after.createdAt, after.id]);
    return query;
  },

  async countTenant(trx: TenantTransaction, tenantId: string, filter: TenantSessionFilter): Promise<number> {
    const row = await tenantFilter(trx, tenantId, filter).count({ count: '*' }).first();
    return Number(row?.count ?? 0);
  },

  listOpen(trx: TenantTransaction, tenantId: string, userId: string): Promise<UserSessionRow[]> {
    return trx('user_sessions')
      .where({ tenant_id: tenantId, user_id: userId })
      .whereNull('ended_at')
      .orderBy('last_active_at', 'desc')
      .select(COLUMNS);
  },

  // Every row of a user, ended ones too, newest sign-in first (GDPR export).
  listAll(trx: TenantTransaction, tenantId: string, userId: string, limit: number): Promise<UserSessionRow[]> {
    return trx('user_sessions').where({ tenant_id: tenantId, user_id: userId }).orderBy('created_at', 'desc').limit(limit).select(COLUMNS);
  },

  findOpen(trx: TenantTransaction, tenantId: string, userId: string, id: string): Promise<UserSessionRow | undefined> {
    return trx('user_sessions').where({ tenant_id: tenantId, user_id: userId, id }).whereNull('ended_at').first(COLUMNS);
  },

  findOpenBySid(trx: TenantTransaction, tenantId: string, userId: string, sid: string): Promise<UserSessionRow | undefined> {
    return trx('user_sessions').where({ tenant_id: tenantId, user_id: userId, sid }).whereNull('ended_at').first(COLUMNS);
  },

  async markEnded(trx: TenantTransaction, tenantId: string, ids: string[], now: Date): Promise<void> {
    if (!ids.length) return;
    await trx('user_sessions').where({ tenant_id: tenantId }).whereIn('id', ids).whereNull('ended_at').update({ ended_at: now });
  },
};

function tenantFilter(trx: TenantTransaction, tenantId: string, filter: TenantSessionFilter) {
  const query = trx('user_sessions').where({ tenant_id: tenantId }).whereNull('ended_at').where('last_active_at', '>=', filter.activeSince);
  if (filter.createdSince) query.where('created_at', '>=', filter.createdSince);
  if (filter.userId) query.where('user_id', filter.userId);
  if (filter.clientId) query.whereRaw('? = ANY(client_ids)', [filter.clientId]);
  if (filter.ip) query.where('ip', filter.ip);
  if (filter.createdAfter) query.where('created_at', '>', filter.createdAfter);
  if (filter.lastActiveAfter) query.where('last_active_at', '>', filter.lastActiveAfter);
  return query;
}

// Maintenance across tenants (the database owner, outside row-level security, like the purge of
// oidc records): ended rows and rows idle longer than any provider session can live, in bounded
// batches. Returns how many went.
export async function purgeSessionRows(db: Database, staleBefore: Date, batchSize = 1000, maxBatches = 20): Promise<number> {
  let removed = 0;
  for (let batch = 0; batch < maxBatches; batch++) {
    const result = await db.raw(
      `DELETE FROM user_sessions WHERE id IN (
         (SELECT id FROM user_sessions WHERE ended_at IS NOT NULL LIMIT ?)
         UNION ALL
         (SELECT id FROM user_sessions WHERE ended_at IS NULL AND last_active_at < ? LIMIT ?))`,
      [batchSize, staleBefore, batchSize],
    );
    const count = result.rowCount ?? result.affectedRows ?? 0;
    removed += count;
    if (count < batchSize) break;
  }
  return removed;
}
