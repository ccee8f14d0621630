// PAR, DPoP and back-channel logout end to end, and a start-up free of library warnings.
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import { clusterBackend, forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { createFixtures, basicAuth, USER, type Fixtures } from '../helpers/fixtures.ts';
import { discover, loginWithCode, POST_LOGOUT_REDIRECT_URI, REDIRECT_URI } from '../helpers/rp.ts';

interface LogoutReceiver {
  uri: string;
  tokens: string[];
  close(): Promise<void>;
}

async function startLogoutReceiver(): Promise<LogoutReceiver> {
  const tokens: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const token = new URLSearchParams(body).get('logout_token');
      if (req.method === 'POST' && token) tokens.push(token);
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { uri: `http://127.0.0.1:${port}/backchannel-logout`, tokens, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

forEachBackend('extended protocol features', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let fixtures: Fixtures;
  let issuer: string;
  let receiver: LogoutReceiver;
  const warnings: string[] = [];

  before(async () => {
    store = await backend.create();
    receiver = await startLogoutReceiver();
    const { warn, info } = console;
    console.warn = (...args: unknown[]) => void warnings.push(args.join(' '));
    console.info = (...args: unknown[]) => void warnings.push(args.join(' '));
    try {
      instance = await startInstance(store.env);
      issuer = instance.url;
      fixtures = await createFixtures(instance.runtime);
      // Exercise the provider once so lazily printed notices would show too.
      await fetch(`${issuer}/.well-known/openid-configuration`);
    } finally {
      Object.assign(console, { warn, info });
    }
  });
  after(async () => {
    await instance?.stop();
    await receiver?.close();
    await store?.cleanup();
  });

  it('starts without development interactions, keys or adapter (no library warnings)', () => {
    expect(warnings.filter((line) => line.includes('oidc-provider'))).to.deep.equal([]);
  });

  it('completes a login through a pushed authorization request', async () => {
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const { tokens } = await loginWithCode(config, issuer, { identifier: USER.email, password: USER.password, par: true });
    expect(tokens.claims()!.sub).to.equal(fixtures.userId);
  });

  it('binds tokens to a DPoP key and refuses them without the proof', async () => {
    const config = await discover(issuer, fixtures.machine.clientId, fixtures.machine.clientSecret);
    const dpop = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'));
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'read' }, { DPoP: dpop });
    expect(tokens.token_type.toLowerCase()).to.equal('dpop');
    const introspection = await fetch(`${issuer}/token/introspection`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(fixtures.machine) },
      body: new URLSearchParams({ token: tokens.access_token }).toString(),
    });
    const body = (await introspection.json()) as { active: boolean; token_type: string; cnf?: { jkt?: string } };
    expect(body.active).to.equal(true);
    expect(body.token_type).to.equal('DPoP');
    expect(body.cnf?.jkt).to.be.a('string');

    const login = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const userDpop = oidc.getDPoPHandle(login, await oidc.randomDPoPKeyPair('ES256'));
    const { tokens: userTokens } = await loginWithCode(login, issuer, { identifier: USER.email, password: USER.password });
    expect(userTokens.token_type.toLowerCase()).to.equal('bearer');
    // A DPoP-bound refresh is usable only with the proof.
    const bound = await oidc.refreshTokenGrant(login, userTokens.refresh_token!, undefined, { DPoP: userDpop });
    expect(bound.token_type.toLowerCase()).to.equal('dpop');
    const info = await oidc.fetchUserInfo(login, bound.access_token, fixtures.userId, { DPoP: userDpop });
    expect(info.sub).to.equal(fixtures.userId);
    const withoutProof = await fetch(`${issuer}/me`, { headers: { authorization: `DPoP ${bound.access_token}` } });
    expect(withoutProof.status, 'RFC 9449 7.1: a malformed DPoP request').to.equal(400);
    expect(withoutProof.headers.get('www-authenticate')).to.match(/^DPoP .*error="invalid_request"/);
    const asBearer = await fetch(`${issuer}/me`, { headers: { authorization: `Bearer ${bound.access_token}` } });
    expect(asBearer.status, 'a DPoP-bound token is no bearer token').to.equal(401);
  });

  it('sends a signed back-channel logout token to the client when the session ends', async () => {
    const { client, clientSecret } = await instance.runtime.clients.create({
      name: 'App with back-channel logout',
      redirectUris: [REDIRECT_URI],
      postLogoutRedirectUris: [POST_LOGOUT_REDIRECT_URI],
      grantTypes: ['authorization_code', 'refresh_token'],
      firstParty: true,
      backchannelLogoutUri: receiver.uri,
    });
    const config = await discover(issuer, client.clientId, clientSecret);
    const { tokens, browser } = await loginWithCode(config, issuer, { identifier: USER.email, password: USER.password });
    const sid = tokens.claims()!.sid;
    expect(sid).to.be.a('string');

    const page = await browser.fetch(oidc.buildEndSessionUrl(config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT_REDIRECT_URI }));
    const xsrf = (await page.text()).match(/name="xsrf" value="([^"]+)"/)![1];
    const confirm = await browser.submitForm(`${issuer}/session/end/confirm`, { xsrf, logout: 'yes' });
    expect(confirm.status).to.equal(303);

    for (let i = 0; i < 50 && !receiver.tokens.length; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(receiver.tokens).to.have.length(1);
    const { payload, protectedHeader } = await jwtVerify(receiver.tokens[0], createRemoteJWKSet(new URL(`${issuer}/jwks`)), {
      issuer,
      audience: client.clientId,
    });
    expect(protectedHeader.typ).to.equal('logout+jwt');
    expect(payload.sub).to.equal(fixtures.userId);
    expect(payload.sid).to.equal(sid);
    expect(payload.events).to.have.property('http://schemas.openid.net/event/backchannel-logout');
  });

  it('authenticates a machine client with private_key_jwt, from registered keys and from a jwks_uri', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'machine-key-1', alg: 'ES256', use: 'sig' };
    const registered = await instance.runtime.clients.create({
      name: 'JWT-authenticated service',
      grantTypes: ['client_credentials'],
      authMethod: 'private_key_jwt',
      jwks: { keys: [jwk] },
    });
    expect(registered.clientSecret, 'no shared secret for private_key_jwt').to.equal(undefined);
    const config = await oidc.discovery(new URL(issuer), registered.client.clientId, undefined, oidc.PrivateKeyJwt({ key: privateKey, kid: 'machine-key-1' }), {
      execute: [oidc.allowInsecureRequests],
    });
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'read' });
    expect(tokens.access_token).to.be.a('string');

    const keyServer = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((resolve) => keyServer.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = keyServer.address() as AddressInfo;
      const remote = await instance.runtime.clients.create({
        name: 'Service with a jwks_uri',
        grantTypes: ['client_credentials'],
        authMethod: 'private_key_jwt',
        jwksUri: `http://127.0.0.1:${port}/jwks.json`,
      });
      const remoteConfig = await oidc.discovery(new URL(issuer), remote.client.clientId, undefined, oidc.PrivateKeyJwt({ key: privateKey, kid: 'machine-key-1' }), {
        execute: [oidc.allowInsecureRequests],
      });
      expect((await oidc.clientCredentialsGrant(remoteConfig, { scope: 'read' })).access_token).to.be.a('string');
    } finally {
      await new Promise((resolve) => keyServer.close(resolve));
    }

    const other = await generateKeyPair('ES256');
    const forged = await oidc.discovery(new URL(issuer), registered.client.clientId, undefined, oidc.PrivateKeyJwt({ key: other.privateKey, kid: 'machine-key-1' }), {
      execute: [oidc.allowInsecureRequests],
    });
    const refused = await oidc.clientCredentialsGrant(forged, { scope: 'read' }).then(() => 'accepted', (error: { error?: string }) => error.error);
    expect(refused).to.equal('invalid_client');
  });

  it('refuses to register private keys as a client JWKS', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const registering = instance.runtime.clients.create({
      name: 'leaky',
      grantTypes: ['client_credentials'],
      authMethod: 'private_key_jwt',
      jwks: { keys: [await exportJWK(privateKey)] },
    });
    await expect(registering).to.be.rejectedWith(/private/i);
  });
}, { extra: [clusterBackend] });
