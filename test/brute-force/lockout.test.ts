// Brute-force protection of password sign-in through HTTP: lockout after the tenant's number of
// failures, its end after the period (doubling the next time), a success clearing the count, the
// same answers for an unknown identifier, a permanent lockout only an administrator lifts, unlock
// by an e-mailed link, and the per-address limit on reset requests.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { createFixtures } from '../helpers/fixtures.ts';
import { adminApi, type AdminApi } from '../helpers/admin-api.ts';
import { discover } from '../helpers/rp.ts';
import { Browser, hiddenField } from '../helpers/browser.ts';
import { withTenant } from '../../src/store/tenant-scope.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import { normalised, readOutbox, SignInDriver, type PageResult } from './sign-in.ts';

const PASSWORD = 'a long enough password';
const WRONG = 'not the password at all';
const TOO_MANY = 'Too many attempts. Try again later, or unlock your account by e-mail.';

forEachBackend('brute-force lockout', (backend) => {
  let store: BackendEnv;
  let outboxDir: string;
  let instance: Instance;
  let driver: SignInDriver;
  let api: AdminApi;
  let token: string;
  const tenants: Record<string, { id: string; slug: string }> = {};

  async function createTenant(slug: string, lockout: Record<string, number>) {
    const tenant = await instance.runtime.tenants.create({ slug, displayName: `Tenant ${slug}`, policies: { lockout } });
    tenants[slug] = { id: tenant.id, slug };
  }

  async function createUser(slug: string, email: string): Promise<string> {
    const user = await instance.runtime.users.create(tenants[slug].id, { email, password: PASSWORD, emailVerified: true });
    return user.id;
  }

  async function securityEntries(slug: string, type: string) {
    const page = await instance.runtime.audit.list(tenants[slug].id, { type }, undefined, 100);
    return page.items;
  }

  async function mailsTo(address: string) {
    await instance.runtime.mailer.idle();
    return readOutbox(outboxDir).filter((mail) => mail.to === address);
  }

  function statuses(results: PageResult[]): number[] {
    return results.map((result) => result.status);
  }

  async function failTimes(identifier: string, slug: string, times: number): Promise<PageResult[]> {
    const results: PageResult[] = [];
    for (let i = 0; i < times; i++) results.push(await driver.attempt(identifier, WRONG, { tenant: slug }));
    return results;
  }

  before(async function () {
    // A busy machine makes the embedded database slow to start.
    this.timeout(90_000);
    store = await backend.create();
    outboxDir = mkdtempSync(path.join(tmpdir(), 'idp-outbox-'));
    instance = await startInstance({
      ...store.env,
      MAIL_OUTBOX_DIR: outboxDir,
      // Lockouts alone here: the CAPTCHA and spraying suites cover those.
      CAPTCHA_AFTER_FAILURES: '0',
      CAPTCHA_AFTER_IP_FAILURES: '0',
      SPRAYING_MAX_IDENTIFIERS: '0',
      RESET_IDENTIFIER_LIMIT: '2',
    });
    const fixtures = await createFixtures(instance.runtime);
    driver = new SignInDriver(instance, await discover(instance.url, fixtures.web.clientId, fixtures.web.clientSecret));
    api = adminApi(instance);
    token = await api.token(DEFAULT_TENANT_ID, 'root-admin');
    await createTenant('acme', { maxFailures: 3, baseLockoutSeconds: 1, maxLockoutSeconds: 2, delayStepMs: 150, maxDelayMs: 300 });
    await createTenant('parity', { maxFailures: 3, baseLockoutSeconds: 30, maxLockoutSeconds: 60, delayStepMs: 100, maxDelayMs: 200 });
    await createTenant('strict', { maxFailures: 2, baseLockoutSeconds: 1, maxLockoutSeconds: 1, permanentAfterLockouts: 2, delayStepMs: 0 });
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
    if (outboxDir) rmSync(outboxDir, { recursive: true, force: true });
  });

  it('slows failures down, locks after the policy’s number, unlocks after the period and doubles the next lockout', async () => {
    await createUser('acme', 'ada@acme.test');
    const started = Date.now();
    const [first, second, third] = await failTimes('ada@acme.test', 'acme', 3);
    expect(statuses([first, second])).to.deep.equal([401, 401]);
    expect(first.html).to.include('The e-mail, username or password is not correct.');
    // 0 + 150 + 300 ms of delay at least.
    expect(Date.now() - started).to.be.at.least(450);
    expect(third.status).to.equal(429);
    expect(third.html).to.include(TOO_MANY);
    expect(third.headers.get('retry-after')).to.equal('1');

    // Locked: even the right password is refused without being checked.
    expect((await driver.attempt('ada@acme.test', PASSWORD, { tenant: 'acme' })).status).to.equal(429);
    await sleep(1100);
    expect((await driver.attempt('ada@acme.test', PASSWORD, { tenant: 'acme' })).status).to.equal(303);

    // The success forgot the failures and the earlier lockout: the next one is 1 s again, the one after 2 s.
    expect(statuses(await failTimes('ada@acme.test', 'acme', 3))).to.deep.equal([401, 401, 429]);
    await sleep(1100);
    const again = await failTimes('ada@acme.test', 'acme', 3);
    expect(statuses(again)).to.deep.equal([401, 401, 429]);
    expect(again[2].headers.get('retry-after')).to.equal('2');

    const lockouts = await securityEntries('acme', 'security.lockout');
    expect(lockouts.length).to.be.at.least(3);
    expect(lockouts[0].details).to.include({ lockoutNumber: 2, lockoutSeconds: 2, permanent: false });
    expect(JSON.stringify(lockouts)).to.not.include('ada@acme.test');
  });

  it('a success clears the count of failures', async () => {
    await createUser('acme', 'bob@acme.test');
    expect(statuses(await failTimes('bob@acme.test', 'acme', 2))).to.deep.equal([401, 401]);
    expect((await driver.attempt('bob@acme.test', PASSWORD, { tenant: 'acme' })).status).to.equal(303);
    expect(statuses(await failTimes('bob@acme.test', 'acme', 2))).to.deep.equal([401, 401]);
    expect((await driver.attempt('bob@acme.test', PASSWORD, { tenant: 'acme' })).status).to.equal(303);
  });

  it('answers an unknown identifier exactly like a known one: same statuses, pages and lockout', async () => {
    await createUser('parity', 'carol@parity.test');
    const known: PageResult[] = [];
    const unknown: PageResult[] = [];
    for (let i = 0; i < 4; i++) {
      known.push(await driver.attempt('carol@parity.test', WRONG, { tenant: 'parity' }));
      unknown.push(await driver.attempt('nobody@parity.test', WRONG, { tenant: 'parity' }));
    }
    expect(statuses(known)).to.deep.equal([401, 401, 429, 429]);
    expect(statuses(unknown)).to.deep.equal(statuses(known));
    for (let i = 0; i < known.length; i++) {
      expect(normalised(unknown[i].html, 'nobody@parity.test')).to.equal(normalised(known[i].html, 'carol@parity.test'));
      expect(unknown[i].headers.get('retry-after')).to.equal(known[i].headers.get('retry-after'));
    }
    // Unlock by e-mail from the lockout page: the same answer, a mail only for the account.
    const sentKnown = await driver.submit(known[3], '/unlock', { identifier: hiddenField(known[3].html, 'identifier') });
    const sentUnknown = await driver.submit(unknown[3], '/unlock', { identifier: hiddenField(unknown[3].html, 'identifier') });
    expect(sentKnown.status).to.equal(200);
    expect(sentUnknown.status).to.equal(200);
    expect(normalised(sentUnknown.html, 'nobody@parity.test')).to.equal(normalised(sentKnown.html, 'carol@parity.test'));
    expect(await mailsTo('nobody@parity.test')).to.have.length(0);
    expect(await mailsTo('carol@parity.test')).to.have.length(1);
  });

  it('unlocks with the single-use link mailed from the lockout page', async () => {
    await createUser('acme', 'dave@acme.test');
    const locked = (await failTimes('dave@acme.test', 'acme', 3))[2];
    expect(locked.status).to.equal(429);
    const sent = await driver.submit(locked, '/unlock', { identifier: hiddenField(locked.html, 'identifier') });
    expect(sent.html).to.include('If this account is locked, we have sent an unlock link');
    const [mail] = await mailsTo('dave@acme.test');
    expect(mail.subject).to.equal('Unlock your account');
    const link = mail.text.match(/https?:\/\/\S+\/unlock\?token=[A-Za-z0-9_-]+/)![0];
    const secret = new URL(link).searchParams.get('token')!;
    const rows = await instance.runtime.db('user_tokens').where({ purpose: 'account_unlock' });
    expect(rows.map((row) => row.token_hash)).to.not.include(secret);

    const browser = new Browser();
    const form = await browser.fetch(link);
    const formHtml = await form.text();
    expect(form.status).to.equal(200);
    // Opening the link does not use it up (mail scanners open links).
    expect((await driver.attempt('dave@acme.test', PASSWORD, { tenant: 'acme' })).status).to.equal(429);
    const fields = { csrf: hiddenField(formHtml, 'csrf'), token: hiddenField(formHtml, 'token') };
    const done = await browser.submitForm(`${instance.url}/unlock`, fields);
    expect(done.status).to.equal(200);
    expect(await done.text()).to.include('Your account is unlocked.');
    expect((await browser.submitForm(`${instance.url}/unlock`, fields)).status, 'single use').to.equal(400);
    expect((await driver.attempt('dave@acme.test', PASSWORD, { tenant: 'acme' })).status).to.equal(303);
    const unlocks = await securityEntries('acme', 'security.unlock');
    expect(unlocks.some((entry) => entry.details.via === 'email')).to.equal(true);
  });

  it('locks permanently after the policy’s number of lockouts, durably, until an administrator unlocks', async () => {
    const userId = await createUser('strict', 'erin@strict.test');
    expect(statuses(await failTimes('erin@strict.test', 'strict', 2))).to.deep.equal([401, 429]);
    await sleep(1100);
    expect(statuses(await failTimes('erin@strict.test', 'strict', 2))).to.deep.equal([401, 429]);
    await sleep(1100);
    const refused = await driver.attempt('erin@strict.test', PASSWORD, { tenant: 'strict' });
    expect(refused.status).to.equal(429);
    expect(refused.headers.get('retry-after')).to.equal(null);

    // Kept on the account, not only in the hot store.
    await instance.runtime.signInProtection.bruteForce.idle();
    const rows = await withTenant(instance.runtime.db, tenants.strict.id, (trx) => trx('account_lockouts').where({ user_id: userId }));
    expect(rows).to.have.length(1);
    const permanent = await securityEntries('strict', 'security.lockout');
    expect(permanent.some((entry) => entry.details.permanent === true && entry.target?.id === userId)).to.equal(true);

    // An unlock link cannot lift it: no link is sent.
    await driver.submit(refused, '/unlock', { identifier: hiddenField(refused.html, 'identifier') });
    expect(await mailsTo('erin@strict.test')).to.have.length(0);

    const unlocked = await api.call(token, 'POST', `/tenants/${tenants.strict.id}/users/${userId}/unlock`);
    expect(unlocked.status, await unlocked.clone().text()).to.equal(204);
    expect((await api.call(token, 'POST', `/tenants/${tenants.strict.id}/users/00000000-0000-4000-8000-000000000001/unlock`)).status).to.equal(404);
    expect((await driver.attempt('erin@strict.test', PASSWORD, { tenant: 'strict' })).status).to.equal(303);
    const rowsAfter = await withTenant(instance.runtime.db, tenants.strict.id, (trx) => trx('account_lockouts').where({ user_id: userId }));
    expect(rowsAfter).to.have.length(0);
    const unlocks = await securityEntries('strict', 'security.unlock');
    expect(unlocks[0].details).to.include({ via: 'admin', permanent: true });
    expect(unlocks[0].actor?.type).to.equal('client');
  });

  it('limits reset requests per address, known or not', async () => {
    await createUser('acme', 'frank@acme.test');
    for (const email of ['frank@acme.test', 'ghost@acme.test']) {
      const answers: number[] = [];
      for (let i = 0; i < 3; i++) {
        const browser = new Browser();
        const form = await browser.fetch(`${instance.url}/password/forgot?tenant=acme`);
        const html = await form.text();
        const response = await browser.submitForm(`${instance.url}/password/forgot`, { csrf: hiddenField(html, 'csrf'), tenant: 'acme', email });
        answers.push(response.status);
        if (response.status === 429) expect(response.headers.get('retry-after')).to.match(/^\d+$/);
      }
      expect(answers, email).to.deep.equal([200, 200, 429]);
    }
    expect((await mailsTo('frank@acme.test')).filter((mail) => mail.subject === 'Reset your password')).to.have.length(2);
  });
});
