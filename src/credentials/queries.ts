// user_tokens: single-use tokens sent by mail, stored as SHA-256 digests only. The look-up by
// digest runs in the platform context (the link carries no tenant); everything that writes runs in
// a tenant transaction.
import { randomUUID } from 'node:crypto';
import type { Database } from '../store/database.ts';
import type { TenantTransaction } from '../store/tenant-scope.ts';

export type TokenPurpose = 'password_reset' | 'email_verification' | 'account_unlock';

export interface TokenRow {
  id: string;
  tenant_id: string;
  user_id: string;
  purpose: TokenPurpose;
  email: string | null;
  expires_at: Date;
}

const COLUMNS = ['id', 'tenant_id', 'user_id', 'purpose', 'email', 'expires_at'];

export const tokenQueries = {
  async insert(trx: TenantTransaction, row: { tenantId: string; userId: string; purpose: TokenPurpose; tokenHash: string; email: string; ttlSeconds: number }): Promise<void> {
    await trx('user_tokens').insert({
      id: randomUUID(),
      tenant_id: row.tenantId,
      user_id: row.userId,
      purpose: row.purpose,
      token_hash: row.tokenHash,
      email: row.email,
      expires_at: trx.raw(`now() + make_interval(secs => ?)`, [row.ttlSeconds]),
    });
  },

  // A token that can still be used: not consumed, not expired.
  findUsable(db: Database, tokenHash: string, purpose: TokenPurpose): Promise<TokenRow | undefined> {
    return db('user_tokens').where({ token_hash: tokenHash, purpose }).whereNull('consumed_at').where('expires_at', '>', db.fn.now()).first(COLUMNS);
  },

  // Uses the token up, atomically: of two concurrent requests only one gets the row.
  async consume(trx: TenantTransaction, tokenHash: string, purpose: TokenPurpose): Promise<TokenRow | undefined> {
    const [row] = await trx('user_tokens')
      .where({ token_hash: tokenHash, purpose })
      .whereNull('consumed_at')
      .where('expires_at', '>', trx.fn.now())
      .update({ consumed_at: trx.fn.now() }, COLUMNS);
    return row;
  },

  // How many links of this purpose went to the user lately and can still be used.
  async countUsable(trx: TenantTransaction, tenantId: string, userId: string, purpose: TokenPurpose): Promise<number> {
    const row = await trx('user_tokens')
      .where({ tenant_id: tenantId, user_id: userId, purpose })
      .whereNull('consumed_at')
      .where('expires_at', '>', trx.fn.now())
      .count<{ count: string | number }>({ count: '*' })
      .first();
    return Number(row?.count ?? 0);
  },

  // Ends the user's other links of this purpose, and forgets used and expired ones.
  async discard(trx: TenantTransaction, tenantId: string, userId: string, purpose: TokenPurpose, which: 'all' | 'spent'): Promise<void> {
    const query = trx('user_tokens').where({ tenant_id: tenantId, user_id: userId, purpose });
    if (which === 'spent') query.andWhere((q) => q.whereNotNull('consumed_at').orWhere('expires_at', '<=', trx.fn.now()));
    await query.delete();
  },
};
