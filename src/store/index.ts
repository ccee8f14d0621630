import type { Config } from '../config.ts';
import type { HotStore } from './hot-store.ts';
import { MemoryHotStore } from './memory-hot-store.ts';
import { RedisHotStore } from './redis-hot-store.ts';

export function createHotStore(config: Config): HotStore {
  if (config.redis.urls) return new RedisHotStore({ urls: config.redis.urls, keyPrefix: config.redis.keyPrefix });
  return new MemoryHotStore();
}
