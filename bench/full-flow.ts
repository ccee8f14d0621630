// The full-flow load benchmark (issue 10): browserless authorization code + PKCE logins end to end
// against our provider (a child process on PostgreSQL + Redis, argon2id at m=19 MiB, t=2, p=1),
// then the same logins mixed with refresh-token and client-credentials grants, then the provider's
// resident memory with 10,000 and 100,000 active sessions. The bare oidc-provider runs in the same
// run for scale: client credentials, refresh, and the same login (a form page, a POST checked with
// argon2id at the same parameters, the code and the token), with its sessions, grants and tokens in
// memory and no login page, tenant, session policy or audit of ours: the floor the library itself
// sets. Loopback only, bounded in time; every child process is stopped and the throw-away schema
// and Redis key prefix are removed on exit, error or signal.
//
//   node bench/full-flow.ts          (also the last part of `npm run bench`)
//
// One login, as a browser without JavaScript does it, each virtual user with its own cookie jar:
// GET /auth (S256 PKCE, state, nonce, a first-party client bound to the tenant, so the password
// page comes at once and consent is skipped) → the login page → POST /interaction/:uid/login (the
// CSRF token from the page; the argon2id verification happens here) → the redirects back to the
// redirect_uri → POST /token with the code and the verifier (answers access, ID and refresh token).
//
// Environment (all optional):
//   BENCH_DURATION            measured seconds per run                              (10)
//   BENCH_WARMUP              discarded warm-up seconds before each run             (2)
//   BENCH_LOGIN_CONCURRENCY   virtual users logging in, each in a closed loop       (2 x CPUs)
//   BENCH_MIX_REFRESH         concurrent refresh-token clients in the mix           (2)
//   BENCH_MIX_CC              concurrent client-credentials clients in the mix      (2)
//   BENCH_USERS               users seeded (logins cycle through them)              (200)
//   BENCH_SESSIONS            active sessions for the first memory figure           (10000)
//   BENCH_SESSIONS_BIG        active sessions for the second memory figure; 0 skips (100000)
//   BENCH_SESSION_USE_BUDGET  seconds each memory step may spend using its sessions (150); the
//                             sessions left when it runs out stay stored but unused, and the output says so
//   BENCH_SKIP_MEMORY         1 skips the memory part
//   BENCH_MALLOC_ARENA_MAX    when set, our provider runs with MALLOC_ARENA_MAX=<n> (glibc)
//   BENCH_MALLOC_MMAP_THRESHOLD  when set, our provider runs with MALLOC_MMAP_THRESHOLD_=<bytes> (glibc): with
//                             it, argon2id's 19 MiB blocks go back to the system after each hash (see docs/benchmarks.md)
//   BENCH_UV_THREADPOOL_SIZE  when set, our provider runs with UV_THREADPOOL_SIZE=<n> (by default it sizes
//                             its pool itself: one thread per core, from 2 to 4)
//   BENCH_NODE_OPTIONS        our provider's NODE_OPTIONS; by default the V8 heap sizing `npm start` ships
//                             (package.json), as deployed; empty for Node's own defaults
//   BENCH_ALG                 signing algorithm                                     (ES256)
//   BENCH_QUIET_WAIT / BENCH_QUIET_BUSY, BENCH_DATABASE_URL, BENCH_REDIS_URL, BENCH_PROFILE_DIR (as in bench/run.ts)
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import {
  BenchError, FORM, basic, createOurStore, intSetting, limitRunTime, listSetting, log, machine, parseJsonOutput, percentile,
  cpuSeconds, cpuSecondsOfCommands, machineBusySeconds, renderTables, residentMemory, runBench, runCli, sleep, startBare, startOurs, stopChild, storeSettings, threadPoolSize, waitForQuiet, type Started,
} from './harness.ts';
import { createPasswordHashing, type Argon2Parameters } from '../src/security/passwords.ts';
import { ACR_PASSWORD } from '../src/oidc/assurance.ts';

const API = 'https://api.bench.test';
const API_SCOPE = 'read';
const REDIRECT_URI = 'https://rp.bench.test/callback';
const SCOPE = 'openid email profile';
const PASSWORD = 'correct horse battery staple 42';
// The issue's parameters (OWASP's first argon2id recommendation), as the provider is configured.
const ARGON2: Argon2Parameters = { memoryCost: 19456, timeCost: 2, parallelism: 1 };
const CPUS = os.availableParallelism();

const settings = {
  duration: intSetting('BENCH_DURATION', 10, 1, 300),
  warmup: intSetting('BENCH_WARMUP', 2, 0, 60),
  logins: intSetting('BENCH_LOGIN_CONCURRENCY', 2 * CPUS, 1, 256),
  mixRefresh: intSetting('BENCH_MIX_REFRESH', 2, 0, 256),
  mixCc: intSetting('BENCH_MIX_CC', 2, 0, 256),
  users: intSetting('BENCH_USERS', 200, 1, 100_000),
  sessions: intSetting('BENCH_SESSIONS', 10_000, 100, 1_000_000),
  sessionsBig: intSetting('BENCH_SESSIONS_BIG', 100_000, 0, 2_000_000),
  useBudget: intSetting('BENCH_SESSION_USE_BUDGET', 150, 5, 3600),
  skipMemory: process.env.BENCH_SKIP_MEMORY === '1',
  mmapThreshold: intSetting('BENCH_MALLOC_MMAP_THRESHOLD', 0, 0, 2 ** 30),
  arenaMax: intSetting('BENCH_MALLOC_ARENA_MAX', 0, 0, 64),
  threadPool: intSetting('BENCH_UV_THREADPOOL_SIZE', 0, 0, 1024),
  nodeOptions: process.env.BENCH_NODE_OPTIONS ?? shippedNodeOptions(),
  alg: listSetting('BENCH_ALG', ['RS256', 'ES256', 'EdDSA'], ['ES256'])[0],
  quietWait: intSetting('BENCH_QUIET_WAIT', 30, 0, 600),
  quietBusy: intSetting('BENCH_QUIET_BUSY', 20, 1, 100),
  profileDir: process.env.BENCH_PROFILE_DIR ? path.resolve(process.env.BENCH_PROFILE_DIR) : undefined,
  ...storeSettings(),
};

