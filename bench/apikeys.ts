// API key verification on PostgreSQL + Redis, two ways:
//  1. over HTTP: POST /api-keys/verify against our provider (a child process), as a resource server
//     calls it for every request that carries a key (HTTP, client authentication and JSON included);
//  2. in-process: the verifier itself (src/apikeys/verifier.ts), as the admin API and the token
//     exchange call it, from 10 concurrent callers, each call timed.
// Both for the two paths:
//  - cache hit: a pool of keys each verified once before, so the record, its owner and its tenant
//    are in the instance's memory; each verification checks the tenant's key generation and the
//    owner's permissions (held in memory, invalidated over pub/sub, read again from Redis once a
//    second), counts the key against its rate limit (leases taken from the shared count in Redis)
//    and counts its usage: the same work as in production, no shortcut;
//  - cold: every request a key never verified before (two PostgreSQL reads by public id, before
//    and after the tenant's key generation, a first rate-limit lease from Redis), seeded beforehand
//    with one SQL statement; all keys have one owner, so the owner's row is cached after the first.
// The throw-away schema and key prefix are removed on exit, error, signal or time-out.
//
//   node bench/apikeys.ts
//
// Environment (all optional): BENCH_CONNECTIONS (10), BENCH_DURATION (10), BENCH_WARMUP (2),
// BENCH_QUIET_WAIT / BENCH_QUIET_BUSY (30; 20), BENCH_DATABASE_URL, BENCH_REDIS_URL,
// BENCH_APIKEYS_HOT (200 keys in the cache-hit pool), BENCH_APIKEYS_COLD (60000 keys for the cold run),
// BENCH_PROFILE_DIR (a CPU profile of the provider, as in bench/run.ts).
import path from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { pino } from 'pino';
import type { RequestSpec } from 'autocannon';
import {
  BenchError, basic, createOurStore, fire, intSetting, limitRunTime, log, machine, measurementOf, onCleanup, runBench, startBare, startOurs, stopChild, storeSettings, waitForQuiet, type Measurement,
} from './harness.ts';
import { loadConfig } from '../src/config.ts';
import { createRuntime, type Runtime } from '../src/runtime.ts';
import { performance } from 'node:perf_hooks';
import { DEFAULT_TENANT_ID } from '../src/tenants/constants.ts';
import { generateKey } from '../src/apikeys/format.ts';
import { sha256Hex } from '../src/security/crypto.ts';

const ENVIRONMENT = 'bench';

const settings = {
  connections: intSetting('BENCH_CONNECTIONS', 10, 1, 1024),
  duration: intSetting('BENCH_DURATION', 10, 1, 300),
  warmup: intSetting('BENCH_WARMUP', 2, 0, 60),
  quietWait: intSetting('BENCH_QUIET_WAIT', 30, 0, 600),
  quietBusy: intSetting('BENCH_QUIET_BUSY', 20, 1, 100),
  hot: intSetting('BENCH_APIKEYS_HOT', 200, 1, 100_000),
  cold: intSetting('BENCH_APIKEYS_COLD', 60_000, 1000, 2_000_000),
  profileDir: process.env.BENCH_PROFILE_DIR ? path.resolve(process.env.BENCH_PROFILE_DIR) : undefined,
  ...storeSettings(),
};

interface Seeded {
  resourceServer: { id: string; secret: string };
  hot: string[];
  cold: string[];
  runtime: Runtime;
}

// A user with users:read on the admin API, a resource server, and the keys: the hot ones through
// the service (as the admin API makes them), the cold ones with one INSERT.
async function seed(env: Record<string, string>, databaseUrl: string): Promise<Seeded> {
  const runtime = await createRuntime(loadConfig({ ...env, API_KEY_ENVIRONMENT: ENVIRONMENT, ISSUER: 'http://127.0.0.1:1' }), { log: pino({ level: 'warn' }) });
  onCleanup(() => runtime.close());
  const tenantId = DEFAULT_TENANT_ID;
  const role = await runtime.rbac.createRole(tenantId, { name: 'bench-key-owner', permissions: [{ api: runtime.adminApi, permission: 'users:read' }] });
  const owner = await runtime.users.create(tenantId, { email: 'key-owner@bench.example', emailVerified: true });
  await runtime.rbac.assign(tenantId, role.id, 'user', owner.id);
  const { client, clientSecret } = await runtime.clients.create({ name: 'bench resource server', grantTypes: ['client_credentials'], tenantId });
  const permissions = [{ api: runtime.adminApi, permission: 'users:read' }];
  const hot: string[] = [];
  for (let i = 0; i < settings.hot; i++) {
    hot.push((await runtime.apiKeys.create(tenantId, { name: `hot ${i}`, owner: { type: 'user', id: owner.id }, permissions }, async () => true)).key);
  }
  const cold = Array.from({ length: settings.cold }, () => generateKey(ENVIRONMENT));
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    await db.query(
      `INSERT INTO api_keys (id, tenant_id, public_id, environment, secret_sha256, name, owner_type, owner_id, permissions, created_at)
       SELECT gen_random_uuid(), $1, t.public_id, $2, t.digest, 'cold ' || t.n, 'user', $3, $4::jsonb, now()
         FROM unnest($5::text[], $6::text[]) WITH ORDINALITY AS t(public_id, digest, n)`,
      [tenantId, ENVIRONMENT, owner.id, JSON.stringify(permissions), cold.map((key) => key.publicId), cold.map((key) => sha256Hex(key.secret))],
    );
    await db.query('ANALYZE api_keys');
  } finally {
    await db.end();
  }
  return { resourceServer: { id: client.clientId, secret: clientSecret! }, hot, cold: cold.map((key) => key.key), runtime };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

