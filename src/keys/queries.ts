import type { Database } from '../store/database.ts';

export type KeyStatus = 'next' | 'active' | 'retired';

export interface SigningKeyRow {
  kid: string;
  alg: string;
  status: KeyStatus;
  public_jwk: Record<string, unknown>;
  private_jwk_sealed: string;
  created_at: Date;
  activated_at: Date | null;
  retired_at: Date | null;
  remove_after: Date | null;
}

export function signingKeyQueries(db: Database) {
  return {
    all(trx: Database = db): Promise<SigningKeyRow[]> {
      return trx('signing_keys').select('*').orderBy('created_at', 'asc');
    },
    insert(trx: Database, row: Omit<SigningKeyRow, 'created_at' | 'activated_at' | 'retired_at' | 'remove_after'> & { activated_at?: Date }) {
      return trx('signing_keys').insert({ ...row, public_jwk: JSON.stringify(row.public_jwk) });
    },
    retireActive(trx: Database, alg: string, removeAfter: Date) {
      return trx('signing_keys')
        .where({ alg, status: 'active' })
        .update({ status: 'retired', retired_at: trx.fn.now(), remove_after: removeAfter });
    },
    activateNext(trx: Database, alg: string) {
      return trx('signing_keys').where({ alg, status: 'next' }).update({ status: 'active', activated_at: trx.fn.now() });
    },
    async removeExpiredRetired(trx: Database = db): Promise<number> {
      const removed = await trx('signing_keys').where({ status: 'retired' }).andWhere('remove_after', '<', trx.fn.now()).delete(['kid']);
      return removed.length;
    },
    async version(trx: Database = db): Promise<number> {
      const row = await trx('signing_key_version').where({ id: 1 }).first('version');
      return Number(row.version);
    },
    async bumpVersion(trx: Database): Promise<number> {
      const [row] = await trx('signing_key_version').where({ id: 1 }).increment('version', 1).returning('version');
      return Number(row.version);
    },
    // For re-wrapping: the keys after `after` in kid order, locked.
    page(trx: Database, after: string | undefined, limit: number): Promise<Array<Pick<SigningKeyRow, 'kid' | 'private_jwk_sealed'>>> {
      const query = trx('signing_keys').orderBy('kid').limit(limit).forUpdate().select('kid', 'private_jwk_sealed');
      return after === undefined ? query : query.where('kid', '>', after);
    },
    replaceSealed(trx: Database, kid: string, sealed: string) {
      return trx('signing_keys').where({ kid }).update({ private_jwk_sealed: sealed });
    },
    // Serialises rotations across instances.
    lock(trx: Database) {
      return trx('signing_key_version').where({ id: 1 }).forUpdate().first();
    },
  };
}
