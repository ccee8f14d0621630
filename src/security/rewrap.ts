// Re-sealing stored values under the current key-encryption key after a rotation (`idp keys
// rewrap`). Each domain pages through its own table; this runs the pages, one transaction each.
import type { Knex } from 'knex';
import type { Database } from '../store/database.ts';
import { resealUnderCurrent, type SealingKeys } from './crypto.ts';

// Per kind of sealed value: how many were sealed again, how many already were under the current
// key, and the ids (never the values) of those no key opens.
export interface RewrapReport {
  kind: string;
  rewrapped: number;
  current: number;
  failed: string[];
}

export interface SealedValue {
  // Names the value in a failure: a row id, with the column when a row holds several.
  id: string;
  sealed: string;
  context: string;
  // Stores the value sealed again, in the page's transaction.
  save(trx: Knex.Transaction, resealed: string): Promise<unknown>;
}

export interface RewrapSource {
  kind: string;
  // The next page after `after` (undefined: the first), ordered by `cursor`, rows locked for update.
  page(trx: Knex.Transaction, after: string | undefined, limit: number): Promise<Array<{ cursor: string; values: SealedValue[] }>>;
}

export async function rewrapAll(db: Database, keys: SealingKeys, source: RewrapSource, batchSize = 100): Promise<RewrapReport> {
  const report: RewrapReport = { kind: source.kind, rewrapped: 0, current: 0, failed: [] };
  let after: string | undefined;
  for (;;) {
    const rows = await db.transaction(async (trx) => {
      const page = await source.page(trx, after, batchSize);
      for (const row of page) {
        for (const value of row.values) {
          let resealed: string | undefined;
          try {
            resealed = resealUnderCurrent(keys, value.sealed, value.context);
          } catch {
            report.failed.push(value.id);
            continue;
          }
          if (resealed === undefined) report.current++;
          else {
            await value.save(trx, resealed);
            report.rewrapped++;
          }
        }
      }
      return page;
    });
    if (rows.length < batchSize) return report;
    after = rows[rows.length - 1].cursor;
  }
}
