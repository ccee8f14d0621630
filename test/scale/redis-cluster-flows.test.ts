// The essential protocol flows on a three-master Redis Cluster started by the test (with
// PostgreSQL): login with code + PKCE, refresh rotation, introspection, revocation, logout, client
// credentials, rate limiting and API-key verification. Hot-store errors degrade quietly by design
// (the adapter falls back to PostgreSQL, the rate limiter to per-process counts), so passing flows
// alone would not prove the cluster worked: the test also requires that no master answered an error
// (CROSSSLOT above all), that the instance logged no warning, and that keys landed on every master.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import pg from 'pg';
import { pino } from 'pino';
import { Redis } from 'ioredis';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { POSTGRES_URL, postgresUrlWithSchema } from '../helpers/backends.ts';
import { redisServerAvailable, startRedisCluster, type LocalCluster } from '../helpers/redis-cluster.ts';
import { freePort, TEST_ENV } from '../helpers/instance.ts';
import { createFixtures, clientCredentialsToken, basicAuth, introspect, API, USER, type Fixtures } from '../helpers/fixtures.ts';
import { discover, loginWithCode, POST_LOGOUT_REDIRECT_URI } from '../helpers/rp.ts';
import { expectOAuthError } from '../helpers/oauth-errors.ts';
import { loadConfig } from '../../src/config.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { ADMIN_API_PERMISSIONS } from '../../src/tenants/system-roles.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';

const T = DEFAULT_TENANT_ID;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls for at most two seconds: pub/sub delivery on the cluster is a matter of milliseconds.
async function waitFor(condition: () => Promise<boolean>, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await sleep(25);
  }
}

async function postgresUnavailable(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    return undefined;
  } catch (error) {
    return `PostgreSQL at ${POSTGRES_URL} is unreachable: ${(error as Error).message}`;
  } finally {
    await client.end().catch(() => {});
  }
}

