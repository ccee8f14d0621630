// Device sessions as users and administrators see them, and the tenant's session policy: two
// browsers of one user, revocation from the other browser and by an administrator, the concurrent
// session limit both ways, idle timeout and absolute lifetime on a controllable clock, the tenant
// listing with filters, pages and counts, and the cleanup job.
import { expect } from 'chai';
import { pino } from 'pino';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { freePort, TEST_ENV, type Instance } from '../helpers/instance.ts';
import { basicAuth, createFixtures, type Fixtures } from '../helpers/fixtures.ts';
import { adminApi, type AdminApi } from '../helpers/admin-api.ts';
import { Browser, formAction, hiddenField } from '../helpers/browser.ts';
import { authorizationRequest, discover, loginWithCode, REDIRECT_URI } from '../helpers/rp.ts';
import { loadConfig } from '../../src/config.ts';
import { createRuntime } from '../../src/runtime.ts';
import { startServer } from '../../src/server.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import type { TenantPolicies } from '../../src/tenants/policies.ts';

const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0';
const CHROME = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const PASSWORD = 'a long and unusual passphrase 42';

interface AdminSession {
  id: string;
  userId?: string;
  browser: string | null;
  ip: string | null;
  clientIds: string[];
  createdAt: string;
  lastActiveAt: string;
}