// The verifier in this process (its own caches): `next` keys from `callers` concurrent loops for
// `seconds`, each call timed; a refusal is a failure.
async function inProcess(runtime: Runtime, next: () => string | undefined, seconds: number, callers = 10): Promise<Measurement & { exhausted: number }> {
  const background = await waitForQuiet(settings.quietWait, settings.quietBusy);
  const samples: number[] = [];
  let failures = 0;
  let exhausted = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (performance.now() < end) {
        const key = next();
        if (!key) {
          exhausted++;
          return;
        }
        const begun = performance.now();
        const result = await runtime.apiKeyVerifier.verify(key, '127.0.0.1');
        samples.push(performance.now() - begun);
        if (!result.ok) failures++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  samples.sort((a, b) => a - b);
  return { background, rps: (samples.length - failures) / elapsed, p50: percentile(samples, 50), p99: percentile(samples, 99), failures, statusCodes: {}, exhausted };
}

async function verifyOnce(url: string, seeded: Seeded, key: string): Promise<void> {
  const response = await fetch(`${url}/api-keys/verify`, {
    method: 'POST',
    headers: { authorization: basic(seeded.resourceServer), 'content-type': 'application/json' },
    body: JSON.stringify({ apiKey: key }),
    signal: AbortSignal.timeout(10_000),
  });
  const body = (await response.json()) as { active?: boolean };
  if (response.status !== 200 || body.active !== true) throw new BenchError(`POST /api-keys/verify answered ${response.status} ${JSON.stringify(body)}`);
}

// Each request verifies the next key of `next()`; an answer other than active counts as a failure.
async function measure(url: string, seeded: Seeded, next: () => string | undefined, warmup: number): Promise<Measurement & { exhausted: number }> {
  let exhausted = 0;
  const headers = { authorization: basic(seeded.resourceServer), 'content-type': 'application/json' };
  const request = (): RequestSpec => ({
    method: 'POST',
    path: '/api-keys/verify',
    headers,
    setupRequest: (spec) => {
      const key = next();
      if (!key) exhausted++;
      return { ...spec, body: JSON.stringify({ apiKey: key ?? 'pool-exhausted' }) };
    },
  });
  const options = () => ({ url, connections: settings.connections, requests: [request()] });
  const background = await waitForQuiet(settings.quietWait, settings.quietBusy);
  if (warmup > 0) await fire('ours', options(), warmup);
  const result = await fire('ours', options(), settings.duration);
  // The endpoint answers 200 for inactive keys too; a sample after the run shows none were.
  const sample = next();
  if (sample) await verifyOnce(url, seeded, sample);
  return { ...measurementOf(result, background), exhausted };
}

// The bare oidc-provider's nearest equivalent: a resource server introspecting an opaque access
// token (client credentials, no resource) with HTTP Basic, the library's models in memory.
async function bareIntrospection(): Promise<Measurement & { exhausted: number }> {
  const secret = randomBytes(32).toString('base64url');
  const bare = await startBare({ BENCH_UNBOUNDED_STORE: '1', BENCH_CLIENT_ID: 'bench-bare', BENCH_CLIENT_SECRET: secret }, 'apikeys', settings.profileDir);
  try {
    const authorization = basic({ id: 'bench-bare', secret });
    const form = { authorization, 'content-type': 'application/x-www-form-urlencoded' };
    const tokens: string[] = [];
    for (let i = 0; i < settings.hot; i++) {
      const response = await fetch(`${bare.url}/token`, { method: 'POST', headers: form, body: 'grant_type=client_credentials', signal: AbortSignal.timeout(10_000) });
      const body = (await response.json()) as { access_token?: string };
      if (!body.access_token) throw new BenchError(`bare: client credentials answered ${response.status} ${JSON.stringify(body)}`);
      tokens.push(body.access_token);
    }
    let turn = 0;
    const request: RequestSpec = {
      method: 'POST',
      path: '/token/introspection',
      headers: form,
      setupRequest: (spec) => ({ ...spec, body: `token=${tokens[turn++ % tokens.length]}` }),
    };
    const options = { url: bare.url, connections: settings.connections, requests: [request] };
    const background = await waitForQuiet(settings.quietWait, settings.quietBusy);
    if (settings.warmup > 0) await fire('bare', options, settings.warmup);
    const result = await fire('bare', options, settings.duration);
    const check = await fetch(`${bare.url}/token/introspection`, { method: 'POST', headers: form, body: `token=${tokens[0]}` });
    if (((await check.json()) as { active?: boolean }).active !== true) throw new BenchError('bare: introspection did not find the token active');
    return { ...measurementOf(result, background), exhausted: 0 };
  } finally {
    await stopChild(bare.child);
  }
}

function row(label: string, measured: Measurement & { exhausted: number }): string {
  const background = measured.background === undefined ? 'n/a' : `${measured.background.toFixed(0)}%`;
  return `| ${label} | ${Math.round(measured.rps).toLocaleString('en-US')} | ${measured.p50.toFixed(2)} | ${measured.p99.toFixed(2)} | ${measured.failures} | ${measured.exhausted} | ${background} |`;
}

await runBench(async () => {
  limitRunTime(15 * 60);
  log(`API key verification: ${machine()}`);
  const store = await createOurStore(settings.databaseUrl, settings.redisUrl, 'bench_apikeys');
  const env = { ...store.env, API_KEY_ENVIRONMENT: ENVIRONMENT, API_KEY_RATE_LIMIT: '1000000', LOG_LEVEL: 'warn' };
  const ours = await startOurs(env, 'apikeys', settings.profileDir);
  log(`seeding ${settings.hot} cache-hit keys and ${settings.cold} cold keys`);
  const seeded = await seed(env, store.databaseUrl);

  // Every hot key verified once: record, owner and tenant cached on the instance.
  for (const key of seeded.hot) await verifyOnce(ours.url, seeded, key);
  let turn = 0;
  log(`cache hit: ${settings.connections} connections, ${settings.duration} s`);
  const hit = await measure(ours.url, seeded, () => seeded.hot[turn++ % seeded.hot.length], settings.warmup);
  // The floor of the HTTP stack on this machine: the same middleware, no work behind it.
  log(`GET /healthz: ${settings.connections} connections, ${settings.duration} s`);
  const floorBackground = await waitForQuiet(settings.quietWait, settings.quietBusy);
  const floor = { ...measurementOf(await fire('ours', { url: ours.url, connections: settings.connections, requests: [{ method: 'GET', path: '/healthz' }] }, settings.duration), floorBackground), exhausted: 0 };
  let coldNext = 0;
  log(`cold: ${settings.connections} connections, ${settings.duration} s, each key once`);
  const cold = await measure(ours.url, seeded, () => seeded.cold[coldNext++], 0);
  await stopChild(ours.child);
  log(`bare oidc-provider introspection: ${settings.connections} connections, ${settings.duration} s`);
  const bare = await bareIntrospection();

  // In-process: the seeding runtime's verifier has cached nothing yet, so every cold key is new
  // to it (from the start of the pool again); the hot keys are warmed first.
  for (const key of seeded.hot) await seeded.runtime.apiKeyVerifier.verify(key, '127.0.0.1');
  log(`in-process cache hit: 10 callers, ${settings.duration} s`);
  let turnIn = 0;
  const hitIn = await inProcess(seeded.runtime, () => seeded.hot[turnIn++ % seeded.hot.length], settings.duration);
  log(`in-process cold: 10 callers, ${settings.duration} s, each key once`);
  let coldIn = 0;
  const coldInProcess = await inProcess(seeded.runtime, () => seeded.cold[coldIn++], settings.duration);

  const lines = [
    `API key verification (PostgreSQL + Redis on loopback; HTTP: POST /api-keys/verify, ${settings.connections} connections; in-process: 10 callers; ${settings.duration} s each; run ${randomUUID().slice(0, 8)})`,
    '',
    '| path | verifications/s | p50 ms | p99 ms | failures | pool exhausted | other load |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    row('HTTP, cache hit', hit),
    row('HTTP, cold (key never seen by the instance)', cold),
    row('HTTP floor: GET /healthz (no work)', floor),
    row('bare oidc-provider: POST /token/introspection of an opaque token (baseline)', bare),
    row('in-process verifier, cache hit', hitIn),
    row('in-process verifier, cold', coldInProcess),
    '',
    `target (cache hit): >= 5,000/s with p99 < 10 ms: HTTP ${hit.rps >= 5000 && hit.p99 < 10 ? 'met' : 'NOT met'}, in-process ${hitIn.rps >= 5000 && hitIn.p99 < 10 ? 'met' : 'NOT met'}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
});
