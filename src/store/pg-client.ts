// knex's PostgreSQL client, with transactions that can enter the tenant scope in the round trip of
// their BEGIN (or SAVEPOINT) and leave it in the round trip of their RELEASE: statements without
// parameters go out as one simple query. Every tenant-scoped transaction saves a round trip to
// the server (two for one nested in a platform transaction); see docs/scaling.md.
import { createRequire } from 'node:module';
import type { Knex } from 'knex';

const require = createRequire(import.meta.url);
// knex exports no subclassable dialect; these are its own modules (knex 3).
const PgClient = require('knex/lib/dialects/postgres/index.js');
const PgTransaction = require('knex/lib/dialects/postgres/execution/pg-transaction.js');

// What withTenant passes as the transaction's config: the statements that enter and leave the
// scope, free of parameters (they hold a constant role and a checked uuid).
export interface ScopeStatements {
  enter: string;
  leave: string;
}

interface ScopedConfig {
  scope?: ScopeStatements;
}

class ScopedTransaction extends PgTransaction {
  scope?: ScopeStatements;

  constructor(client: unknown, container: unknown, config: ScopedConfig | undefined, outerTx: unknown) {
    super(client, container, config, outerTx);
    // Read before the connection is acquired: the super constructor starts on a later microtask.
    this.scope = config?.scope;
  }

  begin(conn: unknown) {
    if (!this.scope) return super.begin(conn);
    // A transaction mode makes knex word its own BEGIN: the scope then follows it.
    if (this.isolationLevel || this.readOnly) return super.begin(conn).then(() => this.query(conn, `${this.scope!.enter};`));
    return this.query(conn, `BEGIN; ${this.scope.enter};`);
  }

  savepoint(conn: unknown) {
    if (!this.scope) return super.savepoint(conn);
    return this.query(conn, `SAVEPOINT ${this.txid}; ${this.scope.enter};`);
  }

  release(conn: unknown, value: unknown) {
    if (!this.scope) return super.release(conn, value);
    return this.query(conn, `${this.scope.leave}; RELEASE SAVEPOINT ${this.txid};`, 1, value);
  }
}

export class ScopedPgClient extends PgClient {
  transaction(container: unknown, config: ScopedConfig | undefined, outerTx: unknown) {
    return new ScopedTransaction(this, container, config, outerTx);
  }
}

// Whether transactions of this knex instance (or transaction) take ScopeStatements.
export function takesScopeStatements(db: Knex | Knex.Transaction): boolean {
  return db.client instanceof ScopedPgClient;
}
