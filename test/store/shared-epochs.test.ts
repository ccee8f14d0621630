// Per-tenant tokens held in each instance's memory (src/store/shared-epochs.ts): a change returns
// only once every instance that heard the announcement has dropped its copy, even when the
// message reaches one late; an instance that never hears it reads the token again within the
// confirm interval.
import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemoryHotStore } from '../../src/store/memory-hot-store.ts';
import type { HotStore } from '../../src/store/hot-store.ts';
import { SharedEpochs } from '../../src/store/shared-epochs.ts';

const options = { key: (tenantId: string) => `test:{${tenantId}}:epoch`, channel: 'test:epoch-changed' };

// The same store, but its announcements reach this instance `delayMs` late.
function lateListener(store: HotStore, delayMs: number): HotStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'subscribe') {
        return (channel: string, handler: (message: string) => void) => target.subscribe(channel, (message) => void setTimeout(() => handler(message), delayMs));
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

describe('shared epochs', () => {
  it('returns from a change only once an instance that hears of it late has dropped its copy', async () => {
    const store = new MemoryHotStore();
    const changing = new SharedEpochs(store, options);
    const late = new SharedEpochs(lateListener(store, 150), options);
    await Promise.all([changing.start(), late.start()]);
    const before = await late.current('t1');
    const started = Date.now();
    await changing.renew('t1');
    expect(Date.now() - started, 'waited for the late instance').to.be.at.least(140);
    const after = await late.current('t1');
    expect(after).to.not.equal(before);
    expect(after).to.equal(await changing.current('t1'));
  });

  it('answers from memory between changes, and an instance that never hears of a change reads it again within the confirm interval', async () => {
    const store = new MemoryHotStore();
    const changing = new SharedEpochs(store, { ...options, confirmMs: 200 });
    const deaf = new SharedEpochs(store, { ...options, confirmMs: 200 });
    await changing.start();
    const before = await deaf.current('t2');
    await store.set(options.key('t2'), 'changed behind its back');
    expect(await deaf.current('t2')).to.equal(before);
    await changing.renew('t2');
    expect(await deaf.current('t2'), 'not subscribed, still within the interval').to.equal(before);
    await sleep(250);
    expect(await deaf.current('t2')).to.equal(await changing.current('t2'));
  });
});
