// The user_identities table: upstream identities linked to a user. Functions take a transaction
// from withTenant (row-level security confines it to the tenant).
import type { TenantTransaction } from '../../store/tenant-scope.ts';

export interface IdentityRow {
  id: string;
  tenant_id: string;
  user_id: string;
  connector: string;
  subject: string;
  email: string | null;
  linked_at: Date;
}

const COLUMNS = ['id', 'tenant_id', 'user_id', 'connector', 'subject', 'email', 'linked_at'];

export const identityQueries = {
  list(trx: TenantTransaction, tenantId: string, userId: string): Promise<IdentityRow[]> {
    return trx('user_identities').where({ tenant_id: tenantId, user_id: userId }).orderBy('linked_at').select(COLUMNS);
  },

  findBySubject(trx: TenantTransaction, tenantId: string, connector: string, subject: string): Promise<IdentityRow | undefined> {
    return trx('user_identities').where({ tenant_id: tenantId, connector, subject }).first(COLUMNS);
  },

  async insert(trx: TenantTransaction, row: Omit<IdentityRow, 'linked_at'>): Promise<IdentityRow> {
    const [inserted] = await trx('user_identities').insert(row).returning(COLUMNS);
    return inserted;
  },

  async deleteByConnector(trx: TenantTransaction, tenantId: string, connector: string): Promise<number> {
    return (await trx('user_identities').where({ tenant_id: tenantId, connector }).delete(['id'])).length;
  },

  async delete(trx: TenantTransaction, tenantId: string, userId: string, id: string): Promise<boolean> {
    return (await trx('user_identities').where({ tenant_id: tenantId, user_id: userId, id }).delete(['id'])).length > 0;
  },
};
