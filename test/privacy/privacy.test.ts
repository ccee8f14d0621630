// GDPR through the admin API and /api/v1/me: the export holds everything about a person and no
// secret; the erasure removes the person from the product, keeps the audit chain verifiable and
// leaves no e-mail address or name in the audit trail's list, search and export, nor in stored
// events. Both are confined to the caller's tenant and need their permission.
import { expect } from 'chai';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { adminApi, type AdminApi } from '../helpers/admin-api.ts';
import { Browser, formAction, hiddenField } from '../helpers/browser.ts';
import { authorizationRequest, discover, loginWithCode, REDIRECT_URI } from '../helpers/rp.ts';
import { currentTotpCode } from '../../src/mfa/totp.ts';
import type { AuditEntry } from '../../src/audit/service.ts';

const PASSWORD = 'a long and unusual passphrase 42';
const NAME = 'Rosalind Franklin-Privacy';

forEachBackend('GDPR export and erasure', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let api: AdminApi;
  let issuer: string;
  let tenantA: string;
  let tenantB: string;
  let app: { clientId: string; clientSecret: string };
  let adminA: string;
  let adminB: string;
  let agentA: string;
  let counter = 0;

  function call(token: string, method: string, path: string, body?: unknown): Promise<Response> {
    return api.call(token, method, path, body, { 'user-agent': 'privacy-test' });
  }

  async function json(response: Response, status: number): Promise<any> {
    const text = await response.text();
    expect(response.status, text).to.equal(status);
    return text ? JSON.parse(text) : {};
  }

  // A person with a password, a role, an authenticator app, a signed-in session (with its grant)
  // and a refused password typed with their address.
  async function person() {
    const { runtime } = instance;
    const email = `rosalind${++counter}-${process.pid}@example.com`;
    const userAgent = `privacy-test-browser-${counter}.0`;
    const created = await json(await call(adminA, 'POST', `/tenants/${tenantA}/users`, { email, name: NAME, password: PASSWORD, username: `rosalind${counter}` }), 201);
    await runtime.rbac.assign(tenantA, (await runtime.rbac.roleIdByName(tenantA, 'staff'))!, 'user', created.id);
    const enrolment = await runtime.mfa.beginTotpEnrolment(tenantA, created.id, { accountName: email, issuer: 'Privacy' });
    const codes = await runtime.mfa.confirmTotpEnrolment(tenantA, created.id, currentTotpCode(enrolment.secret));
    const config = await discover(issuer, app.clientId, app.clientSecret);
    const { tokens } = await loginWithCode(config, issuer, {
      identifier: email,
      password: PASSWORD,
      browser: new Browser({ 'user-agent': userAgent }),
      // The enrolment used the current step's code: the sign-in uses the next one.
      onPage: async ({ html, browser: agent }) =>
        agent.submitForm(new URL(formAction(html, '/mfa'), issuer), { csrf: hiddenField(html, 'csrf'), code: currentTotpCode(enrolment.secret, new Date(Date.now() + 30_000)) }),
    });
    // A refused password in the tenant's own sign-in: auth.login.failed carries what was typed.
    const agent = new Browser();
    const request = await authorizationRequest(config, REDIRECT_URI);
    const { response, url } = await agent.follow(request.url, issuer);
    const html = await response.text();
    const refused = await agent.submitForm(new URL(`${url.pathname}/login`, issuer), { csrf: hiddenField(html, 'csrf'), identifier: email, password: 'not the password' });
    expect(refused.status).to.equal(401);
    await refused.text();
    return { id: created.id as string, email, userAgent, secret: enrolment.secret, backupCodes: codes?.backupCodes ?? [], accessToken: tokens.access_token };
  }

  async function auditText(query: string): Promise<string> {
    const response = await call(adminA, 'GET', `/tenants/${tenantA}/audit${query}`);
    expect(response.status).to.equal(200);
    return response.text();
  }

  before(async function () {
    this.timeout(120_000);
    store = await backend.create();
    instance = await startInstance(store.env);
    issuer = instance.url;
    api = adminApi(instance);
    const { runtime } = instance;
    tenantA = (await runtime.tenants.create({ slug: `privacy-a-${process.pid}`, displayName: 'Privacy A' })).id;
    tenantB = (await runtime.tenants.create({ slug: `privacy-b-${process.pid}`, displayName: 'Privacy B' })).id;
    const client = await runtime.clients.create({ name: 'Privacy app', redirectUris: [REDIRECT_URI], grantTypes: ['authorization_code', 'refresh_token'], firstParty: true, tenantId: tenantA });
    app = { clientId: client.client.clientId, clientSecret: client.clientSecret! };
    adminA = await api.token(tenantA, 'admin');
    adminB = await api.token(tenantB, 'admin');
    agentA = await api.token(tenantA, 'agent');
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  it('exports profile, credentials (without secrets), MFA, roles, sessions, consents and audit entries, and records the export', async () => {
    const someone = await person();
    const exported = await json(await call(adminA, 'GET', `/tenants/${tenantA}/users/${someone.id}/export`), 200);
    expect(exported).to.include({ format: 'idp-gdpr-export/1', tenantId: tenantA, userId: someone.id });
    expect(exported.profile).to.include({ id: someone.id, email: someone.email, name: NAME, status: 'active' });
    expect(exported.profile.lastLoginAt === null || typeof exported.profile.lastLoginAt === 'string').to.equal(true);
    expect(exported.credentials.password).to.include({ set: true, mustChange: false });
    expect(exported.credentials.password.changedAt).to.be.a('string');
    expect(exported.credentials.totp.active).to.equal(true);
    expect(exported.credentials.totp.confirmedAt).to.be.a('string');
    expect(exported.credentials.backupCodes.remaining).to.equal(someone.backupCodes.length);
    expect(exported.mfa.map((item: { kind: string }) => item.kind)).to.deep.equal(['totp', 'backup_codes']);
    expect(exported.roles.direct.map((role: { name: string }) => role.name)).to.deep.equal(['staff']);
    expect(exported.roles.effective).to.include('staff');
    expect(exported.sessions).to.have.length(1);
    expect(exported.sessions[0].clientIds).to.include(app.clientId);
    expect(exported.sessions[0].userAgent).to.equal(someone.userAgent);
    expect(exported.consents.map((grant: { clientId: string }) => grant.clientId)).to.include(app.clientId);
    expect(exported.consents[0].openid.scope).to.include('openid');
    expect(exported.linkedIdentities).to.deep.equal([]);
    expect(exported.apiKeys).to.deep.equal([]);
    const types = (exported.auditEntries as AuditEntry[]).map((entry) => entry.type);
    for (const type of ['user.create', 'role.assign', 'mfa.verify', 'auth.login']) expect(types, type).to.include(type);

    const text = JSON.stringify(exported);
    for (const secret of [PASSWORD, someone.secret, ...someone.backupCodes, '$argon2']) expect(text).to.not.include(secret);
    expect(text).to.not.match(/password_?hash|secret_?sealed|code_?hash/i);

    const [recorded] = JSON.parse(await auditText(`?type=user.export&target=${someone.id}`)).items as AuditEntry[];
    expect(recorded).to.deep.include({ type: 'user.export', outcome: 'success' });
    expect(recorded.actor?.type).to.equal('client');
  });

  it('lets the signed-in person export their own data (GET /api/v1/me/export), recorded as done by them', async () => {
    const someone = await person();
    const response = await fetch(`${issuer}/api/v1/me/export`, { headers: { authorization: `Bearer ${someone.accessToken}` } });
    const exported = await json(response, 200);
    expect(exported.userId).to.equal(someone.id);
    expect(exported.profile.email).to.equal(someone.email);
    const [recorded] = JSON.parse(await auditText(`?type=user.export&target=${someone.id}`)).items as AuditEntry[];
    expect(recorded.actor).to.include({ type: 'user', id: someone.id });
    expect((await fetch(`${issuer}/api/v1/me/export`)).status).to.equal(401);
  });

  it('refuses another tenant’s administrator and a caller without the permission (403), an unknown user (404)', async () => {
    const someone = await person();
    for (const [token, method, path] of [
      [adminB, 'GET', `/tenants/${tenantA}/users/${someone.id}/export`],
      [adminB, 'POST', `/tenants/${tenantA}/users/${someone.id}/erasure`],
      [agentA, 'GET', `/tenants/${tenantA}/users/${someone.id}/export`],
      [agentA, 'POST', `/tenants/${tenantA}/users/${someone.id}/erasure`],
    ]) {
      const response = await call(token, method, path);
      expect(response.status, `${method} ${path}`).to.equal(403);
      expect(response.headers.get('content-type')).to.match(/problem\+json/);
    }
    // Tenant B's administrator asking in its own tenant finds no such user.
    expect((await call(adminB, 'GET', `/tenants/${tenantB}/users/${someone.id}/export`)).status).to.equal(404);
    expect((await call(adminB, 'POST', `/tenants/${tenantB}/users/${someone.id}/erasure`)).status).to.equal(404);
    // Nothing happened to the person.
    expect((await call(adminA, 'GET', `/tenants/${tenantA}/users/${someone.id}`)).status).to.equal(200);
  });

  it('erases a person: the chain still verifies, no e-mail or name remains in the trail or the events, access ends, a repeat is 404', async () => {
    const someone = await person();
    const { runtime } = instance;
    expect(await auditText(`?target=${someone.id}`)).to.include(someone.email);
    // An API key of theirs, used once: its last use (time and address) is on record.
    await runtime.rbac.assign(tenantA, (await runtime.rbac.roleIdByName(tenantA, 'agent'))!, 'user', someone.id);
    const { apiKey, key } = await runtime.apiKeys.create(tenantA, { name: 'personal key', owner: { type: 'user', id: someone.id }, permissions: [{ api: runtime.adminApi, permission: 'users:read' }] }, async () => true);
    expect((await fetch(`${issuer}/api/v1/tenants/${tenantA}/users?limit=1`, { headers: { authorization: `Bearer ${key}` } })).status).to.equal(200);
    await runtime.apiKeyUsage.flush({ waitForLock: true });
    expect((await runtime.apiKeys.get(tenantA, apiKey.id)).lastUsedIp).to.be.a('string');

    const result = await json(await call(adminA, 'POST', `/tenants/${tenantA}/users/${someone.id}/erasure`), 200);
    expect(result).to.include({ userId: someone.id, auditPeopleErased: 1, apiKeysDeleted: 1 });
    expect(await runtime.db('api_keys').where({ owner_id: someone.id }).select('id')).to.deep.equal([]);
    expect(await runtime.hot.get(`apikeys:last-use:${apiKey.id}`)).to.equal(null);
    expect((await call(adminA, 'GET', `/tenants/${tenantA}/api-keys/${apiKey.id}`)).status).to.equal(404);
    expect(result.auditContextsRemoved).to.be.greaterThan(0);
    expect(result.eventsPseudonymised).to.be.at.least(2);

    const report = await runtime.audit.verify(tenantA);
    expect(report.ok, JSON.stringify(report.firstBroken)).to.equal(true);

    for (const query of ['?limit=200', `?target=${someone.id}`, `?actor=${someone.id}`, '/export?format=jsonl', '/export?format=csv']) {
      const text = await auditText(query);
      expect(text, query).to.not.include(someone.email).and.not.include(NAME).and.not.include(someone.userAgent);
    }
    expect(JSON.parse(await auditText(`?target=${someone.id}`)).items).to.deep.equal([]);
    const [erasure] = JSON.parse(await auditText('?type=user.erase')).items as AuditEntry[];
    expect(erasure.target).to.deep.equal({ type: 'user', id: null, email: null, name: null, erased: true });
    expect(erasure.actor?.type).to.equal('client');

    const rows: Array<{ type: string; data: unknown }> = await runtime.db('outbox_events').where({ tenant_id: tenantA }).select('type', 'data');
    expect(JSON.stringify(rows)).to.not.include(someone.email);
    const deleted = rows.map((row) => ({ type: row.type, data: typeof row.data === 'string' ? JSON.parse(row.data) : row.data })).filter((row) => row.type === 'user.deleted' && row.data.userId === someone.id);
    expect(deleted.map((row) => row.data)).to.deep.equal([{ userId: someone.id, hard: true, reason: 'erasure' }]);

    // Their token no longer works; the export and the erasure find no one.
    expect((await fetch(`${issuer}/api/v1/me/export`, { headers: { authorization: `Bearer ${someone.accessToken}` } })).status).to.equal(401);
    expect((await call(adminA, 'GET', `/tenants/${tenantA}/users/${someone.id}/export`)).status).to.equal(404);
    expect((await call(adminA, 'POST', `/tenants/${tenantA}/users/${someone.id}/erasure`)).status).to.equal(404);
    expect((await runtime.audit.verify(tenantA)).ok).to.equal(true);
  });

  it('erases the traces of a user hard-deleted before, once (then 404)', async () => {
    const { runtime } = instance;
    const email = `deleted-before-${process.pid}@example.com`;
    const created = await json(await call(adminA, 'POST', `/tenants/${tenantA}/users`, { email }), 201);
    expect((await call(adminA, 'DELETE', `/tenants/${tenantA}/users/${created.id}?hard=true`)).status).to.equal(204);
    expect(await auditText(`?target=${created.id}`)).to.include(email);

    const result = await json(await call(adminA, 'POST', `/tenants/${tenantA}/users/${created.id}/erasure`), 200);
    expect(result).to.include({ userId: created.id, auditPeopleErased: 1 });
    expect(result.eventsPseudonymised).to.be.at.least(1);
    for (const query of ['?limit=200', '/export?format=csv']) expect(await auditText(query), query).to.not.include(email);
    const rows: Array<{ data: unknown }> = await runtime.db('outbox_events').where({ tenant_id: tenantA }).select('data');
    expect(JSON.stringify(rows)).to.not.include(email);
    expect((await runtime.audit.verify(tenantA)).ok).to.equal(true);
    expect((await call(adminA, 'POST', `/tenants/${tenantA}/users/${created.id}/erasure`)).status).to.equal(404);
  });
});
