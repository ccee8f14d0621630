// Limits attempts at something guessable (a current password, a one-time code) per key, in a
// fixed window. take() counts the attempt before the caller checks it, so parallel requests
// cannot all slip past the limit; reset() after a success forgets the failures. attempt() also
// tells the first refusal of a window apart, so a block is audited once, not once per try.
import type { HotStore } from '../store/hot-store.ts';
import { countAttemptRefused } from '../ops/metrics.ts';

export interface AttemptLimiterOptions {
  // Part of the hot-store key; one name per kind of attempt.
  name: string;
  limit: number;
  windowSeconds: number;
}

export type AttemptVerdict = 'allowed' | 'blocked' | 'already-blocked';

export interface AttemptLimiter {
  readonly name: string;
  readonly windowSeconds: number;
  // Counts one attempt; false when this attempt is over the limit (do not check it then).
  take(key: string): Promise<boolean>;
  // Like take(): 'blocked' for the first attempt over the limit in the window, 'already-blocked'
  // for the later ones.
  attempt(key: string): Promise<AttemptVerdict>;
  reset(key: string): Promise<void>;
}

export function createAttemptLimiter(hot: HotStore, options: AttemptLimiterOptions): AttemptLimiter {
  const { name, limit, windowSeconds } = options;
  const counterKey = (key: string) => `attempts:${name}:${key}`;
  async function attempt(key: string): Promise<AttemptVerdict> {
    const attempts = await hot.increment(counterKey(key), windowSeconds);
    if (attempts <= limit) return 'allowed';
    countAttemptRefused(name, attempts === limit + 1);
    return attempts === limit + 1 ? 'blocked' : 'already-blocked';
  }
  return {
    name,
    windowSeconds,
    async take(key: string): Promise<boolean> {
      return (await attempt(key)) === 'allowed';
    },
    attempt,
    async reset(key: string): Promise<void> {
      await hot.delete(counterKey(key));
    },
  };
}
