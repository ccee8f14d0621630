import { LRUCache } from 'lru-cache';
import type { HotStore } from './hot-store.ts';

// A per-process cache of small, read-mostly records (clients, APIs) that every instance evicts
// as soon as any instance announces a change on the hot store's pub/sub. The short TTL bounds
// staleness if a message is ever missed.
export class BroadcastCache<T extends {}> {
  #cache: LRUCache<string, T>;
  #hot: HotStore;
  #channel: string;

  constructor(hot: HotStore, channel: string, options: { max: number; ttlSeconds: number }) {
    this.#hot = hot;
    this.#channel = channel;
    this.#cache = new LRUCache<string, T>({ max: options.max, ttl: options.ttlSeconds * 1000 });
  }

  async start(): Promise<void> {
    await this.#hot.subscribe(this.#channel, (key) => {
      if (key === '*') this.#cache.clear();
      else this.#cache.delete(key);
    });
  }

  async get(key: string, load: () => Promise<T | undefined>): Promise<T | undefined> {
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached;
    const value = await load();
    if (value !== undefined) this.#cache.set(key, value);
    return value;
  }

  async invalidate(key: string): Promise<void> {
    this.#cache.delete(key);
    await this.#hot.publish(this.#channel, key);
  }
}
