// The upstream protocol client on its own: OpenID Connect against a second, real instance of this
// provider (signed in through its login pages over plain HTTP), plain OAuth 2 against the same
// instance, Genesys Cloud against a local fake in its shapes, and the failures each one maps to.
// The client keeps no storage, so one storage backend for the upstream instance is enough.
import { expect } from 'chai';
import http from 'node:http';
import { createHash, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { backends, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, freePort, type Instance } from '../helpers/instance.ts';
import { Browser, formAction, hiddenField } from '../helpers/browser.ts';
import { startFakeGenesys, DEFAULT_ORGANIZATION, type FakeGenesys } from '../helpers/fake-genesys.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import { createUpstreamClient, type UpstreamClient, type UpstreamTransaction } from '../../src/federation/upstream/index.ts';
import { mapProfile, stringsAt, subjectAt, valuesAt } from '../../src/federation/upstream/claim-paths.ts';
import { UpstreamError, type ConnectorWithSecrets, type UpstreamFailure } from '../../src/federation/connector.ts';

const REDIRECT_URI = 'http://127.0.0.1:1/federation/callback';
const ADA = { email: 'ada@upstream.example', username: 'ada', name: 'Ada Lovelace', password: 'correct horse battery staple' };
const BOB = { email: 'bob@upstream.example', username: 'bob', name: 'Bob Unverified', password: 'another long pass phrase' };

function connector(overrides: Partial<ConnectorWithSecrets>): ConnectorWithSecrets {
  return {
    id: randomUUID(),
    tenantId: DEFAULT_TENANT_ID,
    name: 'upstream',
    displayName: 'Upstream',
    kind: 'oidc',
    enabled: true,
    clientId: 'unset',
    clientAuth: 'client_secret_basic',
    scopes: [],
    useUserinfo: false,
    trustEmail: false,
    jitProvisioning: true,
    emailDomains: [],
    roleMappings: [],
    version: 1,
    createdAt: new Date(),
    updatedAt: new Date(),
    secrets: {},
    ...overrides,
  };
}

async function failureOf(promise: Promise<unknown>): Promise<{ failure: UpstreamFailure; message: string }> {
  try {
    await promise;
  } catch (error) {
    expect(error, String(error)).to.be.instanceOf(UpstreamError);
    return { failure: (error as UpstreamError).failure, message: (error as UpstreamError).message };
  }
  throw new Error('expected an UpstreamError');
}

// The person at the upstream's login pages: identifier, password, consent when asked, until the
// browser is sent back to the redirect URI. Returns the callback's query.
async function signInUpstream(url: string, origin: string, user: { email: string; password: string }): Promise<URLSearchParams> {
  const browser = new Browser();
  let { response, url: at } = await browser.follow(url, origin);
  for (let step = 0; step < 6 && at.origin === origin; step++) {
    let html = await response.text();
    if (html.includes('/identify"')) {
      const identified = await browser.submitForm(new URL(formAction(html, '/identify'), origin), { csrf: hiddenField(html, 'csrf'), identifier: user.email });
      html = await identified.text();
    }
    let answer: Response;
    if (html.includes('name="password"') && html.includes('/login"')) {
      answer = await browser.submitForm(new URL(formAction(html, '/login'), origin), { csrf: hiddenField(html, 'csrf'), identifier: user.email, password: user.password });
    } else if (html.includes('/confirm"')) {
      answer = await browser.submitForm(new URL(formAction(html, '/confirm'), origin), { csrf: hiddenField(html, 'csrf') });
    } else {
      throw new Error(`unexpected upstream page ${at.pathname} (${response.status})`);
    }
    expect(answer.status, `${at.pathname}: ${(await answer.clone().text()).slice(0, 200)}`).to.equal(303);
    ({ response, url: at } = await browser.follow(new URL(answer.headers.get('location')!, origin), origin));
  }
  expect(`${at.origin}${at.pathname}`).to.equal(REDIRECT_URI);
  return at.searchParams;
}

// The person presses Cancel on the upstream's sign-in page.
async function cancelAtUpstream(url: string, origin: string): Promise<URLSearchParams> {
  const browser = new Browser();
  const { response } = await browser.follow(url, origin);
  const html = await response.text();
  const cancelled = await browser.submitForm(new URL(formAction(html, '/abort'), origin), { csrf: hiddenField(html, 'csrf') });
  expect(cancelled.status).to.equal(303);
  const { url: back } = await browser.follow(new URL(cancelled.headers.get('location')!, origin), origin);
  expect(`${back.origin}${back.pathname}`).to.equal(REDIRECT_URI);
  return back.searchParams;
}

// Follows the fake Genesys authorize redirect (no login page there) to the callback.
async function authorizeAtGenesys(url: string): Promise<URLSearchParams> {
  const response = await fetch(url, { redirect: 'manual' });
  expect(response.status).to.equal(302);
  const back = new URL(response.headers.get('location')!);
  expect(`${back.origin}${back.pathname}`).to.equal(REDIRECT_URI);
  return back.searchParams;
}

describe('federation upstream client', function () {
  // The upstream instance starts here; a busy machine needs more than the default 30 s for that.
  this.timeout(90_000);
  let store: BackendEnv;
  let upstream: Instance;
  let upstreamClient: UpstreamClient;
  let adaId: string;
  let bobId: string;
  let basicClient: { clientId: string; clientSecret: string };
  let postClient: { clientId: string; clientSecret: string };
  let keyClientId: string;
  let privateJwk: JWK;

  before(async () => {
    store = await backends[0].create();
    upstream = await startInstance(store.env);
    const { runtime } = upstream;
    adaId = (await runtime.users.create(DEFAULT_TENANT_ID, { ...ADA, emailVerified: true })).id;
    bobId = (await runtime.users.create(DEFAULT_TENANT_ID, { ...BOB, emailVerified: false })).id;
    const common = { redirectUris: [REDIRECT_URI], grantTypes: ['authorization_code'], firstParty: true };
    const basic = await runtime.clients.create({ name: 'Downstream IdP (basic)', ...common });
    basicClient = { clientId: basic.client.clientId, clientSecret: basic.clientSecret! };
    const post = await runtime.clients.create({ name: 'Downstream IdP (post)', authMethod: 'client_secret_post', ...common });
    postClient = { clientId: post.client.clientId, clientSecret: post.clientSecret! };
    const pair = await generateKeyPair('ES256', { extractable: true });
    const kid = 'downstream-key-1';
    privateJwk = { ...(await exportJWK(pair.privateKey)), kid, alg: 'ES256' };
    const publicJwk = { ...(await exportJWK(pair.publicKey)), kid, alg: 'ES256', use: 'sig' };
    const keyed = await runtime.clients.create({ name: 'Downstream IdP (key)', authMethod: 'private_key_jwt', jwks: { keys: [publicJwk] }, ...common });
    keyClientId = keyed.client.clientId;
    upstreamClient = createUpstreamClient({ allowPrivateNetwork: true, timeoutMs: 5000 });
  });
  after(async () => {
    await upstream?.stop().catch(() => {});
    await store?.cleanup();
  });

  function oidcConnector(overrides: Partial<ConnectorWithSecrets> = {}): ConnectorWithSecrets {
    return connector({
      kind: 'oidc',
      issuer: upstream.url,
      clientId: basicClient.clientId,
      secrets: { clientSecret: basicClient.clientSecret },
      scopes: ['openid', 'email', 'profile'],
      useUserinfo: true,
      ...overrides,
    });
  }

  async function signIn(target: ConnectorWithSecrets, user = ADA, extra?: { loginHint?: string }) {
    const { url, transaction } = await upstreamClient.begin(target, REDIRECT_URI, extra);
    const callback = await signInUpstream(url, upstream.url, user);
    return { url, transaction, callback };
  }

  describe('OpenID Connect', () => {
    it('sends the person with PKCE (S256), state and nonce and returns the verified profile (client_secret_basic, userinfo)', async () => {
      const target = oidcConnector();
      const { url, transaction, callback } = await signIn(target, ADA, { loginHint: ADA.email });
      const sent = new URL(url).searchParams;
      expect(sent.get('response_type')).to.equal('code');
      expect(sent.get('client_id')).to.equal(basicClient.clientId);
      expect(sent.get('redirect_uri')).to.equal(REDIRECT_URI);
      expect(sent.get('scope')).to.equal('openid email profile');
      expect(sent.get('state')).to.equal(transaction.state);
      expect(sent.get('nonce')).to.equal(transaction.nonce);
      expect(sent.get('login_hint')).to.equal(ADA.email);
      expect(sent.get('code_challenge_method')).to.equal('S256');
      expect(sent.get('code_challenge')).to.equal(createHash('sha256').update(transaction.codeVerifier).digest('base64url'));
      expect(callback.get('code')).to.be.a('string');

      const profile = await upstreamClient.complete(target, transaction, callback);
      expect(profile).to.deep.equal({ subject: adaId, email: ADA.email, emailVerified: true, name: ADA.name, groups: [] });
    });

    it('takes emailVerified from the upstream even when the connector trusts its addresses', async () => {
      const target = oidcConnector({ trustEmail: true });
      const { transaction, callback } = await signIn(target, BOB);
      const profile = await upstreamClient.complete(target, transaction, callback);
      expect(profile.subject).to.equal(bobId);
      expect(profile.email).to.equal(BOB.email);
      expect(profile.emailVerified).to.equal(false);
    });

    it('maps claims by the connector’s claim mapping and falls back to trustEmail when the upstream says nothing', async () => {
      const target = oidcConnector({
        clientAuth: 'client_secret_post',
        clientId: postClient.clientId,
        secrets: { clientSecret: postClient.clientSecret },
        trustEmail: true,
        // tenant_id stands in for a groups claim: this upstream emits no roles in its claims.
        claimMapping: { subject: 'sub', email: 'email', name: 'preferred_username', groups: 'tenant_id' },
      });
      const { transaction, callback } = await signIn(target);
      const profile = await upstreamClient.complete(target, transaction, callback);
      expect(profile).to.deep.equal({ subject: adaId, email: ADA.email, emailVerified: true, name: ADA.username, groups: [DEFAULT_TENANT_ID] });
    });

    it('reads only the ID token without userinfo', async () => {
      const target = oidcConnector({ useUserinfo: false, trustEmail: false });
      const { transaction, callback } = await signIn(target);
      const profile = await upstreamClient.complete(target, transaction, callback);
      expect(profile.subject).to.equal(adaId);
      // This upstream puts scope claims in userinfo, not in an ID token issued with an access token.
      expect(profile.email).to.equal(undefined);
      expect(profile.emailVerified).to.equal(false);
    });

    it('authenticates to the upstream with private_key_jwt', async () => {
      const target = oidcConnector({ clientAuth: 'private_key_jwt', clientId: keyClientId, secrets: { privateJwk } });
      const { transaction, callback } = await signIn(target);
      const profile = await upstreamClient.complete(target, transaction, callback);
      expect(profile).to.include({ subject: adaId, email: ADA.email, emailVerified: true });
    });

    it('says invalid_client when the upstream refuses the secret or the key', async () => {
      const good = oidcConnector();
      const { transaction, callback } = await signIn(good);
      const wrong = { ...good, version: 2, secrets: { clientSecret: 'not-the-secret' } };
      const refused = await failureOf(upstreamClient.complete(wrong, transaction, callback));
      expect(refused.failure).to.equal('invalid_client');
      expect(refused.message).not.to.include('not-the-secret');
      expect(refused.message).not.to.include(callback.get('code')!);

      const keyed = oidcConnector({ clientAuth: 'private_key_jwt', clientId: keyClientId, secrets: { privateJwk } });
      const second = await signIn(keyed);
      const stranger = await generateKeyPair('ES256', { extractable: true });
      const otherKey = { ...keyed, version: 2, secrets: { privateJwk: { ...(await exportJWK(stranger.privateKey)), kid: privateJwk.kid, alg: 'ES256' } } };
      expect((await failureOf(upstreamClient.complete(otherKey, second.transaction, second.callback))).failure).to.equal('invalid_client');
    });

    it('says state_mismatch for a tampered, missing or foreign state, before anything else', async () => {
      const target = oidcConnector();
      const { transaction, callback } = await signIn(target);
      const tampered = new URLSearchParams(callback);
      tampered.set('state', `${transaction.state}x`);
      expect((await failureOf(upstreamClient.complete(target, transaction, tampered))).failure).to.equal('state_mismatch');
      const missing = new URLSearchParams(callback);
      missing.delete('state');
      expect((await failureOf(upstreamClient.complete(target, transaction, missing))).failure).to.equal('state_mismatch');
      // An error in the callback does not skip the state check.
      const forgedError = new URLSearchParams({ error: 'access_denied', state: 'forged' });
      expect((await failureOf(upstreamClient.complete(target, transaction, forgedError))).failure).to.equal('state_mismatch');
      const other: UpstreamTransaction = { ...transaction, state: 'another-sign-in' };
      expect((await failureOf(upstreamClient.complete(target, other, callback))).failure).to.equal('state_mismatch');
      // The untouched callback still completes: nothing above used the code up.
      expect((await upstreamClient.complete(target, transaction, callback)).subject).to.equal(adaId);
    });

    it('says invalid_response for a replayed code, a wrong nonce or a callback without code', async () => {
      const target = oidcConnector();
      const { transaction, callback } = await signIn(target);
      const wrongNonce = await failureOf(upstreamClient.complete(target, { ...transaction, nonce: 'another-nonce' }, callback));
      expect(wrongNonce.failure).to.equal('invalid_response');

      const fresh = await signIn(target);
      await upstreamClient.complete(target, fresh.transaction, fresh.callback);
      // The upstream refuses a used code with invalid_grant: an error it reported.
      expect((await failureOf(upstreamClient.complete(target, fresh.transaction, fresh.callback))).failure).to.equal('upstream_error');

      const noCode = new URLSearchParams({ state: fresh.transaction.state });
      expect((await failureOf(upstreamClient.complete(target, fresh.transaction, noCode))).failure).to.equal('invalid_response');
    });

    it('says access_denied when the person cancels at the upstream', async () => {
      const target = oidcConnector();
      const { url, transaction } = await upstreamClient.begin(target, REDIRECT_URI);
      const callback = await cancelAtUpstream(url, upstream.url);
      expect(callback.get('error')).to.equal('access_denied');
      expect((await failureOf(upstreamClient.complete(target, transaction, callback))).failure).to.equal('access_denied');

      const other = new URLSearchParams({ error: 'temporarily_unavailable', state: transaction.state });
      const reported = await failureOf(upstreamClient.complete(target, transaction, other));
      expect(reported).to.deep.equal({ failure: 'upstream_error', message: 'the upstream answered temporarily_unavailable' });
    });

    it('refuses private and plain-http upstreams unless the deployment allows private networks', async () => {
      const guarded = createUpstreamClient({ allowPrivateNetwork: false, timeoutMs: 2000 });
      const plain = await failureOf(guarded.begin(oidcConnector(), REDIRECT_URI));
      expect(plain.failure).to.equal('unreachable');
      const https = await failureOf(guarded.begin(oidcConnector({ issuer: upstream.url.replace('http:', 'https:') }), REDIRECT_URI));
      expect(https).to.deep.include({ failure: 'unreachable' });
      expect(https.message).to.include('not public');
      const named = await failureOf(guarded.begin(oidcConnector({ issuer: 'https://localhost:1' }), REDIRECT_URI));
      expect(named.message).to.include('not public');
    });

    it('says unreachable when the upstream does not answer in time', async () => {
      const silent = http.createServer(() => {});
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      try {
        const quick = createUpstreamClient({ allowPrivateNetwork: true, timeoutMs: 300 });
        const started = Date.now();
        const timedOut = await failureOf(quick.begin(oidcConnector({ issuer: `http://127.0.0.1:${(silent.address() as AddressInfo).port}` }), REDIRECT_URI));
        expect(timedOut.failure).to.equal('unreachable');
        expect(Date.now() - started).to.be.below(3000);
      } finally {
        silent.closeAllConnections();
        await new Promise((resolve) => silent.close(resolve));
      }
    });
  });

  describe('plain OAuth 2', () => {
    function oauth2Connector(overrides: Partial<ConnectorWithSecrets> = {}): ConnectorWithSecrets {
      return connector({
        kind: 'oauth2',
        clientId: keyClientId,
        clientAuth: 'private_key_jwt',
        secrets: { privateJwk },
        // The upstream's userinfo needs the openid scope; the ID token that comes with it is ignored.
        scopes: ['openid', 'email', 'profile'],
        authorizationEndpoint: `${upstream.url}/auth`,
        tokenEndpoint: `${upstream.url}/token`,
        profileEndpoint: `${upstream.url}/me`,
        claimMapping: { subject: 'sub', email: 'email', emailVerified: 'email_verified', name: 'name' },
        ...overrides,
      });
    }

    it('exchanges the code with a client assertion (private_key_jwt) and maps the profile', async () => {
      const target = oauth2Connector();
      const { url, transaction, callback } = await signIn(target);
      const sent = new URL(url).searchParams;
      expect(Object.fromEntries(sent)).to.include({ response_type: 'code', client_id: keyClientId, redirect_uri: REDIRECT_URI, scope: 'openid email profile', state: transaction.state, code_challenge_method: 'S256' });
      expect(transaction.nonce).to.equal(undefined);
      const profile = await upstreamClient.complete(target, transaction, callback);
      expect(profile).to.deep.equal({ subject: adaId, email: ADA.email, emailVerified: true, name: ADA.name, groups: [] });
    });

    it('exchanges the code with client_secret_basic', async () => {
      const target = oauth2Connector({ clientAuth: 'client_secret_basic', clientId: basicClient.clientId, secrets: { clientSecret: basicClient.clientSecret } });
      const { transaction, callback } = await signIn(target);
      expect((await upstreamClient.complete(target, transaction, callback)).subject).to.equal(adaId);
    });

    it('says invalid_response when the profile has nothing at the subject path', async () => {
      const target = oauth2Connector({ claimMapping: { subject: 'user.id' } });
      const { transaction, callback } = await signIn(target);
      const failed = await failureOf(upstreamClient.complete(target, transaction, callback));
      expect(failed.failure).to.equal('invalid_response');
    });
  });

  describe('Genesys Cloud', () => {
    let genesys: FakeGenesys;
    const client = () => createUpstreamClient({ allowPrivateNetwork: true, timeoutMs: 3000 });

    before(async () => {
      genesys = await startFakeGenesys();
    });
    after(async () => {
      await genesys?.stop();
    });

    function genesysConnector(overrides: Partial<ConnectorWithSecrets> = {}): ConnectorWithSecrets {
      return connector({
        kind: 'genesys',
        clientId: genesys.clientId,
        secrets: { clientSecret: genesys.clientSecret },
        trustEmail: true,
        authorizationEndpoint: genesys.authorizeUrl,
        tokenEndpoint: genesys.tokenUrl,
        profileEndpoint: genesys.usersMeUrl,
        genesys: { region: 'mypurecloud.de', groupSource: 'roles' },
        ...overrides,
      });
    }

    async function run(target: ConnectorWithSecrets, upstreamClient = client()) {
      const { url, transaction } = await upstreamClient.begin(target, REDIRECT_URI);
      const callback = await authorizeAtGenesys(url);
      return { url, transaction, callback, complete: () => upstreamClient.complete(target, transaction, callback) };
    }

    it('fills the Genesys hosts from the region', async () => {
      const { url } = await client().begin(genesysConnector({ authorizationEndpoint: undefined, tokenEndpoint: undefined, profileEndpoint: undefined }), REDIRECT_URI);
      expect(url.startsWith('https://login.mypurecloud.de/oauth/authorize?')).to.equal(true);
    });

    it('returns the agent with their roles as groups, after PKCE (S256) and Basic client authentication', async () => {
      const agent = genesys.setUser({ roles: [{ id: randomUUID(), name: 'employee' }, { id: randomUUID(), name: 'Supervisor' }] });
      const { transaction, complete } = await run(genesysConnector());
      const profile = await complete();
      expect(profile).to.deep.equal({ subject: agent.id, email: agent.email, emailVerified: true, name: agent.name, groups: ['employee', 'Supervisor'] });
      const challenge = genesys.codeChallenges.at(-1)!;
      expect(challenge).to.deep.equal({ challenge: createHash('sha256').update(transaction.codeVerifier).digest('base64url'), method: 'S256' });
      const token = genesys.requests.filter((request) => request.path === '/oauth/token').at(-1)!;
      expect(token.authorization).to.match(/^Basic /);
      expect(token.form!.get('code_verifier')).to.equal(transaction.codeVerifier);
      const me = genesys.requests.filter((request) => request.path === '/api/v2/users/me').at(-1)!;
      expect(me.query.get('expand')!.split(',')).to.include.members(['organization', 'authorization']);
    });

    it('takes the agent’s division as groups when the connector says so, and emailVerified from trustEmail', async () => {
      const agent = genesys.setUser({ division: { id: randomUUID(), name: 'EMEA Sales' } });
      const profile = await (await run(genesysConnector({ trustEmail: false, genesys: { region: 'mypurecloud.de', groupSource: 'divisions' } }))).complete();
      expect(profile).to.deep.include({ subject: agent.id, groups: ['EMEA Sales'], emailVerified: false });
    });

    it('lets in only agents of the configured organization', async () => {
      genesys.setUser({ organization: DEFAULT_ORGANIZATION });
      const restricted = genesysConnector({ genesys: { region: 'mypurecloud.de', groupSource: 'roles', organizationId: DEFAULT_ORGANIZATION.id } });
      expect((await (await run(restricted)).complete()).groups).to.have.length(2);

      genesys.setUser({ organization: { id: randomUUID(), name: 'Someone Else Inc' } });
      expect((await failureOf((await run(restricted)).complete())).failure).to.equal('organization_mismatch');
    });

    it('says invalid_client for a wrong client secret, without the secret or the code in the message', async () => {
      const { callback, complete } = await run(genesysConnector({ secrets: { clientSecret: 'wrong-secret' } }));
      const failed = await failureOf(complete());
      expect(failed.failure).to.equal('invalid_client');
      expect(failed.message).not.to.include('wrong-secret');
      expect(failed.message).not.to.include(callback.get('code')!);
    });

    it('says unreachable when Genesys answers 503 or is down', async () => {
      const { complete } = await run(genesysConnector());
      genesys.failNext('unavailable');
      expect((await failureOf(complete())).failure).to.equal('unreachable');

      // The token is issued, then users/me fails.
      const second = await run(genesysConnector());
      genesys.failNext('unavailable', '/api/v2/users/me');
      const before = genesys.requests.filter((request) => request.path === '/oauth/token').length;
      expect((await failureOf(second.complete())).failure).to.equal('unreachable');
      expect(genesys.requests.filter((request) => request.path === '/oauth/token').length).to.equal(before + 1);

      const closedPort = await freePort();
      const down = genesysConnector({ tokenEndpoint: `http://127.0.0.1:${closedPort}/oauth/token` });
      const third = await run(down);
      const refused = await failureOf(third.complete());
      expect(refused).to.deep.equal({ failure: 'unreachable', message: `127.0.0.1:${closedPort}: connection refused` });
    });

    it('says access_denied when the agent declines', async () => {
      genesys.failNext('access_denied');
      const { callback, complete } = await run(genesysConnector());
      expect(callback.get('error')).to.equal('access_denied');
      expect((await failureOf(complete())).failure).to.equal('access_denied');
    });

    it('says upstream_error when Genesys refuses the code (invalid_grant)', async () => {
      // The agent signed in, but a code Genesys never issued comes back with the right state.
      const { transaction } = await run(genesysConnector());
      const forged = new URLSearchParams({ code: 'forged-code', state: transaction.state });
      const failed = await failureOf(client().complete(genesysConnector(), transaction, forged));
      expect(failed.failure).to.equal('upstream_error');
      expect(failed.message).to.equal('the token endpoint answered invalid_grant (HTTP 400)');
    });
  });

  // Last: stops the upstream.
  describe('an upstream that went away', () => {
    it('says unreachable, with discovery cached and without', async () => {
      const target = oidcConnector();
      const { transaction, callback } = await signIn(target);
      await upstream.stop();
      expect((await failureOf(upstreamClient.complete(target, transaction, callback))).failure).to.equal('unreachable');
      const fresh = createUpstreamClient({ allowPrivateNetwork: true, timeoutMs: 2000 });
      expect((await failureOf(fresh.begin(target, REDIRECT_URI))).failure).to.equal('unreachable');
    });
  });
});

describe('claim paths', () => {
  const document = {
    id: 4711,
    user: { email: 'grace@example.com', verified: 'true', tags: ['a', 'b'] },
    authorization: { roles: [{ name: 'employee' }, { name: 'Supervisor' }, { name: 'employee' }, { id: 'no-name' }, { name: 7 }] },
    teams: [{ members: [{ id: 'x' }, { id: 'y' }] }, { members: [{ id: 'z' }] }],
    empty: '',
  };

  it('reads dotted paths and collects through arrays at any depth', () => {
    expect(valuesAt(document, 'user.email')).to.deep.equal(['grace@example.com']);
    expect(valuesAt(document, 'user.tags')).to.deep.equal(['a', 'b']);
    expect(valuesAt(document, 'teams.members.id')).to.deep.equal(['x', 'y', 'z']);
    expect(stringsAt(document, 'authorization.roles.name')).to.deep.equal(['employee', 'Supervisor']);
    expect(valuesAt(document, 'user.missing.deeper')).to.deep.equal([]);
    expect(valuesAt(document, 'user..email')).to.deep.equal([]);
  });

  it('does not reach into prototypes', () => {
    expect(valuesAt(document, 'constructor')).to.deep.equal([]);
    expect(valuesAt(document, 'user.__proto__')).to.deep.equal([]);
    expect(valuesAt(document, 'user.email.length')).to.deep.equal([]);
  });

  it('takes a numeric subject as a string and refuses an ambiguous or missing one', () => {
    expect(subjectAt(document, 'id')).to.equal('4711');
    expect(subjectAt(document, 'teams.members.id')).to.equal(undefined);
    expect(subjectAt(document, 'empty')).to.equal(undefined);
    expect(subjectAt(document, 'user')).to.equal(undefined);
  });

  it('maps a profile, emailVerified from a "true" string or else trustEmail', () => {
    expect(mapProfile(document, { subject: 'id', email: 'user.email', emailVerified: 'user.verified', groups: 'authorization.roles.name' }, false)).to.deep.equal({
      subject: '4711',
      email: 'grace@example.com',
      emailVerified: true,
      groups: ['employee', 'Supervisor'],
    });
    expect(mapProfile(document, { subject: 'id', email: 'user.email', emailVerified: 'user.absent' }, true).emailVerified).to.equal(true);
    expect(mapProfile(document, { subject: 'id', name: 'authorization.roles' }, false).name).to.equal(undefined);
    expect(() => mapProfile(document, { subject: 'user.id' }, true)).to.throw(UpstreamError).with.property('failure', 'invalid_response');
  });
});
