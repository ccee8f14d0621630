// Two instances sharing PostgreSQL and Redis: a key the second instance has cached is refused
// there at once when the first revokes it, rotates it without overlap, or suspends its owner, and
// loses at once a permission its owner loses there; a change whose announcement is lost still
// arrives within the generation's confirm interval; together the instances admit no more than a
// key's rate limit.
import { expect } from 'chai';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { basicAuth, clientCredentialsToken } from '../helpers/fixtures.ts';
import { ADMIN_API_PERMISSIONS } from '../../src/tenants/system-roles.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';

const T = DEFAULT_TENANT_ID;

forEachBackend('API keys on two instances', (backend) => {
  if (!backend.name.includes('PostgreSQL')) return;
  let store: BackendEnv;
  let first: Instance;
  let second: Instance;
  let admin: string;
  let resourceServer: { clientId: string; clientSecret: string };
  let counter = 0;

  const env = () => ({ ...store.env, API_KEY_ENVIRONMENT: 'test' });

  function call(instance: Instance, credential: string, method: string, path: string, body?: unknown): Promise<Response> {
    return fetch(`${instance.url}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${credential}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  const listUsers = (instance: Instance, key: string) => call(instance, key, 'GET', `/tenants/${T}/users?limit=1`);

  async function verifyAt(instance: Instance, key: string): Promise<boolean> {
    const response = await fetch(`${instance.url}/api-keys/verify`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: basicAuth(resourceServer) }, body: JSON.stringify({ apiKey: key }) });
    expect(response.status).to.equal(200);
    return ((await response.json()) as { active: boolean }).active;
  }

  async function verifiedAt(instance: Instance, key: string): Promise<{ status: number; active?: boolean; permissions?: Array<{ permission: string }> }> {
    const response = await fetch(`${instance.url}/api-keys/verify`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: basicAuth(resourceServer) }, body: JSON.stringify({ apiKey: key }) });
    return { status: response.status, ...((await response.json()) as { active?: boolean }) };
  }

  async function ownerWithKey(options: { rateLimit?: number } = {}): Promise<{ ownerId: string; id: string; key: string }> {
    const { runtime } = first;
    const user = await runtime.users.create(T, { email: `multi${++counter}@example.com`, password: 'correct horse battery staple', emailVerified: true });
    await runtime.rbac.assign(T, (await runtime.rbac.roleIdByName(T, 'agent'))!, 'user', user.id);
    const response = await call(first, admin, 'POST', `/tenants/${T}/api-keys`, { name: `key ${counter}`, owner: { type: 'user', id: user.id }, permissions: [{ api: runtime.adminApi, permission: 'users:read' }], ...options });
    expect(response.status, await response.clone().text()).to.equal(201);
    const created = (await response.json()) as { id: string; key: string };
    // The second instance has the key, its owner and its tenant in its caches.
    expect((await listUsers(second, created.key)).status).to.equal(200);
    expect(await verifyAt(second, created.key)).to.equal(true);
    return { ownerId: user.id, ...created };
  }

  before(async function () {
    // Starting an instance (migrations on PGlite included) is slow on a busy machine.
    this.timeout(120_000);
    store = await backend.create();
    first = await startInstance(env());
    second = await startInstance(env(), { issuer: first.url });
    const { runtime } = first;
    const { client, clientSecret } = await runtime.clients.create({ name: 'admin', grantTypes: ['client_credentials'], tenantId: T });
    await runtime.rbac.assign(T, (await runtime.rbac.roleIdByName(T, 'admin'))!, 'client', client.clientId);
    const token = await clientCredentialsToken(first.url, { clientId: client.clientId, clientSecret: clientSecret! }, { resource: runtime.adminApi, scope: ADMIN_API_PERMISSIONS.join(' ') });
    admin = ((await token.json()) as { access_token: string }).access_token;
    const verifier = await runtime.clients.create({ name: 'resource server', grantTypes: ['client_credentials'], tenantId: T });
    resourceServer = { clientId: verifier.client.clientId, clientSecret: verifier.clientSecret! };
  });
  after(async () => {
    await second?.stop();
    await first?.stop();
    await store?.cleanup();
  });

  it('refuses a revoked key at once on the other instance', async () => {
    const { id, key } = await ownerWithKey();
    expect((await call(first, admin, 'DELETE', `/tenants/${T}/api-keys/${id}`)).status).to.equal(204);
    expect((await listUsers(second, key)).status).to.equal(401);
    expect(await verifyAt(second, key)).to.equal(false);
  });

  it('refuses the old key at once on the other instance after a rotation without overlap', async () => {
    const { id, key } = await ownerWithKey();
    const rotated = await call(first, admin, 'POST', `/tenants/${T}/api-keys/${id}/rotate`, { overlapSeconds: 0 });
    expect(rotated.status).to.equal(201);
    const successor = ((await rotated.json()) as { key: string }).key;
    expect((await listUsers(second, key)).status).to.equal(401);
    expect((await listUsers(second, successor)).status).to.equal(200);
  });

  it('adds up the usage both instances counted', async () => {
    // ownerWithKey used the key twice on the second instance.
    const { id, key } = await ownerWithKey();
    for (let i = 0; i < 2; i++) expect((await listUsers(first, key)).status).to.equal(200);
    for (let i = 0; i < 3; i++) expect((await listUsers(second, key)).status).to.equal(200);
    await second.runtime.apiKeyUsage.publish();
    await first.runtime.apiKeyUsage.flush({ waitForLock: true });
    const read = await call(first, admin, 'GET', `/tenants/${T}/api-keys/${id}`);
    const { usage } = (await read.json()) as { usage: Array<{ day: string; requests: number }> };
    expect(usage).to.deep.equal([{ day: new Date().toISOString().slice(0, 10), requests: 7 }]);
  });

  it('refuses at once on the other instance the key of an owner suspended on the first', async () => {
    const { ownerId, key } = await ownerWithKey();
    const suspended = await call(first, admin, 'PUT', `/tenants/${T}/users/${ownerId}/status`, { status: 'suspended' });
    expect(suspended.status, await suspended.clone().text()).to.equal(200);
    expect((await listUsers(second, key)).status).to.equal(401);
    expect(await verifyAt(second, key)).to.equal(false);
  });

  it('drops at once on the other instance a permission the owner loses on the first', async () => {
    const { ownerId, key } = await ownerWithKey();
    const { runtime } = first;
    await runtime.rbac.unassign(T, (await runtime.rbac.roleIdByName(T, 'agent'))!, 'user', ownerId);
    expect((await listUsers(second, key)).status).to.equal(403);
    const verified = await verifiedAt(second, key);
    expect(verified).to.include({ status: 200, active: true });
    expect(verified.permissions).to.deep.equal([]);
  });

  it('sees a change whose announcement was lost within the confirm interval', async () => {
    const { id, key } = await ownerWithKey();
    // Revoked behind the service's back, and the new generation written without announcing it:
    // what a lost pub/sub message leaves behind.
    expect(await first.runtime.db('api_keys').where({ id }).update({ revoked_at: new Date() })).to.equal(1);
    await first.runtime.hot.set(`apikeys:{${T}}:generation`, 'announcement-lost', 60);
    const started = Date.now();
    while ((await verifiedAt(second, key)).active) {
      expect(Date.now() - started, 'still trusted after the confirm interval').to.be.below(1500);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(await verifyAt(first, key)).to.equal(false);
  });

  it('admits no more than the key\'s rate limit across both instances', async () => {
    const limit = 40;
    const { key } = await ownerWithKey({ rateLimit: limit });
    // ownerWithKey used the key twice on the second instance.
    const statuses: number[] = [];
    for (let i = 0; i < 60; i++) statuses.push((await verifiedAt(i % 2 ? first : second, key)).status);
    const admitted = statuses.filter((status) => status === 200).length + 2;
    expect(statuses.filter((status) => status !== 200 && status !== 429)).to.deep.equal([]);
    // Each instance may end the window holding at most 5 % of the limit unspent.
    expect(admitted).to.be.within(limit - 2 * Math.floor(limit * 0.05), limit);
  });
});
