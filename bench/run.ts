// The benchmark: this provider (PostgreSQL + Redis, as a separate process) against a bare
// oidc-provider (in-memory adapter) for client-credentials token issuance, introspection of an
// opaque token and GET /jwks, per signing algorithm. Loopback only, bounded in time; every child
// process is killed and the schema and Redis keys it created are removed on exit, error or signal.
//
//   npm run bench
//
// Environment (all optional):
//   BENCH_ALGS          comma-separated signing algorithms          (RS256,ES256)
//   BENCH_CONNECTIONS   concurrent connections per run               (32)
//   BENCH_DURATION      measured seconds per scenario and target     (10)
//   BENCH_WARMUP        discarded warm-up seconds before each run    (2)
//   BENCH_SCENARIOS     comma-separated subset of: token, introspection, jwks
//   BENCH_DATABASE_URL  PostgreSQL to create a throw-away schema in  (postgres://postgres@127.0.0.1:5432/test)
//   BENCH_REDIS_URL     Redis to use under a throw-away key prefix   (redis://127.0.0.1:6379)
//   BENCH_PROFILE_DIR   when set, both providers run with --cpu-prof and write their profiles there
//   BENCH_INTROSPECTION_HINT  when 1, introspection sends token_type_hint=access_token (both targets)
//   BENCH_QUIET_WAIT    seconds to wait, before each run, for other load on the machine to fall
//                       below BENCH_QUIET_BUSY percent of all CPUs (30; 20). The load seen is reported.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Redis } from 'ioredis';
import autocannon, { type Result } from 'autocannon';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const API = 'https://api.bench.test';
const API_SCOPE = 'read';
const SUPPORTED_ALGS = ['RS256', 'ES256', 'EdDSA'];
const SCENARIOS = ['token', 'introspection', 'jwks'] as const;
type ScenarioName = (typeof SCENARIOS)[number];
const SCENARIO_TITLES: Record<ScenarioName, string> = {
  token: 'client-credentials token (JWT, resource)',
  introspection: 'introspection (opaque token)',
  jwks: 'GET /jwks',
};

function title(scenario: ScenarioName): string {
  return scenario === 'introspection' && settings.introspectionHint ? 'introspection (opaque token, type hint)' : SCENARIO_TITLES[scenario];
}

// ---------------------------------------------------------------------------------------------
// Settings

class BenchError extends Error {}

function intSetting(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) throw new BenchError(`${name} must be an integer in [${min}, ${max}]`);
  return value;
}

function listSetting<T extends string>(name: string, allowed: readonly T[], fallback: readonly T[]): T[] {
  const raw = process.env[name];
  if (!raw) return [...fallback];
  const values = raw.split(',').map((value) => value.trim()).filter(Boolean);
  for (const value of values) {
    if (!allowed.includes(value as T)) throw new BenchError(`${name}: ${value} is not one of ${allowed.join(', ')}`);
  }
  return values as T[];
}

function loopbackUrl(name: string, value: string): string {
  const host = new URL(value).hostname.replace(/^\[|\]$/g, '');
  if (!['127.0.0.1', 'localhost', '::1'].includes(host)) throw new BenchError(`${name} must point at a loopback address, not ${host}`);
  return value;
}

let settings: {
  algs: string[];
  connections: number;
  duration: number;
  warmup: number;
  scenarios: ScenarioName[];
  databaseUrl: string;
  redisUrl: string;
  profileDir?: string;
  quietWait: number;
  quietBusy: number;
  introspectionHint: boolean;
};

// ---------------------------------------------------------------------------------------------
// Child processes and clean-up

interface Child {
  name: string;
  process: ChildProcess;
  exited: Promise<number | null>;
  tail: string[];
}

const children = new Set<Child>();
// The load generator in flight, stopped on abort so it does not keep the process alive.
let running: { stop(): void } | undefined;
const cleanups: Array<() => Promise<void>> = [];

