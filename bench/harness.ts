// What the benchmarks share: settings from the environment, child processes that are always
// stopped, a throw-away PostgreSQL schema and Redis key prefix that are always removed (on exit,
// error, signal or time-out), starting our provider and the bare oidc-provider, waiting for a
// quiet machine, and describing the machine.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Redis } from 'ioredis';
import autocannon, { type Options as AutocannonOptions, type Result } from 'autocannon';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// ---------------------------------------------------------------------------------------------
// Settings

export class BenchError extends Error {}

export function intSetting(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) throw new BenchError(`${name} must be an integer in [${min}, ${max}]`);
  return value;
}

export function listSetting<T extends string>(name: string, allowed: readonly T[], fallback: readonly T[]): T[] {
  const raw = process.env[name];
  if (!raw) return [...fallback];
  const values = raw.split(',').map((value) => value.trim()).filter(Boolean);
  for (const value of values) {
    if (!allowed.includes(value as T)) throw new BenchError(`${name}: ${value} is not one of ${allowed.join(', ')}`);
  }
  return values as T[];
}

export function loopbackUrl(name: string, value: string): string {
  const host = new URL(value).hostname.replace(/^\[|\]$/g, '');
  if (!['127.0.0.1', 'localhost', '::1'].includes(host)) throw new BenchError(`${name} must point at a loopback address, not ${host}`);
  return value;
}

export function storeSettings(): { databaseUrl: string; redisUrl: string } {
  return {
    databaseUrl: loopbackUrl('BENCH_DATABASE_URL', process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test'),
    redisUrl: loopbackUrl('BENCH_REDIS_URL', process.env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379'),
  };
}

// ---------------------------------------------------------------------------------------------
// Child processes and clean-up

export interface Child {
  name: string;
  process: ChildProcess;
  exited: Promise<number | null>;
  tail: string[];
}

const children = new Set<Child>();
// The load generator in flight, stopped on abort so it does not keep the process alive.
let running: { stop(): void } | undefined;
const cleanups: Array<() => Promise<void>> = [];

export function setRunning(instance: { stop(): void } | undefined): void {
  running = instance;
}

// Clean-up steps run in reverse order of registration, after every child has stopped.
export function onCleanup(step: () => Promise<void>): void {
  cleanups.push(step);
}

export function spawnNode(name: string, args: string[], env: Record<string, string>, options: { forward?: boolean } = {}): Child {
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

export async function stopChild(child: Child, graceMs = 5000): Promise<void> {
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
export function cleanUp(): Promise<void> {
  cleaningUp ??= (async () => {
    await Promise.all([...children].map((child) => stopChild(child)));
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((error) => console.error(`bench: clean-up step failed: ${(error as Error).message}`));
    }
  })();
  return cleaningUp;
}

export async function abort(reason: string, code: number): Promise<never> {
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

// Runs a benchmark's main function, then cleans up and exits; a hard bound stops a stuck run.
export async function runBench(main: () => Promise<void>): Promise<never> {
  try {
    await main();
    await cleanUp();
    process.exit(0);
  } catch (error) {
    return abort(error instanceof BenchError ? error.message : `failed: ${(error as Error).stack ?? error}`, 1);
  }
}

export function limitRunTime(budgetSeconds: number): void {
  setTimeout(() => void abort(`exceeded the time budget of ${budgetSeconds} s; cleaning up`, 1), budgetSeconds * 1000).unref();
}

// ---------------------------------------------------------------------------------------------
// Helpers

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function withDeadline<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
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
export async function runCli(args: string[], env: Record<string, string>): Promise<string> {
  const child = spawnNode(`idp ${args.slice(0, 2).join(' ')}`, ['src/main.ts', ...args], env);
  const code = await withDeadline(`idp ${args.join(' ')}`, 120_000, child.exited).catch(async (error) => {
    await stopChild(child, 1000);
    throw error;
  });
  if (code !== 0) throw new BenchError(`idp ${args.join(' ')} exited with ${code}:\n${child.tail.join('\n')}`);
  return child.tail.join('\n');
}

export function parseJsonOutput(output: string): Record<string, unknown> {
  const start = output.indexOf('{');
  const end = output.lastIndexOf('}');
  if (start < 0 || end < start) throw new BenchError(`expected JSON output, got:\n${output}`);
  return JSON.parse(output.slice(start, end + 1));
}

export function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

export function basic(client: { id: string; secret: string }): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(client.id)}:${encodeURIComponent(client.secret)}`).toString('base64')}`;
}

export const FORM = 'application/x-www-form-urlencoded';

// ---------------------------------------------------------------------------------------------
// A throw-away schema and key prefix for our provider, removed by the clean-up.

export interface OurStore {
  // The environment our provider's CLI and server run with.
  env: Record<string, string>;
  schema: string;
  keyPrefix: string;
  // DATABASE_URL with the schema on its search_path.
  databaseUrl: string;
}

export async function createOurStore(databaseUrl: string, redisUrl: string, label = 'bench'): Promise<OurStore> {
  const id = randomBytes(6).toString('hex');
  const schema = `${label}_${id}`;
  const keyPrefix = `${label}:${id}:`;
  const admin = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 });
  await admin.connect();
  try {
    await admin.query(`CREATE SCHEMA ${schema}`);
  } finally {
    await admin.end();
  }
  onCleanup(async () => {
    const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 });
    await client.connect();
    try {
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    } finally {
      await client.end();
    }
  });
  onCleanup(() => flushRedisPrefix(redisUrl, keyPrefix));
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'idp-bench-'));
  onCleanup(async () => rmSync(dataDir, { recursive: true, force: true }));

  const url = new URL(databaseUrl);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const env = {
    DATABASE_URL: url.toString(),
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: keyPrefix,
    KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    COOKIE_KEYS: randomBytes(32).toString('base64url'),
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
  };
  return { env, schema, keyPrefix, databaseUrl: url.toString() };
}

