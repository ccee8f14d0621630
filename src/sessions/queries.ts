// The user_sessions table. Every function takes a transaction from withTenant (row-level security
// confines it to the tenant; the explicit tenant_id filters are there for the indexes).
import type { TenantTransaction } from '../store/tenant-scope.ts';

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

export type NewUserSessionRow = Omit<UserSessionRow, 'created_at' | 'last_active_at' | 'ended_at'>;

const COLUMNS = ['id', 'tenant_id', 'user_id', 'sid', 'client_ids', 'user_agent', 'browser', 'os', 'device', 'ip', 'amr', 'created_at', 'last_active_at', 'ended_at'];

export const sessionQueries = {
  // One row per provider session: a later sign-in or authorization in the same session adds its
  // client, refreshes the device details and the time; an ended row is not revived.
  async upsert(trx: TenantTransaction, row: NewUserSessionRow): Promise<void> {
    await trx('user_sessions')
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
        last_active_at: trx.fn.now(),
      })
      .where('user_sessions.user_id', row.user_id)
      .whereNull('user_sessions.ended_at');
  },

  async touch(trx: TenantTransaction, tenantId: string, sid: string): Promise<void> {
    await trx('user_sessions').where({ tenant_id: tenantId, sid }).whereNull('ended_at').update({ last_active_at: trx.fn.now() });
  },

  listOpen(trx: TenantTransaction, tenantId: string, userId: string): Promise<UserSessionRow[]> {
    return trx('user_sessions')
      .where({ tenant_id: tenantId, user_id: userId })
      .whereNull('ended_at')
      .orderBy('last_active_at', 'desc')
      .select(COLUMNS);
  },

  findOpen(trx: TenantTransaction, tenantId: string, userId: string, id: string): Promise<UserSessionRow | undefined> {
    return trx('user_sessions').where({ tenant_id: tenantId, user_id: userId, id }).whereNull('ended_at').first(COLUMNS);
  },

  findOpenBySid(trx: TenantTransaction, tenantId: string, userId: string, sid: string): Promise<UserSessionRow | undefined> {
    return trx('user_sessions').where({ tenant_id: tenantId, user_id: userId, sid }).whereNull('ended_at').first(COLUMNS);
  },

  async markEnded(trx: TenantTransaction, tenantId: string, ids: string[]): Promise<void> {
    if (!ids.length) return;
    await trx('user_sessions').where({ tenant_id: tenantId }).whereIn('id', ids).whereNull('ended_at').update({ ended_at: trx.fn.now() });
  },
};