function spawnNode(name: string, args: string[], env: Record<string, string>, options: { forward?: boolean } = {}): Child {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), NODE_ENV: 'production', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tail: string[] = [];
  const entry: Child = {
    name,
    process: child,
    tail,
    exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null)))),
  };
  children.add(entry);
  void entry.exited.then(() => children.delete(entry));
  const collect = (stream: NodeJS.ReadableStream, forward: boolean) => {
    let buffered = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        tail.push(line);
        if (tail.length > 200) tail.shift();
        if (forward && line.trim()) process.stderr.write(`  [${name}] ${line}\n`);
      }
    });
  };
  collect(child.stdout!, options.forward ?? false);
  collect(child.stderr!, options.forward ?? false);
  return entry;
}

async function stopChild(child: Child, graceMs = 5000): Promise<void> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return;
  child.process.kill('SIGTERM');
  const timer = setTimeout(() => child.process.kill('SIGKILL'), graceMs);
  await child.exited;
  clearTimeout(timer);
}

// The last resort: 'exit' handlers must be synchronous, so whatever still runs gets SIGKILL.
process.on('exit', () => {
  for (const child of children) child.process.kill('SIGKILL');
});

let cleaningUp: Promise<void> | undefined;
function cleanUp(): Promise<void> {
  cleaningUp ??= (async () => {
    await Promise.all([...children].map((child) => stopChild(child)));
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((error) => console.error(`bench: clean-up step failed: ${(error as Error).message}`));
    }
  })();
  return cleaningUp;
}

async function abort(reason: string, code: number): Promise<never> {
  console.error(`bench: ${reason}`);
  running?.stop();
  const forced = setTimeout(() => process.exit(code), 20_000);
  forced.unref();
  await cleanUp().catch(() => {});
  process.exit(code);
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => void abort(`interrupted by ${signal}; cleaning up`, 130));
}
process.on('unhandledRejection', (error) => void abort(`unexpected error: ${(error as Error)?.stack ?? error}`, 1));
process.on('uncaughtException', (error) => void abort(`unexpected error: ${error.stack ?? error}`, 1));