forEachBackend('device sessions and session policy', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let admins: AdminApi;
  let fixtures: Fixtures;
  let issuer: string;
  let admin: string;
  let counter = 0;
  // The clock of every session policy decision; moved by the tests, never by waiting.
  let clock = Date.now();

  async function start(env: Record<string, string>): Promise<Instance> {
    const port = await freePort();
    const config = loadConfig({ ...TEST_ENV, ...env, ISSUER: `http://127.0.0.1:${port}`, PORT: String(port), HOST: '127.0.0.1' });
    const runtime = await createRuntime(config, { serve: true, log: pino({ level: 'silent' }), now: () => new Date(clock) });
    const server = await startServer(runtime, { port, host: '127.0.0.1' });
    return { url: server.url, runtime, server, stop: async () => { await server.close(); await runtime.close(); } };
  }

  function advance(seconds: number): void {
    clock += seconds * 1000;
  }

  async function setPolicy(sessions: Partial<TenantPolicies['sessions']>): Promise<void> {
    const tenant = await instance.runtime.tenants.get(DEFAULT_TENANT_ID);
    await instance.runtime.tenants.update(DEFAULT_TENANT_ID, tenant.version, { policies: { ...tenant.policies, sessions: { onLimit: 'end_oldest', ...sessions } } });
  }

  async function newUser(): Promise<{ id: string; email: string; password: string }> {
    const email = `sessions${++counter}@example.com`;
    const user = await instance.runtime.users.create(DEFAULT_TENANT_ID, { email, password: PASSWORD, emailVerified: true });
    return { id: user.id, email, password: PASSWORD };
  }

  async function signIn(person: { email: string; password: string }, userAgent = FIREFOX, browser = new Browser({ 'user-agent': userAgent })) {
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const { tokens } = await loginWithCode(config, issuer, { identifier: person.email, password: person.password, browser });
    advance(1);
    return { browser, config, tokens, refreshToken: tokens.refresh_token! };
  }

  async function refresh(refreshToken: string): Promise<{ status: number; body: Record<string, string> }> {
    const response = await fetch(`${issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(fixtures.web) },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }).toString(),
    });
    return { status: response.status, body: (await response.json()) as Record<string, string> };
  }

  // An authorization request with prompt=none: a code when the browser's session still signs in.
  async function silentSignIn(browser: Browser): Promise<URLSearchParams> {
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const request = await authorizationRequest(config, REDIRECT_URI, { prompt: 'none' });
    const { url } = await browser.follow(request.url, issuer);
    expect(url.origin, 'back at the client').to.not.equal(issuer);
    return url.searchParams;
  }

  function api(method: string, path: string, token = admin): Promise<Response> {
    return admins.call(token, method, path);
  }

  async function userSessions(userId: string): Promise<AdminSession[]> {
    const response = await api('GET', `/tenants/${DEFAULT_TENANT_ID}/users/${userId}/sessions`);
    expect(response.status).to.equal(200);
    return ((await response.json()) as { items: AdminSession[] }).items;
  }

  before(async () => {
    store = await backend.create();
    instance = await start(store.env);
    issuer = instance.url;
    fixtures = await createFixtures(instance.runtime);
    admins = adminApi(instance);
    admin = await admins.token(DEFAULT_TENANT_ID, 'admin');
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });
  afterEach(async () => {
    await setPolicy({});
  });

  it('lists two browsers of one user to an administrator; one signs the other out, whose refresh token then fails', async () => {
    const person = await newUser();
    const firefox = await signIn(person, FIREFOX);
    const chrome = await signIn(person, CHROME);

    const listed = await userSessions(person.id);
    expect(listed.map((session) => session.browser).sort()).to.deep.equal(['Chrome 131', 'Firefox 128']);
    expect(listed.every((session) => session.clientIds.includes(fixtures.web.clientId) && session.ip)).to.equal(true);

    const mine = await fetch(`${issuer}/api/v1/me/sessions`, { headers: { authorization: `Bearer ${firefox.tokens.access_token}` } });
    const { items } = (await mine.json()) as { items: Array<{ id: string; browser: string; current: boolean }> };
    const other = items.find((session) => !session.current)!;
    expect(other.browser).to.equal('Chrome 131');
    const ended = await fetch(`${issuer}/api/v1/me/sessions/${other.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${firefox.tokens.access_token}` } });
    expect(ended.status).to.equal(204);

    const refused = await refresh(chrome.refreshToken);
    expect(refused.status).to.equal(400);
    expect(refused.body.error).to.equal('invalid_grant');
    expect((await refresh(firefox.refreshToken)).status, 'the other browser stays signed in').to.equal(200);
    expect((await silentSignIn(chrome.browser)).get('error')).to.equal('login_required');
    expect((await userSessions(person.id)).map((session) => session.browser)).to.deep.equal(['Firefox 128']);
  });

  it('signs out everywhere: the account API’s "all", and an administrator ending one and then all sessions', async () => {
    const person = await newUser();
    const first = await signIn(person, FIREFOX);
    const second = await signIn(person, CHROME);
    const all = await fetch(`${issuer}/api/v1/me/sessions/end-all`, { method: 'POST', headers: { authorization: `Bearer ${first.tokens.access_token}` } });
    expect(all.status).to.equal(200);
    expect(await all.json()).to.deep.equal({ ended: 2 });
    for (const signedIn of [first, second]) expect((await refresh(signedIn.refreshToken)).status).to.equal(400);

    const third = await signIn(person, FIREFOX);
    const fourth = await signIn(person, CHROME);
    const [oldest] = (await userSessions(person.id)).filter((session) => session.browser === 'Firefox 128');
    expect((await api('DELETE', `/tenants/${DEFAULT_TENANT_ID}/users/${person.id}/sessions/${oldest.id}`)).status).to.equal(204);
    expect((await api('DELETE', `/tenants/${DEFAULT_TENANT_ID}/users/${person.id}/sessions/${oldest.id}`)).status, 'already ended').to.equal(404);
    expect((await refresh(third.refreshToken)).status).to.equal(400);
    const rest = await api('DELETE', `/tenants/${DEFAULT_TENANT_ID}/users/${person.id}/sessions`);
    expect(await rest.json()).to.deep.equal({ ended: 1 });
    expect((await refresh(fourth.refreshToken)).status).to.equal(400);
    expect(await userSessions(person.id)).to.deep.equal([]);

    // An agent reads users but not sessions; an unknown user is a 404, not an empty list.
    expect((await api('GET', `/tenants/${DEFAULT_TENANT_ID}/users/${person.id}/sessions`, await admins.token(DEFAULT_TENANT_ID, 'agent'))).status).to.equal(403);
    expect((await api('GET', `/tenants/${DEFAULT_TENANT_ID}/users/00000000-0000-4000-8000-000000000000/sessions`)).status).to.equal(404);
  });

  it('refuses a new session over the concurrent-session limit with a page, while the same browser may sign in again', async () => {
    await setPolicy({ maxConcurrent: 1, onLimit: 'refuse' });
    const person = await newUser();
    const first = await signIn(person, FIREFOX);

    const browser = new Browser({ 'user-agent': CHROME, 'accept-language': 'en' });
    const request = await authorizationRequest(first.config, REDIRECT_URI);
    const { response } = await browser.follow(request.url, issuer);
    let html = await response.text();
    const identified = await browser.submitForm(new URL(formAction(html, '/identify'), issuer), { csrf: hiddenField(html, 'csrf'), identifier: person.email });
    html = await identified.text();
    const login = await browser.submitForm(new URL(formAction(html, '/login'), issuer), { csrf: hiddenField(html, 'csrf'), identifier: person.email, password: PASSWORD });
    expect(login.status).to.equal(403);
    const page = await login.text();
    expect(page).to.include('Too many active sessions');
    expect(page).to.include('signed in on 1 browsers');
    expect(page).to.include('role="alert"');
    expect(page).to.include('/abort"');
    expect((await userSessions(person.id)).map((session) => session.browser)).to.deep.equal(['Firefox 128']);

    // Signing in again in the browser that holds the session is not a new session.
    const again = await loginWithCode(first.config, issuer, { identifier: person.email, password: PASSWORD, browser: first.browser, extraParams: { prompt: 'login' } });
    expect(again.tokens.refresh_token).to.be.a('string');
    expect((await refresh(first.refreshToken)).status, 'the first session goes on').to.equal(200);
  });

  it('ends the oldest session over the limit with end_oldest, with its refresh token', async () => {
    await setPolicy({ maxConcurrent: 2, onLimit: 'end_oldest' });
    const person = await newUser();
    const oldest = await signIn(person, FIREFOX);
    const middle = await signIn(person, CHROME);
    const newest = await signIn(person, CHROME);
    expect((await refresh(oldest.refreshToken)).status).to.equal(400);
    expect((await refresh(middle.refreshToken)).status).to.equal(200);
    expect((await refresh(newest.refreshToken)).status).to.equal(200);
    expect(await userSessions(person.id)).to.have.length(2);
    expect((await silentSignIn(oldest.browser)).get('error')).to.equal('login_required');
  });

  it('writes the last activity at most once a minute, and an idle session neither signs in silently nor refreshes', async () => {
    await setPolicy({ idleTimeoutSeconds: 600 });
    const person = await newUser();
    const signedIn = await signIn(person);
    const [before] = await userSessions(person.id);

    advance(30);
    let rotated = await refresh(signedIn.refreshToken);
    expect(rotated.status).to.equal(200);
    expect((await silentSignIn(signedIn.browser)).get('code'), 'a silent renewal').to.be.a('string');
    expect((await userSessions(person.id))[0].lastActiveAt, 'not written twice within a minute').to.equal(before.lastActiveAt);
    advance(45);
    rotated = await refresh(rotated.body.refresh_token);
    const [touched] = await userSessions(person.id);
    expect(new Date(touched.lastActiveAt).getTime()).to.equal(clock);

    advance(599);
    expect((await silentSignIn(signedIn.browser)).get('code'), 'still within the idle timeout').to.be.a('string');
    advance(601);
    expect((await silentSignIn(signedIn.browser)).get('error')).to.equal('login_required');
    const refused = await refresh(rotated.body.refresh_token);
    expect(refused.status).to.equal(400);
    expect(refused.body.error).to.equal('invalid_grant');
    expect(await userSessions(person.id)).to.deep.equal([]);
  });

  it('sends the account pages of an idle session back to sign-in', async () => {
    await setPolicy({ idleTimeoutSeconds: 600 });
    const person = await newUser();
    const browser = new Browser({ 'user-agent': FIREFOX });
    // Sign in to the account console (the single-step form: identifier and password together).
    let { response, url } = await browser.follow(`${issuer}/account`, issuer);
    const login = await browser.submitForm(new URL(`${url.pathname}/login`, issuer), { csrf: hiddenField(await response.text(), 'csrf'), identifier: person.email, password: person.password });
    expect(login.status).to.equal(303);
    ({ url } = await browser.follow(new URL(login.headers.get('location')!, issuer), issuer));
    expect(url.pathname).to.equal('/account');

    advance(300);
    ({ url } = await browser.follow(`${issuer}/account`, issuer));
    expect(url.pathname, 'still within the idle timeout').to.equal('/account');
    advance(601);
    ({ url } = await browser.follow(`${issuer}/account`, issuer));
    expect(url.pathname, 'signed out after the idle timeout').to.match(/^\/interaction\//);
    expect(await userSessions(person.id)).to.deep.equal([]);
  });

  it('ends a session at its absolute lifetime however active; signing in again revives none of its tokens', async () => {
    await setPolicy({ absoluteLifetimeSeconds: 3600 });
    const person = await newUser();
    const signedIn = await signIn(person);
    advance(1800);
    const rotated = await refresh(signedIn.refreshToken);
    expect(rotated.status).to.equal(200);
    expect((await silentSignIn(signedIn.browser)).get('code')).to.be.a('string');
    advance(1800);
    expect((await silentSignIn(signedIn.browser)).get('error')).to.equal('login_required');

    // The same browser signs in again: a fresh session, and the old session's tokens stay dead.
    const again = await signIn(person, FIREFOX, signedIn.browser);
    const old = await refresh(rotated.body.refresh_token);
    expect(old.status).to.equal(400);
    expect((await refresh(again.refreshToken)).status).to.equal(200);
    const [session] = await userSessions(person.id);
    expect(new Date(session.createdAt).getTime()).to.be.greaterThan(clock - 5000);
  });

  it('keeps a remembered session cookie for the tenant’s remember-me lifetime, or only for the browser session', async () => {
    const sessionCookie = async (browser: Browser) => {
      const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
      const response = await browser.fetch((await authorizationRequest(config, REDIRECT_URI, { prompt: 'none' })).url);
      return response.headers.getSetCookie().find((cookie) => cookie.startsWith('_session='))!;
    };
    await setPolicy({ rememberMeLifetimeSeconds: 3600 });
    const remembered = await signIn(await newUser());
    const expires = /expires=([^;]+)/i.exec(await sessionCookie(remembered.browser))![1];
    expect(Math.abs(new Date(expires).getTime() - Date.now() - 3600_000)).to.be.lessThan(120_000);

    await setPolicy({ rememberMeLifetimeSeconds: 0 });
    const forgotten = await signIn(await newUser());
    expect(await sessionCookie(forgotten.browser)).to.not.match(/expires=/i);
  });

  it('lists a tenant’s active sessions with filters, keyset pages and a total', async () => {
    const ada = await newUser();
    const bob = await newUser();
    const started = encodeURIComponent(new Date(clock - 500).toISOString());
    await signIn(ada, FIREFOX);
    const since = new Date(clock - 500).toISOString();
    await signIn(ada, CHROME);
    await signIn(bob, CHROME);
    const base = `/tenants/${DEFAULT_TENANT_ID}/sessions`;

    const first = (await (await api('GET', `${base}?limit=1&createdAfter=${started}`)).json()) as { items: AdminSession[]; total: number; nextCursor: string | null };
    expect(first.total).to.equal(3);
    expect(first.items).to.have.length(1);
    const seen = [first.items[0].id];
    let cursor = first.nextCursor;
    while (cursor) {
      const page = (await (await api('GET', `${base}?limit=1&createdAfter=${started}&cursor=${cursor}`)).json()) as { items: AdminSession[]; nextCursor: string | null };
      seen.push(...page.items.map((item) => item.id));
      cursor = page.nextCursor;
    }
    expect(new Set(seen).size).to.equal(3);

    const adas = (await (await api('GET', `${base}?userId=${ada.id}`)).json()) as { items: AdminSession[]; total: number };
    expect(adas.total).to.equal(2);
    expect(adas.items.every((item) => item.userId === ada.id)).to.equal(true);
    const count = async (query: string) => ((await (await api('GET', `${base}/count?${query}`)).json()) as { count: number }).count;
    expect(await count(`userId=${ada.id}&createdAfter=${encodeURIComponent(since)}`)).to.equal(1);
    expect(await count(`userId=${bob.id}&clientId=${fixtures.web.clientId}&ip=127.0.0.1`)).to.equal(1);
    expect(await count(`userId=${bob.id}&clientId=account-console`)).to.equal(0);
    expect(await count(`userId=${bob.id}&lastActiveAfter=${encodeURIComponent(new Date(clock + 60_000).toISOString())}`)).to.equal(0);

    expect((await api('GET', `${base}?cursor=not-a-cursor`)).status).to.equal(422);
    expect((await api('GET', `${base}?createdAfter=yesterday`)).status).to.equal(422);
    expect((await api('GET', `${base}?colour=blue`)).status).to.equal(422);
    expect((await api('GET', base, await admins.token(DEFAULT_TENANT_ID, 'agent'))).status).to.equal(403);
  });


  it('drops a suspended user’s sessions from the tenant-wide list and count at once', async () => {
    const carol = await newUser();
    await signIn(carol, FIREFOX);
    await signIn(carol, CHROME);
    const base = `/tenants/${DEFAULT_TENANT_ID}/sessions`;
    const count = async () => ((await (await api('GET', `${base}/count?userId=${carol.id}`)).json()) as { count: number }).count;
    expect(await count()).to.equal(2);
    await instance.runtime.users.setStatus(DEFAULT_TENANT_ID, carol.id, 'suspended', 'suspicious activity');
    expect(await count()).to.equal(0);
    const listed = (await (await api('GET', `${base}?userId=${carol.id}`)).json()) as { items: AdminSession[]; total: number };
    expect(listed.total).to.equal(0);
    expect(listed.items).to.deep.equal([]);
  });
  it('cleans up ended rows and rows idle longer than any session lives, in bounded batches', async () => {
    const person = await newUser();
    await signIn(person, FIREFOX);
    await signIn(person, CHROME);
    const rows = () => instance.runtime.db('user_sessions').where({ user_id: person.id }).count({ count: '*' }).first().then((row) => Number(row?.count));
    const [one] = await userSessions(person.id);
    expect((await api('DELETE', `/tenants/${DEFAULT_TENANT_ID}/users/${person.id}/sessions/${one.id}`)).status).to.equal(204);
    expect(await rows()).to.equal(2);
    expect(await instance.runtime.sessions.purge(1, 1000)).to.be.greaterThanOrEqual(1);
    expect(await rows(), 'the ended row is gone').to.equal(1);

    advance(instance.runtime.config.ttl.session + 1);
    expect(await instance.runtime.sessions.purge()).to.be.greaterThanOrEqual(1);
    expect(await rows(), 'the long-idle row is gone').to.equal(0);
  });
});
