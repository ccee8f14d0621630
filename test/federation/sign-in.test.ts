// Sign-in through an upstream OpenID Connect provider: a second instance of this provider, started
// here, is the upstream (real discovery, PKCE, ID token and userinfo). The downstream tenant's
// connector provisions people just in time, maps upstream roles to local roles at every sign-in,
// links an existing account only after its password or an e-mail code, refuses an unverified
// address, sends an identifier of the connector's domain straight upstream, and ends every
// failure on a page that says what happened, with an audit entry.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as oidc from 'openid-client';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { freePort, startInstance, type Instance } from '../helpers/instance.ts';
import { adminApi } from '../helpers/admin-api.ts';
import { Browser, formAction, hiddenField } from '../helpers/browser.ts';
import { authorizationRequest, discover, REDIRECT_URI } from '../helpers/rp.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import { followAll, signInUpstream, submit, type Page } from './helpers.ts';

const RP_ORIGIN = new URL(REDIRECT_URI).origin;
const PASSWORD = 'upstream password for tests';
const LOCAL_PASSWORD = 'the local account password';

forEachBackend('federation through an upstream OpenID provider', (backend) => {
  let store: BackendEnv;
  let upstreamDir: string;
  let upstream: Instance;
  let upstreamIssuer: string;
  let downstream: Instance;
  let tenantId: string;
  let agentRoleId: string;
  let staffRoleId: string;
  let admin: string;
  let upstreamClient: { clientId: string; clientSecret: string };
  let portal: { clientId: string; clientSecret: string };
  let portalConfig: oidc.Configuration;
  let upstreamSupportRole: string;
  const upstreamUsers: Record<string, string> = {};

  function api(method: string, url: string, body?: unknown): Promise<Response> {
    return adminApi(downstream).call(admin, method, url, body);
  }

  async function createConnector(input: Record<string, unknown>): Promise<{ id: string; version: number }> {
    const response = await api('POST', `/tenants/${tenantId}/connectors`, input);
    expect(response.status, await response.clone().text()).to.equal(201);
    return (await response.json()) as { id: string; version: number };
  }

  // The portal's sign-in page (a client bound to the tenant: the connector buttons show at once).
  async function portalSignInPage(browser: Browser, config = portalConfig): Promise<Page> {
    const request = await authorizationRequest(config, REDIRECT_URI);
    const page = await followAll(browser, request.url, RP_ORIGIN);
    expect(page.status).to.equal(200);
    return page;
  }

  async function viaConnector(browser: Browser, name: string, who: string, password = PASSWORD): Promise<Page> {
    const signIn = await portalSignInPage(browser);
    const atUpstream = await submit(browser, signIn, `/federation/start/${name}`, {}, RP_ORIGIN);
    expect(atUpstream.url.origin, 'sent to the upstream').to.equal(upstreamIssuer);
    return signInUpstream(browser, atUpstream, { identifier: who, password }, RP_ORIGIN);
  }

  // Back at the portal with a code.
  function expectCode(page: Page): void {
    expect(page.url.origin, `ended at ${page.url} (${page.status}): ${page.html.slice(0, 400)}`).to.equal(RP_ORIGIN);
    expect(page.url.searchParams.get('code')).to.be.a('string');
  }

  async function localUser(email: string) {
    const { items } = await downstream.runtime.users.list(tenantId, { email, limit: 1 });
    return items[0];
  }

  async function localRoles(userId: string): Promise<string[]> {
    return (await downstream.runtime.rbac.rolesOf(tenantId, 'user', userId)).map((role) => role.name).sort();
  }

  async function auditTypes(): Promise<Array<{ type: string; details: Record<string, unknown> }>> {
    const response = await api('GET', `/tenants/${tenantId}/audit?limit=200`);
    expect(response.status).to.equal(200);
    return ((await response.json()) as { items: Array<{ type: string; details: Record<string, unknown> }> }).items;
  }

  before(async function () {
    this.timeout(60_000);
    store = await backend.create();
    // The upstream: another provider, at another host name so the browser keeps its cookies apart.
    upstreamDir = mkdtempSync(path.join(tmpdir(), 'idp-upstream-'));
    const upstreamPort = await freePort();
    upstreamIssuer = `http://localhost:${upstreamPort}`;
    upstream = await startInstance({ DATA_DIR: upstreamDir }, { issuer: upstreamIssuer, port: upstreamPort });
    downstream = await startInstance(store.env);
    const up = upstream.runtime;
    const support = await up.rbac.createRole(DEFAULT_TENANT_ID, { name: 'support' });
    upstreamSupportRole = support.id;
    for (const [key, email, verified] of [
      ['alice', 'alice@corp.example', true],
      ['carol', 'carol@corp.example', false],
      ['dave', 'dave@corp.example', true],
      ['erin', 'erin@corp.example', true],
      ['frank', 'frank@corp.example', true],
    ] as const) {
      const user = await up.users.create(DEFAULT_TENANT_ID, { email, password: PASSWORD, emailVerified: verified, name: key });
      upstreamUsers[key] = user.id;
    }
    await up.rbac.assign(DEFAULT_TENANT_ID, support.id, 'user', upstreamUsers.alice);
    const registered = await up.clients.create({
      name: 'Downstream identity provider',
      redirectUris: [`${downstream.url}/federation/callback`],
      grantTypes: ['authorization_code'],
      firstParty: true,
    });
    upstreamClient = { clientId: registered.client.clientId, clientSecret: registered.clientSecret! };

    const down = downstream.runtime;
    tenantId = (await down.tenants.create({ slug: 'acme', displayName: 'Acme' })).id;
    agentRoleId = (await down.rbac.roleIdByName(tenantId, 'agent'))!;
    staffRoleId = (await down.rbac.roleIdByName(tenantId, 'staff'))!;
    admin = await adminApi(downstream).token(DEFAULT_TENANT_ID, 'root-admin');
    const created = await down.clients.create({ name: 'Acme portal', redirectUris: [REDIRECT_URI], grantTypes: ['authorization_code', 'refresh_token'], firstParty: true, tenantId });
    portal = { clientId: created.client.clientId, clientSecret: created.clientSecret! };
    portalConfig = await discover(downstream.url, portal.clientId, portal.clientSecret);
    await down.users.create(tenantId, { email: 'dave@corp.example', password: LOCAL_PASSWORD, emailVerified: true, name: 'Dave (local)' });

    await createConnector({
      name: 'corp',
      kind: 'oidc',
      displayName: 'Corp SSO',
      issuer: upstreamIssuer,
      clientId: upstreamClient.clientId,
      clientSecret: upstreamClient.clientSecret,
      scopes: ['openid', 'email', 'profile', 'roles'],
      useUserinfo: true,
      claimMapping: { subject: 'sub', email: 'email', emailVerified: 'email_verified', name: 'name', groups: 'roles' },
      jitProvisioning: true,
      emailDomains: ['corp.example'],
      roleMappings: [{ group: 'support', roleId: agentRoleId }],
    });
  });

  after(async () => {
    await downstream?.stop();
    await upstream?.stop();
    await store?.cleanup();
    if (upstreamDir) rmSync(upstreamDir, { recursive: true, force: true });
  });

  it('shows the tenant’s connectors as buttons on the sign-in page', async () => {
    const page = await portalSignInPage(new Browser());
    expect(page.html).to.include('Continue with Corp SSO');
    expect(page.html).to.include('/federation/start/corp');
  });

  it('creates the person on the first sign-in, maps upstream roles, and signs in to every app of the tenant', async () => {
    const browser = new Browser();
    const back = await viaConnector(browser, 'corp', 'alice@corp.example');
    expectCode(back);
    const alice = await localUser('alice@corp.example');
    expect(alice, 'provisioned just in time').to.exist;
    expect(alice.emailVerified).to.equal(true);
    expect(alice.hasPassword).to.equal(false);
    expect(await localRoles(alice.id)).to.deep.equal(['agent']);
    const identities = await downstream.runtime.identities.list(tenantId, alice.id);
    expect(identities.map((identity) => identity.subject)).to.deep.equal([upstreamUsers.alice]);

    // Single sign-on: another app of the tenant gets a code without any page.
    const other = await downstream.runtime.clients.create({ name: 'Acme wiki', redirectUris: [REDIRECT_URI], grantTypes: ['authorization_code'], firstParty: true, tenantId });
    const wiki = await discover(downstream.url, other.client.clientId, other.clientSecret!);
    const request = await authorizationRequest(wiki, REDIRECT_URI);
    const sso = await followAll(browser, request.url, RP_ORIGIN);
    expect(sso.url.origin).to.equal(RP_ORIGIN);
    const tokens = await oidc.authorizationCodeGrant(wiki, sso.url, { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce });
    expect(tokens.claims()!.sub).to.equal(alice.id);
    expect(tokens.claims()!.amr).to.deep.equal(['fed']);
  });

  it('re-applies the role mapping at each sign-in and leaves hand-assigned roles alone', async () => {
    const alice = await localUser('alice@corp.example');
    await downstream.runtime.rbac.assign(tenantId, staffRoleId, 'user', alice.id);
    await upstream.runtime.rbac.unassign(DEFAULT_TENANT_ID, upstreamSupportRole, 'user', upstreamUsers.alice);
    expectCode(await viaConnector(new Browser(), 'corp', 'alice@corp.example'));
    expect(await localRoles(alice.id)).to.deep.equal(['staff']);
    await upstream.runtime.rbac.assign(DEFAULT_TENANT_ID, upstreamSupportRole, 'user', upstreamUsers.alice);
    expectCode(await viaConnector(new Browser(), 'corp', 'alice@corp.example'));
    expect(await localRoles(alice.id)).to.deep.equal(['agent', 'staff']);
    // Still one linked identity and one user.
    expect(await downstream.runtime.identities.list(tenantId, alice.id)).to.have.length(1);
  });

  it('refuses to link or create an account from an unverified upstream address', async () => {
    const page = await viaConnector(new Browser(), 'corp', 'carol@corp.example');
    expect(page.status).to.equal(403);
    expect(page.html).to.include('has not verified your e-mail address');
    expect(page.html).to.include('Back to sign-in');
    expect(await localUser('carol@corp.example')).to.equal(undefined);
    const entries = await auditTypes();
    expect(entries.some((entry) => entry.type === 'federation.failure' && entry.details.failure === 'unverified_email')).to.equal(true);
  });

  it('links an existing account only after its password is proven, never by the e-mail alone', async () => {
    const dave = await localUser('dave@corp.example');
    const browser = new Browser();
    const link = await viaConnector(browser, 'corp', 'dave@corp.example');
    expect(link.status).to.equal(200);
    expect(link.html).to.include('Link your account');
    expect(await downstream.runtime.identities.list(tenantId, dave.id)).to.have.length(0);
    const wrong = await submit(browser, link, '/federation/link', { password: 'not the password' }, RP_ORIGIN);
    expect(wrong.status).to.equal(401);
    expect(await downstream.runtime.identities.list(tenantId, dave.id)).to.have.length(0);
    const linked = await submit(browser, wrong, '/federation/link', { password: LOCAL_PASSWORD }, RP_ORIGIN);
    expectCode(linked);
    expect((await downstream.runtime.identities.list(tenantId, dave.id)).map((identity) => identity.subject)).to.deep.equal([upstreamUsers.dave]);
    // Next time the link is known: straight through.
    expectCode(await viaConnector(new Browser(), 'corp', 'dave@corp.example'));
    expect((await auditTypes()).some((entry) => entry.type === 'federation.link' && entry.details.proof === 'password')).to.equal(true);
  });

  it('sends an identifier at the connector’s domain straight to the upstream (home-realm discovery)', async () => {
    const browser = new Browser();
    // The `tenant` parameter is not given: the identifier-first page, as for any open sign-in.
    const open = await downstream.runtime.clients.create({ name: 'Open app', redirectUris: [REDIRECT_URI], grantTypes: ['authorization_code'], firstParty: true });
    const config = await discover(downstream.url, open.client.clientId, open.clientSecret!);
    const request = await authorizationRequest(config, REDIRECT_URI);
    const page = await followAll(browser, request.url, RP_ORIGIN);
    expect(page.html).to.include('/identify"');
    const atUpstream = await submit(browser, page, '/identify', { identifier: 'alice@corp.example' }, RP_ORIGIN);
    expect(atUpstream.url.origin).to.equal(upstreamIssuer);
    expect(atUpstream.url.pathname).to.match(/^\/interaction\//);
    const back = await signInUpstream(browser, atUpstream, { identifier: 'alice@corp.example', password: PASSWORD }, RP_ORIGIN);
    expect(back.url.origin).to.equal(RP_ORIGIN);
    const tokens = await oidc.authorizationCodeGrant(config, back.url, { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce });
    expect(tokens.claims()!.sub).to.equal((await localUser('alice@corp.example')).id);
    expect(tokens.claims()!.tenant_id).to.equal(tenantId);
  });

  it('shows a page for a callback whose state this browser did not start (and audits nothing secret)', async () => {
    const browser = new Browser();
    await portalSignInPage(browser);
    const page = await followAll(browser, `${downstream.url}/federation/callback?code=stolen&state=forged`, RP_ORIGIN);
    expect(page.status).to.equal(400);
    expect(page.html).to.include('does not belong to a sign-in started in this browser');
  });

  it('refuses a real callback replayed in another browser', async () => {
    const attacker = new Browser();
    const signIn = await portalSignInPage(attacker);
    const atUpstream = await submit(attacker, signIn, '/federation/start/corp', {}, RP_ORIGIN);
    // Login CSRF: the attacker signs in upstream as themselves and hands the callback URL over.
    const callback = await (async () => {
      let current = atUpstream;
      if (current.html.includes('/identify"')) current = await submit(attacker, current, '/identify', { identifier: 'alice@corp.example' }, RP_ORIGIN);
      const response = await attacker.submitForm(new URL(formAction(current.html, '/login'), current.url), { csrf: hiddenField(current.html, 'csrf'), identifier: 'alice@corp.example', password: PASSWORD });
      let location = new URL(response.headers.get('location')!, current.url);
      while (location.origin === upstreamIssuer) {
        const next = await attacker.fetch(location);
        location = new URL(next.headers.get('location')!, location);
      }
      return location;
    })();
    expect(callback.pathname).to.equal('/federation/callback');
    const victim = new Browser();
    await portalSignInPage(victim);
    const page = await followAll(victim, callback, RP_ORIGIN);
    expect(page.status).to.equal(400);
    expect(page.html).to.include('does not belong to a sign-in started in this browser');
  });

  it('says so when the person cancels at the upstream, with a way back', async () => {
    const browser = new Browser();
    const signIn = await portalSignInPage(browser);
    const atUpstream = await submit(browser, signIn, '/federation/start/corp', {}, RP_ORIGIN);
    const page = await submit(browser, atUpstream, '/abort', {}, RP_ORIGIN);
    expect(page.status).to.equal(403);
    expect(page.html).to.include('was cancelled or not allowed');
    expect(page.html).to.match(/href="\/interaction\/[^"]+">Back to sign-in/);
  });

  it('says so when the upstream refuses the client secret', async () => {
    const wrong = await createConnector({ name: 'wrong-secret', kind: 'oidc', displayName: 'Wrong secret', issuer: upstreamIssuer, clientId: upstreamClient.clientId, clientSecret: 'not the secret', useUserinfo: true, jitProvisioning: true });
    const page = await viaConnector(new Browser(), 'wrong-secret', 'alice@corp.example');
    expect(page.status).to.equal(403);
    expect(page.html).to.include('did not accept this service');
    expect(page.html).to.not.include('not the secret');
    const entries = await auditTypes();
    expect(entries.some((entry) => entry.type === 'federation.failure' && entry.details.failure === 'invalid_client' && entry.details.connector === 'wrong-secret')).to.equal(true);
    await api('DELETE', `/tenants/${tenantId}/connectors/${wrong.id}`);
  });

  it('says so when the upstream is down', async () => {
    const deadPort = await freePort();
    const down = await createConnector({ name: 'down', kind: 'oidc', displayName: 'Down SSO', issuer: `http://localhost:${deadPort}`, clientId: 'x', clientSecret: 'y' });
    const browser = new Browser();
    const signIn = await portalSignInPage(browser);
    const page = await submit(browser, signIn, '/federation/start/down', {}, RP_ORIGIN);
    expect(page.status).to.equal(502);
    expect(page.html).to.include('could not be reached');
    expect(page.html).to.include('Back to sign-in');
    await api('DELETE', `/tenants/${tenantId}/connectors/${down.id}`);
  });

  it('tells a new person without just-in-time provisioning to ask for access', async () => {
    const noJit = await createConnector({ name: 'no-jit', kind: 'oidc', displayName: 'Invite only', issuer: upstreamIssuer, clientId: upstreamClient.clientId, clientSecret: upstreamClient.clientSecret, useUserinfo: true, jitProvisioning: false });
    const page = await viaConnector(new Browser(), 'no-jit', 'erin@corp.example');
    expect(page.status).to.equal(403);
    expect(page.html).to.include('There is no account for you here yet');
    expect(await localUser('erin@corp.example')).to.equal(undefined);
    await api('DELETE', `/tenants/${tenantId}/connectors/${noJit.id}`);
  });

  it('links an account without a password after a code sent to its e-mail address', async () => {
    const frank = await downstream.runtime.users.create(tenantId, { email: 'frank@corp.example', emailVerified: true, name: 'Frank (local)' });
    const browser = new Browser();
    const link = await viaConnector(browser, 'corp', 'frank@corp.example');
    expect(link.html).to.include('Link your account');
    expect(link.html).to.not.include('name="password"');
    const sent = await submit(browser, link, '/federation/link/code', {}, RP_ORIGIN);
    expect(sent.status).to.equal(200);
    expect(sent.html).to.include('name="code"');
    await downstream.runtime.mailer.idle();
    const outbox = downstream.runtime.mailer.outbox!;
    const mail = (await outbox.list(20)).find((entry) => entry.to === 'frank@corp.example');
    expect(mail, 'a code went to the local address').to.exist;
    const code = (await outbox.read(mail!.id))!.text.match(/\b(\d{6})\b/)![1];
    const wrong = await submit(browser, sent, '/federation/link', { code: code === '000000' ? '111111' : '000000' }, RP_ORIGIN);
    expect(wrong.status).to.equal(401);
    expect(await downstream.runtime.identities.list(tenantId, frank.id)).to.have.length(0);
    expectCode(await submit(browser, wrong, '/federation/link', { code }, RP_ORIGIN));
    expect((await downstream.runtime.identities.list(tenantId, frank.id)).map((identity) => identity.subject)).to.deep.equal([upstreamUsers.frank]);
  });

  it('shows the linked identity on the account page, signed in through the connector, and keeps the only way in', async () => {
    const browser = new Browser();
    const signIn = await followAll(browser, `${downstream.url}/account/identities?tenant=acme`, RP_ORIGIN);
    expect(signIn.url.pathname).to.match(/^\/interaction\//);
    const atUpstream = await submit(browser, signIn, '/federation/start/corp', {}, RP_ORIGIN);
    const page = await signInUpstream(browser, atUpstream, { identifier: 'alice@corp.example', password: PASSWORD }, RP_ORIGIN);
    expect(page.url.pathname).to.equal('/account/identities');
    expect(page.html).to.include('<td>Corp SSO</td>');
    expect(page.html).to.include('alice@corp.example');
    // Alice has no password here: her only linked identity cannot be removed.
    const alice = await localUser('alice@corp.example');
    const [identity] = await downstream.runtime.identities.list(tenantId, alice.id);
    const refused = await submit(browser, page, `/account/identities/${identity.id}/remove`, {}, RP_ORIGIN);
    expect(refused.status).to.equal(409);
    expect(await downstream.runtime.identities.list(tenantId, alice.id)).to.have.length(1);
  });

  it('unlinks every identity of a deleted connector and stops offering it', async () => {
    const alice = await localUser('alice@corp.example');
    const list = (await (await api('GET', `/tenants/${tenantId}/connectors`)).json()) as { items: Array<{ id: string; name: string }> };
    const corp = list.items.find((connector) => connector.name === 'corp')!;
    expect((await api('DELETE', `/tenants/${tenantId}/connectors/${corp.id}`)).status).to.equal(204);
    expect(await downstream.runtime.identities.list(tenantId, alice.id)).to.have.length(0);
    const page = await portalSignInPage(new Browser());
    expect(page.html).to.not.include('Corp SSO');
    // The domain no longer leads upstream: the identifier stays here.
    expect(await downstream.runtime.federatedSignIn.discover('alice@corp.example')).to.equal(undefined);
  });
});
