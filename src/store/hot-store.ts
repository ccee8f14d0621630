// Short-lived shared state: values with a TTL, atomic counters, small sets and pub/sub.
// Redis in production, an in-process map on the embedded default; callers never know which.
export interface HotStore {
  readonly kind: 'redis' | 'memory';
  get(key: string): Promise<string | null>;
  set(key: string, value: string, ttlSeconds?: number): Promise<void>;
  // Sets only when the key is absent; true when this call set it. The basis of atomic "consume".
  setIfAbsent(key: string, value: string, ttlSeconds: number): Promise<boolean>;
  delete(...keys: string[]): Promise<void>;
  increment(key: string, ttlSeconds: number): Promise<number>;
  // Sets keep references (a grant's tokens); their TTL only ever grows.
  addToSet(key: string, member: string, ttlSeconds: number): Promise<void>;
  setMembers(key: string): Promise<string[]>;
  publish(channel: string, message: string): Promise<void>;
  subscribe(channel: string, handler: (message: string) => void): Promise<void>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}
