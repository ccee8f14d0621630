// Tenant IP rules on sign-in: once the person's tenant is certain, an address its login rules
// deny ends the sign-in on a page saying so (recorded), an allowed address signs in, and another
// tenant's rules change nothing. Addresses are simulated through a trusted proxy.
import { expect } from 'chai';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { createFixtures } from '../helpers/fixtures.ts';
import { discover } from '../helpers/rp.ts';
import { SignInDriver } from '../brute-force/sign-in.ts';

const PASSWORD = 'a long enough password';

forEachBackend('tenant IP rules on sign-in', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let driver: SignInDriver;
  let guarded: { id: string; slug: string };
  let open: { id: string; slug: string };

  before(async function () {
    this.timeout(120_000);
    store = await backend.create();
    instance = await startInstance({ ...store.env, TRUSTED_PROXIES: '127.0.0.1/32', CAPTCHA_AFTER_FAILURES: '0', CAPTCHA_AFTER_IP_FAILURES: '0', SPRAYING_MAX_IDENTIFIERS: '0' });
    const fixtures = await createFixtures(instance.runtime);
    driver = new SignInDriver(instance, await discover(instance.url, fixtures.web.clientId, fixtures.web.clientSecret));
    const { tenants, ipRules, users } = instance.runtime;
    guarded = await tenants.create({ slug: 'guarded', displayName: 'Guarded' });
    open = await tenants.create({ slug: 'unguarded', displayName: 'Unguarded' });
    await ipRules.replace(guarded.id, { login: { allow: ['198.51.100.0/24', '2001:db8::/32'], deny: ['198.51.100.66/32'] } }, 0);
    await users.create(guarded.id, { email: 'gina@guarded.test', password: PASSWORD, emailVerified: true });
    await users.create(open.id, { email: 'otto@unguarded.test', password: PASSWORD, emailVerified: true });
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  it('admits an address the tenant’s login rules allow (IPv4 and IPv6)', async () => {
    for (const ip of ['198.51.100.7', '2001:db8::7']) {
      const result = await driver.attempt('gina@guarded.test', PASSWORD, { tenant: 'guarded', ip });
      expect(result.status, result.html.slice(0, 300)).to.equal(303);
    }
  });

  it('refuses a denied or unlisted address after the password, with a page and an audit entry', async () => {
    for (const ip of ['198.51.100.66', '203.0.113.9']) {
      const result = await driver.attempt('gina@guarded.test', PASSWORD, { tenant: 'guarded', ip });
      expect(result.status).to.equal(403);
      expect(result.html).to.include('Your organisation does not allow signing in from this network.');
    }
    const { items } = await instance.runtime.audit.list(guarded.id, { type: 'security.ip_blocked' }, undefined, 10);
    expect(items.length).to.be.greaterThan(0);
    expect(items[0].context?.ip).to.be.oneOf(['198.51.100.66', '203.0.113.9']);
  });

  it('leaves another tenant’s sign-ins alone', async () => {
    const result = await driver.attempt('otto@unguarded.test', PASSWORD, { tenant: 'unguarded', ip: '198.51.100.66' });
    expect(result.status, result.html.slice(0, 300)).to.equal(303);
  });
});
