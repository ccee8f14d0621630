// Two instances sharing PostgreSQL and Redis behave as one: a client change on one is seen by the
// other at once, and a login started on one finishes on the other.
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { createFixtures, clientCredentialsToken, basicAuth, API, USER, type Fixtures } from '../helpers/fixtures.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import { discover, REDIRECT_URI } from '../helpers/rp.ts';
import { Browser, formAction, hiddenField } from '../helpers/browser.ts';

forEachBackend('two instances', (backend) => {
  if (!backend.name.includes('PostgreSQL')) return;
  let store: BackendEnv;
  let first: Instance;
  let second: Instance;
  let fixtures: Fixtures;

  before(async () => {
    store = await backend.create();
    first = await startInstance(store.env);
    second = await startInstance(store.env, { issuer: first.url });
    fixtures = await createFixtures(first.runtime);
  });
  after(async () => {
    await second?.stop();
    await first?.stop();
    await store?.cleanup();
  });

  it('sees a client deleted on the other instance at once, although it had it cached', async () => {
    const { client, clientSecret } = await first.runtime.clients.create({ name: 'short-lived', grantTypes: ['client_credentials'] });
    const credentials = { clientId: client.clientId, clientSecret: clientSecret! };
    expect((await clientCredentialsToken(second.url, credentials, {})).status).to.equal(200);
    await first.runtime.clients.delete(client.clientId);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const refused = await clientCredentialsToken(second.url, credentials, {});
    expect(refused.status).to.equal(401);
  });

  it('sees a client created on the other instance although it had cached its absence', async () => {
    const clientId = `late-${Date.now()}`;
    expect((await clientCredentialsToken(second.url, { clientId, clientSecret: 'x' }, {})).status).to.equal(401);
    const { clientSecret } = await first.runtime.clients.create({ clientId, name: 'late', grantTypes: ['client_credentials'] });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await clientCredentialsToken(second.url, { clientId, clientSecret: clientSecret! }, {})).status).to.equal(200);
  });

  it('finishes on one instance a login started on the other, and serves its tokens anywhere', async () => {
    const config = await discover(first.url, fixtures.web.clientId, fixtures.web.clientSecret);
    const browser = new Browser();
    const verifier = oidc.randomPKCECodeVerifier();
    const start = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT_URI,
      scope: 'openid email',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    });
    const { response, url } = await browser.follow(start, first.url);
    expect(url.pathname).to.match(/^\/interaction\//);
    const html = await response.text();
    // The sign-in forms are posted to the other instance: the identifier step's state is shared.
    const identified = await browser.submitForm(new URL(formAction(html, '/identify'), second.url), { csrf: hiddenField(html, 'csrf'), identifier: USER.email });
    expect(identified.status).to.equal(200);
    const passwordPage = await identified.text();
    const login = await browser.submitForm(new URL(formAction(passwordPage, '/login'), first.url), {
      csrf: hiddenField(passwordPage, 'csrf'),
      password: USER.password,
    });
    expect(login.status).to.equal(303);
    const resume = new URL(login.headers.get('location')!);
    const { url: callback } = await browser.follow(new URL(resume.pathname + resume.search, first.url), first.url);
    const code = callback.searchParams.get('code');
    expect(code).to.be.a('string');

    const token = await fetch(`${second.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(fixtures.web) },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: code!, redirect_uri: REDIRECT_URI, code_verifier: verifier }).toString(),
    });
    expect(token.status).to.equal(200);
    const tokens = (await token.json()) as { access_token: string; refresh_token: string };
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token);
    const userinfo = await fetch(`${second.url}/me`, { headers: { authorization: `Bearer ${refreshed.access_token}` } });
    expect(userinfo.status).to.equal(200);
    expect(((await userinfo.json()) as { sub: string }).sub).to.equal(fixtures.userId);
  });

  it('sees a permission removed on one instance in the next token and check on the other', async () => {
    const role = await first.runtime.rbac.createRole(DEFAULT_TENANT_ID, { name: 'auditor', permissions: [{ api: API.identifier, permission: 'read' }] });
    const { client, clientSecret } = await first.runtime.clients.create({ name: 'auditor service', grantTypes: ['client_credentials'], tenantId: DEFAULT_TENANT_ID });
    await first.runtime.rbac.assign(DEFAULT_TENANT_ID, role.id, 'client', client.clientId);
    const credentials = { clientId: client.clientId, clientSecret: clientSecret! };
    const scopeOnSecond = async () => ((await (await clientCredentialsToken(second.url, credentials, { resource: API.identifier, scope: 'read' })).json()) as { scope?: string }).scope;
    expect(await scopeOnSecond()).to.equal('read');
    expect(await second.runtime.rbac.check(DEFAULT_TENANT_ID, 'client', client.clientId, API.identifier, 'read')).to.equal(true);
    await first.runtime.rbac.updateRole(DEFAULT_TENANT_ID, role.id, role.version, { permissions: [] });
    expect(await scopeOnSecond()).to.equal(undefined);
    expect(await second.runtime.rbac.check(DEFAULT_TENANT_ID, 'client', client.clientId, API.identifier, 'read')).to.equal(false);
  });
});
