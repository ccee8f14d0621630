// Short-lived shared state: values with a TTL, atomic counters, small sets and pub/sub.
// Redis in production, an in-process map on the embedded default; callers never know which.
export interface HotStore {
  readonly kind: 'redis' | 'memory';
  // Set on Redis with an in-process fallback for its outages (ResilientHotStore): a failed ping
  // then means degraded service, not none; `degraded` is true while the fallback serves.
  readonly resilient?: boolean;
  readonly degraded?: boolean;
  get(key: string): Promise<string | null>;
  set(key: string, value: string, ttlSeconds?: number): Promise<void>;
  // Sets only when the key is absent; true when this call set it. The basis of atomic "consume".
  setIfAbsent(key: string, value: string, ttlSeconds: number): Promise<boolean>;
  delete(...keys: string[]): Promise<void>;
  increment(key: string, ttlSeconds: number): Promise<number>;
  // Sets keep references (a grant's tokens); their TTL only ever grows.
  addToSet(key: string, member: string, ttlSeconds: number): Promise<void>;
  setMembers(key: string): Promise<string[]>;
  // How many subscribers received the message (on Redis Cluster: those of the node that took it).
  publish(channel: string, message: string): Promise<number>;
  subscribe(channel: string, handler: (message: string) => void): Promise<void>;
  // Append-only streams read through consumer groups (Redis Streams). An append carries a dedupe
  // id: a second append with the same id within dedupeSeconds is dropped (null), so a publisher
  // that retries after a crash puts an event in the stream once.
  appendToStream(stream: string, entry: StreamAppend): Promise<string | null>;
  // New entries for this consumer of the group; the group is created (from the stream's start)
  // when missing. Entries stay pending until acknowledged.
  readStreamGroup(stream: string, group: string, consumer: string, count: number): Promise<StreamEntry[]>;
  acknowledgeStream(stream: string, group: string, ids: string[]): Promise<number>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

export interface StreamAppend {
  dedupeId: string;
  dedupeSeconds: number;
  fields: Record<string, string>;
  // The stream is trimmed to about this many entries, so it cannot grow without limit.
  maxLength: number;
}

export interface StreamEntry {
  id: string;
  fields: Record<string, string>;
}
