// The admin REST API through HTTP with this provider's own access tokens: tenant isolation on every
// route of the table, RBAC inheritance and cycles, versions, bad input, and the OpenAPI document.
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { adminApi, type AdminApi } from '../helpers/admin-api.ts';
import { adminRoutes } from '../../src/api/index.ts';
import { openApiPath } from '../../src/api/route-table.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';

forEachBackend('admin API', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let api: AdminApi;
  let platform: string;
  let tenantA: { id: string; admin: string };
  let tenantB: { id: string };

  before(async () => {
    store = await backend.create();
    instance = await startInstance(store.env);
    api = adminApi(instance);
    platform = await api.token(DEFAULT_TENANT_ID, 'root-admin');
    const a = await api.call(platform, 'POST', '/tenants', { slug: 'tenant-a', displayName: 'Tenant A', emailDomains: ['a.example'] });
    expect(a.status, await a.clone().text()).to.equal(201);
    const b = await api.call(platform, 'POST', '/tenants', { slug: 'tenant-b', displayName: 'Tenant B' });
    tenantA = { id: ((await a.json()) as { id: string }).id, admin: undefined as never };
    tenantB = { id: ((await b.json()) as { id: string }).id };
    tenantA.admin = await api.token(tenantA.id, 'root-admin');
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  it('refuses calls without a valid token with 401 problem+json', async () => {
    const none = await api.call(undefined, 'GET', `/tenants/${tenantA.id}/roles`);
    expect(none.status).to.equal(401);
    expect(none.headers.get('content-type')).to.match(/application\/problem\+json/);
    const forged = await api.call('eyJhbGciOiJub25lIn0.e30.', 'GET', `/tenants/${tenantA.id}/roles`);
    expect(forged.status).to.equal(401);
  });

  it('keeps a tenant admin out of every other tenant’s route in the table, and out of platform routes', async () => {
    const routes = adminRoutes({} as never);
    expect(routes.length).to.be.greaterThan(10);
    for (const definition of routes) {
      const path = definition.path
        .replace(':tenantId', tenantB.id)
        .replace(/:(roleId|includedRoleId|userId)/g, randomUUID())
        .replace(':subjectType', 'user')
        .replace(/:(subjectId|clientId)/g, 'someone');
      const query = definition.method === 'delete' && definition.path === '/apis' ? '?identifier=https://x.example' : '';
      const response = await api.call(tenantA.admin, definition.method.toUpperCase(), path + query, ['post', 'put', 'patch'].includes(definition.method) ? {} : undefined, { 'if-match': '"1"' });
      const applies = definition.tenantRule === 'platform' || definition.path.includes(':tenantId');
      if (applies) expect(response.status, `${definition.method} ${definition.path}`).to.equal(403);
    }
    // The tenant's own data stays reachable.
    expect((await api.call(tenantA.admin, 'GET', `/tenants/${tenantA.id}/roles`)).status).to.equal(200);
  });

  it('lists only the tenant’s own roles and clients', async () => {
    const roles = (await (await api.call(tenantA.admin, 'GET', `/tenants/${tenantA.id}/roles`)).json()) as { items: Array<{ name: string }> };
    expect(roles.items.map((role) => role.name).sort()).to.deep.equal(['admin', 'agent', 'client', 'root-admin', 'staff']);
    const clients = (await (await api.call(tenantA.admin, 'GET', `/tenants/${tenantA.id}/clients`)).json()) as { items: Array<{ tenantId: string }> };
    expect(clients.items.every((client) => client.tenantId === tenantA.id)).to.equal(true);
  });

  it('resolves inheritance three levels deep, refuses a cycle and sees a removed permission at once', async () => {
    const orders = 'https://orders.example.test';
    expect((await api.call(platform, 'POST', '/apis', { identifier: orders, name: 'Orders', permissions: ['orders:read', 'orders:write'] })).status).to.equal(201);
    const create = async (name: string, permissions: Array<{ api: string; permission: string }> = []) => {
      const response = await api.call(tenantA.admin, 'POST', `/tenants/${tenantA.id}/roles`, { name, permissions });
      expect(response.status, await response.clone().text()).to.equal(201);
      return { ...((await response.json()) as { id: string; version: number }), etag: response.headers.get('etag')! };
    };
    const reader = await create('reader', [{ api: orders, permission: 'orders:read' }]);
    const clerk = await create('clerk');
    const manager = await create('manager');
    expect((await api.call(tenantA.admin, 'PUT', `/tenants/${tenantA.id}/roles/${clerk.id}/includes/${reader.id}`)).status).to.equal(204);
    expect((await api.call(tenantA.admin, 'PUT', `/tenants/${tenantA.id}/roles/${manager.id}/includes/${clerk.id}`)).status).to.equal(204);
    const cycle = await api.call(tenantA.admin, 'PUT', `/tenants/${tenantA.id}/roles/${reader.id}/includes/${manager.id}`);
    expect(cycle.status).to.equal(422);
    expect(((await cycle.json()) as { detail: string }).detail).to.match(/cycle/);

    const userId = randomUUID();
    expect((await api.call(tenantA.admin, 'PUT', `/tenants/${tenantA.id}/roles/${manager.id}/assignments`, { subjectType: 'user', subjectId: userId })).status).to.equal(204);
    const check = async () => {
      const response = await api.call(tenantA.admin, 'POST', `/tenants/${tenantA.id}/permissions/check`, {
        checks: [
          { subjectType: 'user', subjectId: userId, api: orders, permission: 'orders:read' },
          { subjectType: 'user', subjectId: userId, api: orders, permission: 'orders:write' },
        ],
      });
      expect(response.status).to.equal(200);
      return ((await response.json()) as { results: Array<{ allowed: boolean }> }).results.map((result) => result.allowed);
    };
    expect(await check()).to.deep.equal([true, false]);

    const stale = await api.call(tenantA.admin, 'PATCH', `/tenants/${tenantA.id}/roles/${reader.id}`, { permissions: [] }, { 'if-match': '"99"' });
    expect(stale.status).to.equal(412);
    const noVersion = await api.call(tenantA.admin, 'PATCH', `/tenants/${tenantA.id}/roles/${reader.id}`, { permissions: [] });
    expect(noVersion.status).to.equal(428);
    const removed = await api.call(tenantA.admin, 'PATCH', `/tenants/${tenantA.id}/roles/${reader.id}`, { permissions: [] }, { 'if-match': reader.etag });
    expect(removed.status, await removed.clone().text()).to.equal(200);
    expect(await check()).to.deep.equal([false, false]);
  });

  it('manages users per tenant: duplicate e-mails refused within a tenant, allowed across tenants', async () => {
    const created = await api.call(tenantA.admin, 'POST', `/tenants/${tenantA.id}/users`, { email: 'kim@a.example', name: 'Kim', password: 'a long enough password' });
    expect(created.status, await created.clone().text()).to.equal(201);
    const user = (await created.json()) as { id: string; version: number };
    expect((await api.call(tenantA.admin, 'POST', `/tenants/${tenantA.id}/users`, { email: 'KIM@a.example' })).status).to.equal(409);
    expect((await api.call(platform, 'POST', `/tenants/${tenantB.id}/users`, { email: 'kim@a.example' })).status).to.equal(201);
    const unknownField = await api.call(tenantA.admin, 'POST', `/tenants/${tenantA.id}/users`, { email: 'x@a.example', shoeSize: 44 });
    expect(unknownField.status).to.equal(422);
    const listed = (await (await api.call(tenantA.admin, 'GET', `/tenants/${tenantA.id}/users?q=kim`)).json()) as { items: Array<{ id: string }> };
    expect(listed.items.map((item) => item.id)).to.deep.equal([user.id]);
    const patched = await api.call(tenantA.admin, 'PATCH', `/tenants/${tenantA.id}/users/${user.id}`, { givenName: 'Kim' }, { 'if-match': `"${user.version}"` });
    expect(patched.status, await patched.clone().text()).to.equal(200);
    const suspended = await api.call(tenantA.admin, 'PUT', `/tenants/${tenantA.id}/users/${user.id}/status`, { status: 'suspended', reason: 'left the company' });
    expect(((await suspended.json()) as { status: string; statusReason: string })).to.include({ status: 'suspended', statusReason: 'left the company' });
    expect((await api.call(tenantA.admin, 'GET', `/tenants/${tenantB.id}/users`)).status).to.equal(403);
    expect((await api.call(tenantA.admin, 'DELETE', `/tenants/${tenantA.id}/users/${user.id}`)).status).to.equal(204);
    expect((await api.call(tenantA.admin, 'GET', `/tenants/${tenantA.id}/users/${user.id}`)).status).to.equal(404);
  });

  it('answers bad input with precise problem+json', async () => {
    const unknown = await api.call(platform, 'POST', '/tenants', { slug: 'x-tenant', displayName: 'X', colour: 'red' });
    expect(unknown.status).to.equal(422);
    expect(((await unknown.json()) as { errors: Record<string, string> }).errors).to.have.property('body');
    const wrongType = await api.call(platform, 'POST', '/tenants', { slug: 'y-tenant', displayName: 42 });
    expect(wrongType.status).to.equal(422);
    expect(((await wrongType.json()) as { errors: Record<string, string> }).errors).to.have.property('body.displayName');
    const long = await api.call(platform, 'POST', '/tenants', { slug: 'z-tenant', displayName: 'x'.repeat(5000) });
    expect(long.status).to.equal(422);
    const duplicate = await api.call(platform, 'POST', '/tenants', { slug: 'tenant-a', displayName: 'again' });
    expect(duplicate.status).to.equal(409);
    const badPolicy = await api.call(platform, 'POST', '/tenants', { slug: 'p-tenant', displayName: 'P', policies: { mfa: 'sometimes' } });
    expect(badPolicy.status).to.equal(422);
    expect(((await badPolicy.json()) as { errors: Record<string, string> }).errors).to.have.property('policies.mfa');
    // Network restrictions are the IP rules; a policy of that name would look enforced and is not.
    const ipPolicy = await api.call(platform, 'POST', '/tenants', { slug: 'q-tenant', displayName: 'Q', policies: { allowedIpRanges: ['10.0.0.0/8'] } });
    expect(ipPolicy.status).to.equal(422);
    expect(JSON.stringify(await ipPolicy.json())).to.include('allowedIpRanges');
    const notJson = await fetch(`${instance.url}/api/v1/tenants`, { method: 'POST', headers: { authorization: `Bearer ${platform}`, 'content-type': 'text/plain' }, body: 'hello' });
    expect(notJson.status).to.equal(415);
    const broken = await fetch(`${instance.url}/api/v1/tenants`, { method: 'POST', headers: { authorization: `Bearer ${platform}`, 'content-type': 'application/json' }, body: '{"slug":' });
    expect(broken.status).to.equal(400);
    const deep = await api.call(platform, 'POST', '/tenants', JSON.parse('{"a":'.repeat(30) + '1' + '}'.repeat(30)));
    expect(deep.status).to.equal(422);
    const badId = await api.call(platform, 'GET', '/tenants/not-a-uuid');
    expect(badId.status).to.equal(422);
    const wrongMethod = await api.call(platform, 'PUT', '/tenants', {});
    expect(wrongMethod.status).to.equal(405);
    expect(wrongMethod.headers.get('allow')).to.include('POST');
    expect(await wrongMethod.json()).to.include({ status: 405, title: 'Method Not Allowed' });
    const stale = await api.call(platform, 'PATCH', `/tenants/${tenantB.id}`, { displayName: 'B2' }, { 'if-match': '"999"' });
    expect(await stale.json()).to.include({ status: 412, title: 'Precondition Failed' });
  });

  it('serves an OpenAPI 3.1 document with exactly the routes that exist', async () => {
    const response = await fetch(`${instance.url}/api/v1/openapi.json`);
    expect(response.status).to.equal(200);
    const document = (await response.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(document.openapi).to.equal('3.1.0');
    const documented = Object.entries(document.paths).flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method} ${path}`)).sort();
    const served = adminRoutes({} as never).map((definition) => `${definition.method} ${openApiPath(definition.path)}`).sort();
    expect(documented).to.deep.equal(served);
    // Every documented route answers (401 without a token), so none is documented but missing.
    for (const entry of served) {
      const [method, path] = entry.split(' ');
      const concrete = path.replace(/\{[^}]+\}/g, randomUUID());
      const answer = await fetch(`${instance.url}/api/v1${concrete}`, { method: method.toUpperCase() });
      expect([401, 415], entry).to.include(answer.status);
    }
  });
});
