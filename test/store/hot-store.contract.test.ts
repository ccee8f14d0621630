// One contract, run unchanged against every hot-store implementation.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import type { HotStore } from '../../src/store/hot-store.ts';
import { MemoryHotStore } from '../../src/store/memory-hot-store.ts';
import { RedisHotStore } from '../../src/store/redis-hot-store.ts';
import { REDIS_URL, flushRedisPrefix, backends } from '../helpers/backends.ts';
import { redisServerAvailable, startRedisCluster } from '../helpers/redis-cluster.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Subject {
  name: string;
  requires?: string;
  unavailable?: () => Promise<string | undefined>;
  make(): Promise<{ store: HotStore; cleanup(): Promise<void> }>;
}

const subjects: Subject[] = [
  {
    name: 'memory',
    async make() {
      const store = new MemoryHotStore();
      return { store, cleanup: () => store.close() };
    },
  },
  {
    name: 'redis',
    requires: 'PostgreSQL + Redis',
    async make() {
      const prefix = `test:hot:${randomBytes(4).toString('hex')}:`;
      const store = new RedisHotStore({ urls: [REDIS_URL], keyPrefix: prefix });
      return {
        store,
        async cleanup() {
          await store.close();
          await flushRedisPrefix(prefix);
        },
      };
    },
  },
  {
    name: 'redis cluster (3 masters)',
    unavailable: redisServerAvailable,
    async make() {
      const cluster = await startRedisCluster();
      const store = new RedisHotStore({ urls: cluster.urls, keyPrefix: 'test:' });
      return {
        store,
        async cleanup() {
          await store.close();
          await cluster.stop();
        },
      };
    },
  },
];

for (const subject of subjects) {
  describe(`hot store contract [${subject.name}]`, function () {
    let store: HotStore;
    let cleanup: () => Promise<void>;

    before(async function () {
      this.timeout(60_000);
      const backend = backends.find((candidate) => candidate.name === subject.requires);
      const reason = (backend && (await backend.unavailable())) || (await subject.unavailable?.());
      if (reason) {
        if (process.env.CI === 'true') throw new Error(reason);
        this.skip();
      }
      ({ store, cleanup } = await subject.make());
    });
    after(async () => cleanup?.());

    it('stores, reads and deletes values', async () => {
      await store.set('a', '1');
      expect(await store.get('a')).to.equal('1');
      await store.delete('a');
      expect(await store.get('a')).to.equal(null);
      expect(await store.get('never-set')).to.equal(null);
    });

    it('expires values after their TTL', async () => {
      await store.set('short', 'x', 1);
      expect(await store.get('short')).to.equal('x');
      await sleep(1100);
      expect(await store.get('short')).to.equal(null);
    });

    it('sets only when absent, atomically under concurrency', async () => {
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.setIfAbsent('once', String(i), 60)));
      expect(results.filter(Boolean)).to.have.length(1);
      expect(await store.setIfAbsent('once', 'again', 60)).to.equal(false);
    });

    it('increments counters atomically and keeps the first TTL', async () => {
      const values = await Promise.all(Array.from({ length: 25 }, () => store.increment('counter', 1)));
      expect([...values].sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 25 }, (_, i) => i + 1));
      await sleep(1100);
      expect(await store.increment('counter', 1)).to.equal(1);
    });

    it('keeps sets whose TTL only grows', async () => {
      await store.addToSet('set', 'a', 1);
      await store.addToSet('set', 'b', 5);
      await store.addToSet('set', 'c', 1);
      expect((await store.setMembers('set')).sort()).to.deep.equal(['a', 'b', 'c']);
      await sleep(1200);
      expect((await store.setMembers('set')).sort(), 'the longer TTL wins').to.deep.equal(['a', 'b', 'c']);
      expect(await store.setMembers('no-set')).to.deep.equal([]);
    });

    it('delivers published messages to subscribers', async () => {
      const received: string[] = [];
      await store.subscribe('channel', (message) => received.push(message));
      await store.publish('channel', 'hello');
      for (let i = 0; i < 50 && !received.length; i++) await sleep(20);
      expect(received).to.deep.equal(['hello']);
    });

    it('answers ping', async () => {
      expect(await store.ping()).to.equal(true);
    });
  });
}
