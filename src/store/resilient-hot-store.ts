// Redis with an in-process fallback for its outages (docs/operations.md, "Outages"). While Redis is
// unreachable, hot state lives in a bounded map in this process, so logins, refreshes and
// introspection go on (a login must then finish on the instance that started it); when Redis
// answers again, what was written meanwhile is handed back to it and the fallback is emptied.
// Keys that only cache PostgreSQL rows are never served from the fallback: they are read from the
// database during the outage and deleted in Redis on recovery, so no stale copy survives it.
// Streams have no fallback: their callers (the outbox) keep their events in PostgreSQL and retry.
import type { Logger } from 'pino';
import type { HotStore, StreamAppend, StreamEntry } from './hot-store.ts';
import { MemoryHotStore } from './memory-hot-store.ts';
import type { RedisHotStore } from './redis-hot-store.ts';
import { countHotStoreFallback, setHotStoreDegraded } from '../ops/metrics.ts';

export interface ResilientHotStoreOptions {
  primary: RedisHotStore;
  log?: Logger;
  // Keys whose values are copies of PostgreSQL rows (the durable models' read-through cache).
  isCacheKey?: (key: string) => boolean;
  // The most keys the fallback holds; beyond it, writes fail (the request answers 503).
  maxFallbackKeys?: number;
  probeIntervalMs?: number;
  // How often, at most, the outage is logged again while it lasts.
  warnIntervalMs?: number;
}

export const DEFAULT_MAX_FALLBACK_KEYS = 50_000;

// The fallback is full: the request cannot keep its state anywhere.
export class HotStoreUnavailableError extends Error {
  override readonly name = 'HotStoreUnavailableError';
}

// A reply Redis gave (wrong type, unknown group) is the caller's concern; anything else (refused,
// closed, timed out, retries exhausted, a cluster without quorum) means Redis is not there.
export function isRedisOutage(error: unknown): boolean {
  const { name, message } = (error ?? {}) as { name?: string; message?: string };
  if (name === 'ReplyError') return /^(LOADING|CLUSTERDOWN|MASTERDOWN|TRYAGAIN)\b/.test(String(message));
  // A bug in the caller is not an outage.
  if (error instanceof TypeError || error instanceof RangeError || error instanceof SyntaxError) return false;
  return error instanceof Error;
}

type Touch = 'write' | 'increment';

export class ResilientHotStore implements HotStore {
  readonly kind = 'redis' as const;
  readonly resilient = true;
  #primary: RedisHotStore;
  #fallback = new MemoryHotStore();
  #log?: Logger;
  #isCacheKey: (key: string) => boolean;
  #maxKeys: number;
  #probeIntervalMs: number;
  #warnIntervalMs: number;
  // Keys written or deleted in the fallback since the outage began, how, and when (a sequence number,
  // so a key written again while it is being handed back is handed back again).
  #touched = new Map<string, { how: Touch; seq: number }>();
  #seq = 0;
  #degraded = false;
  #since = 0;
  #served = 0;
  #lastWarning = 0;
  #probe?: NodeJS.Timeout;
  #recovering?: Promise<void>;
  // Channels whose Redis subscription failed during an outage; subscribed again on recovery.
  #unsubscribed = new Map<string, (message: string) => void>();
  #closed = false;
  #localHandlers: Array<[string, (message: string) => void]> = [];

  constructor(options: ResilientHotStoreOptions) {
    this.#primary = options.primary;
    this.#log = options.log;
    this.#isCacheKey = options.isCacheKey ?? (() => false);
    this.#maxKeys = options.maxFallbackKeys ?? DEFAULT_MAX_FALLBACK_KEYS;
    this.#probeIntervalMs = options.probeIntervalMs ?? 1000;
    this.#warnIntervalMs = options.warnIntervalMs ?? 30_000;
    setHotStoreDegraded(false);
  }

  // The Redis connection, for the rate limiter (rate-limiter-flexible keeps its own per-process
  // insurance limiter for outages).
  get client(): RedisHotStore['client'] {
    return this.#primary.client;
  }

  get degraded(): boolean {
    return this.#degraded;
  }

