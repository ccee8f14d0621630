// private_key_jwt client authentication (RFC 7523) with keys registered through the admin API,
// inline or behind a jwks_uri: a real signed assertion, a replayed one (same jti) refused on this
// instance and (PostgreSQL + Redis, where two instances share the stores) on another, and a
// jwks_uri on a private address never fetched while the SSRF guard is on.
import { expect } from 'chai';
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { clientCredentialsToken } from '../helpers/fixtures.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import { ADMIN_API_PERMISSIONS } from '../../src/tenants/system-roles.ts';

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const KID = 'service-key-1';

interface KeyServer {
  url: string;
  requests: number;
  close(): Promise<void>;
}

async function startKeyServer(jwks: unknown): Promise<KeyServer> {
  const state = { requests: 0 };
  const server = http.createServer((_req, res) => {
    state.requests += 1;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`,
    get requests() {
      return state.requests;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

// A client assertion as a service library would sign it: iss = sub = client_id, aud = the token
// endpoint, a fresh jti, a short expiry.
function assertion(clientId: string, audience: string, key: CryptoKey, jti = randomUUID()): Promise<string> {
  return new SignJWT({ jti })
    .setProtectedHeader({ alg: 'ES256', kid: KID })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(audience)
    .setIssuedAt()
    .setExpirationTime('60s')
    .sign(key);
}

function tokenWithAssertion(issuer: string, clientAssertion: string, extra: Record<string, string> = {}): Promise<Response> {
  return fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: clientAssertion, ...extra }).toString(),
  });
}

forEachBackend('private_key_jwt machine clients', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let guarded: Instance | undefined;
  let keyServer: KeyServer;
  let privateKey: CryptoKey;
  let inlineClient: string;
  let remoteClient: string;
  let adminToken: string;
  const shared = backend.name.includes('PostgreSQL');

  async function registerClient(issuer: string, body: Record<string, unknown>): Promise<string> {
    const response = await fetch(`${issuer}/api/v1/tenants/${DEFAULT_TENANT_ID}/clients`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ grantTypes: ['client_credentials'], authMethod: 'private_key_jwt', ...body }),
    });
    const created = (await response.json()) as { clientId: string; clientSecret?: string };
    expect(response.status, JSON.stringify(created)).to.equal(201);
    expect(created.clientSecret).to.equal(undefined);
    return created.clientId;
  }

  before(async function () {
    // Two instances start here; a busy machine needs more than the default 30 s for that.
    this.timeout(90_000);
    store = await backend.create();
    instance = await startInstance(store.env);
    const { runtime } = instance;
    const admin = await runtime.clients.create({ name: 'platform admin', grantTypes: ['client_credentials'], tenantId: DEFAULT_TENANT_ID });
    await runtime.rbac.assign(DEFAULT_TENANT_ID, (await runtime.rbac.roleIdByName(DEFAULT_TENANT_ID, 'root-admin'))!, 'client', admin.client.clientId);
    const issued = await clientCredentialsToken(instance.url, { clientId: admin.client.clientId, clientSecret: admin.clientSecret! }, {
      resource: runtime.adminApi,
      scope: ADMIN_API_PERMISSIONS.join(' '),
    });
    adminToken = ((await issued.json()) as { access_token: string }).access_token;

    const pair = await generateKeyPair('ES256', { extractable: true });
    privateKey = pair.privateKey;
    const jwks = { keys: [{ ...(await exportJWK(pair.publicKey)), kid: KID, alg: 'ES256', use: 'sig' }] };
    keyServer = await startKeyServer(jwks);
    inlineClient = await registerClient(instance.url, { name: 'Reporting (inline JWKS)', jwks });
    remoteClient = await registerClient(instance.url, { name: 'Reporting (jwks_uri)', jwksUri: keyServer.url });

    // A second instance sharing PostgreSQL and Redis (the embedded stores belong to one process),
    // with the SSRF guard on (OUTBOUND_ALLOW_PRIVATE_NETWORK=false).
    if (shared) guarded = await startInstance({ ...store.env, OUTBOUND_ALLOW_PRIVATE_NETWORK: 'false' }, { issuer: instance.url });
  });
  after(async () => {
    await guarded?.stop();
    await keyServer?.close();
    await instance?.stop();
    await store?.cleanup();
  });

  it('authenticates with keys registered inline and refuses the same assertion (jti) a second time', async () => {
    const signed = await assertion(inlineClient, `${instance.url}/token`, privateKey);
    const first = await tokenWithAssertion(instance.url, signed);
    expect(first.status, await first.clone().text()).to.equal(200);
    expect(((await first.json()) as { access_token?: string }).access_token).to.be.a('string');

    const replayed = await tokenWithAssertion(instance.url, signed);
    expect(replayed.status).to.equal(401);
    expect(((await replayed.json()) as { error: string }).error).to.equal('invalid_client');
    // A new assertion (new jti) from the same key works again.
    expect((await tokenWithAssertion(instance.url, await assertion(inlineClient, instance.url, privateKey))).status).to.equal(200);
  });

  it('lets exactly one of several simultaneous requests with one assertion through', async () => {
    const signed = await assertion(inlineClient, `${instance.url}/token`, privateKey);
    const responses = await Promise.all(Array.from({ length: 6 }, () => tokenWithAssertion(instance.url, signed)));
    expect(responses.map((response) => response.status).sort()).to.deep.equal([200, 401, 401, 401, 401, 401]);
  });

  it('authenticates with keys fetched from the client’s jwks_uri', async () => {
    const before = keyServer.requests;
    const response = await tokenWithAssertion(instance.url, await assertion(remoteClient, `${instance.url}/token`, privateKey));
    expect(response.status, await response.clone().text()).to.equal(200);
    expect(keyServer.requests).to.be.greaterThan(before);
  });

  it('refuses an assertion signed by a key the client did not register', async () => {
    const stranger = await generateKeyPair('ES256');
    for (const clientId of [inlineClient, remoteClient]) {
      const response = await tokenWithAssertion(instance.url, await assertion(clientId, `${instance.url}/token`, stranger.privateKey));
      expect(response.status).to.equal(401);
      expect(((await response.json()) as { error: string }).error).to.equal('invalid_client');
    }
  });

  if (!shared) return;

  it('does not fetch a jwks_uri on a private address while OUTBOUND_ALLOW_PRIVATE_NETWORK is off', async () => {
    const { runtime } = guarded!;
    const { client } = await runtime.clients.create({ name: 'private jwks_uri', grantTypes: ['client_credentials'], authMethod: 'private_key_jwt', jwksUri: keyServer.url });
    // The same kind of assertion from a client with inline keys passes there: only the fetch is refused.
    expect((await tokenWithAssertion(guarded!.url, await assertion(inlineClient, instance.url, privateKey))).status).to.equal(200);
    const before = keyServer.requests;
    const response = await tokenWithAssertion(guarded!.url, await assertion(client.clientId, instance.url, privateKey));
    expect(response.status).to.equal(401);
    expect(((await response.json()) as { error: string }).error).to.equal('invalid_client');
    expect(keyServer.requests, 'the key server was never reached').to.equal(before);
  });

  it('refuses on another instance an assertion already used on this one (replay detection in the shared hot store)', async () => {
    const signed = await assertion(inlineClient, instance.url, privateKey);
    expect((await tokenWithAssertion(instance.url, signed)).status).to.equal(200);
    const replayed = await tokenWithAssertion(guarded!.url, signed);
    expect(replayed.status).to.equal(401);
    expect(((await replayed.json()) as { error: string }).error).to.equal('invalid_client');
  });
});
