// API keys over HTTP on both backends: created through the admin API (shown once, a subset of the
// owner's and the creator's permissions), used on the admin API through both headers, rotated
// with an overlap, revoked, expired, limited to an IP allow-list (through a trusted proxy's
// X-Forwarded-For), refused offline when mangled, cut down when the owner loses a permission,
// refused when the owner is suspended or deleted, rate limited, counted per day after a flush,
// verified by a resource server and exchanged for a JWT access token. The clock of the runtime is
// the test's, so overlaps and expiries pass without waiting.
import { expect } from 'chai';
import { pino } from 'pino';
import { decodeJwt } from 'jose';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { freePort, TEST_ENV, type Instance } from '../helpers/instance.ts';
import { API, basicAuth, clientCredentialsToken } from '../helpers/fixtures.ts';
import { loadConfig } from '../../src/config.ts';
import { createRuntime } from '../../src/runtime.ts';
import { startServer } from '../../src/server.ts';
import { ADMIN_API_PERMISSIONS } from '../../src/tenants/system-roles.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import { generateKey } from '../../src/apikeys/format.ts';
import { API_KEY_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT } from '../../src/oidc/token-exchange.ts';

interface Key {
  id: string;
  key?: string;
  name: string;
  display: string;
  status: string;
  owner: { type: string; id: string };
  permissions: Array<{ api: string; permission: string }>;
  expiresAt: string | null;
  lastUsedAt: string | null;
  lastUsedIp: string | null;
  usage?: Array<{ day: string; requests: number }>;
  previous?: Key;
}

interface Credentials {
  clientId: string;
  clientSecret: string;
}

const T = DEFAULT_TENANT_ID;
const KEY_FORMAT = /^idp_test_[0-9A-Za-z]{16}_[0-9A-Za-z]{49}$/;