  async get(key: string): Promise<string | null> {
    return this.#run(
      () => this.#primary.get(key),
      async () => (this.#isCacheKey(key) ? null : this.#fallback.get(key)),
    );
  }

  async set(key: string, value: string, ttlSeconds?: number): Promise<void> {
    return this.#run(
      () => this.#primary.set(key, value, ttlSeconds),
      async () => {
        this.#touch(key, 'write');
        if (!this.#isCacheKey(key)) await this.#fallback.set(key, value, ttlSeconds);
      },
    );
  }

  async setIfAbsent(key: string, value: string, ttlSeconds: number): Promise<boolean> {
    return this.#run(
      () => this.#primary.setIfAbsent(key, value, ttlSeconds),
      async () => {
        this.#touch(key, 'write');
        return this.#isCacheKey(key) ? true : this.#fallback.setIfAbsent(key, value, ttlSeconds);
      },
    );
  }

  async delete(...keys: string[]): Promise<void> {
    return this.#run(
      () => this.#primary.delete(...keys),
      async () => {
        for (const key of keys) this.#touch(key, 'write');
        await this.#fallback.delete(...keys);
      },
    );
  }

  async increment(key: string, ttlSeconds: number): Promise<number> {
    return this.#run(
      () => this.#primary.increment(key, ttlSeconds),
      async () => {
        this.#touch(key, 'increment');
        return this.#fallback.increment(key, ttlSeconds);
      },
    );
  }

  async addToSet(key: string, member: string, ttlSeconds: number): Promise<void> {
    return this.#run(
      () => this.#primary.addToSet(key, member, ttlSeconds),
      async () => {
        this.#touch(key, 'write');
        await this.#fallback.addToSet(key, member, ttlSeconds);
      },
    );
  }

  async setMembers(key: string): Promise<string[]> {
    return this.#run(
      () => this.#primary.setMembers(key),
      () => this.#fallback.setMembers(key),
    );
  }

  // During an outage a message reaches this process's own subscribers only.
  async publish(channel: string, message: string): Promise<number> {
    return this.#run(
      () => this.#primary.publish(channel, message),
      () => this.#fallback.publish(channel, message),
    );
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<void> {
    const local = (message: string) => {
      if (this.#degraded) handler(message);
    };
    this.#localHandlers.push([channel, local]);
    await this.#fallback.subscribe(channel, local);
    try {
      await this.#primary.subscribe(channel, handler);
    } catch (error) {
      if (!isRedisOutage(error)) throw error;
      this.#unsubscribed.set(channel, handler);
      this.#enterDegraded(error);
    }
  }

  appendToStream(stream: string, entry: StreamAppend): Promise<string | null> {
    return this.#primary.appendToStream(stream, entry);
  }

  readStreamGroup(stream: string, group: string, consumer: string, count: number): Promise<StreamEntry[]> {
    return this.#primary.readStreamGroup(stream, group, consumer, count);
  }

  acknowledgeStream(stream: string, group: string, ids: string[]): Promise<number> {
    return this.#primary.acknowledgeStream(stream, group, ids);
  }

  // Redis itself: readiness reports the outage even though requests are still served.
  async ping(): Promise<boolean> {
    const up = await this.#primary.ping();
    if (!up && !this.#closed) this.#enterDegraded(new Error('PING failed'));
    return up;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#probe);
    await this.#recovering?.catch(() => {});
    await this.#fallback.close();
    await this.#primary.close();
  }

  async #run<T>(onRedis: () => Promise<T>, onFallback: () => Promise<T>): Promise<T> {
    if (!this.#degraded) {
      try {
        return await onRedis();
      } catch (error) {
        if (!isRedisOutage(error)) throw error;
        this.#enterDegraded(error);
      }
    }
    this.#served++;
    countHotStoreFallback();
    this.#warnWhileDegraded();
    return onFallback();
  }

  #touch(key: string, how: Touch): void {
    if (!this.#touched.has(key) && (this.#touched.size >= this.#maxKeys || this.#fallback.size >= this.#maxKeys)) {
      throw new HotStoreUnavailableError(`Redis is unreachable and the in-process fallback is full (${this.#maxKeys} keys)`);
    }
    const before = this.#touched.get(key)?.how;
    this.#touched.set(key, { how: how === 'increment' && (before === undefined || before === 'increment') ? 'increment' : 'write', seq: ++this.#seq });
  }

  #enterDegraded(error: unknown): void {
    if (this.#degraded || this.#closed) return;
    this.#degraded = true;
    this.#since = Date.now();
    this.#served = 0;
    this.#lastWarning = Date.now();
    setHotStoreDegraded(true);
    this.#log?.error(
      { err: { message: (error as Error)?.message }, maxFallbackKeys: this.#maxKeys },
      'hot store (Redis) unavailable: hot state now lives in this process until Redis returns; logins must finish on the instance that started them, rate limits count per process',
    );
    this.#probe = setInterval(() => void this.#tryRecover(), this.#probeIntervalMs);
    this.#probe.unref();
  }

  #warnWhileDegraded(): void {
    const now = Date.now();
    if (now - this.#lastWarning < this.#warnIntervalMs) return;
    this.#lastWarning = now;
    this.#log?.warn(
      { outageSeconds: Math.round((now - this.#since) / 1000), fallbackOperations: this.#served, fallbackKeys: this.#fallback.size },
      'hot store (Redis) still unavailable: serving from the in-process fallback',
    );
  }

  async #tryRecover(): Promise<void> {
    if (this.#recovering || this.#closed) return;
    this.#recovering = (async () => {
      if (!(await this.#primary.ping())) return;
      for (const [channel, handler] of this.#unsubscribed) {
        await this.#primary.subscribe(channel, handler);
        this.#unsubscribed.delete(channel);
      }
      let replayed = 0;
      // Requests keep using the fallback meanwhile; keys they touch are handed back in the next round.
      while (this.#touched.size) {
        const batch: Array<[string, { how: Touch; seq: number }]> = [];
        for (const entry of this.#touched) {
          batch.push(entry);
          if (batch.length === 200) break;
        }
        await Promise.all(batch.map(([key, { how }]) => this.#handBack(key, how)));
        for (const [key, { seq }] of batch) if (this.#touched.get(key)?.seq === seq) this.#touched.delete(key);
        replayed += batch.length;
      }
      // Nothing awaited between the last round and here: no fallback write can slip in between.
      this.#degraded = false;
      clearInterval(this.#probe);
      const old = this.#fallback;
      this.#fallback = new MemoryHotStore();
      await this.#moveSubscriptions(old);
      setHotStoreDegraded(false);
      this.#log?.info({ outageSeconds: Math.round((Date.now() - this.#since) / 1000), keysHandedBack: replayed, fallbackOperations: this.#served }, 'hot store (Redis) recovered');
    })()
      .catch((error) => {
        this.#log?.warn({ err: { message: (error as Error).message } }, 'hot store (Redis) recovery attempt failed; retrying');
      })
      .finally(() => {
        this.#recovering = undefined;
      });
    await this.#recovering;
  }

  // One key back to Redis: its fallback value with its remaining lifetime, an increment as an
  // increment (counts made before the outage stay), a cache key or a deleted key as a deletion.
  async #handBack(key: string, how: Touch): Promise<void> {
    const entry = this.#isCacheKey(key) ? undefined : this.#fallback.snapshot(key);
    const ttlSeconds = entry && Number.isFinite(entry.ttlMs) ? Math.max(1, Math.ceil(entry.ttlMs / 1000)) : undefined;
    if (!entry) return this.#primary.delete(key);
    if (Array.isArray(entry.value)) {
      for (const member of entry.value) await this.#primary.addToSet(key, member, ttlSeconds ?? 30 * 86400);
      return;
    }
    if (how === 'increment') {
      const count = Number(entry.value);
      const total = await this.#primary.client.incrby(key, count);
      if (total === count && ttlSeconds) await this.#primary.client.expire(key, ttlSeconds);
      return;
    }
    await this.#primary.set(key, entry.value, ttlSeconds);
  }

  // Subscriptions made on the old fallback must keep delivering during a later outage.
  async #moveSubscriptions(old: MemoryHotStore): Promise<void> {
    for (const [channel, handler] of this.#localHandlers) await this.#fallback.subscribe(channel, handler);
    await old.close();
  }
}
