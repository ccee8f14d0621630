// Row-level security really bites: inside a tenant-scoped transaction a query without any tenant
// filter sees only that tenant's rows and cannot write another tenant's.
import { expect } from 'chai';
import type { Knex } from 'knex';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { TEST_ENV } from '../helpers/instance.ts';
import { loadConfig } from '../../src/config.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { withTenant } from '../../src/store/tenant-scope.ts';
import { takesScopeStatements } from '../../src/store/pg-client.ts';

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

  it('runs work for the same tenant in the enclosing tenant transaction, and another tenant’s in a savepoint confined to it', async () => {
    const seen = await withTenant(runtime.db, tenantA, async (trx) => {
      const same = await withTenant(trx, tenantA, async (inner) => ({ sameTransaction: inner === trx, count: (await inner.raw('select count(*)::int as n from users')).rows[0].n }));
      const other = await withTenant(trx, tenantB, async (inner) => (await inner('users').select('tenant_id')).map((row: { tenant_id: string }) => row.tenant_id));
      // Leaving the other tenant's savepoint returns to this tenant's scope, not the platform's.
      const after = (await trx('users').select('tenant_id')).map((row: { tenant_id: string }) => row.tenant_id);
      return { same, other, after };
    });
    expect(seen.same).to.deep.equal({ sameTransaction: true, count: 2 });
    expect(seen.other).to.deep.equal([tenantB, tenantB]);
    expect(seen.after).to.deep.equal([tenantA, tenantA]);
    // A failure of same-tenant work fails the whole transaction: nothing of it stays.
    const email = `rolled-back-${randomUUID()}@example.com`;
    const failed = withTenant(runtime.db, tenantA, async (trx) => {
      await trx('users').insert({ id: randomUUID(), tenant_id: tenantA, email });
      await withTenant(trx, tenantA, (inner) => inner('users').insert({ id: randomUUID(), tenant_id: tenantB, email: 'intruder@example.com' }));
    });
    await expect(failed).to.be.rejectedWith(/row-level security/);
    expect(await runtime.db('users').where({ email }).first('id')).to.equal(undefined);
  });

  it('enters the tenant scope in the round trip of the BEGIN on a PostgreSQL server, and leaves a nested one with its RELEASE', async () => {
    const sent: string[] = [];
    const record = (query: { sql: string }) => sent.push(query.sql);
    runtime.db.on('query', record);
    try {
      const count = await withTenant(runtime.db, tenantA, async (trx) => (await trx('users').count<{ n: string }[]>({ n: '*' }))[0].n);
      expect(Number(count)).to.equal(2);
      await runtime.db.transaction((platform) => withTenant(platform, tenantB, (trx) => trx('users').select('id')));
    } finally {
      runtime.db.off('query', record);
    }
    const enter = (tenantId: string) => `SELECT set_config('role', 'idp_tenant', true), set_config('app.tenant_id', '${tenantId}', true)`;
    const leave = "SELECT set_config('role', 'none', true), set_config('app.tenant_id', '', true)";
    const shape = sent.map((sql) => sql.replace(/trx\d+/, 'trx'));
    if (takesScopeStatements(runtime.db)) {
      expect(shape).to.deep.equal([`BEGIN; ${enter(tenantA)};`, 'select count(*) as "n" from "users"', 'COMMIT;', 'BEGIN;', `SAVEPOINT trx; ${enter(tenantB)};`, 'select "id" from "users"', `${leave}; RELEASE SAVEPOINT trx;`, 'COMMIT;']);
      // With a transaction mode knex words the BEGIN itself; the scope still holds.
      const scoped = await runtime.db.transaction((trx) => trx('users').select('tenant_id'), { scope: { enter: enter(tenantA), leave }, isolationLevel: 'serializable' } as Knex.TransactionConfig);
      expect(new Set(scoped.map((row: { tenant_id: string }) => row.tenant_id))).to.deep.equal(new Set([tenantA]));
    } else {
      // PGlite (in process, no round trips to save): the scope has statements of its own.
      expect(shape.filter((sql) => sql.includes('set_config'))).to.deep.equal([enter(tenantA), enter(tenantB), leave]);
    }
  });
});
