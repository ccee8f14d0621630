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
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import {
  BenchError, FORM, basic, createOurStore, intSetting, limitRunTime, listSetting, log, machine, parseJsonOutput,
  fire, measurementOf, runBench, runCli, sleep, startBare, startOurs, stopChild, storeSettings, waitForQuiet, type Child, type Measurement,
} from './harness.ts';

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
// Helpers

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
  const store = await createOurStore(settings.databaseUrl, settings.redisUrl);
  const env = store.env;
  log(`our provider: schema ${store.schema}, Redis prefix ${store.keyPrefix}; creating fixtures with the CLI`);
  await runCli(['apis', 'create', '--identifier', API, '--name', 'Bench', '--scope', API_SCOPE], env);
  const created = parseJsonOutput(await runCli(['clients', 'create', '--name', 'bench', '--grant-type', 'client_credentials'], env));
  if (typeof created.client_id !== 'string' || typeof created.client_secret !== 'string') {
    throw new BenchError(`clients create printed no client_id/client_secret: ${JSON.stringify(created)}`);
  }
  return { env, client: { id: created.client_id, secret: created.client_secret } };
}

// ---------------------------------------------------------------------------------------------
// The two targets

interface Target {
  kind: 'ours' | 'bare';
  url: string;
  client: { id: string; secret: string };
  child: Child;
}

async function startOursFor(ours: OurEnvironment, alg: string): Promise<Target> {
  const { url, child } = await startOurs({ ...ours.env, SIGNING_ALG: alg }, alg, settings.profileDir);
  return { kind: 'ours', url, client: ours.client, child };
}

async function startBareFor(alg: string): Promise<Target> {
  const client = { id: 'bench-bare', secret: randomBytes(32).toString('base64url') };
  const { url, child } = await startBare(
    { SIGNING_ALG: alg, BENCH_CLIENT_ID: client.id, BENCH_CLIENT_SECRET: client.secret, BENCH_API: API, BENCH_API_SCOPE: API_SCOPE },
    alg,
    settings.profileDir,
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


async function measure(scenario: ScenarioName, target: Target, alg: string): Promise<Measurement> {
  const request = await prepareScenario(scenario, target, alg);
  const options = { url: target.url + request.path, method: request.method, headers: request.headers, body: request.body, connections: settings.connections };
  const background = await waitForQuiet(settings.quietWait, settings.quietBusy);
  if (settings.warmup > 0) await fire(target.kind, options, settings.warmup);
  return measurementOf(await fire(target.kind, options, settings.duration), background);
}

// ---------------------------------------------------------------------------------------------
// Output

interface Row {
  scenario: ScenarioName;
  alg: string;
  ours: Measurement;
  bare: Measurement;
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

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  settings = {
    algs: listSetting('BENCH_ALGS', SUPPORTED_ALGS, ['RS256', 'ES256']),
    connections: intSetting('BENCH_CONNECTIONS', 32, 1, 1024),
    duration: intSetting('BENCH_DURATION', 10, 1, 300),
    warmup: intSetting('BENCH_WARMUP', 2, 0, 60),
    scenarios: listSetting('BENCH_SCENARIOS', SCENARIOS, SCENARIOS),
    ...storeSettings(),
    profileDir: process.env.BENCH_PROFILE_DIR ? path.resolve(process.env.BENCH_PROFILE_DIR) : undefined,
    quietWait: intSetting('BENCH_QUIET_WAIT', 30, 0, 600),
    quietBusy: intSetting('BENCH_QUIET_BUSY', 20, 1, 100),
    introspectionHint: process.env.BENCH_INTROSPECTION_HINT === '1',
  };

  // A hard bound on the whole run: runs, start-ups, fixtures and clean-up, with room to spare.
  const runs = settings.algs.length * settings.scenarios.length * 2;
  const budgetSeconds = runs * (settings.warmup + settings.duration + settings.quietWait + 15) + settings.algs.length * 90 + 180;
  limitRunTime(budgetSeconds);

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
    const [oursTarget, bareTarget] = await Promise.all([startOursFor(ours, alg), startBareFor(alg)]);
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

await runBench(main);
