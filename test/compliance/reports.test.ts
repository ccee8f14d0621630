// Compliance reports through the admin API: failed sign-ins per day, lockouts, MFA adoption by
// role, privileged actions and dormant accounts, as JSON and as CSV, after real sign-ins, a
// lockout, an MFA enrolment and administrative changes; confined to the caller's tenant and the
// reports:read permission.
import { expect } from 'chai';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { adminApi, type AdminApi } from '../helpers/admin-api.ts';
import { Browser, hiddenField } from '../helpers/browser.ts';
import { authorizationRequest, discover, loginWithCode, REDIRECT_URI } from '../helpers/rp.ts';
import { currentTotpCode } from '../../src/mfa/totp.ts';
import { up as grantPrivacyPermissions } from '../../migrations/20261123_018_privacy_permissions.ts';
import { parseCsv } from '../helpers/csv.ts';

const PASSWORD = 'a long and unusual passphrase 42';
const DAY_MS = 86_400_000;

forEachBackend('compliance reports', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let api: AdminApi;
  let issuer: string;
  let tenant: string;
  let other: string;
  let app: { clientId: string; clientSecret: string };
  let admin: string;
  let otherAdmin: string;
  let agent: string;
  const people: Record<'alice' | 'bob' | 'carol', { id: string; email: string }> = {} as never;
  let teamLeadId: string;

  async function json(response: Response, status = 200): Promise<any> {
    const text = await response.text();
    expect(response.status, text).to.equal(status);
    return text ? JSON.parse(text) : {};
  }

  const report = async (name: string, query = '') => json(await api.call(admin, 'GET', `/tenants/${tenant}/reports/${name}${query}`));

  async function csv(name: string, query = '', headers: Record<string, string> = {}): Promise<string[][]> {
    const response = await api.call(admin, 'GET', `/tenants/${tenant}/reports/${name}${query}`, undefined, headers);
    expect(response.status).to.equal(200);
    expect(response.headers.get('content-type')).to.match(/^text\/csv/);
    const text = await response.text();
    expect(text.endsWith('\r\n'), 'the CSV ends with CRLF').to.equal(true);
    return parseCsv(text);
  }

  async function refusePassword(identifier: string): Promise<void> {
    const config = await discover(issuer, app.clientId, app.clientSecret);
    const agentBrowser = new Browser();
    const request = await authorizationRequest(config, REDIRECT_URI);
    const { response, url } = await agentBrowser.follow(request.url, issuer);
    const html = await response.text();
    const refused = await agentBrowser.submitForm(new URL(`${url.pathname}/login`, issuer), { csrf: hiddenField(html, 'csrf'), identifier, password: 'certainly not the password' });
    expect(refused.status).to.equal(401);
    await refused.text();
  }

  before(async function () {
    this.timeout(120_000);
    store = await backend.create();
    instance = await startInstance(store.env);
    issuer = instance.url;
    api = adminApi(instance);
    const { runtime } = instance;
    tenant = (await runtime.tenants.create({ slug: `reports-${process.pid}`, displayName: 'Reports' })).id;
    other = (await runtime.tenants.create({ slug: `reports-other-${process.pid}`, displayName: 'Other' })).id;
    const client = await runtime.clients.create({ name: 'Reports app', redirectUris: [REDIRECT_URI], grantTypes: ['authorization_code'], firstParty: true, tenantId: tenant });
    app = { clientId: client.client.clientId, clientSecret: client.clientSecret! };
    admin = await api.token(tenant, 'admin');
    otherAdmin = await api.token(other, 'admin');
    agent = await api.token(tenant, 'agent');

    // Administrative changes: three users, a role that includes staff, assignments, an update.
    for (const name of ['alice', 'bob', 'carol'] as const) {
      const created = await json(await api.call(admin, 'POST', `/tenants/${tenant}/users`, { email: `${name}-${process.pid}@example.com`, password: PASSWORD }), 201);
      people[name] = { id: created.id, email: created.email };
    }
    const staff = (await runtime.rbac.roleIdByName(tenant, 'staff'))!;
    teamLeadId = (await json(await api.call(admin, 'POST', `/tenants/${tenant}/roles`, { name: 'team-lead' }), 201)).id;
    expect((await api.call(admin, 'PUT', `/tenants/${tenant}/roles/${teamLeadId}/includes/${staff}`)).status).to.equal(204);
    for (const [roleId, who] of [[staff, 'alice'], [staff, 'bob'], [teamLeadId, 'carol']] as const) {
      expect((await api.call(admin, 'PUT', `/tenants/${tenant}/roles/${roleId}/assignments`, { subjectType: 'user', subjectId: people[who].id })).status).to.equal(204);
    }
    await json(await api.call(admin, 'PATCH', `/tenants/${tenant}/users/${people.carol.id}`, { name: 'Carol C.' }, { 'if-match': '"1"' }));

    // Alice enrols an authenticator app.
    const enrolment = await runtime.mfa.beginTotpEnrolment(tenant, people.alice.id, { accountName: people.alice.email, issuer: 'Reports' });
    expect(await runtime.mfa.confirmTotpEnrolment(tenant, people.alice.id, currentTotpCode(enrolment.secret))).to.not.equal(undefined);

    // Two refused passwords, then Bob signs in, changes his own name (not privileged) and guesses
    // his current password until he is locked out.
    await refusePassword(people.bob.email);
    await refusePassword(`nobody-${process.pid}@example.com`);
    const config = await discover(issuer, app.clientId, app.clientSecret);
    const { tokens } = await loginWithCode(config, issuer, { identifier: people.bob.email, password: PASSWORD, browser: new Browser() });
    const me = (method: string, path: string, body: unknown) => api.call(tokens.access_token, method, `/me${path}`, body);
    expect((await me('PATCH', '', { name: 'Bob B.' })).status).to.equal(200);
    const statuses: number[] = [];
    for (let attempt = 0; attempt < 6; attempt++) statuses.push((await me('POST', '/mfa/backup-codes', { currentPassword: 'still not it' })).status);
    expect(statuses.at(-1)).to.equal(429);

    // Time travel for dormancy: Alice last signed in 120 days ago, Carol (never signed in) was
    // created 100 days ago.
    const ago = (days: number) => new Date(Date.now() - days * DAY_MS);
    await runtime.db('users').where({ id: people.alice.id }).update({ created_at: ago(200), last_login_at: ago(120) });
    await runtime.db('users').where({ id: people.carol.id }).update({ created_at: ago(100) });
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  it('counts failed sign-ins per UTC day over the last 30 days by default, as JSON and CSV', async () => {
    const result = await report('failed-logins');
    expect(result).to.include({ report: 'failed-logins', tenantId: tenant, total: 2 });
    expect(result.columns).to.deep.equal(['day', 'failedPasswords', 'failedSecondFactors', 'total']);
    expect(result.rows.length).to.be.within(30, 31);
    const today = new Date().toISOString().slice(0, 10);
    expect(result.rows.at(-1)).to.deep.equal({ day: today, failedPasswords: 2, failedSecondFactors: 0, total: 2 });
    expect(result.rows.slice(0, -1).every((row: { total: number }) => row.total === 0)).to.equal(true);

    const rows = await csv('failed-logins', '?format=csv');
    expect(rows[0]).to.deep.equal(['day', 'failedPasswords', 'failedSecondFactors', 'total']);
    expect(rows.at(-1)).to.deep.equal([today, '2', '0', '2']);
    expect(rows).to.have.length(result.rows.length + 1);

    const future = new Date(Date.now() + DAY_MS).toISOString();
    const later = new Date(Date.now() + 3 * DAY_MS).toISOString();
    expect((await report('failed-logins', `?from=${future}&to=${later}`)).total).to.equal(0);
  });

  it('lists lockouts with the person and the limiter', async () => {
    const result = await report('lockouts');
    expect(result.total).to.equal(1);
    expect(result.rows[0]).to.deep.include({ userId: people.bob.id, email: people.bob.email, limiter: 'account-current-password', via: 'account' });
    const rows = await csv('lockouts', '', { accept: 'text/csv' });
    expect(rows[0]).to.deep.equal(['occurredAt', 'userId', 'email', 'limiter', 'via', 'step', 'entryId']);
    expect(rows[1].slice(1, 5)).to.deep.equal([people.bob.id, people.bob.email, 'account-current-password', 'account']);
  });

  it('reports MFA adoption per role, inherited holders included', async () => {
    const result = await report('mfa-adoption');
    const byRole = Object.fromEntries(result.rows.map((row: { role: string }) => [row.role, row]));
    expect(byRole.staff).to.include({ members: 3, withMfa: 1, ratio: 0.3333 });
    expect(byRole['team-lead']).to.include({ roleId: teamLeadId, members: 1, withMfa: 0, ratio: 0 });
    expect(byRole.admin).to.include({ members: 0, withMfa: 0, ratio: 0 });
    expect(result.all).to.deep.equal({ members: 3, withMfa: 1, ratio: 0.3333 });
    const rows = await csv('mfa-adoption', '?format=csv');
    expect(rows[0]).to.deep.equal(['roleId', 'role', 'members', 'withMfa', 'ratio']);
    expect(rows.find((row) => row[1] === 'staff')!.slice(2)).to.deep.equal(['3', '1', '0.3333']);
  });

  it('lists privileged actions (administrators’ changes), not what people do to themselves', async () => {
    const result = await report('privileged-actions');
    const types = result.rows.map((row: { type: string }) => row.type);
    for (const type of ['user.create', 'role.create', 'role.include', 'role.assign', 'user.update']) expect(types, type).to.include(type);
    const updates = result.rows.filter((row: { type: string }) => row.type === 'user.update');
    expect(updates).to.have.length(1);
    expect(updates[0]).to.include({ actorType: 'client', targetId: people.carol.id });
    expect(result.rows.every((row: { actorId: string; targetId: string }) => row.actorId !== row.targetId)).to.equal(true);
    expect(types).to.not.include('security.lockout').and.not.include('auth.login');

    const rows = await csv('privileged-actions', '?format=csv');
    expect(rows[0]).to.deep.equal(['occurredAt', 'type', 'outcome', 'actorType', 'actorId', 'actorEmail', 'targetType', 'targetId', 'targetEmail', 'targetRef', 'details', 'entryId']);
    expect(rows).to.have.length(result.rows.length + 1);
    const update = rows.find((row) => row[1] === 'user.update')!;
    expect(JSON.parse(update[10])).to.deep.equal(updates[0].details);

    const future = new Date(Date.now() + DAY_MS).toISOString();
    expect((await report('privileged-actions', `?from=${future}&to=${new Date(Date.now() + 2 * DAY_MS).toISOString()}`)).rows).to.deep.equal([]);
  });

  it('lists dormant accounts for the given number of days (default 90), the longest idle first', async () => {
    const result = await report('dormant-accounts');
    expect(result).to.include({ days: 90, total: 2 });
    expect(result.rows.map((row: { userId: string }) => row.userId)).to.deep.equal([people.alice.id, people.carol.id]);
    expect(result.rows[0]).to.include({ email: people.alice.email, idleDays: 120 });
    expect(result.rows[0].lastLoginAt).to.be.a('string');
    expect(result.rows[1]).to.include({ lastLoginAt: null, idleDays: 100 });
    expect((await report('dormant-accounts', '?days=110')).rows.map((row: { userId: string }) => row.userId)).to.deep.equal([people.alice.id]);
    const rows = await csv('dormant-accounts', '?days=110&format=csv');
    expect(rows[0]).to.deep.equal(['userId', 'email', 'name', 'status', 'createdAt', 'lastLoginAt', 'idleDays']);
    expect(rows[1].slice(0, 2)).to.deep.equal([people.alice.id, people.alice.email]);
  });

  it('refuses other tenants’ administrators and callers without reports:read (403), and bad parameters (422)', async () => {
    for (const name of ['failed-logins', 'lockouts', 'mfa-adoption', 'privileged-actions', 'dormant-accounts']) {
      expect((await api.call(otherAdmin, 'GET', `/tenants/${tenant}/reports/${name}`)).status, name).to.equal(403);
      expect((await api.call(agent, 'GET', `/tenants/${tenant}/reports/${name}`)).status, name).to.equal(403);
    }
    expect((await api.call(otherAdmin, 'GET', `/tenants/${other}/reports/lockouts`)).status).to.equal(200);
    const now = new Date().toISOString();
    for (const query of [`failed-logins?from=${now}&to=${now}`, 'failed-logins?from=yesterday', 'lockouts?format=xml', 'dormant-accounts?days=0', 'failed-logins?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z']) {
      const response = await api.call(admin, 'GET', `/tenants/${tenant}/reports/${query}`);
      expect(response.status, query).to.equal(422);
      expect(response.headers.get('content-type')).to.match(/problem\+json/);
    }
  });

  it('gives the admin system roles of tenants that existed before the new permissions (migration 018)', async () => {
    const { runtime } = instance;
    const NEW = ['users:export', 'users:erase', 'reports:read'];
    const held = async () => {
      const rows: Array<{ name: string; permission: string }> = await runtime.db('role_permissions as rp').join('roles as r', 'r.id', 'rp.role_id')
        .where('rp.tenant_id', other).whereIn('rp.permission', NEW).select('r.name', 'rp.permission').orderBy(['r.name', 'rp.permission']);
      return rows.map((row) => `${row.name} ${row.permission}`);
    };
    const expected = ['admin reports:read', 'admin users:erase', 'admin users:export', 'root-admin reports:read', 'root-admin users:erase', 'root-admin users:export'];
    expect(await held()).to.deep.equal(expected);
    // As a tenant created before the permissions existed would be.
    await runtime.db('role_permissions').where('tenant_id', other).whereIn('permission', NEW).delete();
    expect(await held()).to.deep.equal([]);
    await grantPrivacyPermissions(runtime.db);
    expect(await held()).to.deep.equal(expected);
  });
});
