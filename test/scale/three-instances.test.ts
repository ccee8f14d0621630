// Three instances sharing PostgreSQL and Redis behind a round-robin proxy on one issuer, as behind a
// load balancer without affinity: a login started on one finishes on the others, a revocation on
// one is seen on the others within a second, and a key rotation on one leaves all three publishing
// the same JWKS.
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { startRoundRobinProxy, type RoundRobinProxy, type ServedRequest } from '../helpers/round-robin.ts';
import { createFixtures, clientCredentialsToken, basicAuth, introspect, API, USER, type Fixtures } from '../helpers/fixtures.ts';
import { discover, loginWithCode } from '../helpers/rp.ts';
import { expectOAuthError } from '../helpers/oauth-errors.ts';
import { ADMIN_API_PERMISSIONS } from '../../src/tenants/system-roles.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls until the condition holds; fails once `ms` have passed since `since`.
async function within(ms: number, since: number, condition: () => Promise<boolean>): Promise<number> {
  for (;;) {
    if (await condition()) return Date.now() - since;
    if (Date.now() - since > ms) throw new Error(`not seen within ${ms} ms`);
    await sleep(25);
  }
}

async function jwksOf(instance: Instance): Promise<JSONWebKeySet> {
  const response = await fetch(`${instance.url}/jwks`);
  expect(response.status).to.equal(200);
  return (await response.json()) as JSONWebKeySet;
}