export async function flushRedisPrefix(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, connectTimeout: 5000 });
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

export interface Started {
  url: string;
  child: Child;
}

function profileArgs(profileDir: string | undefined, name: string): string[] {
  return profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`] : [];
}

// Our provider (`node src/main.ts start`) on a free loopback port, ready when /readyz answers.
// A benchmark's load comes from one loopback address: the per-address and per-client limits stay
// on (their cost is part of every request) but are set far above any load a run produces.
const LIMITS_ABOVE_ANY_RUN = '999999999/60';
const BENCH_RATE_LIMITS = Object.fromEntries(
  ['LOGIN_PER_IP', 'OTP_PER_IP', 'REGISTRATION_PER_IP', 'PASSWORD_RESET_PER_IP', 'TOKEN_PER_IP', 'TOKEN_PER_CLIENT', 'INTROSPECTION_PER_IP', 'REVOCATION_PER_IP'].map((name) => [`RATE_LIMIT_${name}`, LIMITS_ABOVE_ANY_RUN]),
);

export async function startOurs(env: Record<string, string>, name: string, profileDir?: string): Promise<Started> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawnNode(
    `ours ${name}`,
    [...profileArgs(profileDir, `ours-${name}`), 'src/main.ts', 'start'],
    { ...BENCH_RATE_LIMITS, ...env, HOST: '127.0.0.1', PORT: String(port), ISSUER: url },
    { forward: true },
  );
  await withDeadline('our provider start-up', 60_000, waitUntilReady(child, `${url}/readyz`));
  return { url, child };
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

// The bare oidc-provider (bench/bare-provider.ts); it prints `READY <url>` once it listens.
export async function startBare(env: Record<string, string>, name: string, profileDir?: string): Promise<Started> {
  const port = await freePort();
  const child = spawnNode(`bare ${name}`, [...profileArgs(profileDir, `bare-${name}`), 'bench/bare-provider.ts'], { PORT: String(port), ...env }, { forward: true });
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
  return { url, child };
}

// ---------------------------------------------------------------------------------------------
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

// Returns the share of all CPUs that was busy just before the run (undefined where unknown).
export async function waitForQuiet(quietWait: number, quietBusy: number): Promise<number | undefined> {
  const deadline = Date.now() + quietWait * 1000;
  let busy: number | undefined;
  let announced = false;
  for (;;) {
    busy = await machineBusy(1000);
    if (busy === undefined || busy <= quietBusy || Date.now() >= deadline) break;
    if (!announced) log(`  machine busy (${busy.toFixed(0)}% of all CPUs) before the run; waiting up to ${quietWait} s`);
    announced = true;
  }
  if (busy !== undefined && busy > quietBusy) log(`  warning: other load of ${busy.toFixed(0)}% of all CPUs; this run is skewed`);
  return busy;
}

export function machine(): string {
  const cpu = readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m)?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  return `${os.availableParallelism()} CPUs (${cpu}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Node ${process.version}, ${os.platform()} ${os.release()}`;
}

// One load run's figures.
export interface Measurement {
  // Share of all CPUs busy on the machine just before the run, with both targets idle.
  background?: number;
  rps: number;
  p50: number;
  p99: number;
  failures: number;
  statusCodes: Record<string, number>;
}

// One autocannon run against `target` (stopped on abort, bounded by a deadline).
export async function fire(target: string, options: AutocannonOptions, seconds: number): Promise<Result> {
  const instance = autocannon({ ...options, duration: seconds, timeout: 10 });
  setRunning(instance);
  try {
    return await withDeadline(`autocannon against ${target}`, (seconds + 30) * 1000, Promise.resolve(instance));
  } finally {
    setRunning(undefined);
  }
}

// A run's figures: successful responses per second over the measured window, latencies, failures.
export function measurementOf(result: Result, background: number | undefined): Measurement {
  return {
    background,
    rps: result['2xx'] / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    failures: result.non2xx + result.errors + result.timeouts,
    statusCodes: Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([code, { count }]) => [code, count])),
  };
}

// ---------------------------------------------------------------------------------------------
// Figures a benchmark computes itself (closed-loop clients timing each request or flow).

export function percentile(samples: number[], p: number): number {
  if (!samples.length) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// Resident and peak resident memory of a process, in MiB, from /proc/<pid>/status (Linux).
export function residentMemory(pid: number): { rss: number; peak: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (field: string) => Number(status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'))?.[1] ?? Number.NaN);
    return { rss: kib('VmRSS') / 1024, peak: kib('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

// How many threads the process's libuv pool has (argon2id hashes on them), from the threads' names.
export function threadPoolSize(pid: number): number | undefined {
  try {
    return readdirSync(`/proc/${pid}/task`).filter((task) => readFileSync(`/proc/${pid}/task/${task}/comm`, 'utf8').trim() === 'libuv-worker').length;
  } catch {
    return undefined;
  }
}

// The same table as aligned text (for the terminal) and as Markdown (for docs/benchmarks.md).
export function renderTables(header: string[], rows: string[][], leftColumns: number): { text: string; markdown: string } {
  const table = [header, ...rows];
  const widths = header.map((_, column) => Math.max(...table.map((line) => line[column].length)));
  const render = (line: string[]) => line.map((cell, column) => (column < leftColumns ? cell.padEnd(widths[column]) : cell.padStart(widths[column]))).join('  ');
  const align = header.map((_, column) => (column < leftColumns ? ':--' : '--:'));
  return {
    text: [render(header), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.map(render)].join('\n'),
    markdown: [header, align, ...rows].map((line) => `| ${line.join(' | ')} |`).join('\n'),
  };
}

// CPU seconds (user + system, all threads) a process has used so far, from /proc/<pid>/stat (Linux).
// CPU seconds used so far by every process whose command name is one of `names` (the PostgreSQL
// and Redis servers, which share the machine with the bench), with their ended children: a
// PostgreSQL connection closed during the window took its backend's time to the postmaster's
// count of reaped children, so the sum only grows.
export function cpuSecondsOfCommands(names: string[]): number {
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (!names.includes(readFileSync(`/proc/${entry}/comm`, 'utf8').trim())) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime, stime, cutime and cstime: fields 14 to 17 of the line, in clock ticks.
      total += (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / 100;
    } catch {
      // The process ended meanwhile.
    }
  }
  return total;
}

// Busy CPU seconds of the whole machine (all CPUs, every process) since boot, from /proc/stat.
export function machineBusySeconds(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((sum, value) => sum + value, 0);
  return (total - fields[3] - fields[4]) / 100;
}

export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the line, in clock ticks (100 per second on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}
