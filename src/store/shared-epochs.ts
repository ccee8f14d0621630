import { randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { HotStore } from './hot-store.ts';

// A per-tenant token in the hot store that changes whenever what instances cached for the tenant
// must be read again (the RBAC epoch, the API-key generation). Each instance keeps the token it
// last read and drops it as soon as any instance announces a new one over pub/sub, so a cache hit
// costs no round trip and a change reaches every instance at once. A token is also read again
// after `confirmMs`: that bounds how long an instance could miss a change whose announcement was
// lost (a subscriber reconnecting, Redis failing over).
export interface SharedEpochOptions {
  // The hot-store key of a tenant's token; also names the pub/sub channel.
  key: (tenantId: string) => string;
  channel: string;
  confirmMs?: number;
  ttlSeconds?: number;
  max?: number;
}

export class SharedEpochs {
  #hot: HotStore;
  #key: (tenantId: string) => string;
  #channel: string;
  #ttlSeconds: number;
  #known: LRUCache<string, string>;
  // Counts the drops: a read that started before one may have fetched the old token, and is
  // not kept.
  #drops = 0;

  constructor(hot: HotStore, options: SharedEpochOptions) {
    this.#hot = hot;
    this.#key = options.key;
    this.#channel = options.channel;
    this.#ttlSeconds = options.ttlSeconds ?? 30 * 86400;
    this.#known = new LRUCache<string, string>({ max: options.max ?? 10_000, ttl: options.confirmMs ?? 1000 });
  }

  async start(): Promise<void> {
    await this.#hot.subscribe(this.#channel, (tenantId) => this.#drop(tenantId));
  }

  async current(tenantId: string): Promise<string> {
    const known = this.#known.get(tenantId);
    if (known !== undefined) return known;
    const drops = this.#drops;
    const key = this.#key(tenantId);
    let token = await this.#hot.get(key);
    if (token === null) {
      const fresh = randomUUID();
      token = (await this.#hot.setIfAbsent(key, fresh, this.#ttlSeconds)) ? fresh : ((await this.#hot.get(key)) ?? fresh);
    }
    if (drops === this.#drops) this.#known.set(tenantId, token);
    return token;
  }

  // Draws a new token for the tenant and tells every instance.
  async renew(tenantId: string): Promise<void> {
    this.#drop(tenantId);
    await this.#hot.set(this.#key(tenantId), randomUUID(), this.#ttlSeconds);
    this.#drop(tenantId);
    await this.#hot.publish(this.#channel, tenantId);
  }

  #drop(tenantId: string): void {
    this.#drops++;
    this.#known.delete(tenantId);
  }
}
