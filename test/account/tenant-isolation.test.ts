// Device sessions and linked identities are tenant data: row-level security confines them, and the
// services refuse another tenant's rows (no HTTP surface crosses tenants, so this is service-level).
import { expect } from 'chai';
import { pino } from 'pino';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { TEST_ENV } from '../helpers/instance.ts';
import { loadConfig } from '../../src/config.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { withTenant } from '../../src/store/tenant-scope.ts';

forEachBackend('account data isolation', (backend) => {
  let store: BackendEnv;
  let runtime: Runtime;
  let tenantA: string;
  let tenantB: string;
  let userA: string;

  before(async () => {
    store = await backend.create();
    runtime = await createRuntime(loadConfig({ ...TEST_ENV, ...store.env }), { log: pino({ level: 'silent' }) });
    tenantA = (await runtime.tenants.create({ slug: 'tenant-a', displayName: 'A' })).id;
    tenantB = (await runtime.tenants.create({ slug: 'tenant-b', displayName: 'B' })).id;
    userA = (await runtime.users.create(tenantA, { email: 'a@example.com' })).id;
    await runtime.sessions.record({ tenantId: tenantA, userId: userA, sid: 'session-uid-a', clientId: 'web', userAgent: 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0', ip: '192.0.2.1', amr: ['pwd'] });
    await runtime.identities.link(tenantA, userA, { connector: 'google', subject: 'g-1', email: 'a@example.com' });
  });
  after(async () => {
    await runtime?.close();
    await store?.cleanup();
  });

  it('confines unfiltered queries on both tables to the transaction’s tenant', async () => {
    for (const table of ['user_sessions', 'user_identities']) {
      const inA = await withTenant(runtime.db, tenantA, (trx) => trx(table).select('id'));
      const inB = await withTenant(runtime.db, tenantB, (trx) => trx(table).select('id'));
      expect([inA.length, inB.length], table).to.deep.equal([1, 0]);
    }
  });

  it('refuses to end a session or remove an identity through another tenant', async () => {
    const [row] = await withTenant(runtime.db, tenantA, (trx) => trx('user_sessions').select('id', 'browser', 'os'));
    expect(row).to.include({ browser: 'Firefox 128', os: 'Linux' });
    await expect(runtime.sessions.end(tenantB, userA, row.id)).to.be.rejectedWith(/no active session/);
    const [identity] = await runtime.identities.list(tenantA, userA);
    await expect(runtime.identities.remove(tenantB, userA, identity.id)).to.be.rejectedWith(/no linked identity/);
    expect(await runtime.identities.list(tenantB, userA)).to.deep.equal([]);
    expect(await runtime.identities.list(tenantA, userA)).to.have.length(1);
  });

  it('links one upstream subject to one user per tenant', async () => {
    const other = (await runtime.users.create(tenantA, { email: 'other@example.com' })).id;
    await expect(runtime.identities.link(tenantA, other, { connector: 'google', subject: 'g-1' })).to.be.rejectedWith(/already linked/);
    const userB = (await runtime.users.create(tenantB, { email: 'b@example.com' })).id;
    const linked = await runtime.identities.link(tenantB, userB, { connector: 'google', subject: 'g-1' });
    expect(linked.connector).to.equal('google');
  });

  it('lists only sessions the provider still holds, and marks the rest ended', async () => {
    // No provider session with this uid exists: the row is stale.
    expect(await runtime.sessions.listActive(tenantA, userA)).to.deep.equal([]);
    const [row] = await withTenant(runtime.db, tenantA, (trx) => trx('user_sessions').select('ended_at'));
    expect(row.ended_at).to.not.equal(null);
  });
});