// The NODE_OPTIONS default of package.json's start script: ${NODE_OPTIONS:-<default>}.
function shippedNodeOptions(): string | undefined {
  const start = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: { start: string } }).scripts.start;
  return /\$\{NODE_OPTIONS:-([^}]*)\}/.exec(start)?.[1] || undefined;
}

interface Client {
  id: string;
  secret: string;
}

// ---------------------------------------------------------------------------------------------
// A browser without JavaScript: one cookie jar per virtual user, redirects followed by hand.
// Node's fetch (undici) keeps connections alive across requests.

class Jar {
  #cookies = new Map<string, string>();

  header(): string {
    return [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  store(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';');
      const index = pair.indexOf('=');
      const name = pair.slice(0, index).trim();
      const value = pair.slice(index + 1).trim();
      const expired = attributes.some((attribute) => /^\s*expires=Thu, 01 Jan 1970/i.test(attribute) || /^\s*max-age=0/i.test(attribute));
      if (expired || value === '') this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }
}

// When set, each request of a login adds its time under its step's name (the single-user run).
let stepTimes: Map<string, number[]> | undefined;

function stepName(method: string, url: string): string {
  const { pathname } = new URL(url);
  if (pathname === '/auth') return 'GET /auth';
  if (pathname.startsWith('/auth/')) return `${method} /auth/:uid (resume)`;
  if (/^\/interaction\/[^/]+$/.test(pathname)) return `${method} /interaction/:uid`;
  return `${method} ${pathname.replace(/^\/interaction\/[^/]+/, '/interaction/:uid')}`;
}

async function request(url: string, init: RequestInit & { jar?: Jar } = {}): Promise<{ status: number; location: string | null; body: string; response: Response }> {
  const begun = performance.now();
  const headers = new Headers(init.headers);
  const cookie = init.jar?.header();
  if (cookie) headers.set('cookie', cookie);
  const response = await fetch(url, { ...init, headers, redirect: 'manual', signal: AbortSignal.timeout(30_000) });
  init.jar?.store(response);
  // The body is always read, so the connection goes back to the pool.
  const body = await response.text();
  if (stepTimes && init.jar !== undefined) {
    const name = stepName(init.method ?? 'GET', url);
    const times = stepTimes.get(name) ?? [];
    times.push(performance.now() - begun);
    stepTimes.set(name, times);
  }
  return { status: response.status, location: response.headers.get('location'), body, response };
}

function unescapeHtml(value: string): string {
  return value.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>');
}

const b64url = (bytes: Buffer) => bytes.toString('base64url');

// ---------------------------------------------------------------------------------------------
// One complete login

interface Target extends Started {
  kind: 'ours' | 'bare';
  cc: Client;
  rt: Client;
}

interface LoginTiming {
  full: number;
  post: number;
  refreshToken: string;
}

let nextUser = 0;
const userEmail = (n: number) => `user${n}@bench.example`;

async function login(target: Target, web: Client): Promise<LoginTiming> {
  const started = performance.now();
  const jar = new Jar();
  const verifier = b64url(randomBytes(32));
  const state = b64url(randomBytes(16));
  const nonce = b64url(randomBytes(16));
  const query = new URLSearchParams({
    client_id: web.id,
    redirect_uri: REDIRECT_URI,
    response_type: 'code',
    scope: SCOPE,
    code_challenge: b64url(createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  let answer = await request(`${target.url}/auth?${query}`, { jar });
  let post = Number.NaN;
  let callback: URL | undefined;
  for (let hop = 0; hop < 12 && !callback; hop++) {
    if (answer.status >= 300 && answer.status < 400 && answer.location) {
      const next = new URL(answer.location, target.url);
      if (next.origin !== target.url) callback = next;
      else answer = await request(next.toString(), { jar });
      continue;
    }
    const action = answer.body.match(/action="(\/interaction\/[^"]+\/login)"/)?.[1];
    const csrf = answer.body.match(/name="csrf" value="([^"]*)"/)?.[1];
    if (answer.status !== 200 || !action || !csrf || !Number.isNaN(post)) {
      throw new BenchError(`login: unexpected answer ${answer.status} (${answer.location ?? 'no location'}): ${answer.body.slice(0, 200)}`);
    }
    const form = new URLSearchParams({ csrf: unescapeHtml(csrf), identifier: userEmail(nextUser++ % settings.users), password: PASSWORD });
    const posted = performance.now();
    answer = await request(target.url + unescapeHtml(action), { method: 'POST', jar, headers: { 'content-type': FORM }, body: form.toString() });
    post = performance.now() - posted;
    if (answer.status !== 303) throw new BenchError(`login POST answered ${answer.status}: ${answer.body.slice(0, 300)}`);
  }
  if (!callback || callback.origin + callback.pathname !== REDIRECT_URI) throw new BenchError('login: the flow did not come back to the redirect_uri');
  const code = callback.searchParams.get('code');
  if (!code || callback.searchParams.get('state') !== state) throw new BenchError(`login: the callback carries no code or a wrong state: ${callback.search}`);
  if (Number.isNaN(post)) throw new BenchError('login: the password page was never shown');
  const token = await request(`${target.url}/token`, {
    method: 'POST',
    jar: new Jar(),
    headers: { authorization: basic(web), 'content-type': FORM },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier }).toString(),
  });
  if (token.status !== 200) throw new BenchError(`token (authorization_code) answered ${token.status}: ${token.body.slice(0, 300)}`);
  const json = JSON.parse(token.body);
  for (const field of ['access_token', 'id_token', 'refresh_token']) {
    if (typeof json[field] !== 'string') throw new BenchError(`token (authorization_code) answered no ${field}`);
  }
  return { full: performance.now() - started, post, refreshToken: json.refresh_token };
}

