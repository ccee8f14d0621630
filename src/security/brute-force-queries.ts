// account_lockouts: the permanent sign-in lockouts (a row: locked until an administrator lifts
// it). Tenant-scoped: every function takes a transaction from withTenant.
import type { TenantTransaction } from '../store/tenant-scope.ts';

export const lockoutQueries = {
  async lock(trx: TenantTransaction, tenantId: string, userId: string, lockoutCount: number): Promise<boolean> {
    const inserted = await trx('account_lockouts')
      .insert({ tenant_id: tenantId, user_id: userId, lockout_count: lockoutCount })
      .onConflict(['tenant_id', 'user_id'])
      .ignore()
      .returning(['user_id']);
    return inserted.length > 0;
  },

  async isLocked(trx: TenantTransaction, tenantId: string, userId: string): Promise<boolean> {
    return Boolean(await trx('account_lockouts').where({ tenant_id: tenantId, user_id: userId }).first('user_id'));
  },

  async unlock(trx: TenantTransaction, tenantId: string, userId: string): Promise<boolean> {
    return (await trx('account_lockouts').where({ tenant_id: tenantId, user_id: userId }).delete(['user_id'])).length > 0;
  },
};
