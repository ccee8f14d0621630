// PostgreSQL cut off (a TCP proxy in front of it drops every connection and refuses new ones):
// /readyz fails, requests that need the database answer 503 within seconds (problem+json on the
// APIs, temporarily_unavailable on protocol endpoints, a page in the browser), the process stays up,
// and once the connection is back everything works again without a restart. A user creation cut
// at its COMMIT leaves nothing behind.
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { backends, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { clientCredentialsToken, createFixtures, introspect, USER, type Fixtures } from '../helpers/fixtures.ts';
import { Browser } from '../helpers/browser.ts';
import { authorizationRequest, discover, loginWithCode, REDIRECT_URI } from '../helpers/rp.ts';
import { ADMIN_API_PERMISSIONS } from '../../src/tenants/system-roles.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';

const server = backends.find((backend) => backend.name.startsWith('PostgreSQL'))!;
// Every answer under the cut must come at least this fast (the pool's acquire timeout is 5 s).
const QUICK_MS = 7000;

describe('PostgreSQL outage [PostgreSQL behind a TCP proxy + Redis]', function () {
  this.timeout(60_000);
  let store: BackendEnv | undefined;
  let proxy: TcpProxy | undefined;
  let instance: Instance | undefined;
  let fixtures: Fixtures;
  let issuer: string;
  let config: oidc.Configuration;
  let adminToken: string;
  let refreshToken: string;

  before(async function () {
    const reason = await server.unavailable();
    if (reason) {
      if (process.env.CI === 'true') throw new Error(reason);
      console.warn(`  skipped: ${reason}`);
      this.skip();
    }
    store = await server.create();
    const direct = new URL(store.env.DATABASE_URL);
    proxy = await startTcpProxy({ host: direct.hostname, port: Number(direct.port || 5432) });
    const throughProxy = new URL(direct);
    throughProxy.hostname = '127.0.0.1';
    throughProxy.port = String(proxy.port);
    instance = await startInstance({ ...store.env, DATABASE_URL: throughProxy.toString(), REQUEST_TIMEOUT: '20' });
    issuer = instance.url;
    fixtures = await createFixtures(instance.runtime);
    config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const { runtime } = instance;
    const { client, clientSecret } = await runtime.clients.create({ name: 'Provisioning', grantTypes: ['client_credentials'], tenantId: DEFAULT_TENANT_ID });
    await runtime.rbac.assign(DEFAULT_TENANT_ID, (await runtime.rbac.roleIdByName(DEFAULT_TENANT_ID, 'root-admin'))!, 'client', client.clientId);
    const response = await clientCredentialsToken(issuer, { clientId: client.clientId, clientSecret: clientSecret! }, { resource: runtime.adminApi, scope: ADMIN_API_PERMISSIONS.join(' ') });
    expect(response.status).to.equal(200);
    adminToken = ((await response.json()) as { access_token: string }).access_token;
    const { tokens } = await loginWithCode(config, issuer, { identifier: USER.email, password: USER.password });
    refreshToken = tokens.refresh_token!;
  });

  after(async () => {
    proxy?.restore();
    await instance?.stop();
    await proxy?.close();
    await store?.cleanup();
  });

  function createUser(email: string): Promise<Response> {
    return fetch(`${issuer}/api/v1/tenants/${DEFAULT_TENANT_ID}/users`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ email, name: 'Cut Off', password: 'a long enough password' }),
    });
  }

  async function timed<T>(what: string, call: () => Promise<T>): Promise<T> {
    const started = Date.now();
    const result = await call();
    expect(Date.now() - started, `${what} answered quickly`).to.be.below(QUICK_MS);
    return result;
  }

  async function usersNamed(email: string): Promise<unknown[]> {
    const response = await fetch(`${issuer}/api/v1/tenants/${DEFAULT_TENANT_ID}/users?q=${encodeURIComponent(email)}`, { headers: { authorization: `Bearer ${adminToken}` } });
    expect(response.status).to.equal(200);
    return ((await response.json()) as { items: unknown[] }).items;
  }

  it('a user creation cut off at its COMMIT answers 503 and leaves nothing behind', async () => {
    const cutting = proxy!.cutWhenSent('insert into "users"', 'commit');
    const response = await timed('the cut creation', () => createUser('half@example.com'));
    await cutting;
    expect(response.status, await response.clone().text()).to.equal(503);
    expect(response.headers.get('content-type')).to.match(/^application\/problem\+json/);
    expect(response.headers.get('retry-after')).to.match(/^\d+$/);
    proxy!.restore();
    // The server rolled the transaction back: no user, and no audit entry for it.
    expect(await usersNamed('half@example.com')).to.deep.equal([]);
    const audit = await fetch(`${issuer}/api/v1/tenants/${DEFAULT_TENANT_ID}/audit?limit=100`, { headers: { authorization: `Bearer ${adminToken}` } });
    expect(audit.status).to.equal(200);
    expect(await audit.text()).not.to.include('half@example.com');
  });

  it('while cut: /readyz and requests needing the database answer 503 quickly, the process stays up', async () => {
    proxy!.cut();

    const ready = await timed('/readyz', () => fetch(`${issuer}/readyz`));
    expect(ready.status, 'readyz').to.equal(503);
    expect(((await ready.json()) as { checks: Record<string, boolean> }).checks.database).to.equal(false);

    const created = await timed('the admin API', () => createUser('during@example.com'));
    expect(created.status, await created.clone().text()).to.equal(503);
    expect(created.headers.get('content-type')).to.match(/^application\/problem\+json/);
    expect(((await created.json()) as { type: string }).type).to.equal('urn:idp:problem:unavailable');

    // The token endpoint answers as RFC 6749 says: temporarily_unavailable.
    const refreshed = await timed('the token endpoint', () =>
      fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${fixtures.web.clientId}:${fixtures.web.clientSecret}`).toString('base64')}` },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }).toString(),
      }),
    );
    expect(refreshed.status, await refreshed.clone().text()).to.equal(503);
    expect(((await refreshed.json()) as { error: string }).error).to.equal('temporarily_unavailable');

    // In the browser: the sign-in answers with a page, never a 500.
    const browser = new Browser({ accept: 'text/html' });
    const { url } = await authorizationRequest(config, REDIRECT_URI);
    const { response: page, url: landed } = await timed('the sign-in', () => browser.follow(url, issuer));
    let status = page.status;
    expect(page.headers.get('content-type')).to.match(/^text\/html/);
    if (status === 200 && landed.pathname.startsWith('/interaction/')) {
      // Identifier first, then the password (the password page comes whatever the identifier).
      let html = await page.text();
      for (let step = 0; step < 2 && status === 200; step++) {
        const action = /action="([^"]*\/(identify|login))"/.exec(html)?.[1];
        expect(action, 'a sign-in form').to.be.a('string');
        const csrf = /name="csrf" value="([^"]*)"/.exec(html)?.[1] ?? '';
        const posted = await timed('the sign-in form', () => browser.submitForm(new URL(action!, issuer), { csrf, identifier: USER.email, password: USER.password }));
        expect(posted.headers.get('content-type')).to.match(/^text\/html/);
        status = posted.status;
        html = await posted.text();
      }
    }
    expect(status, 'the sign-in page').to.equal(503);

    expect((await fetch(`${issuer}/healthz`)).status, 'the process is up').to.equal(200);
  });

  it('recovers without a restart once the connection is back', async () => {
    proxy!.restore();
    const deadline = Date.now() + 15_000;
    while ((await fetch(`${issuer}/readyz`)).status !== 200) {
      if (Date.now() > deadline) throw new Error('/readyz did not recover');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const created = await createUser('after@example.com');
    expect(created.status, await created.clone().text()).to.equal(201);
    const refreshed = await oidc.refreshTokenGrant(config, refreshToken);
    expect((await introspect(issuer, fixtures.machine, refreshed.access_token)).active).to.equal(true);
    const { tokens } = await loginWithCode(config, issuer, { identifier: USER.email, password: USER.password });
    expect(tokens.refresh_token).to.be.a('string');
  });
});