// ---------------------------------------------------------------------------------------------
// Closed-loop workers: each runs its operation back to back until the window closes.

interface Series {
  kind: string;
  count: number;
  failures: number;
  firstError?: string;
  samples: number[];
  // A second latency per operation (the login POST alone).
  inner: number[];
  seconds: number;
  // CPU seconds our provider process and this (load-generating) process used during the window,
  // the PostgreSQL and Redis servers, and the whole machine (every process).
  providerCpu?: number;
  clientCpu?: number;
  serverCpu?: number;
  machineCpu?: number;
}

function series(kind: string): Series {
  return { kind, count: 0, failures: 0, samples: [], inner: [], seconds: 0 };
}

// Runs a measured window and notes the CPU time the provider and this process spent in it.
let providerPid = 0;
const SERVER_COMMANDS = ['postgres', 'redis-server'];
async function withCpu(into: Series, work: () => Promise<void>): Promise<void> {
  const provider = cpuSeconds(providerPid);
  const client = process.cpuUsage();
  const servers = cpuSecondsOfCommands(SERVER_COMMANDS);
  const machineBusy = machineBusySeconds();
  await work();
  const after = cpuSeconds(providerPid);
  if (provider !== undefined && after !== undefined) into.providerCpu = after - provider;
  const used = process.cpuUsage(client);
  into.clientCpu = (used.user + used.system) / 1e6;
  into.serverCpu = cpuSecondsOfCommands(SERVER_COMMANDS) - servers;
  into.machineCpu = machineBusySeconds() - machineBusy;
}

async function loop(workers: number, seconds: number, into: Series, operation: () => Promise<{ ms: number; inner?: number } | undefined>): Promise<void> {
  const until = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (performance.now() < until) {
        try {
          const done = await operation();
          if (!done) {
            await sleep(10);
            continue;
          }
          into.count++;
          into.samples.push(done.ms);
          if (done.inner !== undefined) into.inner.push(done.inner);
        } catch (error) {
          into.failures++;
          into.firstError ??= (error as Error).message;
          if (into.failures > 50 && into.failures > into.count) throw new BenchError(`${into.kind}: too many failures, first: ${into.firstError}`);
        }
      }
    }),
  );
  into.seconds = (performance.now() - started) / 1000;
}

async function timed(work: () => Promise<unknown>): Promise<{ ms: number }> {
  const started = performance.now();
  await work();
  return { ms: performance.now() - started };
}

async function tokenRequest(target: Target, client: Client, params: Record<string, string>): Promise<Record<string, unknown>> {
  const answer = await request(`${target.url}/token`, {
    method: 'POST',
    headers: { authorization: basic(client), 'content-type': FORM },
    body: new URLSearchParams(params).toString(),
  });
  if (answer.status !== 200) throw new BenchError(`${target.kind}: token (${params.grant_type}) answered ${answer.status}: ${answer.body.slice(0, 300)}`);
  return JSON.parse(answer.body);
}

const ccParams = { grant_type: 'client_credentials', resource: API, scope: API_SCOPE };

// Refresh tokens rotate: each refresh takes a token from the pool and puts its successor back.
function refresher(target: Target, pool: string[]) {
  return async () => {
    const token = pool.shift();
    if (!token) return undefined;
    return timed(async () => {
      const json = await tokenRequest(target, target.rt, { grant_type: 'refresh_token', refresh_token: token });
      if (typeof json.refresh_token !== 'string' || typeof json.access_token !== 'string') throw new BenchError(`${target.kind}: the refresh answered no tokens`);
      pool.push(json.refresh_token);
    });
  };
}

// ---------------------------------------------------------------------------------------------
// The argon2id hash alone, in this process, at the same parameters: the ceiling for logins.

async function hashCeiling(seconds: number): Promise<number> {
  const hashing = createPasswordHashing(ARGON2);
  const stored = await hashing.hash(PASSWORD);
  const measured = series('argon2id verify');
  await loop(CPUS, seconds, measured, () => timed(() => hashing.verify(stored, PASSWORD)));
  return measured.count / measured.seconds;
}

// ---------------------------------------------------------------------------------------------
// Fixtures

async function seedUsers(db: pg.Client, tenantId: string): Promise<void> {
  const hash = await createPasswordHashing(ARGON2).hash(PASSWORD);
  await db.query(
    `INSERT INTO users (id, tenant_id, email, name, password_hash, password_changed_at, email_verified, created_at)
     SELECT gen_random_uuid(), $1, 'user' || g || '@bench.example', 'User ' || g, $2, now(), true, now()
       FROM generate_series(0, $3::int - 1) g`,
    [tenantId, hash, settings.users],
  );
}

