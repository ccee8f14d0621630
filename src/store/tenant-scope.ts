// The one way tenant-scoped work touches the database: a transaction running as the
// non-superuser role idp_tenant with app.tenant_id set, so row-level security confines every
// query in it to that tenant, also a query that forgets its tenant filter.
import type { Knex } from 'knex';
import type { Database } from './database.ts';
import { isUuid } from '../ids.ts';
import { takesScopeStatements } from './pg-client.ts';

export const TENANT_ROLE = 'idp_tenant';

export type TenantTransaction = Knex.Transaction;

// The tenant each open tenant-scoped transaction is confined to.
const scopeOf = new WeakMap<Knex.Transaction, string>();

// Given a transaction, the tenant-scoped work runs in a savepoint of it and the outer context (the
// platform's, or the outer transaction's tenant) is restored afterwards, so platform and tenant
// steps can share one atomic transaction. Given a transaction already confined to the same tenant,
// the work simply runs in it.
export async function withTenant<T>(db: Database | Knex.Transaction, tenantId: string, work: (trx: TenantTransaction) => Promise<T>): Promise<T> {
  if (!isUuid(tenantId)) throw new Error('withTenant needs a tenant id (uuid)');
  const outer = 'isTransaction' in db && db.isTransaction ? (db as Knex.Transaction) : undefined;
  const outerTenant = outer ? scopeOf.get(outer) : undefined;
  if (outerTenant === tenantId) return work(outer!);
  const leave = outerTenant ? enterStatement(outerTenant) : LEAVE;
  // On a PostgreSQL server the transaction itself enters and leaves the scope (src/store/pg-client.ts).
  const combined = takesScopeStatements(db);
  const work_ = async (trx: Knex.Transaction) => {
    if (!combined) await trx.raw(enterStatement(tenantId));
    scopeOf.set(trx, tenantId);
    try {
      const result = await work(trx);
      if (outer && !combined) await trx.raw(leave);
      return result;
    } finally {
      scopeOf.delete(trx);
    }
  };
  return combined ? db.transaction(work_, { scope: { enter: enterStatement(tenantId), leave } } as Knex.TransactionConfig) : db.transaction(work_);
}

// set_config('role') is SET LOCAL ROLE; one statement for both saves a round trip. Free of
// parameters so that it can share a simple query: a checked uuid and a constant role need no
// quoting beyond the quotes.
function enterStatement(tenantId: string): string {
  if (!isUuid(tenantId)) throw new Error('a tenant scope needs a tenant id (uuid)');
  return `SELECT set_config('role', '${TENANT_ROLE}', true), set_config('app.tenant_id', '${tenantId}', true)`;
}

const LEAVE = "SELECT set_config('role', 'none', true), set_config('app.tenant_id', '', true)";
