// The storage backends every storage-touching suite runs against: the embedded default and real
// PostgreSQL + Redis. Under CI=true an unreachable server fails the suite instead of skipping it.
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Redis } from 'ioredis';
import { redisServerAvailable, sharedRedisCluster } from './redis-cluster.ts';
import { closeDatabase, createDatabase, migrateToLatest } from '../../src/store/database.ts';

export const POSTGRES_URL = process.env.TEST_DATABASE_URL || process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.TEST_REDIS_URL || process.env.REDIS_URL || 'redis://127.0.0.1:6379';

export interface BackendEnv {
  env: Record<string, string>;
  cleanup(): Promise<void>;
}

export interface Backend {
  name: string;
  // Resolves to a reason when the backend cannot be used here.
  unavailable(): Promise<string | undefined>;
  // A fresh, isolated store: its own data directory, or its own schema and key prefix. The
  // embedded one starts with the schema migrated (a copy of a template migrated once per run)
  // unless `unmigrated` is asked for; a server's schema starts empty and is migrated at start.
  create(options?: { unmigrated?: boolean }): Promise<BackendEnv>;
}

// Migrating PGlite takes seconds; copying its files takes a fraction of one. The template holds
// the schema only: secrets, keys and data are made by each store's first start, as on a new machine.
let migratedTemplate: Promise<string> | undefined;

function embeddedTemplate(): Promise<string> {
  migratedTemplate ??= (async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'idp-test-template-'));
    const db = createDatabase({ dataDir: dir, poolMax: 1 });
    try {
      await migrateToLatest(db);
    } finally {
      await closeDatabase(db);
    }
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    return path.join(dir, 'pglite');
  })();
  return migratedTemplate;
}

const embedded: Backend = {
  name: 'embedded (PGlite + in-process)',
  async unavailable() {
    return undefined;
  },
  async create(options = {}) {
    const dir = mkdtempSync(path.join(tmpdir(), 'idp-test-'));
    if (!options.unmigrated) cpSync(await embeddedTemplate(), path.join(dir, 'pglite'), { recursive: true });
    return {
      env: { DATA_DIR: dir },
      async cleanup() {
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

async function postgresReachable(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('select 1');
    return undefined;
  } catch (error) {
    return `PostgreSQL at ${POSTGRES_URL} is unreachable: ${(error as Error).message}`;
  } finally {
    await client.end().catch(() => {});
  }
}

async function redisReachable(): Promise<string | undefined> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 3000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => {});
  try {
    await redis.connect();
    await redis.ping();
    return undefined;
  } catch (error) {
    return `Redis at ${REDIS_URL} is unreachable: ${(error as Error).message}`;
  } finally {
    redis.disconnect();
  }
}

export function postgresUrlWithSchema(schema: string): string {
  const url = new URL(POSTGRES_URL);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return url.toString();
}

// A fresh PostgreSQL schema and Redis key prefix (no braces: a hash tag in the prefix would put
// every key of a cluster in one slot), with the secrets an instance on them needs.
async function isolatedServerStore(redisUrl: string): Promise<{ env: Record<string, string>; keyPrefix: string; dropSchema(): Promise<void> }> {
  const id = randomBytes(6).toString('hex');
  const schema = `t_${id}`;
  const keyPrefix = `test:${id}:`;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  return {
    keyPrefix,
    env: {
      DATABASE_URL: postgresUrlWithSchema(schema),
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: keyPrefix,
      KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      COOKIE_KEYS: randomBytes(32).toString('base64url'),
    },
    async dropSchema() {
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      await client.query(`DROP SCHEMA ${schema} CASCADE`);
      await client.end();
    },
  };
}

const server: Backend = {
  name: 'PostgreSQL + Redis',
  async unavailable() {
    return (await postgresReachable()) ?? (await redisReachable());
  },
  async create() {
    const store = await isolatedServerStore(REDIS_URL);
    return {
      env: store.env,
      async cleanup() {
        await store.dropSchema();
        await flushRedisPrefix(store.keyPrefix);
      },
    };
  },
};

export async function flushRedisPrefix(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

export const backends: Backend[] = [embedded, server];

async function onEachNode<R>(urls: string[], work: (redis: Redis) => Promise<R>): Promise<R[]> {
  return Promise.all(
    urls.map(async (url) => {
      const redis = new Redis(url);
      try {
        return await work(redis);
      } finally {
        redis.disconnect();
      }
    }),
  );
}

// Commands a cluster node refused or that failed (CROSSSLOT, a script touching another slot's key).
// Bare ERR replies are ioredis's CLIENT SETINFO, which Redis before 7.2 does not know.
async function clusterErrors(urls: string[]): Promise<string[]> {
  const stats = await onEachNode(urls, async (redis) => `${await redis.info('commandstats')}\n${await redis.info('errorstats')}`);
  return stats.flatMap((info) =>
    info.split('\n').filter((line) => /(rejected|failed)_calls=[1-9]/.test(line) || (line.startsWith('errorstat_') && !line.startsWith('errorstat_ERR:'))),
  );
}

// PostgreSQL with a local three-master Redis Cluster, shared by the suites of the run that opt in
// (see forEachBackend's `extra`). The hot store degrades quietly around Redis errors, so a suite
// passing alone would not prove the cluster worked: cleanup fails if any node answered an error
// while the suite ran. Suites run one after another, which keeps those statistics their own.
export const clusterBackend: Backend = {
  name: 'PostgreSQL + Redis Cluster',
  async unavailable() {
    return (await postgresReachable()) ?? (await redisServerAvailable());
  },
  async create() {
    const cluster = await sharedRedisCluster();
    await onEachNode(cluster.urls, (redis) => redis.config('RESETSTAT'));
    const store = await isolatedServerStore(cluster.urls.join(','));
    return {
      env: store.env,
      async cleanup() {
        const errors = await clusterErrors(cluster.urls);
        await store.dropSchema();
        // Each key on its own: a multi-key DEL across slots is refused by the cluster.
        await onEachNode(cluster.urls, async (redis) => {
          for (const key of await redis.keys(`${store.keyPrefix}*`)) await redis.unlink(key);
        });
        if (errors.length) throw new Error(`the Redis Cluster answered errors: ${errors.join('; ')}`);
      },
    };
  },
};

// Declares a describe() per backend. A backend that is unavailable skips locally with its reason
// printed, and fails under CI=true. `extra` adds backends only some suites run on (clusterBackend).
export function forEachBackend(title: string, body: (backend: Backend) => void, options: { extra?: Backend[] } = {}): void {
  for (const backend of [...backends, ...(options.extra ?? [])]) {
    describe(`${title} [${backend.name}]`, function () {
      before(async function () {
        const reason = await backend.unavailable();
        if (!reason) return;
        if (process.env.CI === 'true') throw new Error(reason);
        console.warn(`  skipped: ${reason}`);
        this.skip();
      });
      body(backend);
    });
  }
}
