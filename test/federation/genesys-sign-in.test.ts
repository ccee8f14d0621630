// Sign-in through the Genesys Cloud preset, end to end through the sign-in pages, against a local
// fake of Genesys's login and API hosts: the agent is created on the first sign-in with the roles
// mapped from their Genesys roles (or divisions), an agent of another organization is refused with
// a page, and a Genesys outage or a declined authorization ends on a page with a way back.
import { expect } from 'chai';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { adminApi } from '../helpers/admin-api.ts';
import { Browser } from '../helpers/browser.ts';
import { authorizationRequest, discover, REDIRECT_URI } from '../helpers/rp.ts';
import { startFakeGenesys, type FakeGenesys } from '../helpers/fake-genesys.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import { followAll, submit, type Page } from './helpers.ts';
import type * as oidc from 'openid-client';

const RP_ORIGIN = new URL(REDIRECT_URI).origin;
const ORGANIZATION = { id: 'b6a3f1d2-7c54-4e1b-9a0f-2d3c4b5a6e7f', name: 'Contoso Care' };

forEachBackend('federation through the Genesys Cloud preset', (backend) => {
  let store: BackendEnv;
  let genesys: FakeGenesys;
  let instance: Instance;
  let tenantId: string;
  let admin: string;
  let portal: oidc.Configuration;
  let agentRoleId: string;
  let staffRoleId: string;

  function api(method: string, url: string, body?: unknown): Promise<Response> {
    return adminApi(instance).call(admin, method, url, body);
  }

  async function signInThroughGenesys(browser = new Browser()): Promise<Page> {
    const request = await authorizationRequest(portal, REDIRECT_URI);
    const signIn = await followAll(browser, request.url, RP_ORIGIN);
    expect(signIn.html).to.include('Continue with Genesys Cloud');
    // The fake signs the agent in at once and sends the browser back to our callback.
    return submit(browser, signIn, '/federation/start/genesys', {}, RP_ORIGIN);
  }

  async function localUser(email: string) {
    return (await instance.runtime.users.list(tenantId, { email, limit: 1 })).items[0];
  }

  async function failures(): Promise<string[]> {
    const response = await api('GET', `/tenants/${tenantId}/audit?limit=200`);
    const { items } = (await response.json()) as { items: Array<{ type: string; details: { failure?: string } }> };
    return items.filter((entry) => entry.type === 'federation.failure').map((entry) => entry.details.failure!);
  }

  before(async function () {
    this.timeout(60_000);
    store = await backend.create();
    genesys = await startFakeGenesys({ user: { email: 'grace@contoso.example', organization: ORGANIZATION, roles: [{ id: 'r1', name: 'Supervisor' }, { id: 'r2', name: 'employee' }] } });
    instance = await startInstance(store.env);
    const { runtime } = instance;
    tenantId = (await runtime.tenants.create({ slug: 'contoso', displayName: 'Contoso' })).id;
    agentRoleId = (await runtime.rbac.roleIdByName(tenantId, 'agent'))!;
    staffRoleId = (await runtime.rbac.roleIdByName(tenantId, 'staff'))!;
    admin = await adminApi(instance).token(DEFAULT_TENANT_ID, 'root-admin');
    const created = await runtime.clients.create({ name: 'Contoso desk', redirectUris: [REDIRECT_URI], grantTypes: ['authorization_code'], firstParty: true, tenantId });
    portal = await discover(instance.url, created.client.clientId, created.clientSecret!);
    const response = await api('POST', `/tenants/${tenantId}/connectors`, {
      name: 'genesys',
      kind: 'genesys',
      displayName: 'Genesys Cloud',
      genesys: { region: 'mypurecloud.de', organizationId: ORGANIZATION.id, groupSource: 'roles' },
      // The fake stands in for login.mypurecloud.de and api.mypurecloud.de.
      authorizationEndpoint: genesys.authorizeUrl,
      tokenEndpoint: genesys.tokenUrl,
      profileEndpoint: genesys.usersMeUrl,
      clientId: genesys.clientId,
      clientSecret: genesys.clientSecret,
      jitProvisioning: true,
      roleMappings: [{ group: 'Supervisor', roleId: agentRoleId }, { group: 'employee', roleId: staffRoleId }],
    });
    expect(response.status, await response.clone().text()).to.equal(201);
  });

  after(async () => {
    await instance?.stop();
    await genesys?.stop();
    await store?.cleanup();
  });

  it('signs an agent in, created on the first sign-in with roles mapped from their Genesys roles', async () => {
    const back = await signInThroughGenesys();
    expect(back.url.origin, `${back.status} ${back.html.slice(0, 300)}`).to.equal(RP_ORIGIN);
    expect(back.url.searchParams.get('code')).to.be.a('string');
    const grace = await localUser('grace@contoso.example');
    expect(grace.name).to.equal('Grace Hopper');
    const roles = (await instance.runtime.rbac.rolesOf(tenantId, 'user', grace.id)).map((role) => role.name).sort();
    expect(roles).to.deep.equal(['agent', 'staff']);
    // Genesys was asked with PKCE and for the organization and authorization of the agent.
    const me = genesys.requests.find((request) => request.path === '/api/v2/users/me');
    expect(me?.query.get('expand')).to.include('authorization');
    expect(genesys.codeChallenges.at(-1)?.method).to.equal('S256');
  });

  it('refuses an agent of another Genesys organization, with a page and an audit entry', async () => {
    genesys.setUser({ email: 'mallory@elsewhere.example', organization: { id: 'another-org', name: 'Elsewhere' } });
    const page = await signInThroughGenesys();
    expect(page.status).to.equal(403);
    expect(page.html).to.include('belongs to an organization that may not sign in here');
    expect(await localUser('mallory@elsewhere.example')).to.equal(undefined);
    expect(await failures()).to.include('organization_mismatch');
  });

  it('says so when Genesys is down, and when the agent declines', async () => {
    genesys.setUser({ email: 'grace@contoso.example', organization: ORGANIZATION });
    genesys.failNext('unavailable', '/oauth/token');
    const down = await signInThroughGenesys();
    expect(down.status).to.equal(502);
    expect(down.html).to.include('Genesys Cloud could not be reached');
    expect(down.html).to.include('Back to sign-in');
    genesys.failNext('access_denied');
    const declined = await signInThroughGenesys();
    expect(declined.status).to.equal(403);
    expect(declined.html).to.include('was cancelled or not allowed');
    expect(await failures()).to.include.members(['unreachable', 'access_denied']);
  });

  it('fills the Genesys hosts from the region alone', async () => {
    const response = await api('POST', `/tenants/${tenantId}/connectors`, { name: 'genesys-eu', kind: 'genesys', displayName: 'Genesys EU', genesys: { region: 'mypurecloud.ie' }, clientId: 'abc', clientSecret: 'def' });
    expect(response.status).to.equal(201);
    const connector = (await response.json()) as Record<string, unknown>;
    expect(connector.authorizationEndpoint).to.equal('https://login.mypurecloud.ie/oauth/authorize');
    expect(connector.tokenEndpoint).to.equal('https://login.mypurecloud.ie/oauth/token');
    expect(String(connector.profileEndpoint)).to.match(/^https:\/\/api\.mypurecloud\.ie\/api\/v2\/users\/me/);
    expect(JSON.stringify(connector)).to.not.include('def');
  });
});
