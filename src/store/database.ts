// knex on a PostgreSQL server (pg) or, with no DATABASE_URL, on PGlite files under the data directory.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import ClientPgLite from 'knex-pglite';
import { migrationSource } from '../../migrations/index.ts';

export type Database = Knex;

export interface DatabaseOptions {
  url?: string;
  poolMax: number;
  dataDir: string;
}

export function createDatabase(options: DatabaseOptions): Database {
  if (options.url) {
    return knexFactory({
      client: 'pg',
      connection: { connectionString: options.url, application_name: 'idp' },
      pool: { min: 0, max: options.poolMax, acquireTimeoutMillis: 5000 },
      acquireConnectionTimeout: 5000,
    });
  }
  const directory = path.resolve(options.dataDir, 'pglite');
  mkdirSync(directory, { recursive: true });
  // knex-pglite keeps a pool of exactly one connection: PGlite is single-connection.
  return knexFactory({ client: ClientPgLite, dialect: 'postgres', connection: { filename: directory } });
}

export async function migrateToLatest(db: Database): Promise<string[]> {
  const [, applied] = await db.migrate.latest({ migrationSource });
  return applied as string[];
}

export async function pendingMigrations(db: Database): Promise<number> {
  const [, pending] = (await db.migrate.list({ migrationSource })) as [unknown[], unknown[]];
  return pending.length;
}
