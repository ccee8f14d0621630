// Sign-in and credentials in the audit trail and the event stream, through the public interface:
// the login form, the second-factor pages, RP-initiated logout, the password pages, the account
// API and self-registration; then the trail as an administrator reads it over the admin API and
// the events as a service reads them from the stream. Entries carry who and from where, never a
// password, code or whether a typed identifier exists.
import { expect } from 'chai';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { clientCredentialsToken } from '../helpers/fixtures.ts';
import { Browser, formAction, hiddenField } from '../helpers/browser.ts';
import { authorizationRequest, discover, loginWithCode, POST_LOGOUT_REDIRECT_URI, REDIRECT_URI } from '../helpers/rp.ts';
import { ADMIN_API_PERMISSIONS } from '../../src/tenants/system-roles.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import { EVENTS_STREAM, eventOfEntry } from '../../src/outbox/stream.ts';
import { currentTotpCode } from '../../src/mfa/totp.ts';
import type { AuditEntry } from '../../src/audit/service.ts';
import type { EventEnvelope } from '../../src/outbox/events.ts';

const PASSWORD = 'a long and unusual passphrase 42';
const NEW_PASSWORD = 'another quite unusual passphrase 77';
const USER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0';

interface StoredMail {
  to: string;
  text: string;
}

