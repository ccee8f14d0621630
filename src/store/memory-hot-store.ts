import { EventEmitter } from 'node:events';
import type { HotStore, StreamAppend, StreamEntry } from './hot-store.ts';

interface Entry {
  value: string | Set<string>;
  expiresAt: number; // epoch ms; Infinity when no TTL
}

// A stream as Redis keeps one: entries with ids "<ms>-<n>" in increasing order, and per consumer
// group the last id handed out and the entries handed out but not yet acknowledged.
interface MemoryStream {
  entries: StreamEntry[];
  lastId: [number, number];
  groups: Map<string, { lastDelivered: [number, number]; pending: Map<string, string> }>;
}

const SWEEP_INTERVAL_MS = 30_000;
const SWEEP_BATCH = 10_000;

// The embedded default: one process, so a map is the whole truth. Expired entries are dropped
// on read and by a bounded periodic sweep, so memory follows the live data.
export class MemoryHotStore implements HotStore {
  readonly kind = 'memory' as const;
  #entries = new Map<string, Entry>();
  #events = new EventEmitter();
  #streams = new Map<string, MemoryStream>();
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

  async publish(channel: string, message: string): Promise<number> {
    const receivers = this.#events.listenerCount(channel);
    this.#events.emit(channel, message);
    return receivers;
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<void> {
    this.#events.on(channel, handler);
  }

  async appendToStream(stream: string, entry: StreamAppend): Promise<string | null> {
    if (!(await this.setIfAbsent(`${stream}:dedupe:${entry.dedupeId}`, '1', entry.dedupeSeconds))) return null;
    const target = this.#stream(stream);
    const now = this.#now();
    const [lastMs, lastSeq] = target.lastId;
    target.lastId = now > lastMs ? [now, 0] : [lastMs, lastSeq + 1];
    const id = target.lastId.join('-');
    target.entries.push({ id, fields: { ...entry.fields } });
    if (target.entries.length > entry.maxLength) {
      // Unlike Redis, trimmed entries also leave the pending lists: in process, nothing may grow unbounded.
      const trimmed = target.entries.splice(0, target.entries.length - entry.maxLength);
      for (const group of target.groups.values()) for (const old of trimmed) group.pending.delete(old.id);
    }
    return id;
  }

  async readStreamGroup(stream: string, group: string, consumer: string, count: number): Promise<StreamEntry[]> {
    const target = this.#stream(stream);
    let state = target.groups.get(group);
    if (!state) {
      state = { lastDelivered: [0, 0], pending: new Map() };
      target.groups.set(group, state);
    }
    const start = firstAfter(target.entries, state.lastDelivered);
    const fresh = target.entries.slice(start, start + count);
    for (const entry of fresh) state.pending.set(entry.id, consumer);
    if (fresh.length) state.lastDelivered = parseId(fresh[fresh.length - 1].id);
    return fresh.map((entry) => ({ id: entry.id, fields: { ...entry.fields } }));
  }

  async acknowledgeStream(stream: string, group: string, ids: string[]): Promise<number> {
    const pending = this.#streams.get(stream)?.groups.get(group)?.pending;
    return pending ? ids.filter((id) => pending.delete(id)).length : 0;
  }

  async ping(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#events.removeAllListeners();
  }

  // A key's live value and remaining lifetime (Infinity without a TTL): what a fallback hands back
  // to Redis when it returns.
  snapshot(key: string): { value: string | string[]; ttlMs: number } | undefined {
    const entry = this.#live(key);
    if (!entry) return undefined;
    return { value: typeof entry.value === 'string' ? entry.value : [...entry.value], ttlMs: entry.expiresAt - this.#now() };
  }

  // Keys held, expired ones not yet swept included: the bound a fallback checks.
  get size(): number {
    return this.#entries.size;
  }

  // Test hook mirroring FLUSHDB on Redis.
  clear(): void {
    this.#entries.clear();
    this.#streams.clear();
  }

  #stream(name: string): MemoryStream {
    let stream = this.#streams.get(name);
    if (!stream) {
      stream = { entries: [], lastId: [0, 0], groups: new Map() };
      this.#streams.set(name, stream);
    }
    return stream;
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

function parseId(id: string): [number, number] {
  const [ms, seq] = id.split('-');
  return [Number(ms), Number(seq)];
}

function compareIds(a: [number, number], b: [number, number]): number {
  return a[0] - b[0] || a[1] - b[1];
}

// The index of the first entry with an id above `id` (entries are in increasing id order).
function firstAfter(entries: StreamEntry[], id: [number, number]): number {
  let low = 0;
  let high = entries.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compareIds(parseId(entries[middle].id), id) > 0) high = middle;
    else low = middle + 1;
  }
  return low;
}
