// Point reads and writes that concurrent requests issue one at a time (a token by id, a user by
// id, a consumption, a store) leave as one statement per turn of the event loop. Under load every
// statement costs more in the socket write that hands it to PostgreSQL and in PostgreSQL's own
// parse and commit than in the work it does; one statement for all the requests waiting in that
// turn pays those once. Each caller still waits for its own result, and a write is acknowledged
// only when the statement that carried it has committed. An idle instance sends batches of one.
// DataLoader does the collecting; its per-key cache is off, so no answer outlives its statement.
import DataLoader from 'dataloader';

const MAX_BATCH = 100;

export type Batched<K, V> = (key: K) => Promise<V>;

function batched<K, V>(run: (keys: readonly K[]) => Promise<ReadonlyArray<V | Error>>): Batched<K, V> {
  const loader = new DataLoader<K, V>(run, {
    cache: false,
    maxBatchSize: MAX_BATCH,
    batchScheduleFn: (dispatch) => setImmediate(dispatch),
  });
  return (key) => loader.load(key);
}

// Statements by unique key whose rows come back matched to the keys that asked (undefined: no
// row). A key asked twice in one batch gets its own copy of the row, or, for a statement that
// changes what it returns (a consumption), only the first asker gets the row.
export function batchedByKey<V>(
  run: (keys: readonly string[]) => Promise<V[]>,
  keyOf: (row: V) => string,
  repeatedKey: 'copy' | 'first-only' = 'copy',
): Batched<string, V | undefined> {
  return batched(async (keys) => {
    const rows = await run([...new Set(keys)]);
    const byKey = new Map(rows.map((row) => [keyOf(row), row]));
    const answered = new Set<string>();
    return keys.map((key) => {
      const row = byKey.get(key);
      if (row === undefined || !answered.has(key)) {
        answered.add(key);
        return row;
      }
      return repeatedKey === 'copy' ? structuredClone(row) : undefined;
    });
  });
}

export interface WriteSetOptions<T, R extends { id: string }> {
  keyOf(item: T): string;
  // One statement: consumes the keys not consumed yet, returning the rows it consumed, and stores
  // the items.
  run(consumes: readonly string[], stores: readonly T[]): Promise<R[]>;
}

type WriteOp<T> = { consume: string } | { store: T };

// Consumptions and stores of records by key. The last store of a key in a batch wins (one
// statement cannot touch a row twice), and a key both consumed and stored in one batch is
// consumed first, in a statement of its own. A consumption answers its row to its first asker
// only. When the batch's statement fails, each write is tried alone, in order, so a bad record
// fails only its own caller. Batches are acknowledged in the order they were sent, so a write
// that has been acknowledged also means every write issued before it has been settled.
export function batchedWriteSets<T, R extends { id: string }>(options: WriteSetOptions<T, R>) {
  const { keyOf, run } = options;
  let settled: Promise<unknown> = Promise.resolve();

  async function execute(ops: readonly WriteOp<T>[]): Promise<Array<R | undefined | Error>> {
    const consumes = [...new Set(ops.flatMap((op) => ('consume' in op ? [op.consume] : [])))];
    const stores = [...new Map(ops.flatMap((op) => ('store' in op ? [[keyOf(op.store), op.store] as const] : []))).values()];
    let consumed: R[];
    try {
      if (consumes.some((key) => stores.some((item) => keyOf(item) === key))) {
        consumed = await run(consumes, []);
        await run([], stores);
      } else {
        consumed = await run(consumes, stores);
      }
    } catch (error) {
      if (ops.length === 1) return [error as Error];
      const outcomes: Array<R | undefined | Error> = [];
      for (const op of ops) {
        const alone = 'consume' in op ? run([op.consume], []).then((rows) => rows[0]) : run([], [op.store]).then(() => undefined);
        outcomes.push(await alone.catch((failure: Error) => failure));
      }
      return outcomes;
    }
    const byKey = new Map(consumed.map((row) => [row.id, row]));
    return ops.map((op) => {
      if (!('consume' in op)) return undefined;
      const row = byKey.get(op.consume);
      byKey.delete(op.consume);
      return row;
    });
  }

  const write = batched<WriteOp<T>, R | undefined>(async (ops) => {
    const previous = settled;
    const outcome = execute(ops);
    const done = outcome.then(() => previous);
    settled = done;
    await done;
    return outcome;
  });

  return {
    consume: (key: string) => write({ consume: key }),
    store: async (item: T): Promise<void> => {
      await write({ store: item });
    },
  };
}
