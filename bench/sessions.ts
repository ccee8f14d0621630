// Sessions and refresh tokens on PostgreSQL + Redis:
//  1. refresh-token grants per second beside client-credentials grants per second, for our provider
//     (a child process) and the bare oidc-provider, in the same run. Refresh tokens rotate on every
//     use, so each request takes the next token of a pool seeded beforehand: ours directly in
//     oidc_payloads (one SQL statement; one user and one grant per token, cold Redis cache, as after
//     an access token's lifetime), bare through its own models (bench/bare-provider.ts).
//  2. session lookup latency with 10,000 and with 1,000,000 stored sessions (seeded with one SQL
//     statement each): the adapter's Session find by id, as oidc-provider calls it for every request
//     that carries a session cookie, run in-process on the same schema and Redis prefix. "cold" is a
//     session not read before (Redis miss, PostgreSQL primary-key read, cache fill), "warm" the same
//     sessions again (Redis hit); findByUid (used when a session is ended by its sid) cold too.
// The throw-away schema and key prefix are removed on exit, error, signal or time-out.
//
//   node bench/sessions.ts          (also the last part of `npm run bench`)
//
// Environment (all optional): BENCH_ALG (ES256), BENCH_CONNECTIONS (32), BENCH_DURATION (10),
// BENCH_WARMUP (2), BENCH_QUIET_WAIT / BENCH_QUIET_BUSY (30; 20), BENCH_DATABASE_URL,
// BENCH_REDIS_URL, BENCH_PROFILE_DIR (as in bench/run.ts), BENCH_SESSIONS_BIG (1000000),
// BENCH_SESSION_LOOKUPS (2000).
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { pino } from 'pino';
import type { RequestSpec } from 'autocannon';
import {
  BenchError, FORM, basic, createOurStore, intSetting, limitRunTime, listSetting, log, machine, parseJsonOutput, runBench,
  fire, measurementOf, renderTables, runCli, sleep, startBare, startOurs, stopChild, storeSettings, waitForQuiet, type Measurement, type Started,
} from './harness.ts';
import { createAdapterFactory } from '../src/oidc/adapter.ts';
import { closeDatabase, createDatabase } from '../src/store/database.ts';
import { RedisHotStore } from '../src/store/redis-hot-store.ts';
import { REFRESH_TOKEN_LENGTH } from '../src/oidc/model-storage.ts';
import { ACR_PASSWORD } from '../src/oidc/assurance.ts';

const API = 'https://api.bench.test';
const API_SCOPE = 'read';
const REDIRECT_URI = 'https://rp.bench.test/callback';
const RT_SCOPE = 'openid offline_access';
const SMALL = 10_000;

const settings = {
  alg: listSetting('BENCH_ALG', ['RS256', 'ES256', 'EdDSA'], ['ES256'])[0],
  connections: intSetting('BENCH_CONNECTIONS', 32, 1, 1024),
  duration: intSetting('BENCH_DURATION', 10, 1, 300),
  warmup: intSetting('BENCH_WARMUP', 2, 0, 60),
  quietWait: intSetting('BENCH_QUIET_WAIT', 30, 0, 600),
  quietBusy: intSetting('BENCH_QUIET_BUSY', 20, 1, 100),
  big: intSetting('BENCH_SESSIONS_BIG', 1_000_000, SMALL + 1, 9_999_999),
  // Three sets of sessions never read before must fit into the small size.
  lookups: intSetting('BENCH_SESSION_LOOKUPS', 2000, 100, 3000),
  profileDir: process.env.BENCH_PROFILE_DIR ? path.resolve(process.env.BENCH_PROFILE_DIR) : undefined,
  ...storeSettings(),
};

interface Client {
  id: string;
  secret: string;
}

interface Target extends Started {
  kind: 'ours' | 'bare';
  cc: Client;
  rt: Client;
}


// ---------------------------------------------------------------------------------------------
// Load

