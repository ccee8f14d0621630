// Statement batching (src/store/batching.ts): what concurrent callers issue in one turn of the
// event loop leaves as one statement, each caller still gets its own answer, a bad record fails
// only its own caller, and batches are acknowledged in the order they were sent.
import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { batchedByKey, batchedWriteSets } from '../../src/store/batching.ts';

interface Row {
  id: string;
  value: string;
}

// A fake statement runner that records each call.
function recordingWrites(options: { fail?: (consumes: readonly string[], stores: readonly Row[]) => boolean; delayMs?: (call: number) => number } = {}) {
  const calls: Array<{ consumes: string[]; stores: Row[] }> = [];
  const consumed = new Set<string>();
  const stored = new Map<string, string>();
  const writes = batchedWriteSets<Row, Row>({
    keyOf: (row) => row.id,
    async run(consumes, stores) {
      const call = calls.push({ consumes: [...consumes], stores: [...stores] });
      await sleep(options.delayMs?.(call) ?? 0);
      if (options.fail?.(consumes, stores)) throw new Error('statement failed');
      const rows = consumes.filter((id) => !consumed.has(id)).map((id) => ({ id, value: `consumed ${id}` }));
      for (const row of rows) consumed.add(row.id);
      for (const row of stores) stored.set(row.id, row.value);
      return rows;
    },
  });
  return { writes, calls, consumed, stored };
}

describe('statement batching', () => {
  it('sends the reads of one turn as one statement and answers each caller with its own row', async () => {
    const statements: string[][] = [];
    const find = batchedByKey<Row>(
      async (ids) => {
        statements.push([...ids]);
        return ids.filter((id) => id !== 'missing').map((id) => ({ id, value: `row ${id}` }));
      },
      (row) => row.id,
    );
    const [a, b, missing, again] = await Promise.all([find('a'), find('b'), find('missing'), find('a')]);
    expect(statements).to.deep.equal([['a', 'b', 'missing']]);
    expect(a).to.deep.equal({ id: 'a', value: 'row a' });
    expect(b).to.deep.equal({ id: 'b', value: 'row b' });
    expect(missing).to.equal(undefined);
    expect(again).to.deep.equal(a);
    expect(again === a, 'a key asked twice gets a copy, not the same object').to.equal(false);
    await find('c');
    expect(statements, 'a later turn is a statement of its own').to.have.length(2);
  });

  it('consumes and stores of one turn go out as one statement; the first asker of a consumption gets its row', async () => {
    const { writes, calls, consumed, stored } = recordingWrites();
    const [first, second] = await Promise.all([writes.consume('old'), writes.consume('old'), writes.store({ id: 'new', value: 'v1' }), writes.store({ id: 'other', value: 'v' })]);
    expect(calls).to.deep.equal([{ consumes: ['old'], stores: [{ id: 'new', value: 'v1' }, { id: 'other', value: 'v' }] }]);
    expect(first).to.deep.equal({ id: 'old', value: 'consumed old' });
    expect(second, 'only one caller consumed it').to.equal(undefined);
    expect([...consumed]).to.deep.equal(['old']);
    expect(stored.get('new')).to.equal('v1');
  });

  it('keeps the last store of a key in a batch, and consumes a key stored in the same batch first, in a statement of its own', async () => {
    const { writes, calls, stored } = recordingWrites();
    await Promise.all([writes.store({ id: 'k', value: 'first' }), writes.store({ id: 'k', value: 'last' })]);
    expect(calls).to.deep.equal([{ consumes: [], stores: [{ id: 'k', value: 'last' }] }]);
    expect(stored.get('k')).to.equal('last');
    calls.length = 0;
    await Promise.all([writes.consume('k'), writes.store({ id: 'k', value: 'again' })]);
    expect(calls).to.deep.equal([
      { consumes: ['k'], stores: [] },
      { consumes: [], stores: [{ id: 'k', value: 'again' }] },
    ]);
  });

  it('fails only the caller whose record the statement refused', async () => {
    const { writes, stored } = recordingWrites({ fail: (_consumes, stores) => stores.some((row) => row.value === 'bad') });
    const outcomes = await Promise.allSettled([writes.store({ id: 'a', value: 'good' }), writes.store({ id: 'b', value: 'bad' }), writes.consume('c')]);
    expect(outcomes.map((outcome) => outcome.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled']);
    expect((outcomes[1] as PromiseRejectedResult).reason.message).to.equal('statement failed');
    expect((outcomes[2] as PromiseFulfilledResult<Row | undefined>).value?.id).to.equal('c');
    expect(stored.get('a')).to.equal('good');
    expect(stored.has('b')).to.equal(false);
  });

  it('acknowledges a batch only after every batch sent before it has settled', async () => {
    // The first statement is slow, the second fast: the second's caller still hears last.
    const { writes } = recordingWrites({ delayMs: (call) => (call === 1 ? 100 : 0) });
    const order: string[] = [];
    const slow = writes.consume('slow').then(() => order.push('slow'));
    await new Promise((resolve) => setImmediate(resolve));
    const fast = writes.store({ id: 'fast', value: 'v' }).then(() => order.push('fast'));
    await Promise.all([slow, fast]);
    expect(order).to.deep.equal(['slow', 'fast']);
  });
});
