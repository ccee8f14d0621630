import { EventEmitter } from 'node:events';
import type { HotStore } from './hot-store.ts';

interface Entry {
  value: string | Set<string>;
  expiresAt: number; // epoch ms; Infinity when no TTL
}

const SWEEP_INTERVAL_MS = 30_000;
const SWEEP_BATCH = 10_000;

// The embedded default: one process, so a map is the whole truth. Expired entries are dropped
// on read and by a bounded periodic sweep, so memory follows the live data.
export class MemoryHotStore implements HotStore {
  readonly kind = 'memory' as const;
  #entries = new Map<string, Entry>();
  #events = new EventEmitter();
  #sweeper: NodeJS.Timeout;
  #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
    this.#events.setMaxListeners(0);
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_INTERVAL_MS);
    this.#sweeper.unref();
  }

  async get(key: string): Promise<string | null> {
    const entry = this.#live(key);
    return typeof entry?.value === 'string' ? entry.value : null;
  }

  async set(key: string, value: string, ttlSeconds?: number): Promise<void> {
    this.#entries.set(key, { value, expiresAt: this.#expiry(ttlSeconds) });
  }

  async setIfAbsent(key: string, value: string, ttlSeconds: number): Promise<boolean> {
    if (this.#live(key)) return false;
    this.#entries.set(key, { value, expiresAt: this.#expiry(ttlSeconds) });
    return true;
  }

  async delete(...keys: string[]): Promise<void> {
    for (const key of keys) this.#entries.delete(key);
  }

  async increment(key: string, ttlSeconds: number): Promise<number> {
    const entry = this.#live(key);
    const next = (entry && typeof entry.value === 'string' ? Number(entry.value) : 0) + 1;
    this.#entries.set(key, { value: String(next), expiresAt: entry?.expiresAt ?? this.#expiry(ttlSeconds) });
    return next;
  }

  async addToSet(key: string, member: string, ttlSeconds: number): Promise<void> {
    const entry = this.#live(key);
    const expiresAt = this.#expiry(ttlSeconds);
    if (entry && entry.value instanceof Set) {
      entry.value.add(member);
      entry.expiresAt = Math.max(entry.expiresAt, expiresAt);
    } else {
      this.#entries.set(key, { value: new Set([member]), expiresAt });
    }
  }

  async setMembers(key: string): Promise<string[]> {
    const entry = this.#live(key);
    return entry && entry.value instanceof Set ? [...entry.value] : [];
  }

  async publish(channel: string, message: string): Promise<void> {
    this.#events.emit(channel, message);
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<void> {
    this.#events.on(channel, handler);
  }

  async ping(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#events.removeAllListeners();
  }

  // Test hook mirroring FLUSHDB on Redis.
  clear(): void {
    this.#entries.clear();
  }

  #expiry(ttlSeconds?: number): number {
    return ttlSeconds ? this.#now() + ttlSeconds * 1000 : Infinity;
  }

  #live(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry && entry.expiresAt <= this.#now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  #sweep(): void {
    const now = this.#now();
    let visited = 0;
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt <= now) this.#entries.delete(key);
      if (++visited >= SWEEP_BATCH) break;
    }
  }
}
