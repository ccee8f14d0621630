// The hot store's streams behave alike on Redis and in process: an append with a dedupe id lands
// once, each consumer group reads every entry once from the start, acknowledged or not, and the
// stream is trimmed to about its bound.
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { TEST_ENV } from '../helpers/instance.ts';
import { loadConfig } from '../../src/config.ts';
import { createHotStore } from '../../src/store/index.ts';
import type { HotStore } from '../../src/store/hot-store.ts';

forEachBackend('hot store streams', (backend) => {
  let store: BackendEnv;
  let hot: HotStore;

  const append = (stream: string, dedupeId: string, maxLength = 1000) =>
    hot.appendToStream(stream, { dedupeId, dedupeSeconds: 60, maxLength, fields: { id: dedupeId, body: `event ${dedupeId}` } });

  before(async () => {
    store = await backend.create();
    hot = createHotStore(loadConfig({ ...TEST_ENV, ...store.env }));
  });
  after(async () => {
    await hot?.close();
    await store?.cleanup();
  });

  it('appends an entry once per dedupe id and hands it to each group once', async () => {
    const stream = `s-${randomUUID()}`;
    const first = await append(stream, 'a');
    expect(first).to.match(/^\d+-\d+$/);
    expect(await append(stream, 'a'), 'the same id again').to.equal(null);
    await append(stream, 'b');

    const one = await hot.readStreamGroup(stream, 'one', 'c1', 10);
    expect(one.map((entry) => entry.fields)).to.deep.equal([{ id: 'a', body: 'event a' }, { id: 'b', body: 'event b' }]);
    expect(one[0].id).to.equal(first);
    expect(await hot.readStreamGroup(stream, 'one', 'c2', 10), 'another consumer of the same group').to.deep.equal([]);
    expect(await hot.acknowledgeStream(stream, 'one', one.map((entry) => entry.id))).to.equal(2);
    expect(await hot.acknowledgeStream(stream, 'one', [one[0].id]), 'acknowledged already').to.equal(0);

    const two = await hot.readStreamGroup(stream, 'two', 'c1', 1);
    expect(two.map((entry) => entry.fields.id)).to.deep.equal(['a']);
    expect((await hot.readStreamGroup(stream, 'two', 'c1', 10)).map((entry) => entry.fields.id)).to.deep.equal(['b']);

    await append(stream, 'c');
    expect((await hot.readStreamGroup(stream, 'one', 'c1', 10)).map((entry) => entry.fields.id)).to.deep.equal(['c']);
  });

  it('trims the stream to about its bound', async () => {
    const stream = `s-${randomUUID()}`;
    for (let index = 0; index < 600; index++) await append(stream, String(index), 50);
    const entries = await hot.readStreamGroup(stream, 'reader', 'c1', 1000);
    expect(entries.length).to.be.at.least(50).and.below(300);
    expect(entries[entries.length - 1].fields.id, 'the newest entries stay').to.equal('599');
  });
});
