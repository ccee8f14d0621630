// A hosted CAPTCHA (Turnstile-style siteverify, served by a local fake) required after failed
// passwords from one address at one identifier: the widget with the site key on the page, the
// sign-in refused without a good answer, the provider asked with secret, response and address.
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { createFixtures } from '../helpers/fixtures.ts';
import { discover } from '../helpers/rp.ts';
import { captchaCspSources } from '../../src/security/captcha/index.ts';
import { SignInDriver } from './sign-in.ts';

const PASSWORD = 'a long enough password';
const WRONG = 'not the password at all';

forEachBackend('hosted CAPTCHA at sign-in', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let driver: SignInDriver;
  let fake: http.Server;
  const verifications: Array<Record<string, string>> = [];

  before(async function () {
    this.timeout(90_000);
    fake = http.createServer((request, response) => {
      let body = '';
      request.on('data', (chunk) => (body += chunk));
      request.on('end', () => {
        const form = Object.fromEntries(new URLSearchParams(body));
        verifications.push(form);
        response.setHeader('content-type', 'application/json');
        response.end(JSON.stringify({ success: form.secret === 'test-secret' && form.response === 'good-token' }));
      });
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    store = await backend.create();
    instance = await startInstance({
      ...store.env,
      TRUSTED_PROXIES: '127.0.0.1/32',
      CAPTCHA_PROVIDER: 'turnstile',
      CAPTCHA_SITE_KEY: 'test-site-key',
      CAPTCHA_SECRET: 'test-secret',
      CAPTCHA_VERIFY_URL: `http://127.0.0.1:${(fake.address() as AddressInfo).port}/siteverify`,
      CAPTCHA_AFTER_FAILURES: '2',
      CAPTCHA_AFTER_IP_FAILURES: '50',
    });
    const fixtures = await createFixtures(instance.runtime);
    driver = new SignInDriver(instance, await discover(instance.url, fixtures.web.clientId, fixtures.web.clientSecret));
    const tenant = await instance.runtime.tenants.create({ slug: 'acme', displayName: 'Acme', policies: { lockout: { maxFailures: 20, delayStepMs: 0 } } });
    await instance.runtime.users.create(tenant.id, { email: 'ada@acme.test', password: PASSWORD, emailVerified: true });
    await instance.runtime.users.create(tenant.id, { email: 'bob@acme.test', password: PASSWORD, emailVerified: true });
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
    fake?.close();
  });

  it('asks for the widget after the failures, refuses a missing or refused answer, and accepts a good one', async () => {
    const from = { tenant: 'acme', ip: '10.1.0.1' };
    expect((await driver.open(from)).html).to.not.include('cf-turnstile');
    expect((await driver.attempt('ada@acme.test', WRONG, from)).status).to.equal(401);
    const second = await driver.attempt('ada@acme.test', WRONG, from);
    expect(second.status).to.equal(401);
    // The page after the second failure already carries the challenge.
    expect(second.html).to.include('class="cf-turnstile" data-sitekey="test-site-key"');
    expect(second.html).to.include('src="https://challenges.cloudflare.com/turnstile/v0/api.js"');

    const missing = await driver.attempt('ada@acme.test', PASSWORD, from);
    expect(missing.status).to.equal(400);
    expect(missing.html).to.include('Complete the security check, then sign in again.');
    expect(verifications, 'nothing to verify without an answer').to.have.length(0);

    const refused = await driver.attempt('ada@acme.test', PASSWORD, { ...from, extra: () => ({ 'cf-turnstile-response': 'bad-token' }) });
    expect(refused.status).to.equal(400);
    expect(verifications.at(-1)).to.deep.equal({ secret: 'test-secret', response: 'bad-token', remoteip: '10.1.0.1' });

    const accepted = await driver.attempt('ada@acme.test', PASSWORD, { ...from, extra: () => ({ 'cf-turnstile-response': 'good-token' }) });
    expect(accepted.status).to.equal(303);
    // The success cleared this address's failures at this identifier: one failure asks nothing.
    const afterwards = await driver.attempt('ada@acme.test', WRONG, from);
    expect(afterwards.status).to.equal(401);
    expect(afterwards.html).to.not.include('cf-turnstile');

    const entries = await instance.runtime.audit.list((await instance.runtime.tenants.findBySlug('acme'))!.id, { type: 'security.captcha_required' }, undefined, 10);
    expect(entries.items).to.have.length(1);
    expect(entries.items[0].context?.ip).to.equal('10.1.0.1');
  });

  it('asks nothing of another address at the same identifier', async () => {
    await driver.attempt('bob@acme.test', WRONG, { tenant: 'acme', ip: '10.1.0.2' });
    expect((await driver.attempt('bob@acme.test', WRONG, { tenant: 'acme', ip: '10.1.0.2' })).html).to.include('cf-turnstile');
    const elsewhere = await driver.attempt('bob@acme.test', WRONG, { tenant: 'acme', ip: '10.1.0.3' });
    expect(elsewhere.status).to.equal(401);
    expect(elsewhere.html).to.not.include('cf-turnstile');
    expect((await driver.attempt('bob@acme.test', PASSWORD, { tenant: 'acme', ip: '10.1.0.3' })).status).to.equal(303);
  });

  it('names the sources a page with the widget needs in its CSP', () => {
    const turnstile = captchaCspSources({ captcha: { ...instance.runtime.config.signInProtection.captcha } });
    expect(turnstile.scriptSrc).to.include('https://challenges.cloudflare.com');
    expect(turnstile.frameSrc).to.include('https://challenges.cloudflare.com');
    expect(captchaCspSources({ captcha: { ...instance.runtime.config.signInProtection.captcha, provider: 'pow' } }).scriptSrc).to.deep.equal(["'self'"]);
  });
});
