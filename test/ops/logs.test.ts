// Logs are JSON with a request id, and no secret reaches them: not the client secret of a
// client_secret_post token request, not the password of a login POST, not a token, code or cookie.
import { expect } from 'chai';
import { captureLogLines } from '../helpers/log-capture.ts';
import * as oidc from 'openid-client';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { freePort, TEST_ENV } from '../helpers/instance.ts';
import { createFixtures, USER, type Fixtures } from '../helpers/fixtures.ts';
import { authorizeWithLogin, discover } from '../helpers/rp.ts';
import { loadConfig } from '../../src/config.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { createLogger } from '../../src/http/logger.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';


forEachBackend('logs', (backend) => {
  let store: BackendEnv;
  let runtime: Runtime;
  let server: RunningServer;
  let fixtures: Fixtures;
  let issuer: string;
  let logs: ReturnType<typeof captureLogLines>;

  before(async () => {
    store = await backend.create();
    const port = await freePort();
    issuer = `http://127.0.0.1:${port}`;
    logs = captureLogLines();
    // The production logger at its most talkative level.
    const config = loadConfig({ ...TEST_ENV, ...store.env, LOG_LEVEL: 'trace', ISSUER: issuer, PORT: String(port), HOST: '127.0.0.1' });
    runtime = await createRuntime(config, { serve: true, log: createLogger('trace', logs.stream) });
    server = await startServer(runtime, { port, host: '127.0.0.1' });
    fixtures = await createFixtures(runtime);
  });

  after(async () => {
    await server?.close();
    await runtime?.close();
    await store?.cleanup();
  });

  it('keeps client secrets, passwords, tokens, codes and cookies out of every line', async () => {
    const postClient = await runtime.clients.create({ name: 'Posting service', grantTypes: ['client_credentials'], authMethod: 'client_secret_post', tenantId: DEFAULT_TENANT_ID });
    const clientSecret = postClient.clientSecret!;
    const tokenRequest = (secret: string) =>
      fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-request-id': 'token-request-1' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: postClient.client.clientId, client_secret: secret }).toString(),
      });
    const issued = await tokenRequest(clientSecret);
    expect(issued.status).to.equal(200);
    const { access_token: machineToken } = (await issued.json()) as { access_token: string };
    const wrongSecret = `${clientSecret.slice(0, -4)}WRNG`;
    expect((await tokenRequest(wrongSecret)).status).to.equal(401);

    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const wrongPassword = 'a wrong password that must not be logged';
    await expect(authorizeWithLogin(config, issuer, { identifier: USER.email, password: wrongPassword })).to.be.rejectedWith('login failed with 401');
    const { callback, verifier, state, nonce, browser } = await authorizeWithLogin(config, issuer, { identifier: USER.email, password: USER.password });
    const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    // The interaction cookies hold the interaction's id, which is in its URL by design; their
    // signature cookies and the session cookie are what a thief would need.
    const cookies: Record<string, string> = Object.fromEntries(
      browser
        .cookieHeader(new URL(issuer))
        .split('; ')
        .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)])
        .filter(([name]) => !/^_interaction(_resume)?$/.test(name)),
    );

    const text = logs.lines.join('\n');
    const secrets = {
      clientSecret,
      wrongSecret,
      webClientSecret: fixtures.web.clientSecret,
      password: USER.password,
      wrongPassword,
      machineToken,
      code: callback.searchParams.get('code')!,
      verifier,
      accessToken: tokens.access_token,
      refreshToken: tokens.refresh_token!,
      idToken: tokens.id_token!,
      rotatedRefreshToken: refreshed.refresh_token!,
      ...cookies,
    };
    expect(Object.keys(cookies)).to.include.members(['_session', '_session.sig']);
    for (const [name, secret] of Object.entries(secrets)) {
      expect(secret, name).to.be.a('string').with.length.greaterThan(8);
      expect(text.includes(secret), `${name} appears in the logs`).to.equal(false);
      expect(text.includes(encodeURIComponent(secret)), `${name} (URL-encoded) appears in the logs`).to.equal(false);
    }

    // The lines were there to leak from: JSON, one per request, with the request id.
    const entries = logs.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const requests = entries.filter((entry) => entry.msg === 'request');
    expect(requests.find((entry) => entry.requestId === 'token-request-1' && entry.path === '/token' && entry.status === 200)).to.include({ method: 'POST' });
    const logins = requests.filter((entry) => entry.method === 'POST' && /^\/interaction\/[^/]+\/login$/.test(String(entry.path)));
    expect(logins.map((entry) => entry.status).sort()).to.deep.equal([303, 401]);
    for (const entry of requests) expect(entry.requestId).to.be.a('string').and.not.empty;
  });

  it('logs an error by its type, message and code, never by what a library hung on it', () => {
    const sink = captureLogLines();
    const log = createLogger('info', sink.stream);
    const error = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), {
      code: 'ECONNREFUSED',
      body: '{"password":"hunter2-in-a-body"}',
      command: { name: 'set', args: ['idp:AccessToken:abc', 'payload-with-a-token-value'] },
      cause: Object.assign(new Error('inner'), { headers: { authorization: 'Bearer inner-secret-token' } }),
    });
    log.error({ err: error, password: 'top-level-password', client: { client_secret: 'nested-client-secret' }, query: { code: 'authorization-code-value' } }, 'failed');
    const text = sink.lines.join('\n');
    for (const secret of ['hunter2-in-a-body', 'payload-with-a-token-value', 'inner-secret-token', 'top-level-password', 'nested-client-secret', 'authorization-code-value']) {
      expect(text, secret).to.not.include(secret);
    }
    const entry = JSON.parse(sink.lines[0]) as { err: Record<string, unknown> };
    expect(entry.err).to.include({ type: 'Error', message: 'connect ECONNREFUSED 127.0.0.1:6379', code: 'ECONNREFUSED' });
    expect(entry.err.cause).to.include({ message: 'inner' });
  });
});
