// Users and RBAC at scale: page 1000 of a one-million-user tenant beside the same page depth in a
// thousand-user tenant (keyset pagination), and batch permission checks (cached and cold).
// Runs the services in-process on PostgreSQL + Redis; a throw-away schema and key prefix are
// removed at the end. Loopback only, bounded.
//
//   node bench/users-rbac.ts          (also the second half of `npm run bench`)
//
//   BENCH_DATABASE_URL, BENCH_REDIS_URL   as in bench/run.ts
//   BENCH_USERS_BIG                      users in the big tenant (1000000)
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { pino } from 'pino';
import { Redis } from 'ioredis';
import { loadConfig } from '../src/config.ts';
import { createRuntime } from '../src/runtime.ts';

const databaseUrl = process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
const redisUrl = process.env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379';
for (const url of [databaseUrl, redisUrl]) {
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(new URL(url).hostname)) throw new Error(`bench: ${url} is not on loopback`);
}
const BIG = Number(process.env.BENCH_USERS_BIG || 1_000_000);
const SMALL = 1_000;
const PAGE_SIZE = 50;
const ITERATIONS = 300;

const id = randomBytes(6).toString('hex');
const schema = `bench_users_${id}`;
const prefix = `bench:${id}:`;

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function time(iterations: number, work: () => Promise<unknown>): Promise<{ p50: number; p99: number }> {
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const started = performance.now();
    await work();
    samples.push(performance.now() - started);
  }
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

const admin = new pg.Client({ connectionString: databaseUrl });
await admin.connect();
await admin.query(`CREATE SCHEMA ${schema}`);
const url = new URL(databaseUrl);
url.searchParams.set('options', `-c search_path=${schema}`);
const runtime = await createRuntime(
  loadConfig({
    DATABASE_URL: url.toString(),
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: prefix,
    KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    COOKIE_KEYS: randomBytes(32).toString('base64url'),
    LOG_LEVEL: 'silent',
  }),
  { log: pino({ level: 'silent' }) },
);

try {
  const rows: string[] = [];
  for (const [slug, count] of [['small', SMALL], ['big', BIG]] as const) {
    const tenant = await runtime.tenants.create({ slug, displayName: slug });
    const started = performance.now();
    // Seeded directly: the benchmark measures reads, not a million argon2 hashes.
    await admin.query(
      `INSERT INTO ${schema}.users (id, tenant_id, email, name, created_at)
       SELECT gen_random_uuid(), $1, 'user' || g || '@${slug}.example', 'User ' || g, now() - make_interval(secs => $2 - g)
         FROM generate_series(1, $2) g`,
      [tenant.id, count],
    );
    await admin.query(`ANALYZE ${schema}.users`);
    console.error(`bench: seeded ${count} users in ${slug} in ${Math.round(performance.now() - started)} ms`);
    // Walk to page 1000 (or the last page of the small tenant) the way a client would.
    const depth = Math.min(1000, Math.floor(count / PAGE_SIZE));
    let cursor: string | undefined;
    for (let page = 1; page < depth; page++) cursor = (await runtime.users.list(tenant.id, { limit: PAGE_SIZE, cursor })).nextCursor;
    const { p50, p99 } = await time(ITERATIONS, () => runtime.users.list(tenant.id, { limit: PAGE_SIZE, cursor }));
    rows.push(`| list users, page ${depth} at ${PAGE_SIZE} per page (keyset) | ${count.toLocaleString('en')} users | ${p50.toFixed(2)} | ${p99.toFixed(2)} |`);
  }

  const tenant = (await runtime.tenants.findBySlug('big'))!;
  await runtime.apis.create({ identifier: 'https://orders.bench.test', name: 'Orders', scopes: ['orders:read', 'orders:write'] });
  const base = await runtime.rbac.createRole(tenant.id, { name: 'reader', permissions: [{ api: 'https://orders.bench.test', permission: 'orders:read' }] });
  const middle = await runtime.rbac.createRole(tenant.id, { name: 'clerk', includes: [base.id] });
  const top = await runtime.rbac.createRole(tenant.id, { name: 'manager', includes: [middle.id] });
  const subjects = (await admin.query(`SELECT id FROM ${schema}.users WHERE tenant_id = $1 LIMIT 100`, [tenant.id])).rows.map((row) => row.id as string);
  for (const subject of subjects) await runtime.rbac.assign(tenant.id, top.id, 'user', subject);
  const batch = () => Promise.all(subjects.map((subject) => runtime.rbac.check(tenant.id, 'user', subject, 'https://orders.bench.test', 'orders:read')));
  await batch();
  const warm = await time(ITERATIONS, batch);
  rows.push(`| batch check, 100 subjects, 3-level inheritance (cached) | ${BIG.toLocaleString('en')} users | ${warm.p50.toFixed(2)} | ${warm.p99.toFixed(2)} |`);
  const cold = await time(50, async () => {
    await runtime.rbac.invalidate(tenant.id);
    await batch();
  });
  rows.push(`| batch check, 100 subjects, after an RBAC change (cold) | ${BIG.toLocaleString('en')} users | ${cold.p50.toFixed(2)} | ${cold.p99.toFixed(2)} |`);

  console.log(`\nUsers and RBAC, ${new Date().toISOString()}, in-process services on PostgreSQL + Redis (loopback), ${ITERATIONS} iterations:\n`);
  console.log('| operation | tenant size | p50 ms | p99 ms |\n| :-- | :-- | --: | --: |');
  for (const row of rows) console.log(row);
} finally {
  await runtime.close();
  await admin.query(`DROP SCHEMA ${schema} CASCADE`);
  await admin.end();
  const redis = new Redis(redisUrl);
  let next = '0';
  do {
    const [cursor, keys] = await redis.scan(next, 'MATCH', `${prefix}*`, 'COUNT', 500);
    next = cursor;
    if (keys.length) await redis.del(...keys);
  } while (next !== '0');
  redis.disconnect();
}