async function post(target: Target, client: Client, params: Record<string, string>): Promise<Record<string, unknown>> {
  const response = await fetch(`${target.url}/token`, {
    method: 'POST',
    headers: { authorization: basic(client), 'content-type': FORM },
    body: new URLSearchParams(params).toString(),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  if (!response.ok) throw new BenchError(`${target.kind}: POST /token (${params.grant_type}) answered ${response.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

async function measure(target: Target, request: () => RequestSpec): Promise<Measurement> {
  const options = () => ({ url: target.url, connections: settings.connections, requests: [request()] });
  const background = await waitForQuiet(settings.quietWait, settings.quietBusy);
  if (settings.warmup > 0) await fire(target.kind, options(), settings.warmup);
  return measurementOf(await fire(target.kind, options(), settings.duration), background);
}

async function clientCredentials(target: Target): Promise<Measurement> {
  const params = { grant_type: 'client_credentials', resource: API, scope: API_SCOPE };
  const json = await post(target, target.cc, params);
  if (typeof json.access_token !== 'string' || json.access_token.split('.').length !== 3) throw new BenchError(`${target.kind}: expected a JWT access token`);
  const body = new URLSearchParams(params).toString();
  return measure(target, () => ({ method: 'POST', path: '/token', headers: { authorization: basic(target.cc), 'content-type': FORM }, body }));
}

// Each request takes the next unused token; one is spent on the check by hand first.
async function refresh(target: Target, pool: string[]): Promise<Measurement & { exhausted: number }> {
  const json = await post(target, target.rt, { grant_type: 'refresh_token', refresh_token: pool.shift()! });
  for (const field of ['access_token', 'refresh_token', 'id_token']) {
    if (typeof json[field] !== 'string') throw new BenchError(`${target.kind}: the refresh grant answered no ${field}: ${JSON.stringify(json).slice(0, 300)}`);
  }
  let exhausted = 0;
  const headers = { authorization: basic(target.rt), 'content-type': FORM };
  const request = (): RequestSpec => ({
    method: 'POST',
    path: '/token',
    headers,
    setupRequest: (spec) => {
      const token = pool.shift();
      if (!token) exhausted++;
      return { ...spec, body: `grant_type=refresh_token&refresh_token=${token ?? 'pool-exhausted'}` };
    },
  });
  const measured = await measure(target, request);
  return { ...measured, exhausted };
}

function randomTokens(count: number, length: number): string[] {
  return Array.from({ length: count }, () => randomBytes(Math.ceil((length * 3) / 4)).toString('base64url').slice(0, length));
}

// One user, one grant and one refresh token per pool entry, written as oidc-provider would.
async function seedOurRefreshTokens(db: pg.Client, tenantId: string, clientId: string, count: number): Promise<string[]> {
  const tokens = randomTokens(count, REFRESH_TOKEN_LENGTH);
  const grants = randomTokens(count, 21);
  const iat = Math.floor(Date.now() / 1000);
  const exp = iat + 14 * 24 * 3600;
  await db.query(
    `WITH seed AS (
       SELECT t.token, t.grant_id, gen_random_uuid() AS user_id, t.n
         FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(token, grant_id, n)),
     seeded_users AS (
       INSERT INTO users (id, tenant_id, email, name, created_at)
       SELECT user_id, $3, 'rt' || n || '@bench.example', 'User ' || n, now() FROM seed),
     seeded_grants AS (
       INSERT INTO oidc_payloads (model, id, payload, account_id, expires_at)
       SELECT 'Grant', grant_id, jsonb_build_object('iat', $4::bigint, 'exp', $5::bigint, 'jti', grant_id, 'kind', 'Grant',
                'accountId', user_id::text, 'clientId', $6::text, 'openid', jsonb_build_object('scope', $7::text)),
              user_id::text, to_timestamp($5)
         FROM seed)
     INSERT INTO oidc_payloads (model, id, payload, grant_id, account_id, expires_at)
     SELECT 'RefreshToken', token, jsonb_build_object('iat', $4::bigint, 'exp', $5::bigint, 'jti', token, 'kind', 'RefreshToken',
              'clientId', $6::text, 'accountId', user_id::text, 'grantId', grant_id, 'gty', 'authorization_code', 'scope', $7::text,
              'authTime', $4::bigint, 'iiat', $4::bigint, 'amr', jsonb_build_array('pwd'), 'expiresWithSession', false),
            grant_id, user_id::text, to_timestamp($5)
       FROM seed`,
    [tokens, grants, tenantId, iat, exp, clientId, RT_SCOPE],
  );
  return tokens;
}

async function seedBareRefreshTokens(target: Target, count: number): Promise<string[]> {
  const response = await fetch(`${target.url}/bench/refresh-tokens?count=${count}`, { method: 'POST', signal: AbortSignal.timeout(120_000) });
  if (!response.ok) throw new BenchError(`bare: seeding refresh tokens answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as string[];
}

// Enough tokens for the warm-up and the measured run at 1.5x the client-credentials rate.
const poolSize = (ccRps: number) => Math.min(1_000_000, Math.ceil(ccRps * 1.5 * (settings.warmup + settings.duration)) + 500);

// ---------------------------------------------------------------------------------------------
// Session lookups, in-process on the same schema

const sessionId = (seed: string, n: number) => `s${String(n).padStart(7, '0')}${createHash('md5').update(`${n}${seed}`).digest('hex').slice(0, 13)}`;
const sessionUid = (seed: string, n: number) => `u${createHash('md5').update(`uid${n}${seed}`).digest('hex').slice(0, 20)}`;

// Sessions numbered first..last, as oidc-provider stores them after a password login at one client.
async function seedSessions(db: pg.Client, seed: string, clientId: string, first: number, last: number): Promise<void> {
  const iat = Math.floor(Date.now() / 1000);
  await db.query(
    `INSERT INTO oidc_payloads (model, id, uid, payload, account_id, expires_at)
     SELECT 'Session', s.id, s.uid,
            jsonb_build_object('iat', $4::bigint - g % 86400, 'exp', $4::bigint + 14 * 86400, 'jti', s.id, 'uid', s.uid, 'kind', 'Session',
              'accountId', s.account, 'loginTs', $4::bigint - g % 86400, 'acr', $6::text, 'amr', jsonb_build_array('pwd'),
              'authorizations', jsonb_build_object($5::text, jsonb_build_object('sid', md5('sid' || g || $3), 'grantId', md5('grant' || g || $3),
                'persistsLogout', false))),
            s.account, to_timestamp($4::bigint + 14 * 86400)
       FROM generate_series($1::int, $2::int) g,
            LATERAL (SELECT 's' || lpad(g::text, 7, '0') || substr(md5(g || $3), 1, 13) AS id,
                            'u' || substr(md5('uid' || g || $3), 1, 20) AS uid,
                            md5('account' || (g % 50000)) AS account) s`,
    [first, last, seed, iat, clientId, ACR_PASSWORD],
  );
  await db.query('ANALYZE oidc_payloads');
}

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function time(items: number[], work: (n: number) => Promise<unknown>): Promise<{ p50: number; p99: number }> {
  const samples: number[] = [];
  for (const n of items) {
    const started = performance.now();
    const found = await work(n);
    samples.push(performance.now() - started);
    if (!found) throw new BenchError(`session ${n} was not found`);
  }
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

interface LookupRow {
  operation: string;
  size: number;
  p50: number;
  p99: number;
}

async function sessionLookups(store: { databaseUrl: string; keyPrefix: string }, admin: pg.Client, clientId: string): Promise<LookupRow[]> {
  const db = createDatabase({ url: store.databaseUrl, poolMax: 10, dataDir: '' });
  const hot = new RedisHotStore({ urls: [settings.redisUrl], keyPrefix: store.keyPrefix });
  const adapterFor = createAdapterFactory({ db, hot, log: pino({ level: 'silent' }) });
  const sessions = adapterFor('Session');
  const seed = randomBytes(4).toString('hex');
  const used = new Set<number>();
  // Sessions not read before, spread over the whole table.
  const fresh = (size: number, count = settings.lookups) => {
    const picked: number[] = [];
    while (picked.length < count) {
      const n = 1 + Math.floor(Math.random() * size);
      if (!used.has(n)) used.add(n), picked.push(n);
    }
    return picked;
  };
  const rows: LookupRow[] = [];
  try {
    let stored = 0;
    for (const size of [SMALL, settings.big]) {
      const started = performance.now();
      await seedSessions(admin, seed, clientId, stored + 1, size);
      log(`sessions: seeded ${(size - stored).toLocaleString('en-US')} sessions in ${Math.round(performance.now() - started)} ms (${size.toLocaleString('en-US')} stored)`);
      stored = size;
      await waitForQuiet(settings.quietWait, settings.quietBusy);
      // Warm the connection pools and the query plan; these sessions are not measured.
      await time(fresh(size, 200), (n) => sessions.find(sessionId(seed, n)));
      const cold = fresh(size);
      rows.push({ operation: 'Session find by id, cold (Redis miss, PostgreSQL)', size, ...(await time(cold, (n) => sessions.find(sessionId(seed, n)))) });
      rows.push({ operation: 'Session find by id, warm (Redis hit)', size, ...(await time(cold, (n) => sessions.find(sessionId(seed, n)))) });
      rows.push({ operation: 'Session findByUid, cold', size, ...(await time(fresh(size), (n) => sessions.findByUid(sessionUid(seed, n)))) });
    }
  } finally {
    await hot.close();
    await closeDatabase(db);
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Output

const fmtRps = (value: number) => Math.round(value).toLocaleString('en-US');
const fmtMs = (value: number) => (value >= 100 ? String(Math.round(value)) : value.toFixed(value % 1 === 0 ? 0 : 1));
const fmtMs2 = (value: number) => value.toFixed(2);
const flag = (m: Measurement) => (m.failures ? ` (!${m.failures} failed)` : '');

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  limitRunTime(4 * (settings.warmup + settings.duration + settings.quietWait + 30) + 2 * settings.quietWait + 900);
  const started = new Date();
  log(`machine: ${machine()}`);
  log(`${settings.alg}; ${settings.connections} connections; ${settings.warmup} s warm-up + ${settings.duration} s per run; sessions ${SMALL} and ${settings.big}`);

  const store = await createOurStore(settings.databaseUrl, settings.redisUrl, 'bench_sessions');
  const env = { ...store.env, SIGNING_ALG: settings.alg };
  log(`our provider: schema ${store.schema}, Redis prefix ${store.keyPrefix}; creating fixtures with the CLI`);
  await runCli(['apis', 'create', '--identifier', API, '--name', 'Bench', '--scope', API_SCOPE], env);
  const clientOf = (output: string): Client => {
    const created = parseJsonOutput(output);
    if (typeof created.client_id !== 'string' || typeof created.client_secret !== 'string') throw new BenchError(`clients create printed no client_id/client_secret`);
    return { id: created.client_id, secret: created.client_secret };
  };
  const cc = clientOf(await runCli(['clients', 'create', '--name', 'bench', '--grant-type', 'client_credentials'], env));
  const rt = clientOf(
    await runCli(['clients', 'create', '--name', 'bench-rt', '--grant-type', 'authorization_code', '--grant-type', 'refresh_token', '--redirect-uri', REDIRECT_URI], env),
  );
  const tenant = parseJsonOutput(await runCli(['tenants', 'create', '--slug', 'bench', '--name', 'Bench'], env));
  if (typeof tenant.id !== 'string') throw new BenchError('tenants create printed no id');

  const admin = new pg.Client({ connectionString: store.databaseUrl, connectionTimeoutMillis: 5000 });
  await admin.connect();
  try {
    const bareSecret = randomBytes(32).toString('base64url');
    const [oursStarted, bareStarted] = await Promise.all([
      startOurs(env, settings.alg, settings.profileDir),
      startBare({ BENCH_UNBOUNDED_STORE: '1', SIGNING_ALG: settings.alg, BENCH_CLIENT_ID: 'bench-bare', BENCH_CLIENT_SECRET: bareSecret, BENCH_API: API, BENCH_API_SCOPE: API_SCOPE }, settings.alg, settings.profileDir),
    ]);
    const ours: Target = { ...oursStarted, kind: 'ours', cc, rt };
    const bare: Target = { ...bareStarted, kind: 'bare', cc: { id: 'bench-bare', secret: bareSecret }, rt: { id: 'bench-bare-rt', secret: bareSecret } };
    const results: Record<'cc' | 'refresh', Record<'ours' | 'bare', Measurement>> = { cc: {} as never, refresh: {} as never };
    try {
      for (const target of [ours, bare]) {
        log(`client credentials: ${target.kind}`);
        results.cc[target.kind] = await clientCredentials(target);
        await sleep(500);
        const size = poolSize(results.cc[target.kind].rps);
        const seeding = performance.now();
        const pool = target.kind === 'ours' ? await seedOurRefreshTokens(admin, tenant.id, rt.id, size) : await seedBareRefreshTokens(target, size);
        log(`refresh tokens: ${target.kind}: seeded ${size.toLocaleString('en-US')} in ${Math.round(performance.now() - seeding)} ms`);
        log(`refresh-token grant: ${target.kind}`);
        const measured = await refresh(target, pool);
        if (measured.exhausted) log(`  warning: ${target.kind}: the token pool ran out; ${measured.exhausted} requests sent an unknown token`);
        results.refresh[target.kind] = measured;
        await sleep(500);
      }
    } finally {
      await Promise.all([stopChild(ours.child), stopChild(bare.child)]);
    }
    for (const [name, m] of Object.entries(results).flatMap(([scenario, byKind]) => Object.entries(byKind).map(([kind, m]) => [`${scenario} ${kind}`, m] as const))) {
      if (m.failures) log(`  warning: ${name} had ${m.failures} failed requests; status codes ${JSON.stringify(m.statusCodes)}`);
    }

    log('session lookups: seeding and measuring in-process');
    const lookups = await sessionLookups(store, admin, rt.id);

    const throughput = renderTables(
      ['scenario', 'alg', 'ours req/s', 'ours p50 ms', 'ours p99 ms', 'bare req/s', 'bare p50 ms', 'bare p99 ms', 'ours/bare'],
      ([['client-credentials token (JWT, resource)', 'cc'], ['refresh-token grant (rotation, ID token)', 'refresh']] as const).map(([label, key]) => {
        const { ours: o, bare: b } = results[key];
        return [label, settings.alg, fmtRps(o.rps) + flag(o), fmtMs(o.p50), fmtMs(o.p99), fmtRps(b.rps) + flag(b), fmtMs(b.p50), fmtMs(b.p99), b.rps ? (o.rps / b.rps).toFixed(2) : 'n/a'];
      }),
      2,
    );
    const sessions = renderTables(
      ['lookup', 'stored sessions', 'p50 ms', 'p99 ms'],
      lookups.map((row) => [row.operation, row.size.toLocaleString('en-US'), fmtMs2(row.p50), fmtMs2(row.p99)]),
      2,
    );
    const refreshRatio = results.refresh.ours.rps / results.cc.ours.rps;
    const bareRatio = results.refresh.bare.rps / results.cc.bare.rps;
    const coldSmall = lookups.find((row) => row.operation.includes('cold') && row.operation.includes('by id') && row.size === SMALL)!;
    const coldBig = lookups.find((row) => row.operation.includes('cold') && row.operation.includes('by id') && row.size === settings.big)!;
    const lookupRatio = coldBig.p99 / coldSmall.p99;
    const verdicts = [
      `refresh throughput >= 0.7 x client-credentials throughput (ours, same run): ${refreshRatio >= 0.7 ? 'MET' : 'NOT MET'} (${refreshRatio.toFixed(2)}; bare: ${bareRatio.toFixed(2)})`,
      `session lookup p99 at ${settings.big.toLocaleString('en-US')} within 2 x of ${SMALL.toLocaleString('en-US')} (cold find by id): ${lookupRatio <= 2 ? 'MET' : 'NOT MET'} (${lookupRatio.toFixed(2)} x)`,
    ];
    const loads = Object.values(results).flatMap((byKind) => Object.values(byKind).map((m) => m.background)).filter((value) => value !== undefined);
    const load = loads.length ? ` Other load on the machine just before each run: ${Math.min(...loads).toFixed(0)}-${Math.max(...loads).toFixed(0)}% of all CPUs.` : '';
    process.stdout.write(`\n${throughput.text}\n\n${sessions.text}\n\n${verdicts.join('\n')}\n`);
    process.stdout.write(
      [
        '',
        '<!-- benchmark results, paste below -->',
        `Run on ${started.toISOString()}: ${machine()}.`,
        `${settings.connections} connections, ${settings.warmup} s warm-up + ${settings.duration} s measured per run, autocannon in the same machine over loopback. ` +
          `req/s counts 2xx responses only; latencies in ms.${load}`,
        '',
        throughput.markdown,
        '',
        `Session lookups, ${settings.lookups} sessions per row, one at a time, in-process on PostgreSQL + Redis:`,
        '',
        sessions.markdown,
        '',
        ...verdicts.map((verdict) => `- ${verdict}`),
        '',
      ].join('\n'),
    );
  } finally {
    await admin.end();
  }
}

await runBench(main);