forEachBackend('three instances behind a round-robin proxy', (backend) => {
  if (!backend.name.includes('PostgreSQL')) return;
  let store: BackendEnv;
  let proxy: RoundRobinProxy;
  let instances: Instance[] = [];
  let fixtures: Fixtures;
  let issuer: string;
  let adminToken: string;

  before(async function () {
    this.timeout(120_000);
    store = await backend.create();
    proxy = await startRoundRobinProxy();
    issuer = proxy.url;
    // One at a time: the first runs the migrations and creates the signing keys.
    for (let i = 0; i < 3; i++) instances.push(await startInstance({ ...store.env, REFRESH_TOKEN_REUSE_GRACE_SECONDS: '0' }, { issuer }));
    proxy.use(instances.map((instance) => instance.url));
    const { runtime } = instances[0];
    fixtures = await createFixtures(runtime);
    const { client, clientSecret } = await runtime.clients.create({ name: 'operator', grantTypes: ['client_credentials'], tenantId: DEFAULT_TENANT_ID });
    await runtime.rbac.assign(DEFAULT_TENANT_ID, (await runtime.rbac.roleIdByName(DEFAULT_TENANT_ID, 'root-admin'))!, 'client', client.clientId);
    const token = await clientCredentialsToken(issuer, { clientId: client.clientId, clientSecret: clientSecret! }, { resource: runtime.adminApi, scope: ADMIN_API_PERMISSIONS.join(' ') });
    expect(token.status).to.equal(200);
    adminToken = ((await token.json()) as { access_token: string }).access_token;
  });
  after(async () => {
    await proxy?.close();
    for (const instance of instances.reverse()) await instance.stop();
    instances = [];
    await store?.cleanup();
  });

  // What the proxy served from `mark` on.
  const servedSince = (mark: number): ServedRequest[] => proxy.served.slice(mark);
  const targetsOf = (requests: ServedRequest[]) => new Set(requests.map((request) => request.target));

  async function login() {
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const { tokens } = await loginWithCode(config, issuer, { identifier: USER.email, password: USER.password });
    return { config, tokens };
  }

  // A refresh sent to one instance directly: true when refused as invalid_grant. A refresh that
  // succeeds would rotate the token and make later checks meaningless, so it fails the test.
  async function refreshRefused(instance: Instance, refreshToken: string): Promise<boolean> {
    const response = await fetch(`${instance.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(fixtures.web) },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }).toString(),
    });
    const body = (await response.json()) as { error?: string };
    if (response.status === 200) throw new Error(`instance ${instances.indexOf(instance)} still refreshed a revoked refresh token`);
    expect(response.status).to.equal(400);
    return body.error === 'invalid_grant';
  }

  async function inactive(instance: Instance, token: string): Promise<boolean> {
    return (await introspect(instance.url, fixtures.machine, token)).active === false;
  }

  it('spreads the steps of one login over all three instances and serves its tokens from any', async () => {
    const mark = proxy.served.length;
    const { config, tokens } = await login();
    const flow = servedSince(mark);
    const authorize = flow.find((request) => request.path === '/auth')!;
    const steps = ['/identify', '/login'].map((ending) => flow.find((request) => request.method === 'POST' && request.path.endsWith(ending))!);
    const page = flow.find((request) => request.method === 'GET' && request.path.startsWith('/interaction/'))!;
    const resume = flow.find((request) => request.path.startsWith('/auth/'))!;
    const exchange = flow.findLast((request) => request.path === '/token')!;
    expect(authorize && page && resume && exchange && steps.every(Boolean), 'every step went through the proxy').to.equal(true);
    expect(targetsOf([page, ...steps]).size, 'sign-in page, identifier and password each on another instance').to.equal(3);
    expect(resume.target, 'the authorization resumed elsewhere than it began').to.not.equal(authorize.target);
    // The last browser request before the exchange is the redirect that carried the code.
    const issued = flow[flow.indexOf(exchange) - 1];
    expect(exchange.target, 'the code was redeemed elsewhere than it was issued').to.not.equal(issued.target);
    expect(targetsOf(flow).size, 'every instance served part of the login').to.equal(3);
    expect(flow.every((request) => request.status < 500)).to.equal(true);
    expect(tokens.claims()!.sub).to.equal(fixtures.userId);

    const next = proxy.served.length;
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    expect(refreshed.refresh_token).to.be.a('string').and.not.equal(tokens.refresh_token);
    const userinfo = await oidc.fetchUserInfo(config, refreshed.access_token, fixtures.userId);
    expect(userinfo.email).to.equal(USER.email);
    expect(await introspect(issuer, fixtures.machine, refreshed.access_token)).to.include({ active: true, sub: fixtures.userId });
    expect(targetsOf(servedSince(next)).size, 'refresh, userinfo and introspection each on another instance').to.equal(3);
    // The rotated-out refresh token is dead on every instance, wherever the refresh ran.
    await expectOAuthError(oidc.refreshTokenGrant(config, tokens.refresh_token!), 'invalid_grant');
    expect(proxy.counts().every((count) => count > 0)).to.equal(true);
  });

  it('refuses everywhere within a second the tokens of sessions an administrator ended on one instance', async () => {
    const { tokens } = await login();
    const [first, ...others] = instances;
    for (const instance of others) {
      expect((await introspect(instance.url, fixtures.machine, tokens.access_token)).active, 'access token known everywhere before').to.equal(true);
      expect((await introspect(instance.url, fixtures.web, tokens.refresh_token!)).active, 'refresh token known everywhere before').to.equal(true);
    }

    const ended = await fetch(`${first.url}/api/v1/tenants/${DEFAULT_TENANT_ID}/users/${fixtures.userId}/sessions`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${adminToken}` },
    });
    expect(ended.status, await ended.clone().text()).to.be.oneOf([200, 204]);
    const since = Date.now();
    for (const instance of others) {
      await within(1000, since, async () => (await refreshRefused(instance, tokens.refresh_token!)) && (await inactive(instance, tokens.access_token)));
    }
  });

  it('refuses everywhere within a second a refresh token revoked (RFC 7009) on one instance', async () => {
    const { tokens } = await login();
    const [first, ...others] = instances;
    const refreshActive = async (instance: Instance) => (await introspect(instance.url, fixtures.web, tokens.refresh_token!)).active;
    for (const instance of others) expect(await refreshActive(instance), 'known to the other instances before').to.equal(true);
    const revoked = await fetch(`${first.url}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(fixtures.web) },
      body: new URLSearchParams({ token: tokens.refresh_token!, token_type_hint: 'refresh_token' }).toString(),
    });
    expect(revoked.status).to.equal(200);
    const since = Date.now();
    for (const instance of others) {
      await within(1000, since, async () => (await refreshRefused(instance, tokens.refresh_token!)) && !(await refreshActive(instance)));
    }
  });

  it('leaves all three publishing the same JWKS after a rotation on one, and every token verifiable with each', async () => {
    const before = await Promise.all(instances.map(jwksOf));
    for (const jwks of before.slice(1)) expect(jwks).to.deep.equal(before[0]);
    const successor = before[0].keys.find((key) => key.alg === 'RS256' && key.key_ops?.includes('verify'))!;
    const jwtFrom = async (url: string) => {
      const response = await clientCredentialsToken(url, fixtures.machine, { resource: API.identifier, scope: 'read' });
      expect(response.status).to.equal(200);
      return ((await response.json()) as { access_token: string }).access_token;
    };
    const older = await jwtFrom(issuer);
    expect(decodeProtectedHeader(older).kid).to.not.equal(successor.kid);

    await instances[1].runtime.keys.rotate();
    const since = Date.now();
    let published: JSONWebKeySet[] = before;
    await within(2000, since, async () => {
      published = await Promise.all(instances.map(jwksOf));
      const first = JSON.stringify(published[0]);
      return first !== JSON.stringify(before[0]) && published.every((jwks) => JSON.stringify(jwks) === first);
    });

    const fresh = await Promise.all(instances.map((instance) => jwtFrom(instance.url)));
    for (const token of fresh) expect(decodeProtectedHeader(token).kid, 'the pre-published successor signs on every instance').to.equal(successor.kid);
    for (const jwks of published) {
      const keys = createLocalJWKSet(jwks);
      for (const token of [older, ...fresh]) await jwtVerify(token, keys, { issuer, audience: API.identifier });
    }
  });
});
