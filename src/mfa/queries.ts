// The MFA tables. Every function takes a transaction from withTenant (row-level security confines
// it to the tenant; the explicit tenant_id filters are there for the primary keys).
import type { Knex } from 'knex';
import type { TenantTransaction } from '../store/tenant-scope.ts';

export interface TotpRow {
  tenant_id: string;
  user_id: string;
  secret_sealed: string | null;
  confirmed_at: Date | null;
  last_used_step: string | number | null;
  pending_secret_sealed: string | null;
  pending_created_at?: Date | null;
}

export const mfaQueries = {
  findTotp(trx: TenantTransaction, tenantId: string, userId: string, options: { forUpdate?: boolean } = {}): Promise<TotpRow | undefined> {
    const query = trx('mfa_totp')
      .where({ tenant_id: tenantId, user_id: userId })
      .first('tenant_id', 'user_id', 'secret_sealed', 'confirmed_at', 'last_used_step', 'pending_secret_sealed', 'pending_created_at');
    if (options.forUpdate) query.forUpdate();
    return query;
  },

  // A new enrolment replaces one in progress; the active secret stays as it is.
  async savePending(trx: TenantTransaction, tenantId: string, userId: string, sealed: string): Promise<void> {
    await trx('mfa_totp')
      .insert({ tenant_id: tenantId, user_id: userId, pending_secret_sealed: sealed, pending_created_at: trx.fn.now() })
      .onConflict(['tenant_id', 'user_id'])
      .merge({ pending_secret_sealed: sealed, pending_created_at: trx.fn.now(), updated_at: trx.fn.now() });
  },

  // Makes the pending secret (as read, still pending) the active one, with its first step used.
  async activatePending(trx: TenantTransaction, tenantId: string, userId: string, sealed: string, usedStep: number): Promise<boolean> {
    const updated = await trx('mfa_totp').where({ tenant_id: tenantId, user_id: userId, pending_secret_sealed: sealed }).update({
      secret_sealed: sealed,
      confirmed_at: trx.fn.now(),
      last_used_step: usedStep,
      pending_secret_sealed: null,
      pending_created_at: null,
      updated_at: trx.fn.now(),
    }, ['user_id']);
    return updated.length === 1;
  },

  // Compare-and-set in one statement: of two requests with the same step only one matches the
  // WHERE (the second waits for the first's row lock and then re-checks against the new row).
  // The secret must also still be the one the code was checked against.
  async useStep(trx: TenantTransaction, tenantId: string, userId: string, sealed: string, step: number): Promise<boolean> {
    const updated = await trx('mfa_totp')
      .where({ tenant_id: tenantId, user_id: userId, secret_sealed: sealed })
      .andWhere((q) => q.whereNull('last_used_step').orWhere('last_used_step', '<', step))
      .update({ last_used_step: step, updated_at: trx.fn.now() }, ['user_id']);
    return updated.length === 1;
  },

  async deleteTotp(trx: TenantTransaction, tenantId: string, userId: string): Promise<void> {
    await trx('mfa_totp').where({ tenant_id: tenantId, user_id: userId }).delete();
  },

  async replaceBackupCodes(trx: TenantTransaction, tenantId: string, userId: string, digests: string[]): Promise<void> {
    await trx('mfa_backup_codes').where({ tenant_id: tenantId, user_id: userId }).delete();
    await trx('mfa_backup_codes').insert(digests.map((code_hash) => ({ tenant_id: tenantId, user_id: userId, code_hash })));
  },

  // Using a code deletes it: of two concurrent uses only one deletes the row.
  async consumeBackupCode(trx: TenantTransaction, tenantId: string, userId: string, digest: string): Promise<boolean> {
    const deleted = await trx('mfa_backup_codes').where({ tenant_id: tenantId, user_id: userId, code_hash: digest }).delete(['code_hash']);
    return deleted.length === 1;
  },

  // The authenticator app's row (if any) and the backup codes issued, in one statement.
  async enrolments(trx: TenantTransaction, tenantId: string, userId: string): Promise<{ totp?: Pick<TotpRow, 'secret_sealed' | 'confirmed_at' | 'pending_secret_sealed' | 'pending_created_at'>; codes: { count: number; issuedAt: Date | null } }> {
    const { rows } = await trx.raw(
      `SELECT t.user_id AS totp_user, t.secret_sealed, t.confirmed_at, t.pending_secret_sealed, t.pending_created_at, codes.count, codes.issued_at
         FROM (SELECT count(*) AS count, max(created_at) AS issued_at FROM mfa_backup_codes WHERE tenant_id = ? AND user_id = ?) AS codes
         LEFT JOIN mfa_totp AS t ON t.tenant_id = ? AND t.user_id = ?`,
      [tenantId, userId, tenantId, userId],
    );
    const row = rows[0];
    return {
      totp: row.totp_user ? { secret_sealed: row.secret_sealed, confirmed_at: row.confirmed_at, pending_secret_sealed: row.pending_secret_sealed, pending_created_at: row.pending_created_at } : undefined,
      codes: { count: Number(row.count ?? 0), issuedAt: row.issued_at ? new Date(row.issued_at) : null },
    };
  },

  // The users of a tenant with an active (confirmed) TOTP secret.
  async usersWithTotp(trx: TenantTransaction, tenantId: string): Promise<string[]> {
    const rows: Array<{ user_id: string }> = await trx('mfa_totp').where({ tenant_id: tenantId }).whereNotNull('secret_sealed').select('user_id');
    return rows.map((row) => row.user_id);
  },

  async deleteBackupCodes(trx: TenantTransaction, tenantId: string, userId: string): Promise<void> {
    await trx('mfa_backup_codes').where({ tenant_id: tenantId, user_id: userId }).delete();
  },

  // For re-wrapping, on a platform transaction (all tenants): the rows after `after` in user order, locked.
  sealedPage(trx: Knex.Transaction, after: string | undefined, limit: number): Promise<Array<Pick<TotpRow, 'tenant_id' | 'user_id' | 'secret_sealed' | 'pending_secret_sealed'>>> {
    const query = trx('mfa_totp').orderBy('user_id').limit(limit).forUpdate().select('tenant_id', 'user_id', 'secret_sealed', 'pending_secret_sealed');
    return after === undefined ? query : query.where('user_id', '>', after);
  },

  async replaceSealed(trx: Knex.Transaction, tenantId: string, userId: string, column: 'secret_sealed' | 'pending_secret_sealed', sealed: string): Promise<void> {
    await trx('mfa_totp').where({ tenant_id: tenantId, user_id: userId }).update({ [column]: sealed });
  },
};
