// Users, clients and APIs most end-to-end suites need, created through the services.
import type { Runtime } from '../../src/runtime.ts';
import { POST_LOGOUT_REDIRECT_URI, REDIRECT_URI } from './rp.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';

export const USER = { email: 'ada@example.com', username: 'ada', name: 'Ada Lovelace', password: 'correct horse battery staple' };
export const API = { identifier: 'https://api.example.test', name: 'Example API', scopes: ['read', 'write'] };

export interface Fixtures {
  userId: string;
  web: { clientId: string; clientSecret: string };
  thirdParty: { clientId: string; clientSecret: string };
  spa: { clientId: string };
  machine: { clientId: string; clientSecret: string };
  backchannelUri?: string;
}

export async function createFixtures(runtime: Runtime, options: { backchannelLogoutUri?: string } = {}): Promise<Fixtures> {
  const user = await runtime.users.create(DEFAULT_TENANT_ID, { ...USER, emailVerified: true });
  await runtime.apis.create(API);
  const web = await runtime.clients.create({
    name: 'First-party web app',
    redirectUris: [REDIRECT_URI],
    postLogoutRedirectUris: [POST_LOGOUT_REDIRECT_URI],
    grantTypes: ['authorization_code', 'refresh_token'],
    firstParty: true,
    backchannelLogoutUri: options.backchannelLogoutUri,
  });
  const thirdParty = await runtime.clients.create({
    name: 'Partner app',
    redirectUris: [REDIRECT_URI],
    grantTypes: ['authorization_code', 'refresh_token'],
  });
  const spa = await runtime.clients.create({
    name: 'Single-page app',
    redirectUris: [REDIRECT_URI],
    grantTypes: ['authorization_code', 'refresh_token'],
    authMethod: 'none',
    firstParty: true,
  });
  const machine = await runtime.clients.create({ name: 'Billing service', grantTypes: ['client_credentials'], tenantId: DEFAULT_TENANT_ID });
  // The API's permissions reach tokens only through RBAC: both the user and the service hold them.
  const apiUser = await runtime.rbac.createRole(DEFAULT_TENANT_ID, {
    name: 'example-api-user',
    permissions: API.scopes.map((permission) => ({ api: API.identifier, permission })),
  });
  await runtime.rbac.assign(DEFAULT_TENANT_ID, apiUser.id, 'client', machine.client.clientId);
  await runtime.rbac.assign(DEFAULT_TENANT_ID, apiUser.id, 'user', user.id);
  return {
    userId: user.id,
    web: { clientId: web.client.clientId, clientSecret: web.clientSecret! },
    thirdParty: { clientId: thirdParty.client.clientId, clientSecret: thirdParty.clientSecret! },
    spa: { clientId: spa.client.clientId },
    machine: { clientId: machine.client.clientId, clientSecret: machine.clientSecret! },
  };
}

export async function clientCredentialsToken(issuer: string, client: { clientId: string; clientSecret: string }, body: Record<string, string>): Promise<Response> {
  return fetch(`${issuer}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`).toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...body }).toString(),
  });
}

export function basicAuth(client: { clientId: string; clientSecret: string }): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`).toString('base64')}`;
}

// Introspection as a resource server would call it, authenticated as `client`.
export async function introspect(issuer: string, client: { clientId: string; clientSecret: string }, token: string): Promise<Record<string, unknown>> {
  const response = await fetch(`${issuer}/token/introspection`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(client) },
    body: new URLSearchParams({ token }).toString(),
  });
  if (response.status !== 200) throw new Error(`introspection answered ${response.status}`);
  return (await response.json()) as Record<string, unknown>;
}
