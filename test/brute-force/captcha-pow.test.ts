// The built-in proof-of-work challenge and password-spraying detection, through HTTP from
// simulated addresses (a trusted proxy's X-Forwarded-For): the challenge after failures, solved in
// Node and by the page's own script, accepted once; one address failing at many identifiers is
// blocked, recorded and counted, while other addresses sign in.
import { expect } from 'chai';
import vm from 'node:vm';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { createFixtures } from '../helpers/fixtures.ts';
import { discover } from '../helpers/rp.ts';
import { hiddenField } from '../helpers/browser.ts';
import { leadingZeroBits, powDigest, solveProofOfWork } from '../../src/security/captcha/pow.ts';
import { SignInDriver } from './sign-in.ts';

const PASSWORD = 'a long enough password';
const WRONG = 'not the password at all';
const METRICS_TOKEN = 'metrics-token-for-the-brute-force-suite-0123456789';

forEachBackend('proof-of-work CAPTCHA and spraying', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let driver: SignInDriver;
  let tenantId: string;

  async function securityEntries(type: string) {
    return (await instance.runtime.audit.list(tenantId, { type }, undefined, 20)).items;
  }

  before(async function () {
    this.timeout(90_000);
    store = await backend.create();
    instance = await startInstance({
      ...store.env,
      TRUSTED_PROXIES: '127.0.0.1/32',
      CAPTCHA_PROVIDER: 'pow',
      CAPTCHA_POW_DIFFICULTY: '12',
      CAPTCHA_AFTER_FAILURES: '2',
      CAPTCHA_AFTER_IP_FAILURES: '50',
      SPRAYING_MAX_IDENTIFIERS: '3',
      SPRAYING_WINDOW: '60',
      SPRAYING_BLOCK: '60',
      METRICS_TOKEN,
    });
    const fixtures = await createFixtures(instance.runtime);
    driver = new SignInDriver(instance, await discover(instance.url, fixtures.web.clientId, fixtures.web.clientSecret));
    const tenant = await instance.runtime.tenants.create({ slug: 'acme', displayName: 'Acme', policies: { lockout: { maxFailures: 20, delayStepMs: 0 } } });
    tenantId = tenant.id;
    await instance.runtime.users.create(tenantId, { email: 'ada@acme.test', password: PASSWORD, emailVerified: true });
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  it('requires the work after the failures, checks it and accepts each challenge once', async () => {
    const from = { tenant: 'acme', ip: '10.2.0.1' };
    const fields = (password: string, page: { html: string }, solution?: string) => ({
      identifier: 'ada@acme.test',
      password,
      pow_challenge: hiddenField(page.html, 'pow_challenge'),
      ...(solution === undefined ? {} : { pow_solution: solution }),
    });
    expect((await driver.attempt('ada@acme.test', WRONG, from)).html).to.not.include('pow_challenge');
    const second = await driver.attempt('ada@acme.test', WRONG, from);
    expect(second.status).to.equal(401);
    expect(second.html).to.include('data-pow-difficulty="12"');
    expect(second.html).to.include('src="/interaction/challenge/pow.js"');

    // No work, or wrong work: refused before the password is looked at.
    const missing = await driver.submit(second, '/login', fields(PASSWORD, second));
    expect(missing.status).to.equal(400);
    expect(missing.html).to.include('Complete the security check, then sign in again.');
    const challenge = hiddenField(missing.html, 'pow_challenge');
    let wrongWork = 0;
    while (leadingZeroBits(powDigest(challenge, String(wrongWork))) >= 12) wrongWork++;
    const unsolved = await driver.submit(missing, '/login', fields(PASSWORD, missing, String(wrongWork)));
    expect(unsolved.status).to.equal(400);

    // Solved in Node, with a wrong password: the work counts, the password does not.
    const solvedChallenge = hiddenField(unsolved.html, 'pow_challenge');
    const solution = solveProofOfWork(solvedChallenge, 12);
    const wrongPassword = await driver.submit(unsolved, '/login', fields(WRONG, unsolved, solution));
    expect(wrongPassword.status).to.equal(401);
    // The same work again, in the same sign-in: used up.
    const replay = await driver.submit(wrongPassword, '/login', { identifier: 'ada@acme.test', password: PASSWORD, pow_challenge: solvedChallenge, pow_solution: solution });
    expect(replay.status).to.equal(400);

    // Solved by the page's own script (served from our origin), then the right password.
    const script = await fetch(`${instance.url}/interaction/challenge/pow.js`);
    expect(script.status).to.equal(200);
    expect(script.headers.get('content-type')).to.match(/javascript/);
    const sandbox: { powChallenge?: { search(challenge: string, difficulty: number, start: number, budget: number): number } } = {};
    vm.runInNewContext(await script.text(), sandbox);
    const found = sandbox.powChallenge!.search(hiddenField(replay.html, 'pow_challenge'), 12, 0, 10_000_000);
    expect(found).to.be.at.least(0);
    const signedIn = await driver.submit(replay, '/login', fields(PASSWORD, replay, String(found)));
    expect(signedIn.status).to.equal(303);
    expect(await securityEntries('security.captcha_required')).to.have.length(1);
  });

  it('blocks an address that fails at more distinct identifiers than allowed, and only that address', async () => {
    const spray = { tenant: 'acme', ip: '10.2.0.66' };
    const failures: number[] = [];
    for (const identifier of ['one@acme.test', 'two@acme.test', 'three@acme.test', 'four@acme.test']) failures.push((await driver.attempt(identifier, 'Winter2026!', spray)).status);
    expect(failures).to.deep.equal([401, 401, 401, 401]);
    const blocked = await driver.attempt('ada@acme.test', PASSWORD, spray);
    expect(blocked.status).to.equal(429);
    expect(blocked.html).to.include('Too many attempts.');
    expect(Number(blocked.headers.get('retry-after'))).to.be.within(1, 60);

    const detected = await securityEntries('security.spraying_detected');
    expect(detected).to.have.length(1);
    expect(detected[0].context?.ip).to.equal('10.2.0.66');
    const metrics = await (await fetch(`${instance.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
    expect(metrics).to.match(/idp_security_events_total\{kind="spraying_detected"\} [1-9]/);
    expect(metrics).to.match(/idp_security_events_total\{kind="spraying_refusal"\} [1-9]/);

    expect((await driver.attempt('ada@acme.test', PASSWORD, { tenant: 'acme', ip: '10.2.0.67' })).status).to.equal(303);
  });
});