forEachBackend('API keys', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let clock = Date.parse('2026-11-23T12:00:00Z');
  let counter = 0;
  let adminApi: string;
  let admin: string;
  let aliceId: string;
  let rootClient: Credentials;
  let resourceServer: Credentials;
  let gateway: Credentials;

  async function machine(roleNames: string[], grantTypes = ['client_credentials']): Promise<Credentials> {
    const { runtime } = instance;
    const { client, clientSecret } = await runtime.clients.create({ name: `machine ${++counter}`, grantTypes, tenantId: T });
    for (const name of roleNames) await runtime.rbac.assign(T, (await runtime.rbac.roleIdByName(T, name))!, 'client', client.clientId);
    return { clientId: client.clientId, clientSecret: clientSecret! };
  }

  async function tokenOf(credentials: Credentials): Promise<string> {
    const response = await clientCredentialsToken(instance.url, credentials, { resource: adminApi, scope: ADMIN_API_PERMISSIONS.join(' ') });
    expect(response.status).to.equal(200);
    return ((await response.json()) as { access_token: string }).access_token;
  }

  function call(credential: { bearer?: string; apiKey?: string }, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(`${instance.url}/api/v1${path}`, {
      method,
      headers: {
        ...(credential.bearer ? { authorization: `Bearer ${credential.bearer}` } : {}),
        ...(credential.apiKey ? { 'x-api-key': credential.apiKey } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  const listUsers = (key: string, headers: Record<string, string> = {}) => call({ bearer: key }, 'GET', `/tenants/${T}/users?limit=1`, undefined, headers);

  async function createKey(input: Record<string, unknown>, token = admin): Promise<Key> {
    const response = await call({ bearer: token }, 'POST', `/tenants/${T}/api-keys`, input);
    expect(response.status, await response.clone().text()).to.equal(201);
    return (await response.json()) as Key;
  }

  async function getKey(id: string): Promise<Key> {
    const response = await call({ bearer: admin }, 'GET', `/tenants/${T}/api-keys/${id}`);
    expect(response.status).to.equal(200);
    return (await response.json()) as Key;
  }

  async function newUser(roleNames: string[]): Promise<string> {
    const { runtime } = instance;
    const user = await runtime.users.create(T, { email: `owner${++counter}@example.com`, password: 'correct horse battery staple', emailVerified: true });
    for (const name of roleNames) await runtime.rbac.assign(T, (await runtime.rbac.roleIdByName(T, name))!, 'user', user.id);
    return user.id;
  }

  const usersRead = () => ({ api: adminApi, permission: 'users:read' });

  async function verifyAt(key: string, client = resourceServer, clientIp?: string): Promise<{ status: number; body: Record<string, unknown>; retryAfter: string | null }> {
    const response = await fetch(`${instance.url}/api-keys/verify`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: basicAuth(client) },
      body: JSON.stringify({ apiKey: key, ...(clientIp ? { clientIp } : {}) }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown>, retryAfter: response.headers.get('retry-after') };
  }

  async function exchange(client: Credentials, key: string, resource: string, scope?: string): Promise<{ status: number; body: Record<string, string> }> {
    const form = new URLSearchParams({ grant_type: TOKEN_EXCHANGE_GRANT, subject_token: key, subject_token_type: API_KEY_TOKEN_TYPE, resource, ...(scope ? { scope } : {}) });
    const response = await fetch(`${instance.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(client) }, body: form.toString() });
    return { status: response.status, body: (await response.json()) as Record<string, string> };
  }

  before(async function () {
    // Starting an instance (migrations on PGlite included) is slow on a busy machine.
    this.timeout(120_000);
    store = await backend.create();
    const port = await freePort();
    const config = loadConfig({ ...TEST_ENV, ...store.env, ISSUER: `http://127.0.0.1:${port}`, PORT: String(port), HOST: '127.0.0.1', API_KEY_ENVIRONMENT: 'test', TRUSTED_PROXIES: '127.0.0.1',
      // Usage reaches PostgreSQL only when the test flushes it.
      API_KEY_USAGE_FLUSH_INTERVAL: '86400' });
    const runtime = await createRuntime(config, { serve: true, log: pino({ level: 'silent' }), now: () => new Date(clock) });
    const server = await startServer(runtime, { port, host: '127.0.0.1' });
    instance = { url: server.url, runtime, server, stop: async () => { await server.close(); await runtime.close(); } };
    adminApi = runtime.adminApi;
    await runtime.apis.create(API);
    // Owners and the administrator that makes their keys hold this, on the admin API and another API.
    await runtime.rbac.createRole(T, {
      name: 'key-holder',
      permissions: [usersRead(), { api: adminApi, permission: 'apikeys:read' }, ...API.scopes.map((permission) => ({ api: API.identifier, permission }))],
    });
    admin = await tokenOf(await machine(['admin', 'key-holder']));
    rootClient = await machine(['root-admin']);
    aliceId = await newUser(['key-holder']);
    resourceServer = await machine([]);
    gateway = await machine([], [TOKEN_EXCHANGE_GRANT]);
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  it('creates a key shown once, usable on the admin API through Authorization and X-API-Key, with its permissions only', async () => {
    const created = await createKey({ name: 'CI pipeline', owner: { type: 'user', id: aliceId }, permissions: [usersRead()] });
    expect(created.key).to.match(KEY_FORMAT);
    expect(created).to.include({ name: 'CI pipeline', status: 'active' });
    expect(created.display).to.equal(`${created.key!.slice(0, 'idp_test_'.length + 16)}_…`);

    const read = await getKey(created.id);
    expect(read).to.not.have.property('key');
    expect(JSON.stringify(read)).to.not.include(created.key!.slice(-49));
    const listed = await call({ bearer: admin }, 'GET', `/tenants/${T}/api-keys?ownerType=user&ownerId=${aliceId}`);
    const page = (await listed.json()) as { items: Key[] };
    expect(page.items.map((item) => item.id)).to.include(created.id);
    expect(JSON.stringify(page)).to.not.include(created.key!.slice(-49));

    expect((await listUsers(created.key!)).status).to.equal(200);
    expect((await call({ apiKey: created.key }, 'GET', `/tenants/${T}/users?limit=1`)).status).to.equal(200);
    // The owner may read keys, the key may not.
    const beyond = await call({ apiKey: created.key }, 'GET', `/tenants/${T}/api-keys`);
    expect(beyond.status).to.equal(403);
    expect(beyond.headers.get('content-type')).to.match(/^application\/problem\+json/);

    // The change and its event are recorded, without the secret.
    const audit = await call({ bearer: admin }, 'GET', `/tenants/${T}/audit?type=apikey.create`);
    expect(audit.status).to.equal(200);
    const entries = (await audit.json()) as { items: Array<{ type: string; target: unknown }> };
    expect(entries.items.map((entry) => entry.type)).to.include('apikey.create');
    expect(JSON.stringify(entries)).to.not.include(created.key!.slice(-49));
    const events = await instance.runtime.db('outbox_events').where({ type: 'apikey.created' }).select('data');
    expect(events.map((event) => (typeof event.data === 'string' ? JSON.parse(event.data) : event.data).apiKeyId)).to.include(created.id);
  });

  it('refuses at creation permissions beyond the owner’s or the creator’s, and owners of no tenant', async () => {
    const beyondOwner = await call({ bearer: admin }, 'POST', `/tenants/${T}/api-keys`, { name: 'too much', owner: { type: 'user', id: aliceId }, permissions: [{ api: adminApi, permission: 'users:write' }] });
    expect(beyondOwner.status).to.equal(422);
    expect(((await beyondOwner.json()) as { errors: Record<string, string> }).errors['body.permissions']).to.include('users:write');

    // A root-admin client holds tenants:write; the tenant administrator making its key does not.
    const beyondCreator = await call({ bearer: admin }, 'POST', `/tenants/${T}/api-keys`, { name: 'escalation', owner: { type: 'client', id: rootClient.clientId }, permissions: [{ api: adminApi, permission: 'tenants:write' }] });
    expect(beyondCreator.status).to.equal(422);
    expect(((await beyondCreator.json()) as { detail: string }).detail).to.include('you hold');

    const stranger = await call({ bearer: admin }, 'POST', `/tenants/${T}/api-keys`, { name: 'nobody', owner: { type: 'user', id: '0b7e2d36-3e0f-4c6e-8f52-3b0f5f9f6d10' }, permissions: [usersRead()] });
    expect(stranger.status).to.equal(422);
    const badIp = await call({ bearer: admin }, 'POST', `/tenants/${T}/api-keys`, { name: 'bad ip', owner: { type: 'user', id: aliceId }, permissions: [usersRead()], allowedIps: ['10.0.0.0/33'] });
    expect(badIp.status).to.equal(422);
    const noAuth = await fetch(`${instance.url}/api/v1/tenants/${T}/api-keys`);
    expect(noAuth.status).to.equal(401);
  });

  it('loses at once a permission its owner loses', async () => {
    const ownerId = await newUser([]);
    const role = await instance.runtime.rbac.createRole(T, { name: `reader-${counter}`, permissions: [usersRead()] });
    await instance.runtime.rbac.assign(T, role.id, 'user', ownerId);
    const { key } = await createKey({ name: 'reader', owner: { type: 'user', id: ownerId }, permissions: [usersRead()] });
    expect((await listUsers(key!)).status).to.equal(200);
    const taken = await call({ bearer: admin }, 'DELETE', `/tenants/${T}/roles/${role.id}/assignments/user/${ownerId}`);
    if (taken.status === 404) await instance.runtime.rbac.unassign(T, role.id, 'user', ownerId);
    else expect(taken.status, await taken.clone().text()).to.be.oneOf([200, 204]);
    expect((await listUsers(key!)).status).to.equal(403);
  });

  it('rotates with an overlap: both keys work during it, only the new one after', async () => {
    const old = await createKey({ name: 'rotating', owner: { type: 'user', id: aliceId }, permissions: [usersRead()] });
    const response = await call({ bearer: admin }, 'POST', `/tenants/${T}/api-keys/${old.id}/rotate`, { overlapSeconds: 60 });
    expect(response.status, await response.clone().text()).to.equal(201);
    const rotated = (await response.json()) as Key;
    expect(rotated.key).to.match(KEY_FORMAT).and.not.equal(old.key);
    expect(rotated.previous).to.include({ id: old.id, status: 'rotating', expiresAt: new Date(clock + 60_000).toISOString() });

    expect((await listUsers(old.key!)).status).to.equal(200);
    expect((await listUsers(rotated.key!)).status).to.equal(200);
    clock += 61_000;
    expect((await listUsers(old.key!)).status).to.equal(401);
    expect((await listUsers(rotated.key!)).status).to.equal(200);
    expect((await getKey(old.id)).status).to.equal('expired');
    const again = await call({ bearer: admin }, 'POST', `/tenants/${T}/api-keys/${old.id}/rotate`, {});
    expect(again.status).to.equal(409);
  });

  it('is refused at once once revoked, and the revocation is an event', async () => {
    const created = await createKey({ name: 'to revoke', owner: { type: 'user', id: aliceId }, permissions: [usersRead()] });
    expect((await listUsers(created.key!)).status).to.equal(200);
    expect((await call({ bearer: admin }, 'DELETE', `/tenants/${T}/api-keys/${created.id}`)).status).to.equal(204);
    expect((await listUsers(created.key!)).status).to.equal(401);
    expect((await verifyAt(created.key!)).body).to.deep.equal({ active: false });
    expect((await getKey(created.id)).status).to.equal('revoked');
    expect((await call({ bearer: admin }, 'DELETE', `/tenants/${T}/api-keys/${created.id}`)).status).to.equal(409);
    const events = await instance.runtime.db('outbox_events').where({ type: 'apikey.revoked' }).select('data');
    expect(events.map((event) => (typeof event.data === 'string' ? JSON.parse(event.data) : event.data).apiKeyId)).to.include(created.id);
  });

  it('expires', async () => {
    const created = await createKey({ name: 'short', owner: { type: 'user', id: aliceId }, permissions: [usersRead()], expiresAt: new Date(clock + 30_000).toISOString() });
    expect((await listUsers(created.key!)).status).to.equal(200);
    clock += 31_000;
    expect((await listUsers(created.key!)).status).to.equal(401);
    const past = await call({ bearer: admin }, 'POST', `/tenants/${T}/api-keys`, { name: 'past', owner: { type: 'user', id: aliceId }, permissions: [usersRead()], expiresAt: new Date(clock - 1000).toISOString() });
    expect(past.status).to.equal(422);
  });

  it('works only from the addresses of its allow-list (IPv4 and IPv6 ranges)', async () => {
    const { key } = await createKey({ name: 'office', owner: { type: 'user', id: aliceId }, permissions: [usersRead()], allowedIps: ['203.0.113.0/24', '2001:db8::/32'] });
    expect((await listUsers(key!, { 'x-forwarded-for': '203.0.113.7' })).status).to.equal(200);
    expect((await listUsers(key!, { 'x-forwarded-for': '2001:db8::1' })).status).to.equal(200);
    expect((await listUsers(key!, { 'x-forwarded-for': '198.51.100.1' })).status).to.equal(401);
    expect((await listUsers(key!)).status, 'loopback is not on the list').to.equal(401);
    expect((await verifyAt(key!, resourceServer, '203.0.113.9')).body.active).to.equal(true);
    expect((await verifyAt(key!, resourceServer, '198.51.100.1')).body.active).to.equal(false);
    expect((await verifyAt(key!)).body.active, 'no address reported').to.equal(false);
  });

  it('obeys the tenant’s IP rules for API keys on the admin API and at verification', async () => {
    const { key } = await createKey({ name: 'tenant rules', owner: { type: 'user', id: aliceId }, permissions: [usersRead()] });
    const { ipRules } = instance.runtime;
    const before = await ipRules.get(T);
    const rules = await ipRules.replace(T, { apiKeys: { allow: ['203.0.113.0/24', '127.0.0.1/32'], deny: ['203.0.113.66/32'] } }, before.version);
    try {
      expect((await verifyAt(key!, resourceServer, '203.0.113.9')).body.active).to.equal(true);
      expect((await verifyAt(key!, resourceServer, '203.0.113.66')).body.active, 'denied range').to.equal(false);
      expect((await verifyAt(key!, resourceServer, '198.51.100.1')).body.active, 'not on the allow list').to.equal(false);
      expect((await verifyAt(key!)).body.active, 'no address reported while the tenant has rules').to.equal(false);
      expect((await listUsers(key!, { 'x-forwarded-for': '203.0.113.9' })).status).to.equal(200);
      expect((await listUsers(key!, { 'x-forwarded-for': '203.0.113.66' })).status).to.equal(403);
      const exchangeFrom = (ip: string) => {
        const form = new URLSearchParams({ grant_type: TOKEN_EXCHANGE_GRANT, subject_token: key!, subject_token_type: API_KEY_TOKEN_TYPE, resource: adminApi });
        return fetch(`${instance.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(gateway), 'x-forwarded-for': ip }, body: form.toString() });
      };
      expect((await exchangeFrom('203.0.113.9')).status).to.equal(200);
      const refusedExchange = await exchangeFrom('203.0.113.66');
      expect(refusedExchange.status).to.equal(400);
      expect(((await refusedExchange.json()) as { error: string }).error).to.equal('invalid_grant');
      const blocked = await instance.runtime.audit.list(T, { type: 'security.ip_blocked' }, undefined, 10);
      expect(blocked.items.some((entry) => (entry.details as { surface?: string }).surface === 'apiKeys')).to.equal(true);
    } finally {
      await ipRules.replace(T, {}, rules.version);
    }
    expect((await verifyAt(key!)).body.active, 'no rules: no address needed').to.equal(true);
  });

  it('refuses a mangled key before any lookup', async () => {
    const { key } = await createKey({ name: 'typo', owner: { type: 'user', id: aliceId }, permissions: [usersRead()] });
    const { stats } = instance.runtime.apiKeyVerifier;
    const position = key!.length - 10;
    const mangled = key!.slice(0, position) + (key![position] === 'a' ? 'b' : 'a') + key!.slice(position + 1);
    const before = stats.lookups;
    expect((await listUsers(mangled)).status).to.equal(401);
    expect((await listUsers(key!.slice(0, -1))).status).to.equal(401);
    expect((await verifyAt(mangled)).body).to.deep.equal({ active: false });
    expect(stats.lookups, 'no lookup for a key whose checksum fails').to.equal(before);
    // The witness counts: a well-formed key that does not exist is looked up.
    expect((await listUsers(generateKey('test').key)).status).to.equal(401);
    expect(stats.lookups).to.equal(before + 1);
    // A key of another environment is refused offline too.
    expect((await listUsers(generateKey('live').key)).status).to.equal(401);
    expect(stats.lookups).to.equal(before + 1);
  });

  it('stops working when its owner is suspended or its owning client deleted', async () => {
    const ownerId = await newUser(['key-holder']);
    const { key } = await createKey({ name: 'suspended owner', owner: { type: 'user', id: ownerId }, permissions: [usersRead()] });
    expect((await listUsers(key!)).status).to.equal(200);
    const suspended = await call({ bearer: admin }, 'PUT', `/tenants/${T}/users/${ownerId}/status`, { status: 'suspended', reason: 'left the company' });
    expect(suspended.status, await suspended.clone().text()).to.equal(200);
    expect((await listUsers(key!)).status).to.equal(401);

    const service = await machine(['key-holder']);
    const owned = await createKey({ name: 'service account', owner: { type: 'client', id: service.clientId }, permissions: [usersRead()] });
    expect((await listUsers(owned.key!)).status).to.equal(200);
    await instance.runtime.clients.delete(service.clientId);
    expect((await listUsers(owned.key!)).status).to.equal(401);
  });

  it('answers the (N+1)th request of a window with 429 and Retry-After', async () => {
    const { key } = await createKey({ name: 'limited', owner: { type: 'user', id: aliceId }, permissions: [usersRead()], rateLimit: 3 });
    for (let i = 0; i < 3; i++) expect((await listUsers(key!)).status).to.equal(200);
    const refused = await listUsers(key!);
    expect(refused.status).to.equal(429);
    expect(refused.headers.get('content-type')).to.match(/^application\/problem\+json/);
    expect(Number(refused.headers.get('retry-after'))).to.be.within(1, 60);
    const verified = await verifyAt(key!);
    expect(verified.status).to.equal(429);
    expect(Number(verified.retryAfter)).to.be.within(1, 60);
  });

  it('counts requests per day and the last use in the hot store, and shows them after a flush', async () => {
    const { id, key } = await createKey({ name: 'counted', owner: { type: 'user', id: aliceId }, permissions: [usersRead()] });
    for (let i = 0; i < 4; i++) expect((await listUsers(key!, { 'x-forwarded-for': '192.0.2.44' })).status).to.equal(200);
    const before = await getKey(id);
    expect(before.usage).to.deep.equal([]);
    expect(before.lastUsedAt).to.equal(null);
    await instance.runtime.apiKeyUsage.flush({ waitForLock: true });
    const after = await getKey(id);
    expect(after.usage).to.deep.equal([{ day: new Date(clock).toISOString().slice(0, 10), requests: 4 }]);
    expect(after.lastUsedIp).to.equal('192.0.2.44');
    expect(after.lastUsedAt).to.equal(new Date(clock).toISOString());
    expect((await listUsers(key!)).status).to.equal(200);
    await instance.runtime.apiKeyUsage.flush({ waitForLock: true });
    expect((await getKey(id)).usage![0].requests).to.equal(5);
  });

  it('is verified for resource servers: owner, tenant, permissions the owner holds, expiry', async () => {
    const expiresAt = new Date(clock + 3600_000).toISOString();
    const created = await createKey({ name: 'for orders', owner: { type: 'user', id: aliceId }, permissions: [{ api: API.identifier, permission: 'read' }], expiresAt });
    const answer = await verifyAt(created.key!);
    expect(answer.status).to.equal(200);
    expect(answer.body).to.deep.equal({ active: true, keyId: created.id, name: 'for orders', tenantId: T, owner: { type: 'user', id: aliceId }, permissions: [{ api: API.identifier, permission: 'read' }], expiresAt });
    const anonymous = await fetch(`${instance.url}/api-keys/verify`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ apiKey: created.key }) });
    expect(anonymous.status).to.equal(401);
    const wrongSecret = await verifyAt(created.key!, { ...resourceServer, clientSecret: 'wrong' });
    expect(wrongSecret.status).to.equal(401);
    const invalid = await verifyAt('', resourceServer);
    expect(invalid.status).to.equal(422);
  });

  it('is exchanged for a short-lived JWT that carries no more than the key, accepted by the admin API', async () => {
    const created = await createKey({ name: 'exchangeable', owner: { type: 'user', id: aliceId }, permissions: [usersRead(), { api: API.identifier, permission: 'read' }] });
    const exchanged = await exchange(gateway, created.key!, adminApi);
    expect(exchanged.status, JSON.stringify(exchanged.body)).to.equal(200);
    expect(exchanged.body.scope).to.equal('users:read');
    const claims = decodeJwt(exchanged.body.access_token);
    expect(claims).to.include({ sub: aliceId, aud: adminApi });
    expect(claims.act).to.deep.equal({ sub: gateway.clientId });
    expect((await call({ bearer: exchanged.body.access_token }, 'GET', `/tenants/${T}/users?limit=1`)).status).to.equal(200);
    // Alice may read API keys; the key, and so its token, may not.
    expect((await call({ bearer: exchanged.body.access_token }, 'GET', `/tenants/${T}/api-keys`)).status).to.equal(403);

    const downstream = await exchange(gateway, created.key!, API.identifier);
    expect(downstream.body.scope).to.equal('read');
    const widened = await exchange(gateway, created.key!, API.identifier, 'read write');
    expect(widened.status).to.equal(400);
    expect(widened.body.error).to.equal('invalid_scope');

    const mangled = await exchange(gateway, created.key!.slice(0, -1) + (created.key!.endsWith('a') ? 'b' : 'a'), adminApi);
    expect(mangled.status).to.equal(400);
    expect(mangled.body.error).to.equal('invalid_grant');
  });

  it('exchanges a service account’s key only for that service account, as its own token', async () => {
    const service = await machine(['key-holder'], [TOKEN_EXCHANGE_GRANT]);
    const { key } = await createKey({ name: 'service key', owner: { type: 'client', id: service.clientId }, permissions: [usersRead()] });
    const refused = await exchange(gateway, key!, adminApi);
    expect(refused.status).to.equal(400);
    expect(refused.body.error).to.equal('invalid_grant');
    const own = await exchange(service, key!, adminApi);
    expect(own.status, JSON.stringify(own.body)).to.equal(200);
    expect(own.body.scope).to.equal('users:read');
    expect(decodeJwt(own.body.access_token)).to.include({ sub: service.clientId, client_id: service.clientId });
    expect((await call({ bearer: own.body.access_token }, 'GET', `/tenants/${T}/users?limit=1`)).status).to.equal(200);
  });

  it('answers a rate-limited exchange with 429 and Retry-After', async () => {
    const { key } = await createKey({ name: 'limited exchange', owner: { type: 'user', id: aliceId }, permissions: [usersRead()], rateLimit: 1 });
    expect((await exchange(gateway, key!, adminApi)).status).to.equal(200);
    const response = await fetch(`${instance.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(gateway) },
      body: new URLSearchParams({ grant_type: TOKEN_EXCHANGE_GRANT, subject_token: key!, subject_token_type: API_KEY_TOKEN_TYPE, resource: adminApi }).toString(),
    });
    expect(response.status).to.equal(429);
    expect(Number(response.headers.get('retry-after'))).to.be.within(1, 60);
    expect(((await response.json()) as { error: string }).error).to.equal('rate_limited');
  });
});
