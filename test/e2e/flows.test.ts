// The core protocol flows end to end, with openid-client as the relying party, on every backend.
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { clusterBackend, forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { createFixtures, clientCredentialsToken, basicAuth, API, USER, type Fixtures, introspect as introspectToken } from '../helpers/fixtures.ts';
import { authorizationRequest, discover, loginWithCode, POST_LOGOUT_REDIRECT_URI, REDIRECT_URI } from '../helpers/rp.ts';
import { Browser, formAction, hiddenField } from '../helpers/browser.ts';
import { expectOAuthError } from '../helpers/oauth-errors.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';

forEachBackend('protocol flows', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let fixtures: Fixtures;
  let issuer: string;

  before(async () => {
    store = await backend.create();
    // Reuse of a rotated-out refresh token is refused at once here; the grace window for parallel
    // refreshes has its own tests (test/revocation).
    instance = await startInstance({ ...store.env, REFRESH_TOKEN_REUSE_GRACE_SECONDS: '0' });
    issuer = instance.url;
    fixtures = await createFixtures(instance.runtime);
  });

  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  const introspect = (token: string) => introspectToken(issuer, fixtures.machine, token);

  it('publishes discovery metadata for the features it serves', async () => {
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const metadata = config.serverMetadata();
    expect(metadata.issuer).to.equal(issuer);
    expect(metadata.response_types_supported).to.deep.equal(['code']);
    expect(metadata.code_challenge_methods_supported).to.deep.equal(['S256']);
    expect(metadata.grant_types_supported).to.include.members(['authorization_code', 'refresh_token', 'client_credentials']);
    expect(metadata.introspection_endpoint).to.equal(`${issuer}/token/introspection`);
    expect(metadata.revocation_endpoint).to.equal(`${issuer}/token/revocation`);
    expect(metadata.end_session_endpoint).to.equal(`${issuer}/session/end`);
    expect(metadata.pushed_authorization_request_endpoint).to.equal(`${issuer}/request`);
    expect(metadata.backchannel_logout_supported).to.equal(true);
    expect(metadata.dpop_signing_alg_values_supported).to.be.an('array').that.is.not.empty;
    expect(metadata.token_endpoint_auth_methods_supported).to.not.include('client_secret_jwt');
    expect(metadata.id_token_signing_alg_values_supported).to.include.members(['RS256', 'ES256', 'EdDSA']);
  });

  it('logs in with authorization code + PKCE through the login form and validates the ID token', async () => {
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const { tokens } = await loginWithCode(config, issuer, { identifier: USER.email, password: USER.password });
    const claims = tokens.claims()!;
    expect(claims.iss).to.equal(issuer);
    expect(claims.sub).to.equal(fixtures.userId);
    expect(claims.aud).to.equal(fixtures.web.clientId);
    expect(tokens.access_token).to.be.a('string');
    expect(tokens.refresh_token, 'first-party apps get a refresh token').to.be.a('string');

    const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub);
    expect(userinfo).to.include({ sub: fixtures.userId, email: USER.email, email_verified: true, name: USER.name, preferred_username: USER.username });
  });

  it('accepts the username as the identifier', async () => {
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const { tokens } = await loginWithCode(config, issuer, { identifier: USER.username.toUpperCase(), password: USER.password });
    expect(tokens.claims()!.sub).to.equal(fixtures.userId);
  });

  it('requires PKCE from public clients and completes their flow with it', async () => {
    const config = await discover(issuer, fixtures.spa.clientId);
    const { tokens } = await loginWithCode(config, issuer, { identifier: USER.email, password: USER.password });
    expect(tokens.claims()!.sub).to.equal(fixtures.userId);
    const withoutPkce = await fetch(
      `${issuer}/auth?${new URLSearchParams({ client_id: fixtures.spa.clientId, response_type: 'code', scope: 'openid', redirect_uri: 'http://127.0.0.1:1/callback' })}`,
      { redirect: 'manual' },
    );
    const location = new URL(withoutPkce.headers.get('location')!);
    expect(location.searchParams.get('error')).to.equal('invalid_request');
    expect(location.searchParams.get('error_description')).to.match(/PKCE/);
  });

  it('shows a consent page to third-party clients and honours a denial', async () => {
    const config = await discover(issuer, fixtures.thirdParty.clientId, fixtures.thirdParty.clientSecret);
    const allowed = await loginWithCode(config, issuer, { identifier: USER.email, password: USER.password, consent: 'allow' });
    expect(allowed.tokens.claims()!.sub).to.equal(fixtures.userId);
    const denied = loginWithCode(config, issuer, { identifier: USER.email, password: USER.password, consent: 'deny', extraParams: { prompt: 'consent' } });
    await expectOAuthError(denied, 'access_denied');
  });

  it('takes a first-party sign-in from the login form straight to the code, its grant covering the API scopes asked for', async () => {
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const browser = new Browser();
    const request = await authorizationRequest(config, REDIRECT_URI, { resource: API.identifier, scope: 'openid email read' });
    const { response: page, url: pageUrl } = await browser.follow(request.url, issuer);
    expect(pageUrl.pathname).to.match(/^\/interaction\//);
    // Identifier first (this client is not bound to a tenant), then the password.
    const identifierPage = await page.text();
    const html = await (await browser.submitForm(new URL(formAction(identifierPage, '/identify'), issuer), { csrf: hiddenField(identifierPage, 'csrf'), identifier: USER.email })).text();
    const login = await browser.submitForm(new URL(formAction(html, '/login'), issuer), { csrf: hiddenField(html, 'csrf'), identifier: USER.email, password: USER.password });
    expect(login.status).to.equal(303);
    // One resume of the authorization, and back to the client: no consent step in between.
    const resumed = await browser.fetch(new URL(login.headers.get('location')!, issuer));
    expect(resumed.status).to.equal(303);
    const callback = new URL(resumed.headers.get('location')!);
    expect(callback.origin + callback.pathname).to.equal(REDIRECT_URI);
    const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce }, { resource: API.identifier });
    const { payload } = await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(`${issuer}/jwks`)), { issuer, audience: API.identifier });
    expect(payload).to.include({ sub: fixtures.userId, scope: 'read' });

    // A later request in the same session for more scopes is granted without a page too.
    const more = await authorizationRequest(config, REDIRECT_URI, { scope: 'openid email profile' });
    const { url: again } = await browser.follow(more.url, issuer);
    expect(again.origin + again.pathname).to.equal(REDIRECT_URI);
    const second = await oidc.authorizationCodeGrant(config, again, { pkceCodeVerifier: more.verifier, expectedState: more.state, expectedNonce: more.nonce });
    expect(await oidc.fetchUserInfo(config, second.access_token, fixtures.userId)).to.include({ email: USER.email, name: USER.name });
  });

  it('rotates refresh tokens and revokes the whole grant when an old one is reused', async () => {
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const { tokens } = await loginWithCode(config, issuer, { identifier: USER.email, password: USER.password });
    const first = tokens.refresh_token!;
    expect(first, '384-bit refresh tokens').to.have.length(64);
    expect(tokens.access_token, '256-bit access tokens').to.have.length(43);
    const refreshed = await oidc.refreshTokenGrant(config, first);
    expect(refreshed.refresh_token).to.be.a('string').and.not.equal(first);
    expect((await introspect(refreshed.access_token)).active).to.equal(true);

    await expectOAuthError(oidc.refreshTokenGrant(config, first), 'invalid_grant');
    // The reuse revoked everything issued under the grant.
    await expectOAuthError(oidc.refreshTokenGrant(config, refreshed.refresh_token!), 'invalid_grant');
    expect((await introspect(refreshed.access_token)).active).to.equal(false);
  });

  it('issues client-credentials JWT access tokens for a registered API, verifiable against the JWKS', async () => {
    const response = await clientCredentialsToken(issuer, fixtures.machine, { resource: API.identifier, scope: 'read' });
    expect(response.status).to.equal(200);
    const body = (await response.json()) as { access_token: string; token_type: string; scope: string };
    expect(body.token_type).to.equal('Bearer');
    const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));
    const { payload, protectedHeader } = await jwtVerify(body.access_token, jwks, { issuer, audience: API.identifier });
    expect(payload.client_id).to.equal(fixtures.machine.clientId);
    expect(payload.scope).to.equal('read');
    expect(protectedHeader.typ).to.equal('at+jwt');
    expect(payload.tenant_id).to.equal(DEFAULT_TENANT_ID);
    expect(payload.roles).to.deep.equal(['example-api-user']);
  });

  it('gives an API token only the permissions its subject holds, and drops one as soon as it is removed', async () => {
    const { client, clientSecret } = await instance.runtime.clients.create({ name: 'no roles yet', grantTypes: ['client_credentials'], tenantId: DEFAULT_TENANT_ID });
    const credentials = { clientId: client.clientId, clientSecret: clientSecret! };
    const scopeOf = async () => {
      const response = await clientCredentialsToken(issuer, credentials, { resource: API.identifier, scope: 'read write' });
      expect(response.status).to.equal(200);
      return ((await response.json()) as { scope?: string }).scope;
    };
    expect(await scopeOf(), 'no role, no permission').to.equal(undefined);
    const role = await instance.runtime.rbac.createRole(DEFAULT_TENANT_ID, { name: 'writer', permissions: [{ api: API.identifier, permission: 'write' }] });
    await instance.runtime.rbac.assign(DEFAULT_TENANT_ID, role.id, 'client', client.clientId);
    expect(await scopeOf()).to.equal('write');
    await instance.runtime.rbac.updateRole(DEFAULT_TENANT_ID, role.id, role.version, { permissions: [] });
    expect(await scopeOf()).to.equal(undefined);
  });

  it('puts the tenant in the ID token, userinfo and user access tokens for an API', async () => {
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const { tokens } = await loginWithCode(config, issuer, { identifier: USER.email, password: USER.password, extraParams: { resource: API.identifier, scope: 'openid read' } });
    expect(tokens.claims()!.tenant_id).to.equal(DEFAULT_TENANT_ID);
    expect((await oidc.fetchUserInfo(config, tokens.access_token, fixtures.userId)).tenant_id).to.equal(DEFAULT_TENANT_ID);
    // RFC 8707: the token request names the API the access token is for.
    const forApi = await oidc.refreshTokenGrant(config, tokens.refresh_token!, { resource: API.identifier });
    const { payload } = await jwtVerify(forApi.access_token, createRemoteJWKSet(new URL(`${issuer}/jwks`)), { issuer, audience: API.identifier });
    expect(payload).to.include({ sub: fixtures.userId, tenant_id: DEFAULT_TENANT_ID, scope: 'read' });
    expect(payload.roles).to.deep.equal(['example-api-user']);
  });

  it('refuses a resource that is not a registered API', async () => {
    const response = await clientCredentialsToken(issuer, fixtures.machine, { resource: 'https://unknown.example.test', scope: 'read' });
    expect(response.status).to.equal(400);
    expect(((await response.json()) as { error: string }).error).to.equal('invalid_target');
  });

  it('introspects a token as active, then inactive after revocation', async () => {
    const response = await clientCredentialsToken(issuer, fixtures.machine, { scope: 'read' });
    const { access_token: token } = (await response.json()) as { access_token: string };
    const active = await introspect(token);
    expect(active).to.include({ active: true, client_id: fixtures.machine.clientId });
    const revoke = await fetch(`${issuer}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(fixtures.machine) },
      body: new URLSearchParams({ token }).toString(),
    });
    expect(revoke.status).to.equal(200);
    expect((await introspect(token)).active).to.equal(false);
  });

  it('ends the session with RP-initiated logout', async () => {
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const { tokens, browser } = await loginWithCode(config, issuer, { identifier: USER.email, password: USER.password });
    const logoutUrl = oidc.buildEndSessionUrl(config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT_REDIRECT_URI, state: 'bye' });
    const page = await browser.fetch(logoutUrl);
    expect(page.status).to.equal(200);
    const html = await page.text();
    const xsrf = html.match(/name="xsrf" value="([^"]+)"/)![1];
    const confirm = await browser.submitForm(`${issuer}/session/end/confirm`, { xsrf, logout: 'yes' });
    expect(confirm.status).to.equal(303);
    const redirect = new URL(confirm.headers.get('location')!);
    expect(`${redirect.origin}${redirect.pathname}`).to.equal(POST_LOGOUT_REDIRECT_URI);
    expect(redirect.searchParams.get('state')).to.equal('bye');

    // The session is gone: a new authorization request asks for a login again.
    const again = oidc.buildAuthorizationUrl(config, {
      redirect_uri: 'http://127.0.0.1:1/callback',
      scope: 'openid',
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    });
    const { response, url: loginPage } = await browser.follow(again, issuer);
    expect(loginPage.pathname).to.match(/^\/interaction\//);
    expect(await response.text()).to.include('name="identifier"');
    // The session-bound refresh token died with the session.
    await expectOAuthError(oidc.refreshTokenGrant(config, tokens.refresh_token!), 'invalid_grant');
  });

  it('answers the same for an unknown user and a wrong password', async () => {
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const attempts = await Promise.all(
      [{ identifier: 'nobody@example.com', password: 'whatever-password' }, { identifier: USER.email, password: 'wrong password' }].map(
        (credentials) => loginWithCode(config, issuer, credentials).then(() => 'logged in', (error: Error) => error.message),
      ),
    );
    expect(attempts).to.deep.equal(['login failed with 401', 'login failed with 401']);
  });
}, { extra: [clusterBackend] });
