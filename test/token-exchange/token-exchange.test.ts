// Token exchange (RFC 8693) end to end: a service trades a user's access token for a narrower
// one for a downstream API; an administrator impersonates only with users:impersonate.
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, generateKeyPair, importJWK, jwtVerify, SignJWT } from 'jose';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { API, USER, basicAuth, clientCredentialsToken, createFixtures, introspect, type Fixtures } from '../helpers/fixtures.ts';
import { authorizeWithLogin, discover, REDIRECT_URI } from '../helpers/rp.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import { IMPERSONATION_PERMISSION } from '../../src/tenants/system-roles.ts';
import { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT, USER_ID_TOKEN_TYPE } from '../../src/oidc/token-exchange.ts';

const DOWNSTREAM = { identifier: 'https://downstream.example.test', name: 'Downstream API', scopes: ['read', 'write', 'delete'] };
const ADMIN = { email: 'grace@example.com', username: 'grace', name: 'Grace Hopper', password: 'another horse battery staple' };
const PLAIN_ADMIN = { email: 'linus@example.com', username: 'linus', name: 'Linus Admin', password: 'a third horse battery staple' };

interface Credentials {
  clientId: string;
  clientSecret: string;
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

forEachBackend('token exchange (RFC 8693)', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let issuer: string;
  let fixtures: Fixtures;
  let service: Credentials;
  let secondService: Credentials;
  let console: Credentials;
  let adminId: string;
  let impersonatorRoleId: string;
  let readToken: string;
  let fullToken: string;

  async function exchange(client: Credentials, body: Record<string, string | string[]>): Promise<Answer> {
    const form = new URLSearchParams({ grant_type: TOKEN_EXCHANGE_GRANT });
    for (const [name, value] of Object.entries(body)) for (const one of [value].flat()) form.append(name, one);
    const response = await fetch(`${issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(client) },
      body: form.toString(),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  const delegate = (client: Credentials, subjectToken: string, extra: Record<string, string | string[]> = {}) =>
    exchange(client, { subject_token: subjectToken, subject_token_type: ACCESS_TOKEN_TYPE, audience: DOWNSTREAM.identifier, ...extra });

  function expectError(answer: Answer, error: string): void {
    expect(answer.status, JSON.stringify(answer.body)).to.equal(error === 'invalid_client' ? 401 : 400);
    expect(answer.body.error, JSON.stringify(answer.body)).to.equal(error);
    expect(answer.body).to.not.have.property('access_token');
  }

  async function verify(token: string, audience = DOWNSTREAM.identifier) {
    const { payload, protectedHeader } = await jwtVerify(token, createRemoteJWKSet(new URL(`${issuer}/jwks`)), { issuer, audience, typ: 'at+jwt' });
    expect(protectedHeader.typ).to.equal('at+jwt');
    return payload;
  }

  // An access token for the user, through the login form: a JWT for `resource` when given (asked
  // for at the token endpoint too, RFC 8707), else the opaque userinfo token.
  async function userToken(client: Credentials & { identifier?: string; password?: string }, scope: string, resource?: string): Promise<string> {
    const config = await discover(issuer, client.clientId, client.clientSecret);
    const login = await authorizeWithLogin(config, issuer, {
      identifier: client.identifier ?? USER.email,
      password: client.password ?? USER.password,
      extraParams: resource ? { resource, scope } : { scope },
    });
    const tokens = await oidc.authorizationCodeGrant(
      config,
      login.callback,
      { pkceCodeVerifier: login.verifier, expectedState: login.state, expectedNonce: login.nonce },
      resource ? { resource } : undefined,
    );
    return tokens.access_token;
  }

  before(async () => {
    store = await backend.create();
    instance = await startInstance(store.env);
    issuer = instance.url;
    const { runtime } = instance;
    fixtures = await createFixtures(runtime);
    await runtime.apis.create(DOWNSTREAM);
    // The user may read and write downstream, never delete.
    const downstreamUser = await runtime.rbac.createRole(DEFAULT_TENANT_ID, {
      name: 'downstream-user',
      permissions: ['read', 'write'].map((permission) => ({ api: DOWNSTREAM.identifier, permission })),
    });
    await runtime.rbac.assign(DEFAULT_TENANT_ID, downstreamUser.id, 'user', fixtures.userId);

    const created = async (name: string, grantTypes: string[], extra: Record<string, unknown> = {}) => {
      const { client, clientSecret } = await runtime.clients.create({ name, grantTypes, tenantId: DEFAULT_TENANT_ID, ...extra });
      return { clientId: client.clientId, clientSecret: clientSecret! };
    };
    service = await created('Orders service', [TOKEN_EXCHANGE_GRANT]);
    secondService = await created('Inventory service', [TOKEN_EXCHANGE_GRANT]);
    console = await created('Support console', ['authorization_code', 'refresh_token', TOKEN_EXCHANGE_GRANT], { redirectUris: [REDIRECT_URI], firstParty: true });

    const admin = await runtime.users.create(DEFAULT_TENANT_ID, { ...ADMIN, emailVerified: true });
    adminId = admin.id;
    const impersonator = await runtime.rbac.createRole(DEFAULT_TENANT_ID, { name: 'impersonator', permissions: [{ api: runtime.adminApi, permission: IMPERSONATION_PERMISSION }] });
    impersonatorRoleId = impersonator.id;
    await runtime.rbac.assign(DEFAULT_TENANT_ID, impersonator.id, 'user', admin.id);
    // A tenant admin through the system role: everything but impersonation.
    const plainAdmin = await runtime.users.create(DEFAULT_TENANT_ID, { ...PLAIN_ADMIN, emailVerified: true });
    await runtime.rbac.assign(DEFAULT_TENANT_ID, (await runtime.rbac.roleIdByName(DEFAULT_TENANT_ID, 'admin'))!, 'user', plainAdmin.id);

    readToken = await userToken(fixtures.web, 'openid read', API.identifier);
    fullToken = await userToken(fixtures.web, 'openid read write', API.identifier);
  });

  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  it('lists the grant type in discovery', async () => {
    const metadata = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as { grant_types_supported: string[] };
    expect(metadata.grant_types_supported).to.include(TOKEN_EXCHANGE_GRANT);
  });

  it('narrows a user token to a downstream API: the user as subject, the service in act, verifiable against the JWKS', async () => {
    const subject = decodeJwt(fullToken);
    expect(subject.scope).to.equal('read write');

    const answer = await delegate(service, fullToken, { scope: 'read' });
    expect(answer.status, JSON.stringify(answer.body)).to.equal(200);
    expect(answer.body).to.include({ issued_token_type: ACCESS_TOKEN_TYPE, token_type: 'Bearer', scope: 'read' });
    expect(answer.body).to.not.have.property('refresh_token');
    const payload = await verify(answer.body.access_token as string);
    expect(payload).to.include({ sub: fixtures.userId, client_id: service.clientId, scope: 'read', tenant_id: DEFAULT_TENANT_ID });
    expect(payload.aud).to.equal(DOWNSTREAM.identifier);
    expect(payload.act).to.deep.equal({ sub: service.clientId });
    expect(payload.exp!).to.be.at.most(subject.exp!);
    expect(answer.body.expires_in as number).to.be.at.most(subject.exp! - Math.floor(Date.now() / 1000) + 1);
  });

  it('without a scope, issues what the subject token and the user’s downstream permissions both allow', async () => {
    const full = await delegate(service, fullToken);
    expect(full.status, JSON.stringify(full.body)).to.equal(200);
    expect(full.body.scope).to.equal('read write');
    // `resource` names the API as well as `audience` does.
    const narrow = await exchange(service, { subject_token: readToken, subject_token_type: ACCESS_TOKEN_TYPE, resource: DOWNSTREAM.identifier });
    expect(narrow.status, JSON.stringify(narrow.body)).to.equal(200);
    expect((await verify(narrow.body.access_token as string)).scope).to.equal('read');
  });

  it('refuses to widen: a scope the subject token lacks, or the user does not hold downstream', async () => {
    // The user holds write downstream, but this subject token carries read only.
    expectError(await delegate(service, readToken, { scope: 'read write' }), 'invalid_scope');
    // The subject token carries write... and delete is held by nobody.
    expectError(await delegate(service, fullToken, { scope: 'delete' }), 'invalid_scope');
    expectError(await delegate(service, fullToken, { scope: 'read unknown' }), 'invalid_scope');
  });

  it('nests act when an exchanged token is exchanged again (RFC 8693 4.1)', async () => {
    const first = await delegate(service, fullToken, { scope: 'read write' });
    const second = await delegate(secondService, first.body.access_token as string, { scope: 'read' });
    expect(second.status, JSON.stringify(second.body)).to.equal(200);
    const payload = await verify(second.body.access_token as string);
    expect(payload.sub).to.equal(fixtures.userId);
    expect(payload.act).to.deep.equal({ sub: secondService.clientId, act: { sub: service.clientId } });
    // Still only shrinking: the intermediate token's scopes bound the next one.
    const narrowed = await delegate(secondService, second.body.access_token as string);
    expect(narrowed.body.scope).to.equal('read');
    expectError(await delegate(secondService, second.body.access_token as string, { scope: 'write' }), 'invalid_scope');
  });

  it('refuses an audience that is not a registered API, and more than one target', async () => {
    expectError(await delegate(service, fullToken, { audience: 'https://unknown.example.test' }), 'invalid_target');
    expectError(await delegate(service, fullToken, { audience: [DOWNSTREAM.identifier, API.identifier] }), 'invalid_target');
    expectError(await exchange(service, { subject_token: fullToken, subject_token_type: ACCESS_TOKEN_TYPE }), 'invalid_request');
  });

  it('refuses a client not registered for the grant, and requests missing what the grant needs', async () => {
    expectError(await delegate(fixtures.machine, fullToken), 'unauthorized_client');
    expectError(await exchange(service, { subject_token: fullToken, audience: DOWNSTREAM.identifier }), 'invalid_request');
    expectError(await delegate(service, fullToken, { subject_token_type: 'urn:ietf:params:oauth:token-type:id_token' }), 'invalid_request');
    expectError(await delegate(service, fullToken, { requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' }), 'invalid_request');
  });

  it('refuses a revoked opaque subject token', async () => {
    const opaque = await userToken(fixtures.web, 'openid');
    // Accepted as a subject while valid (it carries no API scope, so nothing can be delegated)...
    expectError(await delegate(service, opaque), 'invalid_scope');
    const revoked = await fetch(`${issuer}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(fixtures.web) },
      body: new URLSearchParams({ token: opaque, token_type_hint: 'access_token' }).toString(),
    });
    expect(revoked.status).to.equal(200);
    // ...and unknown once revoked.
    expectError(await delegate(service, opaque), 'invalid_grant');
  });

  it('refuses a JWT subject token whose session has ended, although its signature is still valid', async () => {
    const { runtime } = instance;
    const jwt = await userToken(fixtures.web, 'openid read', API.identifier);
    expect((await delegate(service, jwt, { scope: 'read' })).status).to.equal(200);
    // The sign-in above is the user's newest session; ending it denies its JWTs by jti.
    const [newest] = (await runtime.sessions.listActive(DEFAULT_TENANT_ID, fixtures.userId)).sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
    await runtime.sessions.end(DEFAULT_TENANT_ID, fixtures.userId, newest.id);
    expectError(await delegate(service, jwt, { scope: 'read' }), 'invalid_grant');
    // The user's other sessions and their tokens are untouched.
    expect((await delegate(service, readToken, { scope: 'read' })).status).to.equal(200);
  });

  it('refuses expired subject tokens, tokens of another issuer or key, and garbage', async () => {
    const { jwks } = await instance.runtime.keys.providerJwks(instance.runtime.config.signingAlg);
    const kid = decodeProtectedHeader(fullToken).kid;
    const jwk = jwks.keys.find((key) => key.kid === kid)!;
    const providerKey = await importJWK(jwk, jwk.alg);
    const claims = decodeJwt(fullToken);
    const now = Math.floor(Date.now() / 1000);
    const signed = (key: Parameters<SignJWT['sign']>[0], payload: Record<string, unknown>) =>
      new SignJWT(payload).setProtectedHeader({ alg: jwk.alg!, kid, typ: 'at+jwt' }).sign(key);

    // Signed by this provider's own key, so only the expiry refuses it.
    const control = await signed(providerKey, { ...claims, jti: 'control' });
    expect((await delegate(service, control)).status).to.equal(200);
    expectError(await delegate(service, await signed(providerKey, { ...claims, iat: now - 600, exp: now - 300 })), 'invalid_grant');
    expectError(await delegate(service, await signed(providerKey, { ...claims, iss: 'https://other.example.test' })), 'invalid_grant');
    const { privateKey: strangerKey } = await generateKeyPair(jwk.alg!, { extractable: true });
    expectError(await delegate(service, await signed(strangerKey, claims)), 'invalid_grant');
    expectError(await delegate(service, 'not-a-token'), 'invalid_grant');
  });

  it('lets an administrator impersonate a user only with users:impersonate, checked at the time of the call', async () => {
    const consoleAdmin = { ...console, identifier: ADMIN.email, password: ADMIN.password };
    const actorToken = await userToken(consoleAdmin, 'openid');
    const impersonate = (client: Credentials, actor: string, extra: Record<string, string> = {}) =>
      exchange(client, {
        subject_token: fixtures.userId,
        subject_token_type: USER_ID_TOKEN_TYPE,
        actor_token: actor,
        actor_token_type: ACCESS_TOKEN_TYPE,
        audience: DOWNSTREAM.identifier,
        ...extra,
      });

    const answer = await impersonate(console, actorToken);
    expect(answer.status, JSON.stringify(answer.body)).to.equal(200);
    const payload = await verify(answer.body.access_token as string);
    expect(payload).to.include({ sub: fixtures.userId, scope: 'read write', tenant_id: DEFAULT_TENANT_ID });
    expect(payload.act).to.deep.equal({ sub: adminId });

    // Not for the admin API, not with an actor token issued to another client, never more than the user holds.
    expectError(await impersonate(console, actorToken, { audience: instance.runtime.adminApi }), 'invalid_target');
    expectError(await impersonate(service, actorToken), 'invalid_grant');
    expectError(await impersonate(console, actorToken, { scope: 'delete' }), 'invalid_scope');
    // An actor token is no part of a delegation.
    expectError(await delegate(console, fullToken, { actor_token: actorToken, actor_token_type: ACCESS_TOKEN_TYPE }), 'invalid_request');

    // A tenant admin (the system role) does not hold the permission.
    const plainToken = await userToken({ ...console, identifier: PLAIN_ADMIN.email, password: PLAIN_ADMIN.password }, 'openid');
    expectError(await impersonate(console, plainToken), 'invalid_grant');

    // Taking the role away refuses the next call with the same, still valid, actor token.
    await instance.runtime.rbac.unassign(DEFAULT_TENANT_ID, impersonatorRoleId, 'user', adminId);
    expectError(await impersonate(console, actorToken), 'invalid_grant');

    // The audit trail, read through the admin API: the impersonation granted, and the two refused
    // for the missing permission (the tenant admin's, and the administrator's after losing the role).
    const registered = await instance.runtime.clients.create({ name: 'Auditor', grantTypes: ['client_credentials'], tenantId: DEFAULT_TENANT_ID });
    const auditor = { clientId: registered.client.clientId, clientSecret: registered.clientSecret! };
    await instance.runtime.rbac.assign(DEFAULT_TENANT_ID, (await instance.runtime.rbac.roleIdByName(DEFAULT_TENANT_ID, 'admin'))!, 'client', auditor.clientId);
    const adminToken = (await (await clientCredentialsToken(issuer, auditor, { resource: instance.runtime.adminApi, scope: 'audit:read' })).json()) as { access_token: string };
    const response = await fetch(`${issuer}/api/v1/tenants/${DEFAULT_TENANT_ID}/audit?type=token.impersonation`, { headers: { authorization: `Bearer ${adminToken.access_token}` } });
    expect(response.status).to.equal(200);
    const { items } = (await response.json()) as { items: Array<{ outcome: string; actor: { id: string } | null; target: { id: string } | null; details: Record<string, unknown> }> };
    expect(items.map((item) => item.outcome).sort()).to.deep.equal(['failure', 'failure', 'success']);
    const granted = items.find((item) => item.outcome === 'success')!;
    expect(granted.actor?.id).to.equal(adminId);
    expect(granted.target?.id).to.equal(fixtures.userId);
    expect(granted.details).to.include({ clientId: console.clientId, audience: DOWNSTREAM.identifier, jti: payload.jti });
  });
  it('denies exchanged tokens when their user is suspended or changes password, although they belong to no grant', async () => {
    const { runtime } = instance;
    const downstreamRole = (await runtime.rbac.roleIdByName(DEFAULT_TENANT_ID, 'downstream-user'))!;
    // The subject token must carry an API scope to delegate.
    const apiReader = await runtime.rbac.createRole(DEFAULT_TENANT_ID, { name: 'api-reader', permissions: [{ api: API.identifier, permission: 'read' }] });
    for (const change of ['password', 'suspension'] as const) {
      const person = { email: `exchange-${change}@example.com`, password: 'a long enough passphrase here' };
      const user = await runtime.users.create(DEFAULT_TENANT_ID, { ...person, emailVerified: true });
      await runtime.rbac.assign(DEFAULT_TENANT_ID, downstreamRole, 'user', user.id);
      await runtime.rbac.assign(DEFAULT_TENANT_ID, apiReader.id, 'user', user.id);
      const subject = await userToken({ ...fixtures.web, identifier: person.email, password: person.password }, 'openid read', API.identifier);
      const exchanged = await delegate(service, subject, { scope: 'read' });
      expect(exchanged.status, JSON.stringify(exchanged.body)).to.equal(200);
      const token = exchanged.body.access_token as string;
      expect((await introspect(issuer, fixtures.web, token)).active).to.equal(true);
      if (change === 'password') await runtime.credentials.adminReset(DEFAULT_TENANT_ID, user.id, 'temporary');
      else await runtime.users.setStatus(DEFAULT_TENANT_ID, user.id, 'suspended', 'test');
      expect((await introspect(issuer, fixtures.web, token)).active, `after the ${change}`).to.equal(false);
    }
  });
});
