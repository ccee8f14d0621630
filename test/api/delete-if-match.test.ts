// DELETE of a versioned resource honours If-Match when it is sent (RFC 9110 §13.1.1): a stale ETag
// is 412 problem+json and the resource stays; the current one or "*" deletes it; without the
// header DELETE works as before.
import { expect } from 'chai';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { adminApi, type AdminApi } from '../helpers/admin-api.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';

forEachBackend('DELETE with If-Match', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let api: AdminApi;
  let platform: string;
  let tenantId: string;
  let admin: string;
  let counter = 0;
  const unique = (prefix: string) => `${prefix}-${++counter}`;

  before(async () => {
    store = await backend.create();
    instance = await startInstance(store.env);
    api = adminApi(instance);
    platform = await api.token(DEFAULT_TENANT_ID, 'root-admin');
    tenantId = await api.createTenant(platform, 'delete-if-match');
    admin = await api.token(tenantId, 'admin');
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  // Each versioned resource with DELETE: how to make one (its path), and who may delete it.
  const resources: Array<{ name: string; token: () => string; create: () => Promise<string> }> = [
    {
      name: 'role',
      token: () => admin,
      create: async () => created(admin, `/tenants/${tenantId}/roles`, { name: unique('editors') }),
    },
    {
      name: 'user',
      token: () => admin,
      create: async () => created(admin, `/tenants/${tenantId}/users`, { email: `${unique('kim')}@example.com` }),
    },
    {
      name: 'webhook endpoint',
      token: () => admin,
      create: async () => created(admin, `/tenants/${tenantId}/webhooks`, { url: `https://hooks.example.com/${unique('in')}`, eventTypes: ['user.created'] }),
    },
    {
      name: 'connector',
      token: () => admin,
      create: async () =>
        created(admin, `/tenants/${tenantId}/connectors`, { name: unique('corp'), kind: 'oidc', displayName: 'Corporate SSO', clientId: 'idp-client', clientSecret: 'a-secret-of-the-upstream', issuer: 'https://login.example.com' }),
    },
    {
      name: 'tenant',
      token: () => platform,
      create: async () => `/tenants/${await api.createTenant(platform, unique('doomed'))}`,
    },
  ];

  // POSTs and answers the new resource's path.
  async function created(token: string, collection: string, body: unknown): Promise<string> {
    const response = await api.call(token, 'POST', collection, body);
    expect(response.status, await response.clone().text()).to.equal(201);
    return `${collection}/${((await response.json()) as { id: string }).id}`;
  }

  async function etag(token: string, path: string): Promise<string> {
    const response = await api.call(token, 'GET', path);
    expect(response.status, await response.clone().text()).to.equal(200);
    const value = response.headers.get('etag');
    expect(value).to.match(/^"\d+"$/);
    return value!;
  }

  for (const resource of resources) {
    describe(resource.name, () => {
      it('refuses a stale If-Match with 412 problem+json and keeps it', async () => {
        const token = resource.token();
        const path = await resource.create();
        const current = await etag(token, path);
        const stale = await api.call(token, 'DELETE', path, undefined, { 'if-match': '"999999999"' });
        expect(stale.status).to.equal(412);
        expect(stale.headers.get('content-type')).to.match(/^application\/problem\+json/);
        expect(await stale.json()).to.include({ status: 412 });
        expect(await etag(token, path)).to.equal(current);
      });

      it('deletes at the current ETag', async () => {
        const token = resource.token();
        const path = await resource.create();
        const deleted = await api.call(token, 'DELETE', path, undefined, { 'if-match': await etag(token, path) });
        expect(deleted.status, await deleted.clone().text()).to.equal(204);
        expect((await api.call(token, 'GET', path)).status).to.equal(404);
      });

      it('deletes with If-Match: * while it exists, and answers 404 once it is gone', async () => {
        const token = resource.token();
        const path = await resource.create();
        expect((await api.call(token, 'DELETE', path, undefined, { 'if-match': '*' })).status).to.equal(204);
        expect((await api.call(token, 'GET', path)).status).to.equal(404);
        expect((await api.call(token, 'DELETE', path, undefined, { 'if-match': '*' })).status).to.equal(404);
      });

      it('still deletes without If-Match', async () => {
        const token = resource.token();
        const path = await resource.create();
        expect((await api.call(token, 'DELETE', path)).status).to.equal(204);
        expect((await api.call(token, 'GET', path)).status).to.equal(404);
      });
    });
  }

  it('checks If-Match on a hard delete of a user too', async () => {
    const path = await created(admin, `/tenants/${tenantId}/users`, { email: `${unique('hard')}@example.com` });
    const current = await etag(admin, path);
    expect((await api.call(admin, 'DELETE', `${path}?hard=true`, undefined, { 'if-match': '"999999999"' })).status).to.equal(412);
    expect(await etag(admin, path)).to.equal(current);
    expect((await api.call(admin, 'DELETE', `${path}?hard=true`, undefined, { 'if-match': current })).status).to.equal(204);
    expect((await api.call(admin, 'GET', path)).status).to.equal(404);
  });

  it('refuses an If-Match that is no ETag of this API with 422, deleting nothing', async () => {
    const path = await created(admin, `/tenants/${tenantId}/roles`, { name: unique('kept') });
    const bad = await api.call(admin, 'DELETE', path, undefined, { 'if-match': 'three' });
    expect(bad.status).to.equal(422);
    expect((await api.call(admin, 'GET', path)).status).to.equal(200);
  });
});