// Sessions first..last as oidc-provider stores them after a password login at the web client,
// each with its grant, for the seeded users: what the provider finds for a returning browser.
async function seedSessions(db: pg.Client, seed: string, clientId: string, tenantId: string, first: number, last: number): Promise<void> {
  const iat = Math.floor(Date.now() / 1000);
  await db.query(
    `WITH accounts AS (SELECT array_agg(id::text ORDER BY email) AS ids FROM users WHERE tenant_id = $6),
     seed AS (
       SELECT g, 's' || lpad(g::text, 7, '0') || substr(md5(g || $3), 1, 13) AS id, 'u' || substr(md5('uid' || g || $3), 1, 20) AS uid,
              'g' || substr(md5('grant' || g || $3), 1, 20) AS grant_id, accounts.ids[1 + g % array_length(accounts.ids, 1)] AS account
         FROM generate_series($1::int, $2::int) g, accounts),
     grants AS (
       INSERT INTO oidc_payloads (model, id, payload, account_id, expires_at)
       SELECT 'Grant', grant_id, jsonb_build_object('iat', $4::bigint, 'exp', $4::bigint + 14 * 86400, 'jti', grant_id, 'kind', 'Grant',
                'accountId', account, 'clientId', $5::text, 'openid', jsonb_build_object('scope', $8::text)),
              account, to_timestamp($4::bigint + 14 * 86400)
         FROM seed)
     INSERT INTO oidc_payloads (model, id, uid, payload, account_id, expires_at)
     SELECT 'Session', id, uid,
            jsonb_build_object('iat', $4::bigint, 'exp', $4::bigint + 14 * 86400, 'jti', id, 'uid', uid, 'kind', 'Session',
              'accountId', account, 'loginTs', $4::bigint, 'acr', $7::text, 'amr', jsonb_build_array('pwd'),
              'authorizations', jsonb_build_object($5::text, jsonb_build_object('sid', md5('sid' || g || $3), 'grantId', grant_id, 'persistsLogout', false))),
            account, to_timestamp($4::bigint + 14 * 86400)
       FROM seed`,
    [first, last, seed, iat, clientId, tenantId, ACR_PASSWORD, SCOPE],
  );
}

const sessionId = (seed: string, n: number) => `s${String(n).padStart(7, '0')}${createHash('md5').update(`${n}${seed}`).digest('hex').slice(0, 13)}`;

// The signed session cookie a browser holding session n sends (koa cookies / keygrip: HMAC-SHA1
// of "name=value" under the first cookie key, base64 without padding, '/' → '_', '+' → '-').
function sessionCookie(cookieKey: string, id: string): string {
  const sig = createHmac('sha1', cookieKey).update(`_session=${id}`).digest('base64').replace(/\/|\+|=/g, (c) => ({ '/': '_', '+': '-', '=': '' })[c]!);
  return `_session=${id}; _session.sig=${sig}`;
}

// Each seeded session is used once by its browser: a silent authorization request (prompt=none)
// with the session cookie, which finds the session, its account and its grant, saves the session
// (oidc-provider touches it) and issues a code. Answers how many got a code.
async function useSessions(target: Target, web: Client, cookieKey: string, seed: string, first: number, last: number): Promise<{ codes: number; other: number; seconds: number; firstOther?: string }> {
  let next = first;
  const until = performance.now() + settings.useBudget * 1000;
  let codes = 0;
  let other = 0;
  let firstOther: string | undefined;
  const started = performance.now();
  const query = new URLSearchParams({ client_id: web.id, redirect_uri: REDIRECT_URI, response_type: 'code', scope: SCOPE, prompt: 'none', state: 'bench' });
  query.set('code_challenge', b64url(createHash('sha256').update('bench-verifier-bench-verifier-bench-verifier').digest()));
  query.set('code_challenge_method', 'S256');
  const url = `${target.url}/auth?${query}`;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next <= last && performance.now() < until) {
        const n = next++;
        const answer = await request(url, { headers: { cookie: sessionCookie(cookieKey, sessionId(seed, n)) } });
        const location = answer.location ? new URL(answer.location, target.url) : undefined;
        if (location?.searchParams.get('code')) codes++;
        else {
          other++;
          firstOther ??= `${answer.status} ${location?.search ?? answer.body.slice(0, 200)}`;
        }
      }
    }),
  );
  return { codes, other, seconds: (performance.now() - started) / 1000, firstOther };
}

interface Memory {
  rss: number;
  peak: number;
  // The V8 heap: in use (live objects and garbage not yet collected) and reserved, in MiB.
  heapUsed?: number;
  heapTotal?: number;
}

async function memoryOf(target: Started, pid: number, metricsToken: string): Promise<Memory> {
  const memory = residentMemory(pid);
  if (!memory) throw new BenchError(`cannot read /proc/${pid}/status`);
  const answer = await request(`${target.url}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } }).catch(() => undefined);
  const metric = (name: string) => {
    const value = answer?.status === 200 ? answer.body.match(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)`, 'm'))?.[1] : undefined;
    return value === undefined ? undefined : Number(value) / 2 ** 20;
  };
  return { ...memory, heapUsed: metric('nodejs_heap_size_used_bytes'), heapTotal: metric('nodejs_heap_size_total_bytes') };
}

// The provider's memory once it settled (a collection had the chance to run).
async function settledMemory(target: Started, pid: number, metricsToken: string): Promise<Memory> {
  await sleep(3000);
  return memoryOf(target, pid, metricsToken);
}