async function onPostgres(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

// Runs `work` against each master of the cluster.
async function onEachMaster<R>(cluster: LocalCluster, work: (redis: Redis) => Promise<R>): Promise<R[]> {
  return Promise.all(
    cluster.urls.map(async (url) => {
      const redis = new Redis(url);
      try {
        return await work(redis);
      } finally {
        redis.disconnect();
      }
    }),
  );
}

describe('protocol flows on a three-master Redis Cluster [PostgreSQL + Redis Cluster]', function () {
  let cluster: LocalCluster | undefined;
  let schema: string | undefined;
  let env: Record<string, string>;
  let runtime: Runtime;
  let issuer: string;
  let fixtures: Fixtures;
  const running: ClusterInstance[] = [];
  const logged: Array<{ level: number; msg: string }> = [];
  // Warnings and errors the instances log (a hot-store failure they degraded around) fail the suite.
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) {
        try {
          logged.push(JSON.parse(line));
        } catch {
          logged.push({ level: 0, msg: line });
        }
      }
      done();
    },
  });

  interface ClusterInstance {
    url: string;
    runtime: Runtime;
    server: RunningServer;
  }

  // Like test/helpers/instance.ts, with a logger this suite reads.
  async function startOnCluster(options: { issuer?: string } = {}): Promise<ClusterInstance> {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const config = loadConfig({ ...env, ISSUER: options.issuer ?? url, PORT: String(port), HOST: '127.0.0.1' });
    const started = await createRuntime(config, { serve: true, log: pino({ level: 'warn' }, sink) });
    const instance = { url, runtime: started, server: await startServer(started, { port, host: '127.0.0.1' }) };
    running.push(instance);
    return instance;
  }

  before(async function () {
    this.timeout(120_000);
    const reason = (await postgresUnavailable()) ?? (await redisServerAvailable());
    if (reason) {
      if (process.env.CI === 'true') throw new Error(reason);
      console.warn(`  skipped: ${reason}`);
      this.skip();
    }
    cluster = await startRedisCluster();
    // Creating the cluster leaves error replies in the statistics; count from here on.
    await onEachMaster(cluster, (redis) => redis.config('RESETSTAT'));
    schema = `t_${randomBytes(6).toString('hex')}`;
    await onPostgres(`CREATE SCHEMA ${schema}`);
    env = {
      ...TEST_ENV,
      DATABASE_URL: postgresUrlWithSchema(schema),
      // Several URLs: the hot store talks to them as one cluster.
      REDIS_URL: cluster.urls.join(','),
      REDIS_KEY_PREFIX: 'idp:',
      KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      COOKIE_KEYS: randomBytes(32).toString('base64url'),
      REFRESH_TOKEN_REUSE_GRACE_SECONDS: '0',
      RATE_LIMIT_PASSWORD_RESET_PER_IP: '2/60',
      API_KEY_ENVIRONMENT: 'test',
    };
    ({ url: issuer, runtime } = await startOnCluster());
    fixtures = await createFixtures(runtime);
  });

  after(async function () {
    this.timeout(30_000);
    for (const instance of running.reverse()) {
      await instance.server.close();
      await instance.runtime.close();
    }
    await cluster?.stop();
    if (schema) await onPostgres(`DROP SCHEMA ${schema} CASCADE`);
  });

  const introspectAsMachine = (token: string) => introspect(issuer, fixtures.machine, token);

  it('logs in with authorization code + PKCE and serves userinfo', async () => {
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const { tokens } = await loginWithCode(config, issuer, { identifier: USER.email, password: USER.password });
    expect(tokens.claims()).to.include({ iss: issuer, sub: fixtures.userId, aud: fixtures.web.clientId });
    const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, fixtures.userId);
    expect(userinfo).to.include({ sub: fixtures.userId, email: USER.email });
  });

  it('rotates refresh tokens, introspects, and revokes the grant when an old one is reused', async () => {
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const { tokens } = await loginWithCode(config, issuer, { identifier: USER.email, password: USER.password });
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    expect(refreshed.refresh_token).to.be.a('string').and.not.equal(tokens.refresh_token);
    expect(await introspectAsMachine(refreshed.access_token)).to.include({ active: true, sub: fixtures.userId });
    await expectOAuthError(oidc.refreshTokenGrant(config, tokens.refresh_token!), 'invalid_grant');
    await expectOAuthError(oidc.refreshTokenGrant(config, refreshed.refresh_token!), 'invalid_grant');
    expect((await introspectAsMachine(refreshed.access_token)).active).to.equal(false);
  });

  it('issues client-credentials JWTs verifiable against the JWKS, and revokes an opaque token', async () => {
    const jwt = await clientCredentialsToken(issuer, fixtures.machine, { resource: API.identifier, scope: 'read' });
    expect(jwt.status).to.equal(200);
    const { access_token: accessToken } = (await jwt.json()) as { access_token: string };
    const { payload } = await jwtVerify(accessToken, createRemoteJWKSet(new URL(`${issuer}/jwks`)), { issuer, audience: API.identifier });
    expect(payload).to.include({ client_id: fixtures.machine.clientId, scope: 'read', tenant_id: T });

    const opaque = (await (await clientCredentialsToken(issuer, fixtures.machine, { scope: 'read' })).json()) as { access_token: string };
    expect((await introspectAsMachine(opaque.access_token)).active).to.equal(true);
    const revoked = await fetch(`${issuer}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(fixtures.machine) },
      body: new URLSearchParams({ token: opaque.access_token }).toString(),
    });
    expect(revoked.status).to.equal(200);
    expect((await introspectAsMachine(opaque.access_token)).active).to.equal(false);
  });

  it('ends the session with RP-initiated logout, and its refresh token with it', async () => {
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const { tokens, browser } = await loginWithCode(config, issuer, { identifier: USER.email, password: USER.password });
    const page = await browser.fetch(oidc.buildEndSessionUrl(config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT_REDIRECT_URI }));
    expect(page.status).to.equal(200);
    const xsrf = (await page.text()).match(/name="xsrf" value="([^"]+)"/)![1];
    const confirm = await browser.submitForm(`${issuer}/session/end/confirm`, { xsrf, logout: 'yes' });
    expect(confirm.status).to.equal(303);
    expect(confirm.headers.get('location')).to.match(new RegExp(`^${POST_LOGOUT_REDIRECT_URI}`));
    await expectOAuthError(oidc.refreshTokenGrant(config, tokens.refresh_token!), 'invalid_grant');
  });

  it('counts rate limits in the cluster and answers 429 over the limit', async () => {
    const post = () =>
      fetch(`${issuer}/password/forgot`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
        body: 'email=someone%40example.com',
      });
    for (let i = 0; i < 2; i += 1) expect((await post()).status).to.not.equal(429);
    const refused = await post();
    expect(refused.status).to.equal(429);
    expect(Number(refused.headers.get('retry-after'))).to.be.within(1, 60);
    // The count lives in the cluster, not in the per-process fallback.
    const counters = (await onEachMaster(cluster!, (redis) => redis.keys('idp:ratelimit:*'))).flat();
    expect(counters.length).to.be.greaterThan(0);
  });

  it('verifies an API key, and refuses it once revoked', async () => {
    const admin = await runtime.clients.create({ name: 'admin', grantTypes: ['client_credentials'], tenantId: T });
    await runtime.rbac.assign(T, (await runtime.rbac.roleIdByName(T, 'admin'))!, 'client', admin.client.clientId);
    const granted = await clientCredentialsToken(issuer, { clientId: admin.client.clientId, clientSecret: admin.clientSecret! }, { resource: runtime.adminApi, scope: ADMIN_API_PERMISSIONS.join(' ') });
    const adminToken = ((await granted.json()) as { access_token: string }).access_token;
    const call = (credential: string, method: string, path: string, body?: unknown) =>
      fetch(`${issuer}/api/v1${path}`, {
        method,
        headers: { authorization: `Bearer ${credential}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    const owner = await runtime.users.create(T, { email: 'key-owner@example.com', password: 'correct horse battery staple', emailVerified: true });
    await runtime.rbac.assign(T, (await runtime.rbac.roleIdByName(T, 'agent'))!, 'user', owner.id);
    const created = await call(adminToken, 'POST', `/tenants/${T}/api-keys`, { name: 'cluster key', owner: { type: 'user', id: owner.id }, permissions: [{ api: runtime.adminApi, permission: 'users:read' }] });
    expect(created.status, await created.clone().text()).to.equal(201);
    const { id, key } = (await created.json()) as { id: string; key: string };

    const verifier = await runtime.clients.create({ name: 'resource server', grantTypes: ['client_credentials'], tenantId: T });
    const verify = async () => {
      const response = await fetch(`${issuer}/api-keys/verify`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: basicAuth({ clientId: verifier.client.clientId, clientSecret: verifier.clientSecret! }) },
        body: JSON.stringify({ apiKey: key }),
      });
      expect(response.status).to.equal(200);
      return ((await response.json()) as { active: boolean }).active;
    };
    expect(await verify()).to.equal(true);
    expect((await call(key, 'GET', `/tenants/${T}/users?limit=1`)).status).to.equal(200);
    expect((await call(adminToken, 'DELETE', `/tenants/${T}/api-keys/${id}`)).status).to.equal(204);
    expect(await verify()).to.equal(false);
    expect((await call(key, 'GET', `/tenants/${T}/users?limit=1`)).status).to.equal(401);
  });

  it('keeps a second instance on the cluster consistent: client changes, revocations and key rotations', async () => {
    const second = await startOnCluster({ issuer });
    // A client the second instance has cached is refused there once deleted on the first (pub/sub).
    const { client, clientSecret } = await runtime.clients.create({ name: 'short-lived', grantTypes: ['client_credentials'] });
    const credentials = { clientId: client.clientId, clientSecret: clientSecret! };
    expect((await clientCredentialsToken(second.url, credentials, {})).status).to.equal(200);
    await runtime.clients.delete(client.clientId);
    await waitFor(async () => (await clientCredentialsToken(second.url, credentials, {})).status === 401);

    // A login on the first, its session ended on the second: the first refuses its refresh token.
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const { tokens } = await loginWithCode(config, issuer, { identifier: USER.email, password: USER.password });
    await second.runtime.sessions.endAll(T, fixtures.userId, {});
    await expectOAuthError(oidc.refreshTokenGrant(config, tokens.refresh_token!), 'invalid_grant');
    expect((await introspectAsMachine(tokens.access_token)).active).to.equal(false);

    // A rotation on the second reaches the first through the cluster's pub/sub.
    const jwks = (url: string) => fetch(`${url}/jwks`).then((response) => response.text());
    const before = await jwks(issuer);
    await second.runtime.keys.rotate();
    await waitFor(async () => {
      const [first, other] = await Promise.all([jwks(issuer), jwks(second.url)]);
      return first !== before && first === other;
    });
  });

  it('spread its keys over all three masters, and no master answered an error', async () => {
    const sizes = await onEachMaster(cluster!, (redis) => redis.dbsize());
    expect(sizes.every((size) => size > 0), `keys per master: ${sizes.join(', ')}`).to.equal(true);
    // A refused command (CROSSSLOT, MOVED) or one that failed (a script touching a key of another
    // slot) shows in its statistics. Bare ERR replies without a command are ioredis's CLIENT
    // SETINFO, which Redis before 7.2 does not know.
    const commands = await onEachMaster(cluster!, (redis) => redis.info('commandstats'));
    const failing = commands.flatMap((info) => info.split('\n').filter((line) => /(rejected|failed)_calls=[1-9]/.test(line)));
    expect(failing, 'commands the cluster refused or failed').to.deep.equal([]);
    const errors = await onEachMaster(cluster!, (redis) => redis.info('errorstats'));
    const kinds = errors.flatMap((info) => info.split('\n').filter((line) => line.startsWith('errorstat_') && !line.startsWith('errorstat_ERR:')));
    expect(kinds, 'error replies from the cluster').to.deep.equal([]);
    // Two warnings are this suite's doing: no mail server configured, and a refresh token reused on purpose.
    const expected = [/^MAIL_SMTP_URL is not set/, /rotated-out refresh token was presented again/];
    const unexpected = logged.map((entry) => entry.msg).filter((msg) => !expected.some((pattern) => pattern.test(msg)));
    expect(unexpected, 'warnings and errors the instance logged').to.deep.equal([]);
  });
});
