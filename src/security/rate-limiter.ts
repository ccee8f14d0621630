// Requests per key in a window, counted where every instance sees the same count: Redis through
// rate-limiter-flexible (one atomic script per request), or process memory on the embedded
// default. If Redis fails, the limiter falls back to a per-process count instead of failing the
// request (an outage must degrade limits, not availability) and says so in the log once.
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Logger } from 'pino';
import type { HotStore } from '../store/hot-store.ts';
import type { RedisHotStore } from '../store/redis-hot-store.ts';
import { countRateLimited } from '../ops/metrics.ts';

export interface RateLimitOptions {
  // Names the limit in keys, metrics and logs; one name per kind of limit.
  name: string;
  points: number;
  durationSeconds: number;
  log?: Logger;
}

export interface RateLimitDecision {
  allowed: boolean;
  // Points left in the current window (0 once refused).
  remaining: number;
  // Seconds until the window ends: the Retry-After of a refusal.
  retryAfterSeconds: number;
  // This is the first refusal of the window (record a block once, not on every try).
  firstRefusal: boolean;
  // Points counted in the window with this call's (refused points count too), and the
  // milliseconds until the window ends.
  consumed: number;
  resetInMs: number;
}

export interface RateLimiter {
  readonly name: string;
  readonly points: number;
  readonly durationSeconds: number;
  consume(key: string, cost?: number): Promise<RateLimitDecision>;
  // Forgets the key's count (a success that ends a run of failures).
  reset(key: string): Promise<void>;
}

function storeFor(hot: HotStore, options: RateLimitOptions): RateLimiterAbstract {
  const common = { keyPrefix: `ratelimit:${options.name}`, points: options.points, duration: options.durationSeconds };
  if (hot.kind !== 'redis') return new RateLimiterMemory(common);
  const insurance = new RateLimiterMemory(common);
  let warned = false;
  const warnOnce = () => {
    if (warned) return;
    warned = true;
    options.log?.warn({ limiter: options.name }, 'Redis is unreachable: rate limits fall back to per-process counts until it returns');
    setTimeout(() => (warned = false), 60_000).unref();
  };
  const redisLimiter = new RateLimiterRedis({
    ...common,
    storeClient: (hot as RedisHotStore).client,
    // Without this, a Redis outage would reject every request; the insurance counts per process.
    insuranceLimiter: new Proxy(insurance, {
      get(target, property, receiver) {
        if (property === 'consume' || property === 'delete') warnOnce();
        return Reflect.get(target, property, receiver);
      },
    }),
    rejectIfRedisNotReady: true,
  });
  // While the hot store knows Redis is out (docs/operations.md, "Outages"), go straight to the
  // insurance: a Redis that hangs instead of refusing would cost every request a command timeout.
  return new Proxy(redisLimiter, {
    get(target, property, receiver) {
      if (hot.degraded && (property === 'consume' || property === 'delete')) {
        warnOnce();
        return property === 'consume' ? insurance.consume.bind(insurance) : insurance.delete.bind(insurance);
      }
      return Reflect.get(target, property, receiver);
    },
  });
}

export function createRateLimiter(hot: HotStore, options: RateLimitOptions): RateLimiter {
  const store = storeFor(hot, options);
  const { name, points, durationSeconds } = options;
  return {
    name,
    points,
    durationSeconds,
    async consume(key, cost = 1) {
      try {
        const result = await store.consume(key, cost);
        return { allowed: true, remaining: result.remainingPoints, retryAfterSeconds: Math.ceil(result.msBeforeNext / 1000), firstRefusal: false, consumed: result.consumedPoints, resetInMs: result.msBeforeNext };
      } catch (refusal) {
        if (!(refusal instanceof RateLimiterRes)) throw refusal;
        const firstRefusal = refusal.consumedPoints - cost <= points;
        countRateLimited(name);
        return { allowed: false, remaining: 0, retryAfterSeconds: Math.max(1, Math.ceil(refusal.msBeforeNext / 1000)), firstRefusal, consumed: refusal.consumedPoints, resetInMs: refusal.msBeforeNext };
      }
    },
    async reset(key) {
      await store.delete(key);
    },
  };
}
