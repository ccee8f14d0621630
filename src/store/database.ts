// knex on a PostgreSQL server (pg) or, with no DATABASE_URL, on PGlite files under the data directory.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import ClientPgLite from 'knex-pglite';
import { migrationSource } from '../../migrations/index.ts';
import { ScopedPgClient } from './pg-client.ts';

export type Database = Knex;

const quietKnexLog = { warn() {}, error() {}, deprecate() {}, debug() {} };

export interface DatabaseOptions {
  url?: string;
  poolMax: number;
  dataDir: string;
}

export function createDatabase(options: DatabaseOptions): Database {
  if (options.url) {
    return knexFactory({
      client: ScopedPgClient as unknown as typeof Knex.Client,
      // An outage must answer fast, not hang (docs/operations.md, "Outages"): a connection attempt
      // gives up after 5 s, and keep-alive finds a connection whose peer vanished without a reset.
      connection: { connectionString: options.url, application_name: 'idp', connectionTimeoutMillis: 5000, keepAlive: true, keepAliveInitialDelayMillis: 10_000 },
      // A failed connection attempt fails the waiting query at once (no retrying until the acquire
      // timeout); a connection that broke is dropped by knex and the pool makes new ones on demand.
      pool: { min: 0, max: options.poolMax, acquireTimeoutMillis: 5000, createTimeoutMillis: 5000, propagateCreateError: true },
      acquireConnectionTimeout: 5000,
      // Failures reach the caller as errors; knex's own console output would print stacks.
      log: quietKnexLog,
    });
  }
  const directory = path.resolve(options.dataDir, 'pglite');
  mkdirSync(directory, { recursive: true });
  const releaseLock = lockDataDirectory(directory);
  // knex-pglite keeps a pool of exactly one connection: PGlite is single-connection.
  const db = knexFactory({ client: ClientPgLite, dialect: 'postgres', connection: { filename: directory } });
  locks.set(db, releaseLock);
  return db;
}

const locks = new WeakMap<Database, () => void>();

// Closes the pool and, on PGlite, releases the data directory for the next process.
export async function closeDatabase(db: Database): Promise<void> {
  try {
    await db.destroy();
  } finally {
    locks.get(db)?.();
    locks.delete(db);
  }
}

export class DatabaseInUseError extends Error {}

// PGlite files must be opened by one process at a time; two would corrupt them.
function lockDataDirectory(directory: string): () => void {
  const lockFile = `${directory}.lock`;
  try {
    writeFileSync(lockFile, String(process.pid), { flag: 'wx' });
  } catch {
    const holder = Number(readFileSync(lockFile, 'utf8'));
    if (holder && holder !== process.pid && processAlive(holder)) {
      throw new DatabaseInUseError(
        `the embedded database in ${path.dirname(directory)} is in use by process ${holder}: stop it first, or use PostgreSQL (DATABASE_URL)`,
      );
    }
    if (holder === process.pid) throw new DatabaseInUseError(`the embedded database in ${path.dirname(directory)} is already open in this process`);
    writeFileSync(lockFile, String(process.pid));
  }
  return () => rmSync(lockFile, { force: true });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

export async function migrateToLatest(db: Database): Promise<string[]> {
  const [, applied] = await db.migrate.latest({ migrationSource });
  return applied as string[];
}

export async function pendingMigrations(db: Database): Promise<number> {
  const [, pending] = (await db.migrate.list({ migrationSource })) as [unknown[], unknown[]];
  return pending.length;
}
