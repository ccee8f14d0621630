// A user's password record: the current hash, when it was set, whether it must be changed, and
// the hashes it replaced (password_history, for "no reuse of the last N"). Tenant-scoped: each
// function takes a transaction from withTenant.
import type { TenantTransaction } from '../store/tenant-scope.ts';

export interface PasswordRecord {
  password_hash: string | null;
  password_changed_at: Date | string | null;
  password_must_change: boolean;
}

export const passwordQueries = {
  record(trx: TenantTransaction, tenantId: string, userId: string): Promise<PasswordRecord | undefined> {
    return trx('users')
      .where({ tenant_id: tenantId, id: userId })
      .whereNull('deleted_at')
      .first('password_hash', 'password_changed_at', 'password_must_change');
  },

  // The current hash (when there is one) and the earlier ones, newest first, `limit` in all.
  async recentHashes(trx: TenantTransaction, tenantId: string, userId: string, limit: number): Promise<string[]> {
    const current = await passwordQueries.record(trx, tenantId, userId);
    const earlier = await trx('password_history')
      .where({ tenant_id: tenantId, user_id: userId })
      .orderBy('created_at', 'desc')
      .limit(limit)
      .pluck('password_hash');
    return [...(current?.password_hash ? [current.password_hash] : []), ...earlier].slice(0, limit);
  },

  // Keeps the replaced hash, and only the newest `keep` of them (none when keep is 0).
  async remember(trx: TenantTransaction, tenantId: string, userId: string, replacedHash: string | null | undefined, keep: number): Promise<void> {
    if (replacedHash && keep > 0) await trx('password_history').insert({ tenant_id: tenantId, user_id: userId, password_hash: replacedHash });
    const ofUser = () => trx('password_history').where({ tenant_id: tenantId, user_id: userId });
    if (keep <= 0) {
      await ofUser().delete();
      return;
    }
    const oldestKept = ofUser().select('created_at').orderBy('created_at', 'desc').offset(keep - 1).limit(1);
    await ofUser().where('created_at', '<', oldestKept).delete();
  },
};
