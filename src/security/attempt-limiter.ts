// Limits attempts at something guessable (a current password, a one-time code) per key, in a
// fixed window. take() counts the attempt before the caller checks it, so parallel requests
// cannot all slip past the limit; reset() after a success forgets the failures.
import type { HotStore } from '../store/hot-store.ts';
import { countAttemptRefused } from '../ops/metrics.ts';

export interface AttemptLimiterOptions {
  // Part of the hot-store key; one name per kind of attempt.
  name: string;
  limit: number;
  windowSeconds: number;
}

export interface AttemptLimiter {
  readonly windowSeconds: number;
  // Counts one attempt; false when this attempt is over the limit (do not check it then).
  take(key: string): Promise<boolean>;
  reset(key: string): Promise<void>;
}

export function createAttemptLimiter(hot: HotStore, options: AttemptLimiterOptions): AttemptLimiter {
  const { name, limit, windowSeconds } = options;
  const counterKey = (key: string) => `attempts:${name}:${key}`;
  return {
    windowSeconds,
    async take(key: string): Promise<boolean> {
      const attempts = await hot.increment(counterKey(key), windowSeconds);
      if (attempts > limit) countAttemptRefused(name, attempts === limit + 1);
      return attempts <= limit;
    },
    async reset(key: string): Promise<void> {
      await hot.delete(counterKey(key));
    },
  };
}