// ---------------------------------------------------------------------------------------------
// Output

const fmtRate = (value: number) => (value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(1));
const fmtMs = (value: number) => (Number.isNaN(value) ? 'n/a' : value >= 100 ? String(Math.round(value)) : value.toFixed(1));
const fmtMb = (value: number) => value.toFixed(0);
const flag = (s: Series) => (s.failures ? ` (!${s.failures} failed)` : '');

function row(label: string, s: Series, latency: number[] = s.samples): string[] {
  return [label, fmtRate(s.count / s.seconds) + flag(s), fmtRate(s.count / s.seconds / CPUS), fmtMs(percentile(latency, 50)), fmtMs(percentile(latency, 99))];
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const sessionSeconds = settings.skipMemory ? 0 : 3 * (settings.useBudget + 10) + Math.ceil((settings.sessions + settings.sessionsBig) / 5000);
  limitRunTime(7 * (settings.warmup + settings.duration + settings.quietWait + 20) + sessionSeconds + 600);
  const started = new Date();
  log(`machine: ${machine()}`);
  log(
    `${settings.alg}; argon2id m=${ARGON2.memoryCost} KiB t=${ARGON2.timeCost} p=${ARGON2.parallelism}; ${settings.logins} login users, ` +
      `mix +${settings.mixRefresh} refresh +${settings.mixCc} client credentials; ${settings.warmup} s warm-up + ${settings.duration} s per run; ` +
      `${settings.users} users; memory at ${settings.sessions} and ${settings.sessionsBig || '-'} sessions` +
      (settings.mmapThreshold ? `; ours with MALLOC_MMAP_THRESHOLD_=${settings.mmapThreshold}` : '') +
      (settings.arenaMax ? `; ours with MALLOC_ARENA_MAX=${settings.arenaMax}` : '') +
      (settings.threadPool ? `; ours with UV_THREADPOOL_SIZE=${settings.threadPool}` : '') +
      (settings.nodeOptions ? `; ours with NODE_OPTIONS=${settings.nodeOptions}` : ''),
  );

  const store = await createOurStore(settings.databaseUrl, settings.redisUrl, 'bench_flow');
  const env = {
    ...store.env,
    SIGNING_ALG: settings.alg,
    ARGON2_MEMORY_KIB: String(ARGON2.memoryCost),
    ARGON2_ITERATIONS: String(ARGON2.timeCost),
    ARGON2_PARALLELISM: String(ARGON2.parallelism),
    // The V8 heap figures come from the provider's own /metrics (prom-client's process metrics).
    METRICS_TOKEN: randomBytes(32).toString('base64url'),
    ...(settings.mmapThreshold ? { MALLOC_MMAP_THRESHOLD_: String(settings.mmapThreshold) } : {}),
    ...(settings.arenaMax ? { MALLOC_ARENA_MAX: String(settings.arenaMax) } : {}),
    ...(settings.threadPool ? { UV_THREADPOOL_SIZE: String(settings.threadPool) } : {}),
    ...(settings.nodeOptions ? { NODE_OPTIONS: settings.nodeOptions } : {}),
  };
  log(`our provider: schema ${store.schema}, Redis prefix ${store.keyPrefix}; creating fixtures with the CLI`);
  const clientOf = (output: string): Client => {
    const created = parseJsonOutput(output);
    if (typeof created.client_id !== 'string' || typeof created.client_secret !== 'string') throw new BenchError('clients create printed no client_id/client_secret');
    return { id: created.client_id, secret: created.client_secret };
  };
  const tenant = parseJsonOutput(await runCli(['tenants', 'create', '--slug', 'bench', '--name', 'Bench'], env));
  if (typeof tenant.id !== 'string') throw new BenchError('tenants create printed no id');
  await runCli(['apis', 'create', '--identifier', API, '--name', 'Bench', '--scope', API_SCOPE], env);
  const cc = clientOf(await runCli(['clients', 'create', '--name', 'bench-cc', '--grant-type', 'client_credentials'], env));
  const web = clientOf(
    await runCli(
      ['clients', 'create', '--name', 'bench-web', '--tenant', 'bench', '--first-party', '--grant-type', 'authorization_code', '--grant-type', 'refresh_token', '--redirect-uri', REDIRECT_URI],
      env,
    ),
  );

  const admin = new pg.Client({ connectionString: store.databaseUrl, connectionTimeoutMillis: 5000 });
  await admin.connect();
  try {
    await seedUsers(admin, tenant.id);
    log(`seeded ${settings.users} users in tenant bench (one argon2id hash of the same password)`);

    const bareSecret = randomBytes(32).toString('base64url');
    const [oursStarted, bareStarted] = await Promise.all([
      startOurs(env, 'full-flow', settings.profileDir),
      startBare(
        {
          BENCH_UNBOUNDED_STORE: '1', SIGNING_ALG: settings.alg, BENCH_CLIENT_ID: 'bench-bare', BENCH_CLIENT_SECRET: bareSecret, BENCH_API: API, BENCH_API_SCOPE: API_SCOPE,
          BENCH_PASSWORD: PASSWORD, BENCH_ARGON2: `${ARGON2.memoryCost},${ARGON2.timeCost},${ARGON2.parallelism}`,
        },
        settings.alg,
        settings.profileDir,
      ),
    ]);
    const ours: Target = { ...oursStarted, kind: 'ours', cc, rt: web };
    const bare: Target = { ...bareStarted, kind: 'bare', cc: { id: 'bench-bare', secret: bareSecret }, rt: { id: 'bench-bare-rt', secret: bareSecret } };
    const oursPid = ours.child.process.pid!;
    providerPid = oursPid;
    const memoryAtStart = await memoryOf(ours, oursPid, env.METRICS_TOKEN);

    try {
      // One of each by hand first: a failure here names what is wrong before any load.
      const pool: string[] = [(await login(ours, web)).refreshToken];
      await refresher(ours, pool)();
      await tokenRequest(ours, cc, ccParams);

      log('argon2id verification alone, in the bench process (the ceiling)');
      await waitForQuiet(settings.quietWait, settings.quietBusy);
      const hashRate = await hashCeiling(Math.min(settings.duration, 5));

      const runLogins = async (into: Series) => {
        await loop(settings.logins, settings.warmup, series('warm-up'), async () => {
          const done = await login(ours, web);
          pool.push(done.refreshToken);
          return { ms: done.full };
        });
        await withCpu(into, () =>
          loop(settings.logins, settings.duration, into, async () => {
            const done = await login(ours, web);
            pool.push(done.refreshToken);
            return { ms: done.full, inner: done.post };
          }),
        );
      };

      log('logins alone: one virtual user (the unloaded latency)');
      const loadSingle = await waitForQuiet(settings.quietWait, settings.quietBusy);
      const single = series('login, one user');
      stepTimes = new Map();
      const steps = stepTimes;
      await withCpu(single, () =>
        loop(1, settings.duration, single, async () => {
          const done = await login(ours, web);
          pool.push(done.refreshToken);
          return { ms: done.full, inner: done.post };
        }),
      );

      stepTimes = undefined;
      log(`logins alone: ${settings.logins} virtual users`);
      const loadLogins = await waitForQuiet(settings.quietWait, settings.quietBusy);
      const alone = series('login');
      await runLogins(alone);
      const memoryAfterLogins = await memoryOf(ours, oursPid, env.METRICS_TOKEN);
      const oursPool = threadPoolSize(oursPid);

      log(`mixed: ${settings.logins} login users, ${settings.mixRefresh} refresh clients, ${settings.mixCc} client-credentials clients`);
      const loadMix = await waitForQuiet(settings.quietWait, settings.quietBusy);
      const mixed = { login: series('login'), refresh: series('refresh'), cc: series('client credentials') };
      await Promise.all([
        runLogins(mixed.login),
        (async () => {
          await sleep(settings.warmup * 1000);
          await loop(settings.mixRefresh, settings.duration, mixed.refresh, refresher(ours, pool));
        })(),
        (async () => {
          await sleep(settings.warmup * 1000);
          await loop(settings.mixCc, settings.duration, mixed.cc, () => timed(() => tokenRequest(ours, cc, ccParams)));
        })(),
      ]);

      const memoryAfterMix = await memoryOf(ours, oursPid, env.METRICS_TOKEN);
      const loginsSoFar = single.count + alone.count + mixed.login.count;

      // The bare oidc-provider, same client loop and concurrency, for scale.
      log('bare oidc-provider: client credentials, then refresh (same client loop)');
      const loadBare = await waitForQuiet(settings.quietWait, settings.quietBusy);
      const bareCc = series('client credentials');
      await tokenRequest(bare, bare.cc, ccParams);
      await loop(settings.mixCc, settings.warmup, series('warm-up'), () => timed(() => tokenRequest(bare, bare.cc, ccParams)));
      await loop(settings.mixCc, settings.duration, bareCc, () => timed(() => tokenRequest(bare, bare.cc, ccParams)));
      const barePoolResponse = await request(`${bare.url}/bench/refresh-tokens?count=${Math.max(100, settings.mixRefresh * 4)}`, { method: 'POST' });
      if (barePoolResponse.status !== 200) throw new BenchError(`bare: seeding refresh tokens answered ${barePoolResponse.status}`);
      const barePool = JSON.parse(barePoolResponse.body) as string[];
      const bareRefresh = series('refresh');
      await loop(settings.mixRefresh, settings.warmup, series('warm-up'), refresher(bare, barePool));
      await loop(settings.mixRefresh, settings.duration, bareRefresh, refresher(bare, barePool));

      log(`bare oidc-provider: complete logins, ${settings.logins} virtual users (the same flow, in memory)`);
      await login(bare, bare.rt);
      const bareLogin = series('login');
      await loop(settings.logins, settings.warmup, series('warm-up'), async () => ({ ms: (await login(bare, bare.rt)).full }));
      providerPid = bare.child.process.pid!;
      await withCpu(bareLogin, () =>
        loop(settings.logins, settings.duration, bareLogin, async () => {
          const done = await login(bare, bare.rt);
          return { ms: done.full, inner: done.post };
        }),
      );
      providerPid = oursPid;

      for (const s of [single, alone, mixed.login, mixed.refresh, mixed.cc, bareCc, bareRefresh, bareLogin]) {
        if (s.failures) log(`  warning: ${s.kind}: ${s.failures} failed; first: ${s.firstError}`);
      }

      // Memory with active sessions. A first batch, used like the others, warms the code paths of a
      // returning browser, so the figures after it count the sessions and not the warm-up.
      const memory: Array<Memory & { label: string; sessions: number; used: number }> = [];
      if (!settings.skipMemory) {
        await stopChild(bare.child);
        const cookieKey = store.env.COOKIE_KEYS.split(',')[0];
        const seed = randomBytes(4).toString('hex');
        const warm = Math.min(2000, Math.floor(settings.sessions / 5));
        let stored = 0;
        let used = 0;
        for (const [size, label] of [[warm, 'warm-up'], [warm + settings.sessions, ''], [warm + settings.sessionsBig, '']] as const) {
          if (size <= stored) continue;
          const seeding = performance.now();
          await seedSessions(admin, seed, web.id, tenant.id, stored + 1, size);
          log(`memory: seeded sessions ${stored + 1}..${size} in ${Math.round(performance.now() - seeding)} ms; each used once by its browser (prompt=none)`);
          const use = await useSessions(ours, web, cookieKey, seed, stored + 1, size);
          const tried = use.codes + use.other;
          log(`  ${use.codes} silent logins issued a code, ${use.other} did not, ${Math.round(tried / use.seconds)}/s${use.firstOther ? `; first other: ${use.firstOther}` : ''}`);
          if (tried < size - stored) log(`  the use budget (${settings.useBudget} s) ran out: ${size - stored - tried} of these sessions are stored but were not used`);
          if (use.codes < 0.99 * tried) throw new BenchError(`only ${use.codes} of ${tried} seeded sessions were active for the provider`);
          stored = size;
          used += use.codes;
          const settled = await settledMemory(ours, oursPid, env.METRICS_TOKEN);
          memory.push({ label: label || `${(size - warm).toLocaleString('en-US')} sessions after the warm-up`, sessions: size - warm, used: used, ...settled });
        }
      }

      // ---------------------------------------------------------------------------------------
      // Figures and targets

      const loginRate = alone.count / alone.seconds;
      const perCore = loginRate / CPUS;
      const postP50 = percentile(single.inner, 50);
      const postP50Loaded = percentile(alone.inner, 50);
      const flows = renderTables(
        ['run', 'per s', 'per s per core', 'p50 ms', 'p99 ms'],
        [
          row('complete login (authorize → login page → POST → redirects → token), 1 user', single),
          row('  of which the login POST alone (argon2id included)', single, single.inner),
          row(`complete login, ${settings.logins} users`, alone),
          row('  of which the login POST alone (argon2id included)', alone, alone.inner),
          row(`mixed: complete login, ${settings.logins} users`, mixed.login),
          row('mixed:   of which the login POST alone', mixed.login, mixed.login.inner),
          row(`mixed: refresh-token grant (rotation, ID token), ${settings.mixRefresh} clients`, mixed.refresh),
          row(`mixed: client-credentials token (JWT, resource), ${settings.mixCc} clients`, mixed.cc),
          row(`bare oidc-provider: client-credentials token, alone, ${settings.mixCc} clients`, bareCc),
          row(`bare oidc-provider: refresh-token grant, alone, ${settings.mixRefresh} clients`, bareRefresh),
          row(`bare oidc-provider: complete login (the same flow, in memory), ${settings.logins} users`, bareLogin),
          row('  of which the login POST alone (argon2id included)', bareLogin, bareLogin.inner),
        ].concat([['argon2id verify alone (bench process, ' + CPUS + ' at a time)', fmtRate(hashRate), fmtRate(hashRate / CPUS), '', '']]),
        1,
      );
      const stepTable = renderTables(
        ['request of one login (one user, each login)', 'count', 'p50 ms', 'p99 ms'],
        [...steps].map(([name, times]) => [name, String(times.length), fmtMs(percentile(times, 50)), fmtMs(percentile(times, 99))]),
        1,
      );
      const heap = (m: Memory) => [m.heapUsed === undefined ? 'n/a' : fmtMb(m.heapUsed), m.heapTotal === undefined ? 'n/a' : fmtMb(m.heapTotal)];
      const memoryTable = renderTables(
        ['provider process', 'VmRSS MB', 'VmHWM MB (peak)', 'V8 heap used MB', 'V8 heap total MB', 'note'],
        [
          ['started, idle', fmtMb(memoryAtStart.rss), fmtMb(memoryAtStart.peak), ...heap(memoryAtStart), ''],
          [`after the login runs (1 and ${settings.logins} users)`, fmtMb(memoryAfterLogins.rss), fmtMb(memoryAfterLogins.peak), ...heap(memoryAfterLogins), `argon2id: up to ${Math.min(settings.logins, oursPool ?? 4)} hashes of 19 MiB at a time (libuv pool of ${oursPool ?? 'n/a'})`],
          ['after the mixed run', fmtMb(memoryAfterMix.rss), fmtMb(memoryAfterMix.peak), ...heap(memoryAfterMix), `${loginsSoFar} measured logins so far, with warm-ups more`],
          ...memory.map((m) => [`${m.label} (${m.used.toLocaleString('en-US')} used in all)`, fmtMb(m.rss), fmtMb(m.peak), ...heap(m), '']),
        ],
        1,
      );

      const verdicts = [
        `>= 30 complete password logins/s per core: ${perCore >= 30 ? 'MET' : 'NOT MET'} (${perCore.toFixed(1)}/s per core, ${loginRate.toFixed(1)}/s on ${CPUS} CPUs; argon2id alone: ${(hashRate / CPUS).toFixed(1)}/s per core; ` +
          `bare oidc-provider, the same login in memory: ${(bareLogin.count / bareLogin.seconds / CPUS).toFixed(1)}/s per core)`,
        `p50 of the login POST < 50 ms on an idle machine: ${postP50 < 50 ? 'MET' : 'NOT MET'} (p50 ${fmtMs(postP50)} ms with one user; ${fmtMs(postP50Loaded)} ms with ${settings.logins} concurrent users; ` +
          `other load before the runs ${[loadSingle, loadLogins].map((l) => (l === undefined ? 'n/a' : `${l.toFixed(0)}%`)).join(', ')})`,
      ];
      const slopes: string[] = [];
      const cpuPerLogin = (s: Series) =>
        s.providerCpu === undefined || !s.count ? 'n/a' : `${((1000 * s.providerCpu) / s.count).toFixed(1)} ms in the provider process (all threads), ${((1000 * (s.clientCpu ?? 0)) / s.count).toFixed(1)} ms in the load generator`;
      slopes.push(
        `CPU per complete login, one user: ${cpuPerLogin(single)}; ${settings.logins} users: ${cpuPerLogin(alone)}; ` +
          `bare oidc-provider, ${settings.logins} users: ${cpuPerLogin(bareLogin)}; argon2id verify alone: ${(1000 / (hashRate / CPUS)).toFixed(1)} ms of wall time per hash per core`,
      );
      // The whole machine's CPU per login bounds the rate on it: CPUs x 1000 ms / that.
      const machinePerLogin = (s: Series) => (s.machineCpu === undefined || !s.count ? undefined : (1000 * s.machineCpu) / s.count);
      const budget = (s: Series, label: string) => {
        const perLogin = machinePerLogin(s);
        if (perLogin === undefined) return `${label}: n/a`;
        return `${label}: ${perLogin.toFixed(1)} ms (PostgreSQL and Redis servers ${((1000 * (s.serverCpu ?? 0)) / s.count).toFixed(1)} ms of it), so at most ${(1000 / perLogin).toFixed(1)}/s per core`;
      };
      slopes.push(`Machine CPU per complete login (every process on the machine), ${settings.logins} users: ${[budget(alone, 'ours'), budget(bareLogin, 'bare oidc-provider')].join('; ')}`);
      if (memory.length >= 2) {
        const [base, small, big] = memory;
        const perSmall = ((small.rss - base.rss) / small.sessions) * 10_000;
        const heapMove = (from: Memory, to: Memory) => (from.heapTotal === undefined || to.heapTotal === undefined ? '' : `; V8 heap total ${fmtMb(from.heapTotal)} → ${fmtMb(to.heapTotal)} MB in the same step`);
        slopes.push(`RSS growth per 10,000 sessions: ${perSmall.toFixed(1)} MB (after the warm-up → ${small.sessions.toLocaleString('en-US')} more${heapMove(base, small)})`);
        let slope = perSmall;
        if (big) {
          slope = ((big.rss - small.rss) / (big.sessions - small.sessions)) * 10_000;
          slopes.push(`RSS growth per 10,000 sessions: ${slope.toFixed(1)} MB (${small.sessions.toLocaleString('en-US')} → ${big.sessions.toLocaleString('en-US')}${heapMove(small, big)})`);
        }
        const last = big ?? small;
        const measured = last.sessions === 100_000;
        const at100k = measured ? last.rss : last.rss + (Math.max(slope, 0) / 10_000) * (100_000 - last.sessions);
        const peak = Math.max(...memory.map((m) => m.peak), memoryAfterMix.peak);
        slopes.push(`RSS at 100,000 sessions: ${measured ? 'measured' : 'extrapolated with the last slope'} ${at100k.toFixed(0)} MB; peak RSS of the run ${fmtMb(peak)} MB`);
        const how = measured ? `measured with 100,000 stored, ${last.used.toLocaleString('en-US')} of all seeded used` : 'extrapolated';
        verdicts.push(`RSS < 300 MB per instance with 100,000 active sessions: ${at100k < 300 ? 'MET' : 'NOT MET'} (${at100k.toFixed(0)} MB, ${how}; peak during the run ${fmtMb(peak)} MB)`);
      }
      const loads = [loadSingle, loadLogins, loadMix, loadBare].filter((value) => value !== undefined);
      const load = loads.length ? ` Other load on the machine just before each run: ${Math.min(...loads).toFixed(0)}-${Math.max(...loads).toFixed(0)}% of all CPUs.` : '';
      process.stdout.write(`\n${flows.text}\n\n${stepTable.text}\n\n${memoryTable.text}\n\n${[...slopes, ...verdicts].join('\n')}\n`);
      process.stdout.write(
        [
          '',
          '<!-- benchmark results, paste below -->',
          `Run on ${started.toISOString()}: ${machine()}.`,
          `${settings.alg}, argon2id m=${ARGON2.memoryCost} KiB t=${ARGON2.timeCost} p=${ARGON2.parallelism}, ${settings.users} users, ` +
            (settings.mmapThreshold ? `ours with MALLOC_MMAP_THRESHOLD_=${settings.mmapThreshold}, ` : '') +
            (settings.arenaMax ? `ours with MALLOC_ARENA_MAX=${settings.arenaMax}, ` : '') +
            (settings.threadPool ? `ours with UV_THREADPOOL_SIZE=${settings.threadPool}, ` : '') +
            (settings.nodeOptions ? `ours with NODE_OPTIONS=${settings.nodeOptions}, ` : '') +
            `closed-loop clients (fetch, keep-alive) in the same machine over loopback, ` +
            `${settings.warmup} s warm-up + ${settings.duration} s measured per run; per s counts completed operations; latencies in ms.${load}`,
          '',
          flows.markdown,
          '',
          stepTable.markdown,
          '',
          memoryTable.markdown,
          '',
          ...[...slopes, ...verdicts].map((line) => `- ${line}`),
          '',
        ].join('\n'),
      );
    } finally {
      await Promise.all([stopChild(ours.child), stopChild(bare.child)]);
    }
  } finally {
    await admin.end();
  }
}

await runBench(main);
