// Admin API changes leave their trace: every change through /api/v1 writes an audit entry (who,
// to whom, what changed, secrets and personal data masked) and, for users and roles, an event for
// other services, in the transaction of the change. Read back through the audit API and the outbox.
import { expect } from 'chai';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { clientCredentialsToken, createFixtures, USER, type Fixtures } from '../helpers/fixtures.ts';
import { Browser } from '../helpers/browser.ts';
import { discover, loginWithCode } from '../helpers/rp.ts';
import type { Runtime } from '../../src/runtime.ts';
import { ADMIN_API_PERMISSIONS } from '../../src/tenants/system-roles.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import type { AuditEntry } from '../../src/audit/service.ts';
import { createUserService } from '../../src/users/service.ts';
import { createRbacService } from '../../src/rbac/service.ts';
import { createPasswordHashing } from '../../src/security/passwords.ts';
import { usersHoldingRole } from '../../src/rbac/queries.ts';

const SLOW = 120_000;
const PASSWORD = 'Granite-Lantern-Orbit-42';
const NEW_PASSWORD = 'Velvet-Harbour-Quartz-77';
const PHONE = '+4915112345678';

let counter = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++counter}`;

interface OutboxEvent {
  type: string;
  data: Record<string, unknown>;
}

forEachBackend('audit entries and events of admin API changes', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let runtime: Runtime;
  let token: string;
  let adminClientId: string;
  let fixtures: Fixtures;

  async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(`${instance.url}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'user-agent': 'admin-flows-test', ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async function ok(response: Response, status: number): Promise<Record<string, any>> {
    const text = await response.text();
    expect(response.status, text).to.equal(status);
    return text ? JSON.parse(text) : {};
  }

  // Oldest first, as the changes were made.
  async function trail(tenantId: string, type: string): Promise<AuditEntry[]> {
    const response = await call('GET', `/tenants/${tenantId}/audit?type=${encodeURIComponent(type)}&limit=200`);
    return ((await ok(response, 200)).items as AuditEntry[]).reverse();
  }

  async function events(tenantId: string, prefix: string): Promise<OutboxEvent[]> {
    const rows = await runtime.db('outbox_events').where({ tenant_id: tenantId }).andWhere('type', 'like', `${prefix}%`).orderBy('seq').select('type', 'data');
    return rows.map((row: { type: string; data: unknown }) => ({ type: row.type, data: (typeof row.data === 'string' ? JSON.parse(row.data) : row.data) as Record<string, unknown> }));
  }

  async function newTenant(): Promise<string> {
    return (await runtime.tenants.create({ slug: unique('flows'), displayName: 'Audit flows' })).id;
  }

  function fieldsOf(entry: AuditEntry): Record<string, { before: unknown; after: unknown }> {
    const changes = (entry.details as { changes: Array<{ field: string; before: unknown; after: unknown }> }).changes;
    return Object.fromEntries(changes.map(({ field, before, after }) => [field, { before, after }]));
  }

  before(async function () {
    this.timeout(SLOW);
    store = await backend.create();
    instance = await startInstance(store.env);
    runtime = instance.runtime;
    const { client, clientSecret } = await runtime.clients.create({ name: unique('flows-admin'), grantTypes: ['client_credentials'], tenantId: DEFAULT_TENANT_ID });
    adminClientId = client.clientId;
    await runtime.rbac.assign(DEFAULT_TENANT_ID, (await runtime.rbac.roleIdByName(DEFAULT_TENANT_ID, 'root-admin'))!, 'client', client.clientId);
    const response = await clientCredentialsToken(instance.url, { clientId: client.clientId, clientSecret: clientSecret! }, { resource: runtime.adminApi, scope: ADMIN_API_PERMISSIONS.join(' ') });
    token = ((await ok(response, 200)) as { access_token: string }).access_token;
    fixtures = await createFixtures(runtime);
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  describe('users', () => {
    let tenantId: string;
    let userId: string;

    before(async function () {
      this.timeout(SLOW);
      tenantId = await newTenant();
      const created = await ok(await call('POST', `/tenants/${tenantId}/users`, { email: 'grace@example.com', username: 'grace', name: 'Grace Hopper', password: PASSWORD, phoneNumber: PHONE }), 201);
      userId = created.id;
      await ok(await call('PATCH', `/tenants/${tenantId}/users/${userId}`, { name: 'Grace B. Hopper', emailVerified: true, password: NEW_PASSWORD }, { 'if-match': '"1"' }), 200);
      await ok(await call('PUT', `/tenants/${tenantId}/users/${userId}/status`, { status: 'suspended', reason: 'on leave until spring' }), 200);
      await ok(await call('DELETE', `/tenants/${tenantId}/users/${userId}`), 204);
    });

    it('records create, update, status and delete with the calling client, the user and masked changes', async () => {
      const entries = await trail(tenantId, 'user.');
      expect(entries.map((entry) => entry.type)).to.deep.equal(['user.create', 'user.update', 'user.status', 'user.delete']);
      for (const entry of entries) {
        expect(entry.outcome).to.equal('success');
        expect(entry.actor).to.deep.equal({ type: 'client', id: adminClientId, email: null, name: null, erased: false });
        expect(entry.target).to.deep.equal({ type: 'user', id: userId, email: 'grace@example.com', name: null, erased: false });
        expect(entry.context?.userAgent).to.equal('admin-flows-test');
        expect(entry.context?.ip).to.be.a('string').and.not.equal('');
      }
      const [create, update, status, remove] = entries;
      expect(fieldsOf(create)).to.deep.include({
        email: { before: null, after: '[personal]' },
        username: { before: null, after: '[personal]' },
        name: { before: null, after: '[personal]' },
        phoneNumber: { before: null, after: '[personal]' },
        password: { before: null, after: '[masked]' },
        isAdmin: { before: null, after: false },
        status: { before: null, after: 'active' },
      });
      expect(Object.keys(fieldsOf(create))).to.not.include('hasPassword');
      expect(update.details).to.deep.equal({ changes: [
        { field: 'emailVerified', before: false, after: true },
        { field: 'name', before: '[personal]', after: '[personal]' },
        { field: 'password', before: '[masked]', after: '[masked]' },
      ] });
      expect(status.details).to.deep.equal({ changes: [
        { field: 'status', before: 'active', after: 'suspended' },
        { field: 'statusReason', before: null, after: '[personal]' },
      ] });
      expect(remove.details).to.deep.equal({ hard: false });
      const details = JSON.stringify(entries.map((entry) => entry.details));
      for (const secretOrPersonal of [PASSWORD, NEW_PASSWORD, PHONE, 'Grace', 'grace@example.com', 'on leave']) expect(details).to.not.include(secretOrPersonal);
    });

    it('emits user.created, user.updated (field names only) and user.deleted', async () => {
      expect(await events(tenantId, 'user.')).to.deep.equal([
        { type: 'user.created', data: { userId, email: 'grace@example.com' } },
        { type: 'user.updated', data: { userId, changed: ['emailVerified', 'name', 'password'] } },
        { type: 'user.updated', data: { userId, changed: ['status', 'statusReason'] } },
        { type: 'user.deleted', data: { userId, hard: false } },
      ]);
    });

    it('records a hard delete', async () => {
      const other = await ok(await call('POST', `/tenants/${tenantId}/users`, { email: 'linus@example.com' }), 201);
      await ok(await call('DELETE', `/tenants/${tenantId}/users/${other.id}?hard=true`), 204);
      const [last] = (await trail(tenantId, 'user.delete')).slice(-1);
      expect(last).to.deep.include({ type: 'user.delete', outcome: 'success', details: { hard: true } });
      expect(last.target).to.include({ type: 'user', id: other.id });
      expect((await events(tenantId, 'user.deleted')).at(-1)).to.deep.equal({ type: 'user.deleted', data: { userId: other.id, hard: true } });
    });

    it('writes neither an entry nor an event for a change that fails', async () => {
      const ada = await ok(await call('POST', `/tenants/${tenantId}/users`, { email: 'ada@example.com' }), 201);
      await ok(await call('POST', `/tenants/${tenantId}/users`, { email: 'alan@example.com' }), 201);
      const [entriesBefore, eventsBefore] = [(await trail(tenantId, 'user.')).length, (await events(tenantId, 'user.')).length];
      await ok(await call('PATCH', `/tenants/${tenantId}/users/${ada.id}`, { name: 'Ada' }, { 'if-match': '"7"' }), 412);
      await ok(await call('PATCH', `/tenants/${tenantId}/users/${ada.id}`, { email: 'alan@example.com' }, { 'if-match': '"1"' }), 409);
      await ok(await call('PUT', `/tenants/${tenantId}/users/${ada.id}/status`, { status: 'gone' }), 422);
      expect((await trail(tenantId, 'user.')).length).to.equal(entriesBefore);
      expect((await events(tenantId, 'user.')).length).to.equal(eventsBefore);
    });

    it('fails the change, and emits nothing, when its audit entry cannot be written', async () => {
      const brokenAudit = { record: async () => { throw new Error('the audit trail is unavailable'); } };
      const users = createUserService({
        db: runtime.db,
        passwords: createPasswordHashing(runtime.config.argon2),
        tenantAttributeSchema: async () => ({}),
        tenantAllowsSelfRegistration: async () => false,
        rolesFilter: usersHoldingRole,
        onAccessRevoked: async () => {},
        forgetRoles: async () => {},
        audit: brokenAudit,
        outbox: runtime.outbox,
      });
      const rbac = createRbacService(runtime.db, runtime.hot, runtime.apis, { audit: brokenAudit, outbox: runtime.outbox });
      const eventsBefore = (await events(tenantId, '')).length;
      const failed = async (work: () => Promise<unknown>) => {
        try {
          await work();
        } catch (error) {
          return (error as Error).message;
        }
        return 'no error';
      };
      expect(await failed(() => users.create(tenantId, { email: 'unrecorded@example.com' }))).to.equal('the audit trail is unavailable');
      expect(await failed(() => rbac.createRole(tenantId, { name: 'unrecorded' }))).to.equal('the audit trail is unavailable');
      expect((await ok(await call('GET', `/tenants/${tenantId}/users?email=unrecorded@example.com`), 200)).items).to.deep.equal([]);
      expect(((await ok(await call('GET', `/tenants/${tenantId}/roles`), 200)).items as Array<{ name: string }>).map((role) => role.name)).to.not.include('unrecorded');
      expect((await events(tenantId, '')).length).to.equal(eventsBefore);
    });

    it('records a change made without a principal (the command line) as the system', async () => {
      const user = await runtime.users.create(tenantId, { email: 'cli@example.com' });
      const [last] = (await trail(tenantId, 'user.create')).slice(-1);
      expect(last.actor).to.deep.equal({ type: 'system', id: 'cli', email: null, name: null, erased: false });
      expect(last.target).to.include({ id: user.id });
      expect(last.context).to.equal(null);
    });
  });

  describe('roles', () => {
    let tenantId: string;
    let supportId: string;
    let viewerId: string;
    let userId: string;

    before(async function () {
      this.timeout(SLOW);
      tenantId = await newTenant();
      const api = runtime.adminApi;
      const support = await ok(await call('POST', `/tenants/${tenantId}/roles`, { name: 'support', description: 'Support desk', permissions: [{ api, permission: 'users:read' }] }), 201);
      supportId = support.id;
      viewerId = (await ok(await call('POST', `/tenants/${tenantId}/roles`, { name: 'viewer' }), 201)).id;
      await ok(await call('PATCH', `/tenants/${tenantId}/roles/${supportId}`, { permissions: [{ api, permission: 'users:read' }, { api, permission: 'users:write' }] }, { 'if-match': `"${support.version}"` }), 200);
      await ok(await call('PUT', `/tenants/${tenantId}/roles/${supportId}/includes/${viewerId}`), 204);
      // Idempotent: the second inclusion changes nothing and records nothing.
      await ok(await call('PUT', `/tenants/${tenantId}/roles/${supportId}/includes/${viewerId}`), 204);
      await ok(await call('DELETE', `/tenants/${tenantId}/roles/${supportId}/includes/${viewerId}`), 204);
      userId = (await ok(await call('POST', `/tenants/${tenantId}/users`, { email: 'margaret@example.com' }), 201)).id;
      await ok(await call('PUT', `/tenants/${tenantId}/roles/${supportId}/assignments`, { subjectType: 'user', subjectId: userId }), 204);
      await ok(await call('PUT', `/tenants/${tenantId}/roles/${supportId}/assignments`, { subjectType: 'user', subjectId: userId }), 204);
      await ok(await call('DELETE', `/tenants/${tenantId}/roles/${supportId}/assignments/user/${userId}`), 204);
      await ok(await call('DELETE', `/tenants/${tenantId}/roles/${supportId}`), 204);
    });

    it('records every change of a role, its inclusions and its holders', async () => {
      const entries = await trail(tenantId, 'role.');
      expect(entries.map((entry) => entry.type)).to.deep.equal(['role.create', 'role.create', 'role.update', 'role.include', 'role.exclude', 'role.assign', 'role.unassign', 'role.delete']);
      for (const entry of entries) {
        expect(entry.outcome).to.equal('success');
        expect(entry.actor).to.include({ type: 'client', id: adminClientId });
      }
      const [create, , update, include, exclude, assign, unassign, remove] = entries;
      const api = runtime.adminApi;
      expect(create.targetRef).to.equal(supportId);
      expect(create.details).to.deep.equal({ changes: [
        { field: 'description', before: null, after: 'Support desk' },
        { field: 'includes', before: null, after: [] },
        { field: 'name', before: null, after: 'support' },
        { field: 'permissions', before: null, after: [`${api} users:read`] },
      ] });
      expect(update.details).to.deep.equal({ changes: [{ field: 'permissions', before: [`${api} users:read`], after: [`${api} users:read`, `${api} users:write`] }] });
      expect(include).to.deep.include({ targetRef: supportId, details: { includedRoleId: viewerId } });
      expect(exclude).to.deep.include({ targetRef: supportId, details: { includedRoleId: viewerId } });
      for (const entry of [assign, unassign]) {
        expect(entry.target).to.include({ type: 'user', id: userId });
        expect(entry.details).to.deep.equal({ roleId: supportId });
      }
      expect(remove.targetRef).to.equal(supportId);
      expect(remove.details).to.deep.include({ changes: [
        { field: 'description', before: 'Support desk', after: null },
        { field: 'includes', before: [], after: null },
        { field: 'name', before: 'support', after: null },
        { field: 'permissions', before: [`${api} users:read`, `${api} users:write`], after: null },
      ] });
    });

    it('emits role.changed for each change', async () => {
      expect(await events(tenantId, 'role.')).to.deep.equal([
        { type: 'role.changed', data: { roleId: supportId, change: 'created', changed: ['description', 'includes', 'name', 'permissions'] } },
        { type: 'role.changed', data: { roleId: viewerId, change: 'created', changed: ['description', 'includes', 'name', 'permissions'] } },
        { type: 'role.changed', data: { roleId: supportId, change: 'updated', changed: ['permissions'] } },
        { type: 'role.changed', data: { roleId: supportId, change: 'included', includedRoleId: viewerId } },
        { type: 'role.changed', data: { roleId: supportId, change: 'excluded', includedRoleId: viewerId } },
        { type: 'role.changed', data: { roleId: supportId, change: 'assigned', subjectType: 'user', subjectId: userId } },
        { type: 'role.changed', data: { roleId: supportId, change: 'unassigned', subjectType: 'user', subjectId: userId } },
        { type: 'role.changed', data: { roleId: supportId, change: 'deleted', changed: ['description', 'includes', 'name', 'permissions'] } },
      ]);
    });
  });

  describe('clients, APIs, tenants, keys, webhooks, sessions and credentials', () => {
    let tenantId: string;

    before(async function () {
      this.timeout(SLOW);
      tenantId = await newTenant();
    });

    it('records a client’s registration and deletion, never its secret', async () => {
      const created = await ok(await call('POST', `/tenants/${tenantId}/clients`, { name: 'Billing service', grantTypes: ['client_credentials'] }), 201);
      await ok(await call('DELETE', `/tenants/${tenantId}/clients/${created.clientId}`), 204);
      const entries = await trail(tenantId, 'client.');
      expect(entries.map((entry) => entry.type)).to.deep.equal(['client.create', 'client.delete']);
      for (const entry of entries) {
        expect(entry.actor).to.include({ type: 'client', id: adminClientId });
        expect(entry.target).to.include({ type: 'client', id: created.clientId });
      }
      expect(fieldsOf(entries[0])).to.deep.include({
        client_name: { before: null, after: 'Billing service' },
        grant_types: { before: null, after: ['client_credentials'] },
        client_secret: { before: null, after: '[masked]' },
      });
      expect(fieldsOf(entries[1])).to.deep.include({ client_name: { before: 'Billing service', after: null }, client_secret: { before: '[masked]', after: null } });
      expect(JSON.stringify(entries)).to.not.include(created.clientSecret);
    });

    it('records a tenant’s creation and deletion in the platform trail, its policy changes in its own', async () => {
      const created = await ok(await call('POST', '/tenants', { slug: unique('policies'), displayName: 'Policies Ltd' }), 201);
      await ok(await call('PATCH', `/tenants/${created.id}`, { policies: { mfa: 'all' }, selfRegistration: true }, { 'if-match': `"${created.version}"` }), 200);
      const own = await trail(created.id, 'tenant.');
      await ok(await call('DELETE', `/tenants/${created.id}`), 204);
      const platform = (await trail(DEFAULT_TENANT_ID, 'tenant.')).filter((entry) => entry.targetRef === created.id);
      expect(own.map((entry) => entry.type)).to.deep.equal(['tenant.update']);
      expect(platform.map((entry) => entry.type)).to.deep.equal(['tenant.create', 'tenant.delete']);
      const entries = [platform[0], own[0], platform[1]];
      for (const entry of entries) expect(entry).to.deep.include({ targetRef: created.id, outcome: 'success' });
      expect(entries[2].actor).to.include({ type: 'client', id: adminClientId });
      expect(fieldsOf(entries[2])).to.deep.include({ displayName: { before: 'Policies Ltd', after: null } });
      expect(fieldsOf(entries[0])).to.deep.include({ displayName: { before: null, after: 'Policies Ltd' } });
      const update = fieldsOf(entries[1]);
      expect(Object.keys(update).sort()).to.deep.equal(['policies', 'selfRegistration']);
      expect(update.selfRegistration).to.deep.equal({ before: false, after: true });
      expect((update.policies.after as { mfa: string }).mfa).to.equal('all');
    });

    it('records an API’s registration and removal in the platform trail', async () => {
      const identifier = `https://${unique('api')}.example.test`;
      await ok(await call('POST', '/apis', { identifier, name: 'Orders', permissions: ['orders:read'] }), 201);
      await ok(await call('DELETE', `/apis?identifier=${encodeURIComponent(identifier)}`), 204);
      const entries = (await trail(DEFAULT_TENANT_ID, 'api.')).filter((entry) => entry.targetRef === identifier);
      expect(entries.map((entry) => entry.type)).to.deep.equal(['api.create', 'api.delete']);
      expect(fieldsOf(entries[0])).to.deep.include({ name: { before: null, after: 'Orders' }, scopes: { before: null, after: ['orders:read'] } });
      expect(entries[1].actor).to.include({ type: 'client', id: adminClientId });
    });

    it('records a signing key rotation from the command line in the platform trail, with key ids only', async () => {
      const before = new Set((await runtime.keys.list()).map((key) => key.kid));
      await runtime.keys.rotate();
      const published = (await runtime.keys.list()).filter((key) => !before.has(key.kid));
      const [last] = (await trail(DEFAULT_TENANT_ID, 'key.rotate')).slice(-1);
      expect(last.actor).to.include({ type: 'system', id: 'cli' });
      expect(last.details).to.deep.equal({ published: published.map((key) => ({ kid: key.kid, alg: key.alg })).sort((a, b) => ['RS256', 'ES256', 'EdDSA'].indexOf(a.alg) - ['RS256', 'ES256', 'EdDSA'].indexOf(b.alg)) });
      expect(JSON.stringify(last)).to.not.match(/"d"|privateKey|BEGIN/);
    });

    it('records webhook endpoint changes with the URL’s origin only, never the secret', async () => {
      const url = 'https://hooks.example.com/in/T0k3nInPath?sig=abc123';
      const created = await ok(await call('POST', `/tenants/${tenantId}/webhooks`, { url, eventTypes: ['user.created'] }), 201);
      const changed = await ok(await call('PATCH', `/tenants/${tenantId}/webhooks/${created.id}`, { url: 'https://hooks.example.com/in/0therPath', enabled: false }, { 'if-match': `"${created.version}"` }), 200);
      const rotated = await ok(await call('POST', `/tenants/${tenantId}/webhooks/${created.id}/secret`), 200);
      // A delivery to replay: enabled again, the endpoint gets one for the next user.created.
      const enabled = await ok(await call('PATCH', `/tenants/${tenantId}/webhooks/${created.id}`, { enabled: true }, { 'if-match': `"${rotated.version}"` }), 200);
      await ok(await call('POST', `/tenants/${tenantId}/users`, { email: 'webhook-subject@example.com' }), 201);
      let delivery: { id: string } | undefined;
      for (let i = 0; i < 50 && !delivery; i++) {
        [delivery] = (await ok(await call('GET', `/tenants/${tenantId}/webhooks/${created.id}/deliveries`), 200)).items;
        if (!delivery) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(delivery, 'a delivery of user.created').to.not.equal(undefined);
      await ok(await call('POST', `/tenants/${tenantId}/webhooks/${created.id}/deliveries/${delivery!.id}/replay`), 202);
      expect(enabled.enabled).to.equal(true);
      await ok(await call('DELETE', `/tenants/${tenantId}/webhooks/${created.id}`), 204);
      expect(changed.enabled).to.equal(false);
      const entries = await trail(tenantId, 'webhook.');
      expect(entries.map((entry) => entry.type)).to.deep.equal(['webhook.endpoint.create', 'webhook.endpoint.update', 'webhook.endpoint.secret.rotate', 'webhook.endpoint.update', 'webhook.delivery.replay', 'webhook.endpoint.delete']);
      for (const entry of entries) expect(entry).to.deep.include({ targetRef: created.id, outcome: 'success' });
      expect(fieldsOf(entries[0])).to.deep.include({ url: { before: null, after: 'https://hooks.example.com' }, eventTypes: { before: null, after: ['user.created'] } });
      expect(entries[1].details).to.deep.equal({ changes: [
        { field: 'enabled', before: true, after: false },
        { field: 'url', before: 'https://hooks.example.com', after: 'https://hooks.example.com' },
      ] });
      expect(entries[3].details).to.deep.equal({ changes: [{ field: 'enabled', before: false, after: true }] });
      expect(entries[4].details).to.deep.equal({ deliveryId: delivery!.id });
      const text = JSON.stringify(entries);
      for (const secret of ['T0k3nInPath', '0therPath', 'abc123', created.secret, rotated.secret]) expect(text).to.not.include(secret);
    });

    it('records an administrator ending a user’s sessions and emits session.revoked for each', async () => {
      // Three real sign-ins of the fixture user (platform tenant), each in its own browser.
      const user = { id: fixtures.userId };
      const config = await discover(instance.url, fixtures.web.clientId, fixtures.web.clientSecret);
      for (let i = 0; i < 3; i++) await loginWithCode(config, instance.url, { identifier: USER.email, password: USER.password, browser: new Browser({ 'user-agent': 'Firefox' }) });
      const sessionsTenant = DEFAULT_TENANT_ID;
      const [first] = (await ok(await call('GET', `/tenants/${sessionsTenant}/users/${user.id}/sessions`), 200)).items as Array<{ id: string }>;
      await ok(await call('DELETE', `/tenants/${sessionsTenant}/users/${user.id}/sessions/${first.id}`), 204);
      expect((await ok(await call('DELETE', `/tenants/${sessionsTenant}/users/${user.id}/sessions`), 200)).ended).to.equal(2);
      const entries = (await trail(sessionsTenant, 'session.revoke')).filter((entry) => entry.target?.id === user.id);
      expect(entries).to.have.length(3);
      for (const entry of entries) {
        expect(entry.actor).to.include({ type: 'client', id: adminClientId });
        expect(entry.target).to.include({ type: 'user', id: user.id });
        expect(entry.details).to.have.keys('sessionId', 'via');
      }
      expect(entries[0].details).to.deep.equal({ sessionId: first.id, via: 'admin' });
      const revoked = (await events(sessionsTenant, 'session.revoked')).filter((event) => event.data.userId === user.id);
      expect(revoked.map((event) => event.data.sessionId)).to.deep.equal(entries.map((entry) => entry.details.sessionId));
      expect(revoked[0]).to.deep.equal({ type: 'session.revoked', data: { userId: user.id, sessionId: first.id, reason: 'admin' } });
    });

    it('records an administrator’s MFA reset and password reset against the user', async () => {
      const user = await ok(await call('POST', `/tenants/${tenantId}/users`, { email: 'reset@example.com', password: PASSWORD }), 201);
      await ok(await call('DELETE', `/tenants/${tenantId}/users/${user.id}/mfa`), 204);
      const reset = await ok(await call('POST', `/tenants/${tenantId}/users/${user.id}/password-reset`, { mode: 'temporary' }), 200);
      const [mfa] = await trail(tenantId, 'mfa.remove');
      expect(mfa.actor).to.include({ type: 'client', id: adminClientId });
      expect(mfa.target).to.include({ type: 'user', id: user.id });
      const [password] = await trail(tenantId, 'password.admin_reset');
      expect(password.actor).to.include({ type: 'client', id: adminClientId });
      expect(password.target).to.include({ type: 'user', id: user.id });
      expect(JSON.stringify(password)).to.not.include(reset.temporaryPassword);
    });
  });
});
