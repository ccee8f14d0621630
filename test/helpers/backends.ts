// The storage backends every storage-touching suite runs against: the embedded default and real
// PostgreSQL + Redis. Under CI=true an unreachable server fails the suite instead of skipping it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Redis } from 'ioredis';

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
  // A fresh, isolated store: its own data directory, or its own schema and key prefix.
  create(): Promise<BackendEnv>;
}

const embedded: Backend = {
  name: 'embedded (PGlite + in-process)',
  async unavailable() {
    return undefined;
  },
  async create() {
    const dir = mkdtempSync(path.join(tmpdir(), 'idp-test-'));
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

const server: Backend = {
  name: 'PostgreSQL + Redis',
  async unavailable() {
    return (await postgresReachable()) ?? (await redisReachable());
  },
  async create() {
    const id = randomBytes(6).toString('hex');
    const schema = `t_${id}`;
    const admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    await admin.end();
    const keyPrefix = `test:${id}:`;
    return {
      env: {
        DATABASE_URL: postgresUrlWithSchema(schema),
        REDIS_URL,
        REDIS_KEY_PREFIX: keyPrefix,
        KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
        COOKIE_KEYS: randomBytes(32).toString('base64url'),
      },
      async cleanup() {
        const client = new pg.Client({ connectionString: POSTGRES_URL });
        await client.connect();
        await client.query(`DROP SCHEMA ${schema} CASCADE`);
        await client.end();
        await flushRedisPrefix(keyPrefix);
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

// Declares a describe() per backend. A backend that is unavailable skips locally with its reason
// printed, and fails under CI=true.
export function forEachBackend(title: string, body: (backend: Backend) => void): void {
  for (const backend of backends) {
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
