// Account self-service over HTTP: the /account pages (a first-party client of this provider,
// signed in through the real login form) and the same as JSON under /api/v1/me.
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { clientCredentialsToken, createFixtures, type Fixtures } from '../helpers/fixtures.ts';
import { Browser, formAction, hiddenField } from '../helpers/browser.ts';
import { discover, loginWithCode } from '../helpers/rp.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import { currentTotpCode } from '../../src/mfa/totp.ts';

const FIREFOX_LINUX = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0';
const CHROME_WINDOWS = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const PASSWORD = 'a long and unusual passphrase 42';

// A browser that always sends the same User-Agent, like one device.
class DeviceBrowser extends Browser {
  #userAgent: string;
  constructor(userAgent: string) {
    super();
    this.#userAgent = userAgent;
  }
  override fetch(url: string | URL, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set('user-agent', this.#userAgent);
    return super.fetch(url, { ...init, headers });
  }
}

interface Page {
  status: number;
  url: URL;
  html: string;
}

// Opens an account page, signing in through the provider's login form when it asks.
async function openAccount(browser: Browser, issuer: string, path: string, credentials?: { email: string; password: string }): Promise<Page> {
  let { response, url } = await browser.follow(`${issuer}${path}`, issuer);
  let html = await response.text();
  if (url.pathname.startsWith('/interaction/')) {
    if (!credentials) throw new Error(`asked to sign in at ${url}`);
    // The single-step sign-in (identifier and password in one form post).
    const login = await browser.submitForm(new URL(`${url.pathname}/login`, issuer), {
      csrf: hiddenField(html, 'csrf'),
      identifier: credentials.email,
      password: credentials.password,
    });
    expect(login.status, 'login accepted').to.equal(303);
    ({ response, url } = await browser.follow(new URL(login.headers.get('location')!, issuer), issuer));
    html = await response.text();
  }
  return { status: response.status, url, html };
}

// Posts a form of an account page (with the page's CSRF token); returns the response unfollowed.
async function post(browser: Browser, issuer: string, page: Page, action: string, fields: Record<string, string> = {}): Promise<Response> {
  return browser.submitForm(new URL(formAction(page.html, action), issuer), { csrf: hiddenField(page.html, 'csrf'), ...fields });
}

function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

forEachBackend('account self-service', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let fixtures: Fixtures;
  let issuer: string;
  let counter = 0;

  // A fresh person per test, so tests do not see each other's sessions or passwords.
  async function newUser(): Promise<{ id: string; email: string; password: string }> {
    const email = `person${++counter}@example.com`;
    const user = await instance.runtime.users.create(DEFAULT_TENANT_ID, { email, password: PASSWORD, emailVerified: true, name: `Person ${counter}` });
    return { id: user.id, email, password: PASSWORD };
  }

  async function userToken(person: { email: string; password: string }, browser?: Browser) {
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const result = await loginWithCode(config, issuer, { identifier: person.email, password: person.password, browser });
    return { config, ...result };
  }

  before(async () => {
    store = await backend.create();
    instance = await startInstance(store.env);
    issuer = instance.url;
    fixtures = await createFixtures(instance.runtime);
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  describe('/account pages', () => {
    it('signs in through the provider and shows and changes the profile', async () => {
      const person = await newUser();
      const browser = new Browser();
      const first = await browser.fetch(`${issuer}/account`);
      expect(first.status).to.equal(303);
      const authorize = new URL(first.headers.get('location')!);
      expect(authorize.pathname).to.equal('/auth');
      expect(authorize.searchParams.get('client_id')).to.equal('account-console');
      expect(authorize.searchParams.get('code_challenge_method')).to.equal('S256');

      const profile = await openAccount(browser, issuer, '/account', person);
      expect(profile.status).to.equal(200);
      expect(profile.url.pathname).to.equal('/account');
      expect(profile.html).to.include(person.email);
      expect(profile.html).to.include(`value="Person ${counter}"`);

      const saved = await post(browser, issuer, profile, '/account/profile', {
        version: hiddenField(profile.html, 'version'),
        givenName: 'Grace',
        familyName: 'Hopper',
        name: 'Grace Hopper',
        nickname: '',
        website: '',
        birthdate: '1906-12-09',
        zoneinfo: 'America/New_York',
        locale: '',
      });
      expect(saved.status).to.equal(303);
      const after = await openAccount(browser, issuer, saved.headers.get('location')!);
      expect(after.html).to.include('value="Grace"');
      expect(after.html).to.include('role="status"');
      const stored = await instance.runtime.users.get(DEFAULT_TENANT_ID, person.id);
      expect([stored.givenName, stored.familyName, stored.birthdate]).to.deep.equal(['Grace', 'Hopper', '1906-12-09']);

      const invalid = await post(browser, issuer, after, '/account/profile', { version: hiddenField(after.html, 'version'), givenName: 'Grace', birthdate: 'yesterday', zoneinfo: 'Mars/Olympus' });
      expect(invalid.status).to.equal(422);
      const invalidHtml = await invalid.text();
      expect(invalidHtml).to.include('role="alert"');
      expect(invalidHtml).to.match(/id="birthdate"[^>]*aria-invalid="true"/);
      // What each field expects, in the page's language; not the service's English words for the API.
      expect(invalidHtml).to.include('Enter a date as YYYY-MM-DD').and.include('Enter a time zone such as Europe/Berlin');
      browser.defaultHeaders['accept-language'] = 'de';
      try {
        const german = await post(browser, issuer, after, '/account/profile', { version: hiddenField(after.html, 'version'), givenName: 'Grace', website: 'not a web address', nickname: 'x'.repeat(300) });
        expect(german.status).to.equal(422);
        const germanHtml = await german.text();
        expect(germanHtml).to.include('Geben Sie eine vollständige Webadresse ein').and.include('Dieser Wert ist zu lang oder enthält nicht erlaubte Zeichen.');
        expect(germanHtml).to.not.match(/must be|at most \d+ characters/);
      } finally {
        delete browser.defaultHeaders['accept-language'];
      }
      expect((await instance.runtime.users.get(DEFAULT_TENANT_ID, person.id)).birthdate, 'nothing changed').to.equal('1906-12-09');
    });

    it('refuses a callback that this browser did not start, and a replayed one', async () => {
      const person = await newUser();
      const browser = new Browser();
      const start = await browser.fetch(`${issuer}/account`);
      const { url: callback } = await (async () => {
        let { response, url } = await browser.follow(start.headers.get('location')!, issuer);
        const html = await response.text();
        const login = await browser.submitForm(new URL(`${url.pathname}/login`, issuer), { csrf: hiddenField(html, 'csrf'), identifier: person.email, password: person.password });
        let next = new URL(login.headers.get('location')!, issuer);
        for (let hop = 0; hop < 5 && next.pathname !== '/account/callback'; hop++) {
          response = await browser.fetch(next);
          next = new URL(response.headers.get('location')!, issuer);
        }
        url = next;
        return { url };
      })();
      expect(callback.pathname).to.equal('/account/callback');
      const stranger = new Browser();
      const refused = await stranger.fetch(callback);
      expect(refused.status).to.equal(400);
      expect(stranger.cookieHeader(new URL(issuer))).to.not.include('account_session');
      const accepted = await browser.fetch(callback);
      expect(accepted.status).to.equal(303);
      const replayed = await browser.fetch(callback);
      expect(replayed.status).to.equal(400);
    });

    it('changes the password: the current one is checked, the new one against the policy', async () => {
      const person = await newUser();
      const browser = new Browser();
      const page = await openAccount(browser, issuer, '/account/password', person);
      expect(page.status).to.equal(200);
      expect(page.html).to.include('autocomplete="current-password"');

      const wrongCurrent = await post(browser, issuer, page, '/account/password', { currentPassword: 'not my password', newPassword: 'another long passphrase 77', confirmPassword: 'another long passphrase 77' });
      expect(wrongCurrent.status).to.equal(422);
      expect(await wrongCurrent.text()).to.match(/id="currentPassword"[^>]*aria-invalid="true"/);

      const mismatch = await post(browser, issuer, page, '/account/password', { currentPassword: PASSWORD, newPassword: 'another long passphrase 77', confirmPassword: 'something else entirely' });
      expect(mismatch.status).to.equal(422);

      const common = await post(browser, issuer, page, '/account/password', { currentPassword: PASSWORD, newPassword: 'password', confirmPassword: 'password' });
      expect(common.status).to.equal(422);
      expect(await common.text()).to.match(/id="newPassword"[^>]*aria-invalid="true"/);
      expect(await instance.runtime.users.verifyPassword(DEFAULT_TENANT_ID, person.id, PASSWORD), 'unchanged after refusals').to.equal(true);

      const changed = await post(browser, issuer, page, '/account/password', { currentPassword: PASSWORD, newPassword: 'another long passphrase 77', confirmPassword: 'another long passphrase 77' });
      expect(changed.status).to.equal(303);
      expect(await instance.runtime.users.verifyPassword(DEFAULT_TENANT_ID, person.id, 'another long passphrase 77')).to.equal(true);
      await userToken({ email: person.email, password: 'another long passphrase 77' });
    });

    it('lists the sessions of two devices and signs out the other one, with its refresh token', async () => {
      const person = await newUser();
      const laptop = new DeviceBrowser(FIREFOX_LINUX);
      const { config, tokens } = await userToken(person, laptop);
      expect(tokens.refresh_token, 'first-party apps get a refresh token').to.be.a('string');

      const desktop = new DeviceBrowser(CHROME_WINDOWS);
      const page = await openAccount(desktop, issuer, '/account/sessions', person);
      expect(page.status).to.equal(200);
      const rows = page.html.split('<tr class="session">').slice(1);
      expect(rows).to.have.length(2);
      const firefox = rows.find((row) => row.includes('Firefox 128 on Linux'));
      const chrome = rows.find((row) => row.includes('Chrome 131 on Windows 10'));
      expect(firefox, page.html).to.be.a('string');
      expect(chrome).to.include('This device');
      expect(firefox).to.not.include('This device');
      expect(firefox).to.include('127.0.0.1');

      const laptopSession = /action="\/account\/sessions\/([0-9a-f-]+)\/end"/.exec(firefox!)![1];
      const ended = await post(desktop, issuer, page, `/account/sessions/${laptopSession}/end`);
      expect(ended.status).to.equal(303);
      expect(ended.headers.get('location')).to.equal('/account/sessions?notice=sessionEnded');
      const refused = await oidc.refreshTokenGrant(config, tokens.refresh_token!).then(() => undefined, (error: { error?: string }) => error);
      expect(refused?.error, 'the refresh token stopped working').to.equal('invalid_grant');
      const userinfo = await fetch(`${issuer}/me`, { headers: bearer(tokens.access_token) });
      expect(userinfo.status, 'its access token is revoked too').to.equal(401);

      const after = await openAccount(desktop, issuer, '/account/sessions');
      expect(after.html.split('<tr class="session">')).to.have.length(2);
      expect(after.html).to.include('This device');
      // The laptop's browser session is gone: the provider asks it to sign in again.
      const again = await laptop.follow(`${issuer}/account`, issuer);
      expect(again.url.pathname).to.match(/^\/interaction\//);
    });

    it('signs out all other sessions and keeps this one', async () => {
      const person = await newUser();
      await userToken(person, new DeviceBrowser(FIREFOX_LINUX));
      await userToken(person, new DeviceBrowser(FIREFOX_LINUX));
      const desktop = new DeviceBrowser(CHROME_WINDOWS);
      const page = await openAccount(desktop, issuer, '/account/sessions', person);
      expect(page.html.split('<tr class="session">')).to.have.length(4);
      const ended = await post(desktop, issuer, page, '/account/sessions/end-others');
      expect(ended.status).to.equal(303);
      const after = await openAccount(desktop, issuer, '/account/sessions');
      expect(after.status).to.equal(200);
      const rows = after.html.split('<tr class="session">').slice(1);
      expect(rows).to.have.length(1);
      expect(rows[0]).to.include('This device');
    });

    it('signs out the other devices when the password changes, and keeps this one', async () => {
      const person = await newUser();
      const laptop = await userToken(person, new DeviceBrowser(FIREFOX_LINUX));
      const desktop = new DeviceBrowser(CHROME_WINDOWS);
      const page = await openAccount(desktop, issuer, '/account/password', person);
      const changed = await post(desktop, issuer, page, '/account/password', { currentPassword: PASSWORD, newPassword: 'another long passphrase 78', confirmPassword: 'another long passphrase 78' });
      expect(changed.status).to.equal(303);
      const refused = await oidc.refreshTokenGrant(laptop.config, laptop.tokens.refresh_token!).then(() => undefined, (error: { error?: string }) => error);
      expect(refused?.error, 'the other device’s refresh token stopped working').to.equal('invalid_grant');
      const after = await openAccount(desktop, issuer, '/account/sessions');
      expect(after.status, 'this device is still signed in').to.equal(200);
      const rows = after.html.split('<tr class="session">').slice(1);
      expect(rows).to.have.length(1);
      expect(rows[0]).to.include('This device');
    });

    it('limits wrong current passwords on the password page', async () => {
      const person = await newUser();
      const browser = new Browser();
      const page = await openAccount(browser, issuer, '/account/password', person);
      const attempt = (currentPassword: string) => post(browser, issuer, page, '/account/password', { currentPassword, newPassword: 'another long passphrase 79', confirmPassword: 'another long passphrase 79' });
      for (let guess = 0; guess < 5; guess++) expect((await attempt(`guess ${guess}`)).status).to.equal(422);
      const limited = await attempt(PASSWORD);
      expect(limited.status, 'even the right password waits once the limit is reached').to.equal(429);
      expect(Number(limited.headers.get('retry-after'))).to.be.greaterThan(0);
      expect(await limited.text()).to.match(/role="alert"/);
      expect(await instance.runtime.users.verifyPassword(DEFAULT_TENANT_ID, person.id, PASSWORD), 'unchanged').to.equal(true);
    });

    it('refuses a form without its CSRF token', async () => {
      const person = await newUser();
      const browser = new Browser();
      const page = await openAccount(browser, issuer, '/account', person);
      const forged = await browser.submitForm(`${issuer}/account/profile`, { version: hiddenField(page.html, 'version'), givenName: 'Mallory' });
      expect(forged.status).to.equal(403);
      expect((await instance.runtime.users.get(DEFAULT_TENANT_ID, person.id)).givenName).to.equal(null);
    });

    it('enrols an authenticator app, shows backup codes once, and removes it', async () => {
      const person = await newUser();
      const browser = new Browser();
      const page = await openAccount(browser, issuer, '/account/mfa', person);
      expect(page.html).to.include('action="/account/mfa/enrol"');
      const enrol = await post(browser, issuer, page, '/account/mfa/enrol');
      expect(enrol.status).to.equal(200);
      const enrolHtml = await enrol.text();
      expect(enrolHtml).to.include('<svg');
      const secret = /<code class="secret">([A-Z2-7]+)<\/code>/.exec(enrolHtml)![1];
      const enrolPage = { status: 200, url: new URL(`${issuer}/account/mfa`), html: enrolHtml };

      const wrong = await post(browser, issuer, enrolPage, '/account/mfa/confirm', { code: '000000' === currentTotpCode(secret) ? '111111' : '000000' });
      expect(wrong.status).to.equal(422);
      const confirmed = await post(browser, issuer, enrolPage, '/account/mfa/confirm', { code: currentTotpCode(secret) });
      expect(confirmed.status).to.equal(200);
      const codes = [...(await confirmed.text()).matchAll(/<li><code>([a-z0-9-]+)<\/code><\/li>/g)].map((match) => match[1]);
      expect(codes).to.have.length(10);
      expect(await instance.runtime.mfa.status(DEFAULT_TENANT_ID, person.id)).to.include({ totp: true, backupCodesRemaining: 10 });

      const status = await openAccount(browser, issuer, '/account/mfa');
      expect(status.html).to.not.include(codes[0]);
      const regenerated = await post(browser, issuer, status, '/account/mfa/backup-codes');
      expect(regenerated.status).to.equal(200);
      expect(await regenerated.text()).to.not.include(codes[0]);

      const removed = await post(browser, issuer, status, '/account/mfa/remove');
      expect(removed.status).to.equal(303);
      expect((await instance.runtime.mfa.status(DEFAULT_TENANT_ID, person.id)).totp).to.equal(false);
    });

    it('signs out through the provider’s end-session endpoint', async () => {
      const person = await newUser();
      const browser = new Browser();
      const page = await openAccount(browser, issuer, '/account', person);
      const logout = await post(browser, issuer, page, '/account/logout');
      expect(logout.status).to.equal(303);
      const target = new URL(logout.headers.get('location')!);
      expect(target.pathname).to.equal('/session/end');
      expect(target.searchParams.get('client_id')).to.equal('account-console');
      const confirm = await browser.follow(target, issuer);
      expect(confirm.response.status).to.equal(200);
      const next = await browser.fetch(`${issuer}/account`);
      expect(next.status, 'the account session is gone').to.equal(303);
      expect(new URL(next.headers.get('location')!).pathname).to.equal('/auth');
    });
  });

  describe('/api/v1/me', () => {
    it('answers a person’s access token, and only theirs', async () => {
      const person = await newUser();
      const { tokens } = await userToken(person);
      const me = await fetch(`${issuer}/api/v1/me`, { headers: bearer(tokens.access_token) });
      expect(me.status).to.equal(200);
      const body = (await me.json()) as Record<string, unknown>;
      expect(body).to.include({ id: person.id, email: person.email, tenantId: DEFAULT_TENANT_ID });
      expect(body).to.not.have.property('passwordHash');

      const patched = await fetch(`${issuer}/api/v1/me`, {
        method: 'PATCH',
        headers: { ...bearer(tokens.access_token), 'content-type': 'application/json', 'if-match': me.headers.get('etag')! },
        body: JSON.stringify({ nickname: 'Amazing' }),
      });
      expect(patched.status).to.equal(200);
      expect(((await patched.json()) as { nickname: string }).nickname).to.equal('Amazing');

      const adminField = await fetch(`${issuer}/api/v1/me`, {
        method: 'PATCH',
        headers: { ...bearer(tokens.access_token), 'content-type': 'application/json' },
        body: JSON.stringify({ isAdmin: true }),
      });
      expect(adminField.status).to.equal(422);
      expect(adminField.headers.get('content-type')).to.include('application/problem+json');
      expect((await instance.runtime.users.get(DEFAULT_TENANT_ID, person.id)).isAdmin).to.equal(false);
      const notAnObject = await fetch(`${issuer}/api/v1/me`, {
        method: 'PATCH',
        headers: { ...bearer(tokens.access_token), 'content-type': 'application/json' },
        body: JSON.stringify([{ nickname: 'Array' }]),
      });
      expect(notAnObject.status).to.equal(422);
      expect(((await notAnObject.json()) as { errors: Record<string, string> }).errors).to.have.property('body');

      const none = await fetch(`${issuer}/api/v1/me`);
      expect(none.status).to.equal(401);
      expect(none.headers.get('content-type')).to.include('application/problem+json');
      const garbage = await fetch(`${issuer}/api/v1/me`, { headers: bearer('not-a-token') });
      expect(garbage.status).to.equal(401);

      const machine = await clientCredentialsToken(issuer, fixtures.machine, {});
      const machineToken = ((await machine.json()) as { access_token: string }).access_token;
      const refused = await fetch(`${issuer}/api/v1/me`, { headers: bearer(machineToken) });
      expect(refused.status).to.equal(403);
      expect(refused.headers.get('content-type')).to.include('application/problem+json');

      const partner = await discover(issuer, fixtures.thirdParty.clientId, fixtures.thirdParty.clientSecret);
      const partnerLogin = await loginWithCode(partner, issuer, { identifier: person.email, password: person.password });
      const thirdParty = await fetch(`${issuer}/api/v1/me`, { headers: bearer(partnerLogin.tokens.access_token) });
      expect(thirdParty.status).to.equal(403);
    });

    it('changes the password, lists and ends sessions, and guards MFA removal with the password', async () => {
      const person = await newUser();
      const { tokens } = await userToken(person, new DeviceBrowser(FIREFOX_LINUX));
      const other = await userToken(person, new DeviceBrowser(CHROME_WINDOWS));
      const json = (method: string, value: unknown) => ({
        method,
        headers: { ...bearer(tokens.access_token), 'content-type': 'application/json' },
        body: JSON.stringify(value),
      });

      const wrong = await fetch(`${issuer}/api/v1/me/password`, json('POST', { currentPassword: 'wrong', newPassword: 'a fresh long passphrase 9' }));
      expect(wrong.status).to.equal(422);
      expect(((await wrong.json()) as { errors: Record<string, string> }).errors).to.have.property('currentPassword');

      const sessions = await fetch(`${issuer}/api/v1/me/sessions`, { headers: bearer(tokens.access_token) });
      const { items } = (await sessions.json()) as { items: Array<{ id: string; browser: string; current: boolean }> };
      expect(items).to.have.length(2);
      const mine = items.find((item) => item.current)!;
      expect(mine.browser).to.equal('Firefox 128');
      const theirs = items.find((item) => !item.current)!;
      expect(theirs.browser).to.equal('Chrome 131');
      const ended = await fetch(`${issuer}/api/v1/me/sessions/${theirs.id}`, { method: 'DELETE', headers: bearer(tokens.access_token) });
      expect(ended.status).to.equal(204);
      expect((await fetch(`${issuer}/api/v1/me`, { headers: bearer(other.tokens.access_token) })).status).to.equal(401);
      const missing = await fetch(`${issuer}/api/v1/me/sessions/${theirs.id}`, { method: 'DELETE', headers: bearer(tokens.access_token) });
      expect(missing.status).to.equal(404);

      const mfa = await fetch(`${issuer}/api/v1/me/mfa`, { headers: bearer(tokens.access_token) });
      expect(await mfa.json()).to.deep.equal({ totp: false, confirmedAt: null, backupCodesRemaining: 0 });
      const { secret } = await instance.runtime.mfa.beginTotpEnrolment(DEFAULT_TENANT_ID, person.id, { accountName: person.email, issuer: 'test' });
      await instance.runtime.mfa.confirmTotpEnrolment(DEFAULT_TENANT_ID, person.id, currentTotpCode(secret));
      const noPassword = await fetch(`${issuer}/api/v1/me/mfa`, json('DELETE', {}));
      expect(noPassword.status).to.equal(422);
      const badPassword = await fetch(`${issuer}/api/v1/me/mfa/backup-codes`, json('POST', { currentPassword: 'wrong' }));
      expect(badPassword.status).to.equal(422);
      const codes = await fetch(`${issuer}/api/v1/me/mfa/backup-codes`, json('POST', { currentPassword: PASSWORD }));
      expect(codes.status).to.equal(201);
      expect(((await codes.json()) as { backupCodes: string[] }).backupCodes).to.have.length(10);
      const removed = await fetch(`${issuer}/api/v1/me/mfa`, json('DELETE', { currentPassword: PASSWORD }));
      expect(removed.status).to.equal(204);
      expect((await instance.runtime.mfa.status(DEFAULT_TENANT_ID, person.id)).totp).to.equal(false);

      const changed = await fetch(`${issuer}/api/v1/me/password`, json('POST', { currentPassword: PASSWORD, newPassword: 'a fresh long passphrase 9' }));
      expect(changed.status).to.equal(204);
      expect(await instance.runtime.users.verifyPassword(DEFAULT_TENANT_ID, person.id, 'a fresh long passphrase 9')).to.equal(true);
    });

    it('limits wrong current passwords per user, also under parallel guesses', async () => {
      const person = await newUser();
      const bystander = await newUser();
      const { tokens } = await userToken(person);
      const theirs = await userToken(bystander);
      const post = (path: string, token: string, value: unknown) =>
        fetch(`${issuer}/api/v1/me${path}`, { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/json' }, body: JSON.stringify(value) });

      const guesses = await Promise.all(Array.from({ length: 8 }, (_, index) => post('/password', tokens.access_token, { currentPassword: `guess ${index}`, newPassword: 'a fresh long passphrase 10' })));
      const statuses = guesses.map((response) => response.status).sort();
      expect(statuses).to.deep.equal([422, 422, 422, 422, 422, 429, 429, 429]);
      const limited = guesses.find((response) => response.status === 429)!;
      expect(limited.headers.get('content-type')).to.include('application/problem+json');
      expect(Number(limited.headers.get('retry-after'))).to.be.greaterThan(0);

      for (const [path, value] of [['/mfa/backup-codes', { currentPassword: PASSWORD }], ['/mfa/totp', { currentPassword: PASSWORD }], ['/password', { currentPassword: PASSWORD, newPassword: 'a fresh long passphrase 10' }]] as const) {
        expect((await post(path, tokens.access_token, value)).status, `${path} with the right password`).to.equal(429);
      }
      const removal = await fetch(`${issuer}/api/v1/me/mfa`, { method: 'DELETE', headers: { ...bearer(tokens.access_token), 'content-type': 'application/json' }, body: JSON.stringify({ currentPassword: PASSWORD }) });
      expect(removal.status).to.equal(429);
      expect(await instance.runtime.users.verifyPassword(DEFAULT_TENANT_ID, person.id, PASSWORD), 'unchanged').to.equal(true);

      // Per user: another person is not affected, and a right password forgets earlier failures.
      for (let guess = 0; guess < 4; guess++) expect((await post('/mfa/backup-codes', theirs.tokens.access_token, { currentPassword: `guess ${guess}` })).status).to.equal(422);
      expect((await post('/mfa/totp', theirs.tokens.access_token, { currentPassword: PASSWORD })).status).to.equal(201);
      for (let guess = 0; guess < 5; guess++) expect((await post('/mfa/backup-codes', theirs.tokens.access_token, { currentPassword: `again ${guess}` })).status).to.equal(422);
    });

    it('enrols an authenticator app with the current password and a first code', async () => {
      const person = await newUser();
      const { tokens } = await userToken(person);
      const post = (path: string, value: unknown) =>
        fetch(`${issuer}/api/v1/me${path}`, { method: 'POST', headers: { ...bearer(tokens.access_token), 'content-type': 'application/json' }, body: JSON.stringify(value) });

      expect((await post('/mfa/totp', {})).status, 'needs the current password').to.equal(422);
      const begun = await post('/mfa/totp', { currentPassword: PASSWORD });
      expect(begun.status).to.equal(201);
      const enrolment = (await begun.json()) as { secret: string; otpauthUri: string; qrSvg: string };
      expect(enrolment.secret).to.match(/^[A-Z2-7]+$/);
      expect(enrolment.otpauthUri).to.match(/^otpauth:\/\/totp\//);
      expect(enrolment.qrSvg).to.include('<svg');
      expect((await instance.runtime.mfa.status(DEFAULT_TENANT_ID, person.id)).totp, 'not active before confirmation').to.equal(false);

      expect((await post('/mfa/totp/confirm', {})).status).to.equal(422);
      const wrong = await post('/mfa/totp/confirm', { code: currentTotpCode(enrolment.secret) === '000000' ? '111111' : '000000' });
      expect(wrong.status).to.equal(422);
      expect(wrong.headers.get('content-type')).to.include('application/problem+json');
      const confirmed = await post('/mfa/totp/confirm', { code: currentTotpCode(enrolment.secret) });
      expect(confirmed.status).to.equal(200);
      expect(((await confirmed.json()) as { backupCodes: string[] }).backupCodes).to.have.length(10);
      expect(await instance.runtime.mfa.status(DEFAULT_TENANT_ID, person.id)).to.include({ totp: true, backupCodesRemaining: 10 });
    });

    it('ends all other sessions, and all other sessions after a password change', async () => {
      const person = await newUser();
      const mine = await userToken(person, new DeviceBrowser(FIREFOX_LINUX));
      const second = await userToken(person, new DeviceBrowser(CHROME_WINDOWS));
      const third = await userToken(person, new DeviceBrowser(CHROME_WINDOWS));
      const refreshError = (login: typeof mine) => oidc.refreshTokenGrant(login.config, login.tokens.refresh_token!).then(() => undefined, (error: { error?: string }) => error?.error);

      const ended = await fetch(`${issuer}/api/v1/me/sessions/end-others`, { method: 'POST', headers: bearer(mine.tokens.access_token) });
      expect(ended.status).to.equal(200);
      expect(await ended.json()).to.deep.equal({ ended: 2 });
      expect(await refreshError(second)).to.equal('invalid_grant');
      expect(await refreshError(third)).to.equal('invalid_grant');
      const sessions = await fetch(`${issuer}/api/v1/me/sessions`, { headers: bearer(mine.tokens.access_token) });
      expect(sessions.status, 'this session stays').to.equal(200);
      expect(((await sessions.json()) as { items: Array<{ current: boolean }> }).items.map((item) => item.current)).to.deep.equal([true]);

      const fourth = await userToken(person, new DeviceBrowser(CHROME_WINDOWS));
      const changed = await fetch(`${issuer}/api/v1/me/password`, {
        method: 'POST',
        headers: { ...bearer(mine.tokens.access_token), 'content-type': 'application/json' },
        body: JSON.stringify({ currentPassword: PASSWORD, newPassword: 'a fresh long passphrase 11' }),
      });
      expect(changed.status).to.equal(204);
      expect(await refreshError(fourth), 'the second device’s refresh token stops working').to.equal('invalid_grant');
      expect(await refreshError(mine), 'this device stays signed in').to.equal(undefined);
    });

    it('keeps the last way to sign in', async () => {
      const person = await newUser();
      const { tokens } = await userToken(person);
      const first = await instance.runtime.identities.link(DEFAULT_TENANT_ID, person.id, { connector: 'google', subject: `g-last-${person.id}` });
      const second = await instance.runtime.identities.link(DEFAULT_TENANT_ID, person.id, { connector: 'github', subject: `gh-last-${person.id}` });
      await instance.runtime.db('users').where({ id: person.id }).update({ password_hash: null });
      const remove = (id: string) => fetch(`${issuer}/api/v1/me/identities/${id}`, { method: 'DELETE', headers: bearer(tokens.access_token) });
      const [a, b] = await Promise.all([remove(first.id), remove(second.id)]);
      expect([a.status, b.status].sort(), 'one of two parallel removals must stay').to.deep.equal([204, 409]);
      expect(await instance.runtime.identities.list(DEFAULT_TENANT_ID, person.id)).to.have.length(1);
    });

    it('lists and removes linked identities', async () => {
      const person = await newUser();
      const linked = await instance.runtime.identities.link(DEFAULT_TENANT_ID, person.id, { connector: 'google', subject: `g-${person.id}`, email: person.email });
      const { tokens } = await userToken(person);
      const list = await fetch(`${issuer}/api/v1/me/identities`, { headers: bearer(tokens.access_token) });
      expect(((await list.json()) as { items: Array<{ id: string; connector: string }> }).items).to.deep.equal([
        // No connector has that id here: its name falls back to the id.
        { id: linked.id, connector: 'google', connectorName: 'google', subject: `g-${person.id}`, email: person.email, linkedAt: linked.linkedAt.toISOString() },
      ]);

      const browser = new Browser();
      const page = await openAccount(browser, issuer, '/account/identities', person);
      expect(page.html).to.include('google');
      const removed = await post(browser, issuer, page, `/account/identities/${linked.id}/remove`);
      expect(removed.status, (await removed.clone().text()).replace(/<head>[\s\S]*<\/head>/, '')).to.equal(303);
      const gone = await fetch(`${issuer}/api/v1/me/identities/${linked.id}`, { method: 'DELETE', headers: bearer(tokens.access_token) });
      expect(gone.status).to.equal(404);
      expect(await instance.runtime.identities.list(DEFAULT_TENANT_ID, person.id)).to.deep.equal([]);
    });
  });
});
