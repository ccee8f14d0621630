// The one way tenant-scoped work touches the database: a transaction running as the
// non-superuser role idp_tenant with app.tenant_id set, so row-level security confines every
// query in it to that tenant, also a query that forgets its tenant filter.
import type { Knex } from 'knex';
import type { Database } from './database.ts';
import { isUuid } from '../ids.ts';

export const TENANT_ROLE = 'idp_tenant';

export type TenantTransaction = Knex.Transaction;

// Given a transaction, the tenant-scoped work runs in a savepoint of it and the platform context
// is restored afterwards, so platform and tenant steps can share one atomic transaction.
export async function withTenant<T>(db: Database | Knex.Transaction, tenantId: string, work: (trx: TenantTransaction) => Promise<T>): Promise<T> {
  if (!isUuid(tenantId)) throw new Error('withTenant needs a tenant id (uuid)');
  const nested = 'isTransaction' in db && db.isTransaction;
  return db.transaction(async (trx) => {
    // set_config('role') is SET LOCAL ROLE; one statement for both saves a round trip.
    await trx.raw("SELECT set_config('role', ?, true), set_config('app.tenant_id', ?, true)", [TENANT_ROLE, tenantId]);
    const result = await work(trx);
    if (nested) await trx.raw("SELECT set_config('role', 'none', true), set_config('app.tenant_id', '', true)");
    return result;
  });
}
