import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { HotStore } from './hot-store.ts';
import { MemoryHotStore } from './memory-hot-store.ts';
import { RedisHotStore } from './redis-hot-store.ts';
import { ResilientHotStore } from './resilient-hot-store.ts';
import { isDurableCacheKey } from '../oidc/model-storage.ts';

// Redis always comes with its outage fallback (docs/operations.md, "Outages").
export function createHotStore(config: Config, log?: Logger): HotStore {
  if (config.redis.urls) {
    const primary = new RedisHotStore({ urls: config.redis.urls, keyPrefix: config.redis.keyPrefix });
    return new ResilientHotStore({ primary, log, isCacheKey: isDurableCacheKey });
  }
  return new MemoryHotStore();
}
