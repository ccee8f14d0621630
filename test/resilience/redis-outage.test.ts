// Redis stopped mid-run, then started again on the same port: while it is down, a new login
// (authorization code + PKCE), a refresh and introspection still work, slower but never with a 500;
// the instance says so loudly in its log and its readiness; when Redis returns it recovers on its
// own, and no session or refresh token issued before or during the outage is lost.
import { expect } from 'chai';
import { captureLogLines } from '../helpers/log-capture.ts';
import * as oidc from 'openid-client';
import { backends, type BackendEnv } from '../helpers/backends.ts';
import { freePort, TEST_ENV } from '../helpers/instance.ts';
import { startPrivateRedis, type PrivateRedis } from '../helpers/redis-server.ts';
import { createFixtures, introspect, USER, type Fixtures } from '../helpers/fixtures.ts';
import { Browser } from '../helpers/browser.ts';
import { authorizationRequest, authorizeWithLogin, discover, loginWithCode, REDIRECT_URI } from '../helpers/rp.ts';
import { formAction, hiddenField } from '../helpers/browser.ts';
import { loadConfig } from '../../src/config.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { createLogger } from '../../src/http/logger.ts';

const server = backends.find((backend) => backend.name.startsWith('PostgreSQL'))!;


describe('Redis outage [PostgreSQL + a private Redis]', function () {
  this.timeout(60_000);
  let store: BackendEnv | undefined;
  let redis: PrivateRedis | undefined;
  let runtime: Runtime | undefined;
  let http: RunningServer | undefined;
  let fixtures: Fixtures;
  let issuer: string;
  let config: oidc.Configuration;
  let logs: ReturnType<typeof captureLogLines>;
  // Every answer of the instance with a 5xx status, whoever asked.
  const serverErrors: string[] = [];
  const realFetch = globalThis.fetch;

  // Before the outage: browser A's session and refresh token.
  let browserA: Browser;
  let refreshA: string;
  // During the outage: browser B's session and refresh token.
  let browserB: Browser;
  let refreshB: string;
  // Started during the outage, finished after it: browser C's login page.
  let pending: { browser: Browser; request: Awaited<ReturnType<typeof authorizationRequest>>; html: string };

  before(async function () {
    const reason = await server.unavailable();
    if (reason) {
      if (process.env.CI === 'true') throw new Error(reason);
      console.warn(`  skipped: ${reason}`);
      this.skip();
    }
    redis = await startPrivateRedis();
    store = await server.create();
    const port = await freePort();
    issuer = `http://127.0.0.1:${port}`;
    logs = captureLogLines();
    const settings = loadConfig({ ...TEST_ENV, ...store.env, REDIS_URL: redis.url, LOG_LEVEL: 'info', ISSUER: issuer, PORT: String(port), HOST: '127.0.0.1' });
    runtime = await createRuntime(settings, { serve: true, log: createLogger('info', logs.stream) });
    http = await startServer(runtime, { port, host: '127.0.0.1' });
    fixtures = await createFixtures(runtime);
    config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    globalThis.fetch = async (input, init) => {
      const response = await realFetch(input, init);
      const url = String(input instanceof Request ? input.url : input);
      if (url.startsWith(issuer) && response.status >= 500) serverErrors.push(`${response.status} ${init?.method ?? 'GET'} ${new URL(url).pathname}`);
      return response;
    };
  });

  after(async () => {
    globalThis.fetch = realFetch;
    await http?.close();
    await runtime?.close();
    await redis?.close();
    await store?.cleanup();
  });

  const login = (browser: Browser) => loginWithCode(config, issuer, { identifier: USER.email, password: USER.password, browser });

  // The session is still there: a silent authorization request (prompt=none) comes back with a code.
  async function expectSession(browser: Browser) {
    const { code, callback } = await authorizeWithLogin(config, issuer, { identifier: USER.email, password: USER.password, browser, extraParams: { prompt: 'none' } });
    expect(code, `a code for the existing session, got ${callback}`).to.be.a('string');
  }

  async function readiness(): Promise<{ status: number; body: { status?: string; checks?: Record<string, boolean> } }> {
    const response = await realFetch(`${issuer}/readyz`);
    return { status: response.status, body: (await response.json()) as { status?: string; checks?: Record<string, boolean> } };
  }

  it('signs in and gets a refresh token while Redis is up', async () => {
    browserA = new Browser();
    const { tokens } = await login(browserA);
    refreshA = tokens.refresh_token!;
    expect(refreshA).to.be.a('string');
    await expectSession(browserA);
    expect((await readiness()).body.checks?.hotStore).to.equal(true);
  });

  it('with Redis stopped: a new login, a refresh and introspection work, nothing answers 5xx, the outage is reported', async () => {
    await redis!.stop();
    const started = Date.now();
    browserB = new Browser();
    const { tokens } = await login(browserB);
    refreshB = tokens.refresh_token!;
    expect(refreshB).to.be.a('string');
    expect((await introspect(issuer, fixtures.machine, tokens.access_token)).active, 'an access token issued during the outage').to.equal(true);

    const refreshed = await oidc.refreshTokenGrant(config, refreshA);
    refreshA = refreshed.refresh_token!;
    expect((await introspect(issuer, fixtures.machine, refreshed.access_token)).active, 'an access token from a refresh during the outage').to.equal(true);
    await expectSession(browserA);
    expect(Date.now() - started, 'degraded, not hanging').to.be.below(15_000);

    const browserC = new Browser();
    const request = await authorizationRequest(config, REDIRECT_URI);
    const { response, url } = await browserC.follow(request.url, issuer);
    expect(response.status).to.equal(200);
    expect(url.pathname).to.match(/^\/interaction\//);
    pending = { browser: browserC, request, html: await response.text() };

    // Ready (the instance serves), but the hot store is reported down.
    const ready = await readiness();
    expect(ready.status).to.equal(200);
    expect(ready.body).to.deep.include({ status: 'degraded' });
    expect(ready.body.checks?.hotStore).to.equal(false);
    expect(serverErrors).to.deep.equal([]);
    const warnings = logs.lines.map((line) => JSON.parse(line) as { level: number; msg: string }).filter((entry) => entry.level >= 40);
    expect(warnings.some((entry) => /hot store .*unavailable/i.test(entry.msg)), 'a warning that Redis is unavailable').to.equal(true);
  });

  it('falls back to per-process rate limits with a warning', async () => {
    // The token endpoint is rate limited per client; the request is served (not refused for want of Redis).
    const response = await realFetch(`${issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${fixtures.machine.clientId}:${fixtures.machine.clientSecret}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'client_credentials' }).toString(),
    });
    expect(response.status, await response.clone().text()).to.equal(200);
    const warnings = logs.lines.map((line) => JSON.parse(line) as { level: number; msg: string }).filter((entry) => entry.level >= 40);
    expect(warnings.some((entry) => /rate limits fall back to per-process/.test(entry.msg)), 'the rate-limit fallback warning').to.equal(true);
  });

  it('recovers on its own when Redis returns: nothing issued before or during the outage is lost', async () => {
    await redis!.start();
    const deadline = Date.now() + 10_000;
    while ((await readiness()).body.checks?.hotStore !== true) {
      if (Date.now() > deadline) throw new Error('the instance did not see Redis return');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect((await readiness()).body.status).to.equal('ready');

    await expectSession(browserA);
    await expectSession(browserB);
    const fromBefore = await oidc.refreshTokenGrant(config, refreshA);
    const fromDuring = await oidc.refreshTokenGrant(config, refreshB);
    expect((await introspect(issuer, fixtures.machine, fromBefore.access_token)).active).to.equal(true);
    expect((await introspect(issuer, fixtures.machine, fromDuring.access_token)).active).to.equal(true);
    const { tokens } = await login(new Browser());
    expect(tokens.refresh_token).to.be.a('string');

    // The login page shown during the outage still signs in: its interaction came back to Redis.
    const { browser, request } = pending;
    let html = pending.html;
    if (html.includes('/identify"')) {
      const identified = await browser.submitForm(new URL(formAction(html, '/identify'), issuer), { csrf: hiddenField(html, 'csrf'), identifier: USER.email });
      expect(identified.status).to.equal(200);
      html = await identified.text();
    }
    const submitted = await browser.submitForm(new URL(formAction(html, '/login'), issuer), { csrf: hiddenField(html, 'csrf'), identifier: USER.email, password: USER.password });
    expect(submitted.status, (await submitted.clone().text()).slice(0, 500)).to.equal(303);
    const { url: callback } = await browser.follow(new URL(submitted.headers.get('location')!, issuer), issuer);
    const finished = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce });
    expect(finished.refresh_token).to.be.a('string');
    expect(serverErrors).to.deep.equal([]);
    const recovered = logs.lines.map((line) => JSON.parse(line) as { msg: string }).some((entry) => /hot store .*recovered/i.test(entry.msg));
    expect(recovered, 'a log line saying the hot store is back').to.equal(true);
  });

  it('a Redis that hangs (SIGSTOP) holds no request: its commands time out and the fallback serves', async () => {
    redis!.pause();
    try {
      const started = Date.now();
      const { tokens } = await login(new Browser());
      const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
      expect((await introspect(issuer, fixtures.machine, refreshed.access_token)).active).to.equal(true);
      expect(Date.now() - started, 'degraded, not hanging').to.be.below(15_000);
      expect((await readiness()).body.status).to.equal('degraded');
    } finally {
      redis!.resume();
    }
    const deadline = Date.now() + 10_000;
    while ((await readiness()).body.status !== 'ready') {
      if (Date.now() > deadline) throw new Error('the instance did not see Redis return');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(serverErrors).to.deep.equal([]);
  });
});