forEachBackend('audit entries and events of sign-in and credentials', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let issuer: string;
  let outboxDir: string;
  let adminToken: string;
  let tenant: { id: string; slug: string };
  let app: { clientId: string; clientSecret: string };
  // Not bound to a tenant: the sign-in finds the tenant from the identifier.
  let openApp: { clientId: string; clientSecret: string };
  let counter = 0;
  let groups = 0;

  const browser = () => new Browser({ 'user-agent': USER_AGENT });

  async function newUser(): Promise<{ id: string; email: string; password: string }> {
    const email = `signer${++counter}-${process.pid}@example.com`;
    const user = await instance.runtime.users.create(tenant.id, { email, password: PASSWORD, emailVerified: true });
    return { id: user.id, email, password: PASSWORD };
  }

  // The tenant's trail as its administrators read it: newest first.
  async function trail(query: Record<string, string>): Promise<AuditEntry[]> {
    const response = await fetch(`${issuer}/api/v1/tenants/${tenant.id}/audit?${new URLSearchParams(query)}`, { headers: { authorization: `Bearer ${adminToken}` } });
    expect(response.status, await response.clone().text()).to.equal(200);
    return ((await response.json()) as { items: AuditEntry[] }).items;
  }

  // Events of the tenant on the stream, read by a newly created consumer group, until `count`
  // match (the worker publishes within a second or so).
  async function events(predicate: (event: EventEnvelope) => boolean, count = 1): Promise<EventEnvelope[]> {
    const group = `audit-flows-${++groups}`;
    const seen: EventEnvelope[] = [];
    const deadline = Date.now() + 10_000;
    for (;;) {
      const entries = await instance.runtime.hot.readStreamGroup(EVENTS_STREAM, group, 'reader', 100);
      if (entries.length) await instance.runtime.hot.acknowledgeStream(EVENTS_STREAM, group, entries.map((entry) => entry.id));
      seen.push(...entries.map(eventOfEntry).filter((event) => event.tenantId === tenant.id));
      const found = seen.filter(predicate);
      if (found.length >= count || Date.now() > deadline) return found;
      if (!entries.length) await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async function mailsTo(address: string): Promise<StoredMail[]> {
    await instance.runtime.mailer.idle();
    return readdirSync(outboxDir)
      .filter((name) => name.endsWith('.json'))
      .sort()
      .map((name) => JSON.parse(readFileSync(path.join(outboxDir, name), 'utf8')) as StoredMail)
      .filter((mail) => mail.to === address);
  }

  // Opens the sign-in page of the tenant's application: the page and its URL.
  async function signInPage(agent: Browser, client = app): Promise<{ url: URL; html: string }> {
    const config = await discover(issuer, client.clientId, client.clientSecret);
    const request = await authorizationRequest(config, REDIRECT_URI);
    const { response, url } = await agent.follow(request.url, issuer);
    expect(url.pathname).to.match(/^\/interaction\//);
    return { url, html: await response.text() };
  }

  async function typePassword(agent: Browser, identifier: string, password: string, client = app): Promise<{ status: number; html: string }> {
    const { url, html } = await signInPage(agent, client);
    const response = await agent.submitForm(new URL(`${url.pathname}/login`, issuer), { csrf: hiddenField(html, 'csrf'), identifier, password });
    return { status: response.status, html: await response.text() };
  }

  async function signIn(person: { email: string; password: string }, options: { agent?: Browser; onPage?: Parameters<typeof loginWithCode>[2]['onPage'] } = {}) {
    const config = await discover(issuer, app.clientId, app.clientSecret);
    return loginWithCode(config, issuer, { identifier: person.email, password: person.password, browser: options.agent ?? browser(), onPage: options.onPage });
  }

  async function me(token: string, method: string, pathname: string, body?: Record<string, unknown>): Promise<Response> {
    return fetch(`${issuer}/api/v1/me${pathname}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'user-agent': USER_AGENT, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  }

  function expectContext(entry: AuditEntry): void {
    expect(entry.context?.userAgent).to.equal(USER_AGENT);
    expect(entry.context?.ip).to.be.a('string').and.not.equal('');
  }

  before(async () => {
    store = await backend.create();
    outboxDir = mkdtempSync(path.join(tmpdir(), 'idp-audit-flows-'));
    instance = await startInstance({ ...store.env, MAIL_OUTBOX_DIR: outboxDir });
    issuer = instance.url;
    const { runtime } = instance;
    const created = await runtime.tenants.create({ slug: `signing-${process.pid}`, displayName: 'Signing', selfRegistration: true });
    tenant = { id: created.id, slug: created.slug };
    const client = await runtime.clients.create({
      name: 'Signing app',
      redirectUris: [REDIRECT_URI],
      postLogoutRedirectUris: [POST_LOGOUT_REDIRECT_URI],
      grantTypes: ['authorization_code', 'refresh_token'],
      firstParty: true,
      tenantId: tenant.id,
    });
    app = { clientId: client.client.clientId, clientSecret: client.clientSecret! };
    const open = await runtime.clients.create({ name: 'Open app', redirectUris: [REDIRECT_URI], grantTypes: ['authorization_code'], firstParty: true });
    openApp = { clientId: open.client.clientId, clientSecret: open.clientSecret! };
    const reader = await runtime.clients.create({ name: 'Audit reader', grantTypes: ['client_credentials'], tenantId: DEFAULT_TENANT_ID });
    await runtime.rbac.assign(DEFAULT_TENANT_ID, (await runtime.rbac.roleIdByName(DEFAULT_TENANT_ID, 'admin'))!, 'client', reader.client.clientId);
    const token = await clientCredentialsToken(issuer, { clientId: reader.client.clientId, clientSecret: reader.clientSecret! }, { resource: runtime.adminApi, scope: ADMIN_API_PERMISSIONS.join(' ') });
    adminToken = ((await token.json()) as { access_token: string }).access_token;
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
    if (outboxDir) rmSync(outboxDir, { recursive: true, force: true });
  });

  it('records a sign-in (auth.login, auth.login.success) and the sign-out (auth.logout)', async () => {
    const person = await newUser();
    const { tokens, browser: agent } = await signIn(person);

    const [login] = await trail({ type: 'auth.login', actor: person.id });
    expect(login).to.deep.include({ type: 'auth.login', outcome: 'success', targetRef: app.clientId });
    expect(login.actor).to.include({ type: 'user', id: person.id, email: person.email });
    expect(login.details).to.deep.equal({ clientId: app.clientId, amr: ['pwd'] });
    expectContext(login);
    const [event] = await events((candidate) => candidate.type === 'auth.login.success' && candidate.data.userId === person.id);
    expect(event.data).to.deep.equal({ userId: person.id, clientId: app.clientId, amr: ['pwd'] });

    const openSessions = () => instance.runtime.sessions.countTenant(tenant.id, { userId: person.id });
    expect(await openSessions()).to.equal(1);

    const end = new URL(`${issuer}/session/end`);
    end.search = new URLSearchParams({ id_token_hint: tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT_REDIRECT_URI, client_id: app.clientId }).toString();
    const { response } = await agent.follow(end, issuer);
    const html = await response.text();
    const confirmed = await agent.submitForm(new URL(formAction(html, '/session/end/confirm'), issuer), { xsrf: hiddenField(html, 'xsrf'), logout: 'yes' });
    expect(confirmed.status).to.equal(303);
    expect(confirmed.headers.get('location')).to.match(new RegExp(`^${POST_LOGOUT_REDIRECT_URI}`));

    const [logout] = await trail({ type: 'auth.logout', actor: person.id });
    expect(logout).to.deep.include({ type: 'auth.logout', outcome: 'success', targetRef: app.clientId });
    expect(logout.details).to.deep.equal({ clientId: app.clientId, sessionEnded: true });
    expectContext(logout);
    // The device session ended with it: tenant-wide counts drop at once, not at the next purge.
    expect(await openSessions()).to.equal(0);
  });

  it('records a refused password alike for an unknown identifier and a wrong password', async () => {
    const person = await newUser();
    const unknown = `nobody-${process.pid}@example.com`;
    const wrong = await typePassword(browser(), person.email, 'not the password at all');
    const missing = await typePassword(browser(), unknown, 'not the password at all');
    expect(wrong.status).to.equal(401);
    expect(missing.status).to.equal(401);
    const withoutIdentifier = (html: string, identifier: string) => html.split(identifier).join('').replace(/name="csrf" value="[^"]*"/g, '').replace(/\/interaction\/[^/"]+/g, '');
    expect(withoutIdentifier(wrong.html, person.email)).to.equal(withoutIdentifier(missing.html, unknown));

    const failures = await trail({ type: 'auth.login', outcome: 'failure' });
    const [second, first] = failures;
    for (const entry of [first, second]) {
      expect(entry).to.deep.include({ type: 'auth.login', outcome: 'failure', actor: null, target: null, targetRef: app.clientId });
      expect(entry.details).to.deep.equal({ clientId: app.clientId, reason: 'invalid_credentials' });
      expectContext(entry);
    }
    expect(JSON.stringify(failures)).to.not.include(person.id).and.not.include(person.email).and.not.include('not the password');

    // Without a tenant named up front, nothing is recorded: the tenant the identifier belongs to
    // must not learn of it (that would tell the identifier exists).
    expect((await typePassword(browser(), person.email, 'not the password at all', openApp)).status).to.equal(401);
    expect(await trail({ type: 'auth.login', outcome: 'failure' })).to.have.length(failures.length);

    const refused = await events((event) => event.type === 'auth.login.failed' && [person.email, unknown].includes(event.data.identifier as string), 2);
    expect(refused.map((event) => event.data)).to.deep.equal([
      { identifier: person.email, reason: 'invalid_credentials', clientId: app.clientId },
      { identifier: unknown, reason: 'invalid_credentials', clientId: app.clientId },
    ]);
  });

  it('records second-factor checks (mfa.verify), and a sign-in with both factors', async () => {
    const person = await newUser();
    const { runtime } = instance;
    const enrolment = await runtime.mfa.beginTotpEnrolment(tenant.id, person.id, { accountName: person.email, issuer: 'Signing' });
    expect(await runtime.mfa.confirmTotpEnrolment(tenant.id, person.id, currentTotpCode(enrolment.secret))).to.not.equal(undefined);

    let tries = 0;
    await signIn(person, {
      onPage: async ({ html, browser: agent }) => {
        // A wrong code first, then the next step's code (the enrolment used the current one).
        const code = tries++ === 0 ? '000000' : currentTotpCode(enrolment.secret, new Date(Date.now() + 30_000));
        return agent.submitForm(new URL(formAction(html, '/mfa'), issuer), { csrf: hiddenField(html, 'csrf'), code });
      },
    });

    const checks = await trail({ type: 'mfa.verify', target: person.id });
    expect(checks.map((entry) => [entry.outcome, entry.details])).to.deep.equal([
      ['success', { method: 'totp' }],
      ['failure', { method: 'totp', reason: 'invalid_code' }],
    ]);
    for (const entry of checks) {
      expect(entry.actor).to.include({ type: 'user', id: person.id });
      expectContext(entry);
    }
    const [login] = await trail({ type: 'auth.login', actor: person.id });
    expect(login.details).to.deep.equal({ clientId: app.clientId, amr: ['pwd', 'otp', 'mfa'] });
  });

  it('records a second-factor rate-limit block once (security.rate_limited)', async () => {
    const person = await newUser();
    const enrolment = await instance.runtime.mfa.beginTotpEnrolment(tenant.id, person.id, { accountName: person.email, issuer: 'Signing' });
    await instance.runtime.mfa.confirmTotpEnrolment(tenant.id, person.id, currentTotpCode(enrolment.secret));
    const agent = browser();
    const { url, html } = await signInPage(agent);
    const login = await agent.submitForm(new URL(`${url.pathname}/login`, issuer), { csrf: hiddenField(html, 'csrf'), identifier: person.email, password: person.password });
    const mfaPage = await login.text();
    const statuses: number[] = [];
    for (let attempt = 0; attempt < 7; attempt++) {
      const answer = await agent.submitForm(new URL(formAction(mfaPage, '/mfa'), issuer), { csrf: hiddenField(mfaPage, 'csrf'), code: '000000' });
      statuses.push(answer.status);
      await answer.text();
    }
    // Five wrong codes, then the sign-in starts over; the seventh finds no second-factor step.
    expect(statuses.slice(0, 6)).to.deep.equal([401, 401, 401, 401, 401, 401]);

    expect(await trail({ type: 'mfa.verify', target: person.id })).to.have.length(5);
    const blocks = await trail({ type: 'security.', target: person.id });
    expect(blocks).to.have.length(1);
    expect(blocks[0]).to.deep.include({ type: 'security.rate_limited', outcome: 'failure' });
    expect(blocks[0].details).to.deep.equal({ limiter: 'second-factor-sign-in', step: 'second_factor' });
    expectContext(blocks[0]);
  });

  it('records a second-factor lockout across sign-ins once (security.lockout)', async () => {
    const person = await newUser();
    const enrolment = await instance.runtime.mfa.beginTotpEnrolment(tenant.id, person.id, { accountName: person.email, issuer: 'Signing' });
    await instance.runtime.mfa.confirmTotpEnrolment(tenant.id, person.id, currentTotpCode(enrolment.secret));
    // Five wrong codes in each of two sign-ins use up the person's ten; the third sign-in's first
    // code is refused without being checked.
    const statuses: number[] = [];
    for (const codes of [5, 5, 2]) {
      const agent = browser();
      const { url, html } = await signInPage(agent);
      const login = await agent.submitForm(new URL(`${url.pathname}/login`, issuer), { csrf: hiddenField(html, 'csrf'), identifier: person.email, password: person.password });
      const mfaPage = await login.text();
      for (let attempt = 0; attempt < codes; attempt++) {
        const answer = await agent.submitForm(new URL(formAction(mfaPage, '/mfa'), issuer), { csrf: hiddenField(mfaPage, 'csrf'), code: '000000' });
        statuses.push(answer.status);
        await answer.text();
      }
    }
    expect(statuses.slice(-2)).to.deep.equal([429, 429]);
    expect(await trail({ type: 'mfa.verify', target: person.id })).to.have.length(10);
    const blocks = await trail({ type: 'security.', target: person.id });
    expect(blocks.map((entry) => [entry.type, entry.outcome, entry.details])).to.deep.equal([
      ['security.lockout', 'failure', { limiter: 'second-factor-person', step: 'second_factor' }],
    ]);
  });

  it('records an administrator\'s reset to a temporary password (password.admin_reset) and the change it forces (password.change)', async () => {
    const person = await newUser();
    const reset = await fetch(`${issuer}/api/v1/tenants/${tenant.id}/users/${person.id}/password-reset`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json', 'user-agent': USER_AGENT },
      body: JSON.stringify({ mode: 'temporary' }),
    });
    expect(reset.status, await reset.clone().text()).to.equal(200);
    const { temporaryPassword } = (await reset.json()) as { temporaryPassword: string };
    await signIn({ email: person.email, password: temporaryPassword }, {
      onPage: async ({ html, browser: agent }) =>
        agent.submitForm(new URL(formAction(html, '/password'), issuer), { csrf: hiddenField(html, 'csrf'), password: NEW_PASSWORD, passwordConfirm: NEW_PASSWORD }),
    });

    const [adminReset] = await trail({ type: 'password.admin_reset', target: person.id });
    expect(adminReset).to.deep.include({ outcome: 'success' });
    expect(adminReset.actor?.type).to.equal('client');
    expect(adminReset.details).to.deep.equal({ mode: 'temporary' });
    const [change] = await trail({ type: 'password.change', target: person.id });
    expect(change).to.deep.include({ outcome: 'success' });
    expect(change.actor).to.include({ type: 'user', id: person.id });
    expect(change.details).to.deep.equal({ via: 'sign_in' });
    expectContext(change);
    expect(JSON.stringify([adminReset, change])).to.not.include(temporaryPassword).and.not.include(NEW_PASSWORD);
  });

  it('records self-service MFA enrolment, new backup codes and removal, without codes', async () => {
    const person = await newUser();
    const { tokens } = await signIn(person);
    const token = tokens.access_token;
    const started = await me(token, 'POST', '/mfa/totp', { currentPassword: person.password });
    expect(started.status).to.equal(201);
    const { secret } = (await started.json()) as { secret: string };
    const confirmed = await me(token, 'POST', '/mfa/totp/confirm', { code: currentTotpCode(secret) });
    expect(confirmed.status).to.equal(200);
    const { backupCodes } = (await confirmed.json()) as { backupCodes: string[] };
    const regenerated = await me(token, 'POST', '/mfa/backup-codes', { currentPassword: person.password });
    expect(regenerated.status).to.equal(201);
    const fresh = ((await regenerated.json()) as { backupCodes: string[] }).backupCodes;
    expect((await me(token, 'DELETE', '/mfa', { currentPassword: person.password })).status).to.equal(204);

    const entries = await trail({ type: 'mfa.', target: person.id });
    expect(entries.map((entry) => [entry.type, entry.outcome, entry.details])).to.deep.equal([
      ['mfa.remove', 'success', { method: 'totp' }],
      ['mfa.backup_codes.regenerate', 'success', { issued: fresh.length }],
      ['mfa.enrol', 'success', { method: 'totp', issued: backupCodes.length }],
    ]);
    for (const entry of entries) {
      expect(entry.actor).to.include({ type: 'user', id: person.id });
      expectContext(entry);
    }
    const text = JSON.stringify(entries);
    for (const code of [...backupCodes, ...fresh, secret]) expect(text).to.not.include(code);
  });

  it('records password changes (password.change), failed and done, and the lockout once (security.lockout)', async () => {
    const person = await newUser();
    await signIn(person);
    const { tokens } = await signIn(person);
    const token = tokens.access_token;
    expect((await me(token, 'POST', '/password', { currentPassword: 'a wrong current password', newPassword: NEW_PASSWORD })).status).to.equal(422);
    expect((await me(token, 'POST', '/password', { currentPassword: person.password, newPassword: NEW_PASSWORD })).status).to.equal(204);

    const changes = await trail({ type: 'password.change', target: person.id });
    expect(changes.map((entry) => [entry.outcome, entry.details])).to.deep.equal([
      ['success', { via: 'account' }],
      ['failure', { via: 'account', reason: 'invalid_current_password' }],
    ]);
    for (const entry of changes) {
      expect(entry.actor).to.include({ type: 'user', id: person.id });
      expectContext(entry);
    }
    expect(JSON.stringify(changes)).to.not.include(NEW_PASSWORD).and.not.include(person.password).and.not.include('a wrong current');
    // The other device's session ended with the change.
    const revoked = await trail({ type: 'session.revoke', actor: person.id });
    expect(revoked).to.have.length(1);
    expect(revoked[0].details).to.deep.include({ scope: 'others', reason: 'password_changed', via: 'account' });

    const statuses: number[] = [];
    for (let attempt = 0; attempt < 7; attempt++) statuses.push((await me(token, 'POST', '/mfa/backup-codes', { currentPassword: 'still not it' })).status);
    expect(statuses).to.deep.equal([422, 422, 422, 422, 422, 429, 429]);
    const lockouts = await trail({ type: 'security.lockout', target: person.id });
    expect(lockouts).to.have.length(1);
    expect(lockouts[0]).to.deep.include({ outcome: 'failure' });
    expect(lockouts[0].details).to.deep.equal({ limiter: 'account-current-password', via: 'account' });
  });

  it('records a reset by mail (password.reset.request, password.reset.complete)', async () => {
    const person = await newUser();
    const agent = browser();
    const forgot = await agent.fetch(`${issuer}/password/forgot?tenant=${tenant.slug}`);
    const forgotHtml = await forgot.text();
    const sent = await agent.submitForm(`${issuer}/password/forgot`, { csrf: hiddenField(forgotHtml, 'csrf'), tenant: tenant.slug, email: person.email });
    expect(sent.status).to.equal(200);
    const [mail] = await mailsTo(person.email);
    const link = mail.text.match(/https?:\/\/\S+\/password\/reset\?token=[A-Za-z0-9_-]+/)![0];
    const form = await agent.fetch(link);
    const formHtml = await form.text();
    const token = hiddenField(formHtml, 'token');
    const reset = await agent.submitForm(`${issuer}/password/reset`, { csrf: hiddenField(formHtml, 'csrf'), token, password: NEW_PASSWORD, passwordConfirm: NEW_PASSWORD });
    expect(reset.status).to.equal(200);

    const entries = await trail({ type: 'password.reset.', target: person.id });
    expect(entries.map((entry) => [entry.type, entry.outcome, entry.details])).to.deep.equal([
      ['password.reset.complete', 'success', { via: 'email' }],
      ['password.reset.request', 'success', { via: 'email' }],
    ]);
    for (const entry of entries) {
      expect(entry.actor).to.include({ type: 'user', id: person.id });
      expectContext(entry);
    }
    expect(JSON.stringify(entries)).to.not.include(token).and.not.include(NEW_PASSWORD);

    // An unknown address leaves no entry at all.
    const before = (await trail({ type: 'password.reset.request' })).length;
    const other = await agent.submitForm(`${issuer}/password/forgot`, { csrf: hiddenField(forgotHtml, 'csrf'), tenant: tenant.slug, email: `nobody-${process.pid}@example.com` });
    expect(other.status).to.equal(200);
    await instance.runtime.mailer.idle();
    expect(await trail({ type: 'password.reset.request' })).to.have.length(before);
  });

  it('records self-service sign-outs (session.revoke, session.revoked)', async () => {
    const person = await newUser();
    await signIn(person);
    const { tokens } = await signIn(person);
    const listed = await me(tokens.access_token, 'GET', '/sessions');
    const sessions = ((await listed.json()) as { items: Array<{ id: string }> }).items.map((session) => session.id).sort();
    expect(sessions).to.have.length(2);
    const ended = await me(tokens.access_token, 'POST', '/sessions/end-all');
    expect(((await ended.json()) as { ended: number }).ended).to.equal(2);

    const entries = await trail({ type: 'session.revoke', actor: person.id });
    expect(entries.map((entry) => entry.details.sessionId).sort()).to.deep.equal(sessions);
    for (const entry of entries) {
      expect(entry).to.deep.include({ outcome: 'success' });
      expect(entry.target).to.include({ type: 'user', id: person.id });
      expect(entry.details).to.deep.equal({ sessionId: entry.details.sessionId, scope: 'all', reason: 'signed_out', via: 'account' });
      expectContext(entry);
    }
    const revoked = await events((event) => event.type === 'session.revoked' && event.data.userId === person.id, 2);
    expect(revoked.map((event) => event.data.sessionId).sort()).to.deep.equal(sessions);
    expect(revoked[0].data).to.deep.include({ userId: person.id, reason: 'signed_out' });
  });

  it('records a self-registration (user.register, user.registered)', async () => {
    const agent = browser();
    const { url } = await signInPage(agent);
    const page = await agent.fetch(`${issuer}${url.pathname}/register`);
    const html = await page.text();
    const email = `newcomer-${process.pid}@example.com`;
    // A malformed address first, on a German page: the hint beside the field is German.
    agent.defaultHeaders['accept-language'] = 'de';
    const refused = await agent.submitForm(new URL(formAction(html, '/register'), issuer), { csrf: hiddenField(html, 'csrf'), email: 'newcomer at example', name: 'New Comer', password: PASSWORD, passwordConfirm: PASSWORD });
    expect(refused.status).to.equal(400);
    expect(await refused.text()).to.include('Geben Sie eine E-Mail-Adresse wie name@example.com ein.').and.not.include('not an e-mail address');
    delete agent.defaultHeaders['accept-language'];
    const registered = await agent.submitForm(new URL(formAction(html, '/register'), issuer), { csrf: hiddenField(html, 'csrf'), email, name: 'New Comer', password: PASSWORD, passwordConfirm: PASSWORD });
    expect(registered.status).to.equal(200);
    const user = (await instance.runtime.users.list(tenant.id, { email, limit: 1 })).items[0];

    const [entry] = await trail({ type: 'user.register', target: user.id });
    expect(entry).to.deep.include({ outcome: 'success' });
    expect(entry.actor).to.include({ type: 'user', id: user.id, email });
    expect(entry.details).to.deep.equal({ via: 'self_registration' });
    expectContext(entry);
    expect(JSON.stringify(entry)).to.not.include(PASSWORD);
    const [event] = await events((candidate) => candidate.type === 'user.registered' && candidate.data.userId === user.id);
    expect(event.data).to.deep.equal({ userId: user.id, email });
  });
});
