import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { LRUCache } from 'lru-cache';
import type { HotStore } from './hot-store.ts';

// A per-tenant token in the hot store that changes whenever what instances cached for the tenant
// must be read again (the RBAC epoch, the API-key generation). Each instance keeps the token it
// last read for at most `confirmMs`, so a cache hit costs no round trip. A change is announced over
// pub/sub; every instance that hears it drops the token and acknowledges, and the change returns
// once all receivers have (or once `confirmMs` has passed, after which no instance still holds a
// token read before the change). So when a change returns, every instance sees it: a pub/sub
// message racing the next request cannot leave an instance behind. (On Redis Cluster PUBLISH
// counts the receivers of one node only; instances subscribed through other nodes then see the
// change when they hear it, within `confirmMs` at the latest.)
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
  #confirmMs: number;
  #known: LRUCache<string, string>;
  // Counts the drops: a read that started before one may have fetched the old token, and is
  // not kept.
  #drops = 0;

  constructor(hot: HotStore, options: SharedEpochOptions) {
    this.#hot = hot;
    this.#key = options.key;
    this.#channel = options.channel;
    this.#ttlSeconds = options.ttlSeconds ?? 30 * 86400;
    this.#confirmMs = options.confirmMs ?? 1000;
    this.#known = new LRUCache<string, string>({ max: options.max ?? 10_000, ttl: this.#confirmMs });
  }

  async start(): Promise<void> {
    await this.#hot.subscribe(this.#channel, (message) => {
      const [tenantId, ack] = message.split(' ');
      this.#drop(tenantId);
      if (ack) this.#hot.increment(ack, 60).catch(() => {});
    });
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

  // Draws a new token for the tenant and tells every instance; returns once they all know.
  async renew(tenantId: string): Promise<void> {
    this.#drop(tenantId);
    await this.#hot.set(this.#key(tenantId), randomUUID(), this.#ttlSeconds);
    this.#drop(tenantId);
    const ack = `${this.#channel}:ack:${randomUUID()}`;
    const receivers = await this.#hot.publish(this.#channel, `${tenantId} ${ack}`);
    const deadline = Date.now() + this.#confirmMs;
    while (receivers > 0 && Number((await this.#hot.get(ack)) ?? 0) < receivers && Date.now() < deadline) await sleep(2);
  }

  #drop(tenantId: string): void {
    this.#drops++;
    this.#known.delete(tenantId);
  }
}
