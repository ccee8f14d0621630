// Row-level security really bites: inside a tenant-scoped transaction a query without any tenant
// filter sees only that tenant's rows and cannot write another tenant's.
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { TEST_ENV } from '../helpers/instance.ts';
import { loadConfig } from '../../src/config.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { withTenant } from '../../src/store/tenant-scope.ts';

forEachBackend('row-level security', (backend) => {
  let store: BackendEnv;
  let runtime: Runtime;
  const tenantA = randomUUID();
  const tenantB = randomUUID();

  before(async () => {
    store = await backend.create();
    runtime = await createRuntime(loadConfig({ ...TEST_ENV, ...store.env }), { log: pino({ level: 'silent' }) });
    await runtime.db('tenants').insert([
      { id: tenantA, slug: 'tenant-a', display_name: 'A' },
      { id: tenantB, slug: 'tenant-b', display_name: 'B' },
    ]);
    // The same e-mail address in two tenants is allowed.
    for (const tenantId of [tenantA, tenantB]) {
      await runtime.users.create(tenantId, { email: 'same@example.com', password: 'a long enough password' });
      await runtime.users.create(tenantId, { email: `only-${tenantId}@example.com`, password: 'a long enough password' });
    }
  });
  after(async () => {
    await runtime?.close();
    await store?.cleanup();
  });

  it('confines an unfiltered query to the transaction’s tenant', async () => {
    const rows = await withTenant(runtime.db, tenantA, (trx) => trx('users').select('tenant_id', 'email'));
    expect(rows).to.have.length(2);
    expect(new Set(rows.map((row: { tenant_id: string }) => row.tenant_id))).to.deep.equal(new Set([tenantA]));
    const raw = await withTenant(runtime.db, tenantB, (trx) => trx.raw('select count(*)::int as n from users'));
    expect(raw.rows[0].n).to.equal(2);
  });

  it('refuses to write or move rows into another tenant', async () => {
    const insert = withTenant(runtime.db, tenantA, (trx) =>
      trx('users').insert({ id: randomUUID(), tenant_id: tenantB, email: 'intruder@example.com' }),
    );
    await expect(insert).to.be.rejectedWith(/row-level security/);
    const moved = await withTenant(runtime.db, tenantA, (trx) => trx('users').update({ tenant_id: tenantB }).then(() => 'updated', (error: Error) => error.message));
    expect(moved).to.match(/row-level security/);
    const deleted = await withTenant(runtime.db, tenantA, (trx) => trx('users').where({ tenant_id: tenantB }).delete(['id']));
    expect(deleted).to.deep.equal([]);
    const remaining = await runtime.db('users').where({ tenant_id: tenantB }).count<{ count: string }[]>({ count: '*' });
    expect(Number(remaining[0].count)).to.equal(2);
  });

  it('sees nothing when no tenant is set under the tenant role', async () => {
    const rows = await runtime.db.transaction(async (trx) => {
      await trx.raw('SET LOCAL ROLE idp_tenant');
      return trx('users').select('id');
    });
    expect(rows).to.deep.equal([]);
  });
});