// ---------------------------------------------------------------------------------------------
// Helpers

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function withDeadline<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BenchError(`${what} did not finish within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

// Runs one CLI command of our provider to completion and returns its stdout.
async function runCli(args: string[], env: Record<string, string>): Promise<string> {
  const child = spawnNode(`idp ${args.slice(0, 2).join(' ')}`, ['src/main.ts', ...args], env);
  const code = await withDeadline(`idp ${args.join(' ')}`, 120_000, child.exited).catch(async (error) => {
    await stopChild(child, 1000);
    throw error;
  });
  if (code !== 0) throw new BenchError(`idp ${args.join(' ')} exited with ${code}:\n${child.tail.join('\n')}`);
  return child.tail.join('\n');
}

function parseJsonOutput(output: string): Record<string, unknown> {
  const start = output.indexOf('{');
  const end = output.lastIndexOf('}');
  if (start < 0 || end < start) throw new BenchError(`expected JSON output, got:\n${output}`);
  return JSON.parse(output.slice(start, end + 1));
}

function jwtHeader(token: string): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    return JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Fixtures: a throw-away schema and key prefix, a client and an API created with our CLI.

interface OurEnvironment {
  env: Record<string, string>;
  client: { id: string; secret: string };
}

async function prepareOurs(): Promise<OurEnvironment> {
  const id = randomBytes(6).toString('hex');
  const schema = `bench_${id}`;
  const keyPrefix = `bench:${id}:`;
  const admin = new pg.Client({ connectionString: settings.databaseUrl, connectionTimeoutMillis: 5000 });
  await admin.connect();
  try {
    await admin.query(`CREATE SCHEMA ${schema}`);
  } finally {
    await admin.end();
  }
  cleanups.push(async () => {
    const client = new pg.Client({ connectionString: settings.databaseUrl, connectionTimeoutMillis: 5000 });
    await client.connect();
    try {
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    } finally {
      await client.end();
    }
  });
  cleanups.push(() => flushRedisPrefix(keyPrefix));
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'idp-bench-'));
  cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));

  const url = new URL(settings.databaseUrl);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const env = {
    DATABASE_URL: url.toString(),
    REDIS_URL: settings.redisUrl,
    REDIS_KEY_PREFIX: keyPrefix,
    KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    COOKIE_KEYS: randomBytes(32).toString('base64url'),
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
  };
  log(`our provider: schema ${schema}, Redis prefix ${keyPrefix}; creating fixtures with the CLI`);
  await runCli(['apis', 'create', '--identifier', API, '--name', 'Bench', '--scope', API_SCOPE], env);
  const created = parseJsonOutput(await runCli(['clients', 'create', '--name', 'bench', '--grant-type', 'client_credentials'], env));
  if (typeof created.client_id !== 'string' || typeof created.client_secret !== 'string') {
    throw new BenchError(`clients create printed no client_id/client_secret: ${JSON.stringify(created)}`);
  }
  return { env, client: { id: created.client_id, secret: created.client_secret } };
}

async function flushRedisPrefix(prefix: string): Promise<void> {
  const redis = new Redis(settings.redisUrl, { maxRetriesPerRequest: 1, connectTimeout: 5000 });
  redis.on('error', () => {});
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

// ---------------------------------------------------------------------------------------------
// The two targets

interface Target {
  kind: 'ours' | 'bare';
  url: string;
  client: { id: string; secret: string };
  child: Child;
}

async function startOurs(ours: OurEnvironment, alg: string): Promise<Target> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const nodeArgs = settings.profileDir
    ? ['--cpu-prof', `--cpu-prof-dir=${settings.profileDir}`, `--cpu-prof-name=ours-${alg}-${Date.now()}.cpuprofile`]
    : [];
  const child = spawnNode(
    `ours ${alg}`,
    [...nodeArgs, 'src/main.ts', 'start'],
    { ...ours.env, SIGNING_ALG: alg, HOST: '127.0.0.1', PORT: String(port), ISSUER: url },
    { forward: true },
  );
  await withDeadline('our provider start-up', 60_000, waitUntilReady(child, `${url}/readyz`));
  return { kind: 'ours', url, client: ours.client, child };
}

async function waitUntilReady(child: Child, url: string): Promise<void> {
  for (;;) {
    if (child.process.exitCode !== null || child.process.signalCode !== null) {
      throw new BenchError(`${child.name} exited during start-up:\n${child.tail.join('\n')}`);
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
}

async function startBare(alg: string): Promise<Target> {
  const port = await freePort();
  const client = { id: 'bench-bare', secret: randomBytes(32).toString('base64url') };
  const nodeArgs = settings.profileDir
    ? ['--cpu-prof', `--cpu-prof-dir=${settings.profileDir}`, `--cpu-prof-name=bare-${alg}-${Date.now()}.cpuprofile`]
    : [];
  const child = spawnNode(
    `bare ${alg}`,
    [...nodeArgs, 'bench/bare-provider.ts'],
    {
      PORT: String(port),
      SIGNING_ALG: alg,
      BENCH_CLIENT_ID: client.id,
      BENCH_CLIENT_SECRET: client.secret,
      BENCH_API: API,
      BENCH_API_SCOPE: API_SCOPE,
    },
    { forward: true },
  );
  const url = await withDeadline(
    'bare provider start-up',
    30_000,
    new Promise<string>((resolve, reject) => {
      const poll = setInterval(() => {
        const ready = child.tail.find((line) => line.startsWith('READY '));
        if (ready) {
          clearInterval(poll);
          resolve(ready.slice('READY '.length).trim());
        } else if (child.process.exitCode !== null || child.process.signalCode !== null) {
          clearInterval(poll);
          reject(new BenchError(`bare provider exited during start-up:\n${child.tail.join('\n')}`));
        }
      }, 100);
    }),
  );
  return { kind: 'bare', url, client, child };
}

// ---------------------------------------------------------------------------------------------
// Scenarios: each yields the request autocannon repeats, after checking one by hand.

interface Request {
  path: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
}

function basic(client: { id: string; secret: string }): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(client.id)}:${encodeURIComponent(client.secret)}`).toString('base64')}`;
}

const FORM = 'application/x-www-form-urlencoded';

async function send(target: Target, request: Request): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(target.url + request.path, {
    method: request.method,
    headers: request.headers,
    body: request.body,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON; the status says enough
  }
  if (!response.ok) throw new BenchError(`${target.kind}: ${request.method} ${request.path} answered ${response.status}: ${text.slice(0, 300)}`);
  return { status: response.status, json };
}

async function prepareScenario(scenario: ScenarioName, target: Target, alg: string): Promise<Request> {
  const auth = { authorization: basic(target.client), 'content-type': FORM };
  switch (scenario) {
    case 'token': {
      const request: Request = {
        path: '/token',
        method: 'POST',
        headers: auth,
        body: new URLSearchParams({ grant_type: 'client_credentials', resource: API, scope: API_SCOPE }).toString(),
      };
      const { json } = await send(target, request);
      const header = jwtHeader(String(json.access_token));
      if (!header || header.alg !== alg) {
        throw new BenchError(`${target.kind}: expected a ${alg} JWT access token, got header ${JSON.stringify(header)}`);
      }
      return request;
    }
    case 'introspection': {
      const { json: token } = await send(target, {
        path: '/token',
        method: 'POST',
        headers: auth,
        body: new URLSearchParams({ grant_type: 'client_credentials' }).toString(),
      });
      const accessToken = String(token.access_token);
      if (jwtHeader(accessToken)) throw new BenchError(`${target.kind}: expected an opaque token without resource, got a JWT`);
      const request: Request = {
        path: '/token/introspection',
        method: 'POST',
        headers: auth,
        body: new URLSearchParams(
          settings.introspectionHint ? { token: accessToken, token_type_hint: 'access_token' } : { token: accessToken },
        ).toString(),
      };
      const { json } = await send(target, request);
      if (json.active !== true) throw new BenchError(`${target.kind}: introspection says ${JSON.stringify(json)}`);
      return request;
    }
    case 'jwks': {
      const request: Request = { path: '/jwks', method: 'GET', headers: {} };
      const { json } = await send(target, request);
      const keys = json.keys as Array<{ alg?: string }> | undefined;
      if (!keys?.some((key) => key.alg === alg)) throw new BenchError(`${target.kind}: /jwks has no ${alg} key`);
      return request;
    }
  }
}

interface Measurement {
  // Share of all CPUs busy on the machine just before the run, with both targets idle.
  background?: number;
  rps: number;
  p50: number;
  p99: number;
  failures: number;
  statusCodes: Record<string, number>;
}

async function fire(target: Target, request: Request, seconds: number): Promise<Result> {
  const instance = autocannon({
    url: target.url + request.path,
    method: request.method,
    headers: request.headers,
    body: request.body,
    connections: settings.connections,
    duration: seconds,
    timeout: 10,
  });
  running = instance;
  try {
    return await withDeadline(`autocannon against ${target.kind}`, (seconds + 30) * 1000, Promise.resolve(instance));
  } finally {
    running = undefined;
  }
}

async function measure(scenario: ScenarioName, target: Target, alg: string): Promise<Measurement> {
  const request = await prepareScenario(scenario, target, alg);
  const background = await waitForQuiet();
  if (settings.warmup > 0) await fire(target, request, settings.warmup);
  const result = await fire(target, request, settings.duration);
  const statusCodes = Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([code, { count }]) => [code, count]));
  return {
    background,
    // Successful responses per second over the measured window.
    rps: result['2xx'] / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    failures: result.non2xx + result.errors + result.timeouts,
    statusCodes,
  };
}

// Other work on the machine (a test suite, a build) skews a benchmark on few cores. Before each
// run, wait a bounded time for the CPUs to be quiet, and report how busy they were.
function cpuTimes(): { idle: number; total: number } | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
    return { idle: fields[3] + fields[4], total: fields.reduce((sum, value) => sum + value, 0) };
  } catch {
    return undefined;
  }
}

async function machineBusy(ms: number): Promise<number | undefined> {
  const before = cpuTimes();
  await sleep(ms);
  const after = cpuTimes();
  if (!before || !after || after.total === before.total) return undefined;
  return 100 * (1 - (after.idle - before.idle) / (after.total - before.total));
}

async function waitForQuiet(): Promise<number | undefined> {
  const deadline = Date.now() + settings.quietWait * 1000;
  let busy: number | undefined;
  let announced = false;
  for (;;) {
    busy = await machineBusy(1000);
    if (busy === undefined || busy <= settings.quietBusy || Date.now() >= deadline) break;
    if (!announced) log(`  machine busy (${busy.toFixed(0)}% of all CPUs) before the run; waiting up to ${settings.quietWait} s`);
    announced = true;
  }
  if (busy !== undefined && busy > settings.quietBusy) log(`  warning: other load of ${busy.toFixed(0)}% of all CPUs; this run is skewed`);
  return busy;
}

// ---------------------------------------------------------------------------------------------
// Output

interface Row {
  scenario: ScenarioName;
  alg: string;
  ours: Measurement;
  bare: Measurement;
}

function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

const fmtRps = (value: number) => Math.round(value).toLocaleString('en-US');
const fmtMs = (value: number) => (value >= 100 ? String(Math.round(value)) : value.toFixed(value % 1 === 0 ? 0 : 1));
const fmtRatio = (row: Row) => (row.bare.rps > 0 ? (row.ours.rps / row.bare.rps).toFixed(2) : 'n/a');
const fmtLoad = (m: Measurement) => (m.background === undefined ? 'n/a' : `${m.background.toFixed(0)}%`);
const flag = (m: Measurement) => (m.failures ? ` (!${m.failures} failed)` : '');

const HEADER = ['scenario', 'alg', 'ours req/s', 'ours p50 ms', 'ours p99 ms', 'bare req/s', 'bare p50 ms', 'bare p99 ms', 'ours/bare'];

function cells(row: Row): string[] {
  return [
    title(row.scenario),
    row.alg,
    fmtRps(row.ours.rps) + flag(row.ours),
    fmtMs(row.ours.p50),
    fmtMs(row.ours.p99),
    fmtRps(row.bare.rps) + flag(row.bare),
    fmtMs(row.bare.p50),
    fmtMs(row.bare.p99),
    fmtRatio(row),
  ];
}

function textTable(rows: Row[]): string {
  const table = [HEADER, ...rows.map(cells)];
  const widths = HEADER.map((_, column) => Math.max(...table.map((line) => line[column].length)));
  const render = (line: string[]) => line.map((cell, column) => (column < 2 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]))).join('  ');
  return [render(HEADER), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.map((row) => render(cells(row)))].join('\n');
}

function markdownTable(rows: Row[]): string {
  const align = HEADER.map((_, column) => (column < 2 ? ':--' : '--:'));
  return [HEADER, align, ...rows.map(cells)].map((line) => `| ${line.join(' | ')} |`).join('\n');
}

function targetVerdicts(rows: Row[]): string[] {
  const verdicts: string[] = [];
  for (const row of rows.filter((r) => r.scenario === 'token')) {
    const ratio = row.ours.rps / row.bare.rps;
    verdicts.push(`client-credentials throughput >= 0.8 x bare (${row.alg}): ${ratio >= 0.8 ? 'MET' : 'NOT MET'} (${ratio.toFixed(2)})`);
  }
  for (const row of rows.filter((r) => r.scenario === 'introspection')) {
    const note = settings.connections === 32 ? '' : ` [measured at ${settings.connections} connections, the target is stated for 32]`;
    verdicts.push(`introspection p99 < 10 ms at 32 connections (${row.alg}): ${row.ours.p99 < 10 ? 'MET' : 'NOT MET'} (p99 ${fmtMs(row.ours.p99)} ms)${note}`);
  }
  return verdicts;
}

function machine(): string {
  const cpu = readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m)?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  return `${os.availableParallelism()} CPUs (${cpu}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Node ${process.version}, ${os.platform()} ${os.release()}`;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  settings = {
    algs: listSetting('BENCH_ALGS', SUPPORTED_ALGS, ['RS256', 'ES256']),
    connections: intSetting('BENCH_CONNECTIONS', 32, 1, 1024),
    duration: intSetting('BENCH_DURATION', 10, 1, 300),
    warmup: intSetting('BENCH_WARMUP', 2, 0, 60),
    scenarios: listSetting('BENCH_SCENARIOS', SCENARIOS, SCENARIOS),
    databaseUrl: loopbackUrl('BENCH_DATABASE_URL', process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test'),
    redisUrl: loopbackUrl('BENCH_REDIS_URL', process.env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379'),
    profileDir: process.env.BENCH_PROFILE_DIR ? path.resolve(process.env.BENCH_PROFILE_DIR) : undefined,
    quietWait: intSetting('BENCH_QUIET_WAIT', 30, 0, 600),
    quietBusy: intSetting('BENCH_QUIET_BUSY', 20, 1, 100),
    introspectionHint: process.env.BENCH_INTROSPECTION_HINT === '1',
  };

  // A hard bound on the whole run: runs, start-ups, fixtures and clean-up, with room to spare.
  const runs = settings.algs.length * settings.scenarios.length * 2;
  const budgetSeconds = runs * (settings.warmup + settings.duration + settings.quietWait + 15) + settings.algs.length * 90 + 180;
  setTimeout(() => void abort(`exceeded the time budget of ${budgetSeconds} s; cleaning up`, 1), budgetSeconds * 1000).unref();

  const started = new Date();
  log(`machine: ${machine()}`);
  log(
    `algs ${settings.algs.join(', ')}; scenarios ${settings.scenarios.join(', ')}; ${settings.connections} connections; ` +
      `${settings.warmup} s warm-up + ${settings.duration} s per run; ${runs} runs, at most ${budgetSeconds} s`,
  );

  const ours = await prepareOurs();
  const rows: Row[] = [];
  for (const alg of settings.algs) {
    log(`${alg}: starting our provider (PostgreSQL + Redis) and the bare oidc-provider`);
    const [oursTarget, bareTarget] = await Promise.all([startOurs(ours, alg), startBare(alg)]);
    try {
      for (const scenario of settings.scenarios) {
        log(`${alg}: ${title(scenario)}: ours`);
        const oursResult = await measure(scenario, oursTarget, alg);
        await sleep(500);
        log(`${alg}: ${title(scenario)}: bare`);
        const bareResult = await measure(scenario, bareTarget, alg);
        await sleep(500);
        const row: Row = { scenario, alg, ours: oursResult, bare: bareResult };
        rows.push(row);
        log(`  ${cells(row).join(' | ')} (other load before: ours ${fmtLoad(oursResult)}, bare ${fmtLoad(bareResult)})`);
        for (const [kind, m] of [['ours', oursResult], ['bare', bareResult]] as const) {
          if (m.failures) log(`  warning: ${kind} had ${m.failures} failed requests; status codes ${JSON.stringify(m.statusCodes)}`);
        }
      }
    } finally {
      await Promise.all([stopChild(oursTarget.child), stopChild(bareTarget.child)]);
    }
  }

  const verdicts = targetVerdicts(rows);
  const loads = rows.flatMap((row) => [row.ours.background, row.bare.background]).filter((value) => value !== undefined);
  const load = loads.length
    ? ` Other load on the machine just before each run: ${Math.min(...loads).toFixed(0)}-${Math.max(...loads).toFixed(0)}% of all CPUs.`
    : '';
  const conditions = `${settings.connections} connections, ${settings.warmup} s warm-up + ${settings.duration} s measured per run, autocannon in the same machine over loopback`;
  process.stdout.write(`\n${textTable(rows)}\n\n${verdicts.join('\n')}\n`);
  process.stdout.write(
    [
      '',
      '<!-- benchmark results, paste below -->',
      `Run on ${started.toISOString()}: ${machine()}.`,
      `${conditions}. req/s counts 2xx responses only; latencies in ms.${load}`,
      '',
      markdownTable(rows),
      '',
      ...verdicts.map((verdict) => `- ${verdict}`),
      '',
    ].join('\n'),
  );
}

try {
  await main();
  await cleanUp();
  process.exit(0);
} catch (error) {
  await abort(error instanceof BenchError ? error.message : `failed: ${(error as Error).stack ?? error}`, 1);
}
