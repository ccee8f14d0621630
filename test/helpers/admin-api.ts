// The admin API as a test drives it: machine clients holding a system role of a tenant, their
// access tokens, and calls with a JSON body. Suites that need connectors create them through it.
import { expect } from 'chai';
import { clientCredentialsToken } from './fixtures.ts';
import type { Instance } from './instance.ts';
import { ADMIN_API_PERMISSIONS } from '../../src/tenants/system-roles.ts';

export interface AdminApi {
  // An access token of a new machine client holding `roleName` in the tenant.
  token(tenantId: string, roleName: string): Promise<string>;
  // Without a token (undefined) the call goes out with no Authorization header.
  call(token: string | undefined, method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Response>;
  // A new tenant (as the platform's root-admin) and its id.
  createTenant(platformToken: string, slug: string): Promise<string>;
}

export function adminApi(instance: Instance): AdminApi {
  let counter = 0;
  const api: AdminApi = {
    async token(tenantId, roleName) {
      const { runtime } = instance;
      const { client, clientSecret } = await runtime.clients.create({ name: `${roleName} ${++counter}`, grantTypes: ['client_credentials'], tenantId });
      await runtime.rbac.assign(tenantId, (await runtime.rbac.roleIdByName(tenantId, roleName))!, 'client', client.clientId);
      const response = await clientCredentialsToken(instance.url, { clientId: client.clientId, clientSecret: clientSecret! }, { resource: runtime.adminApi, scope: ADMIN_API_PERMISSIONS.join(' ') });
      expect(response.status).to.equal(200);
      return ((await response.json()) as { access_token: string }).access_token;
    },
    call(token, method, path, body, headers = {}) {
      return fetch(`${instance.url}/api/v1${path}`, {
        method,
        headers: {
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    },
    async createTenant(platformToken, slug) {
      const response = await api.call(platformToken, 'POST', '/tenants', { slug, displayName: slug });
      expect(response.status, await response.clone().text()).to.equal(201);
      return ((await response.json()) as { id: string }).id;
    },
  };
  return api;
}
