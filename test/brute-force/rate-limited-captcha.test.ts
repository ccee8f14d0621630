// An address that went over the sign-in rate limit is asked for a CAPTCHA (the built-in proof of
// work) on its next sign-ins, while another address's sign-in page stays plain.
import { expect } from 'chai';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { createFixtures } from '../helpers/fixtures.ts';
import { discover } from '../helpers/rp.ts';
import { SignInDriver } from './sign-in.ts';

const PASSWORD = 'a long enough password';
const WRONG = 'not the password at all';

forEachBackend('CAPTCHA after a sign-in rate limit', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let driver: SignInDriver;

  before(async function () {
    this.timeout(90_000);
    store = await backend.create();
    instance = await startInstance({
      ...store.env,
      TRUSTED_PROXIES: '127.0.0.1/32',
      CAPTCHA_PROVIDER: 'pow',
      CAPTCHA_AFTER_FAILURES: '0',
      CAPTCHA_AFTER_IP_FAILURES: '0',
      SPRAYING_MAX_IDENTIFIERS: '0',
      RATE_LIMIT_LOGIN_PER_IP: '2/60',
    });
    const fixtures = await createFixtures(instance.runtime);
    driver = new SignInDriver(instance, await discover(instance.url, fixtures.web.clientId, fixtures.web.clientSecret));
    const tenant = await instance.runtime.tenants.create({ slug: 'acme', displayName: 'Acme', policies: { lockout: { maxFailures: 20, delayStepMs: 0 } } });
    await instance.runtime.users.create(tenant.id, { email: 'ada@acme.test', password: PASSWORD, emailVerified: true });
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  it('asks the limited address for a challenge and leaves other addresses alone', async () => {
    const limited = { tenant: 'acme', ip: '198.51.100.20' };
    expect((await driver.attempt('ada@acme.test', WRONG, limited)).status).to.equal(401);
    expect((await driver.attempt('ada@acme.test', WRONG, limited)).status).to.equal(401);
    expect((await driver.attempt('ada@acme.test', WRONG, limited)).status).to.equal(429);

    const challenged = await driver.open(limited);
    expect(challenged.html).to.include('pow_challenge');
    const plain = await driver.open({ tenant: 'acme', ip: '198.51.100.21' });
    expect(plain.html).to.not.include('pow_challenge');
  });
});
