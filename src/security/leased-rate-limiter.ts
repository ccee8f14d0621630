// A rate limit for credentials used far more often than a round trip per request is worth (API
// keys; the token, introspection and revocation endpoints): each instance takes points from the
// shared count in leases and spends them in memory.
// The first lease of a window is one point and each next one twice the last, up to `maxShare` of
// the budget, so a key used now and then is still counted request by request while a busy key
// reaches the shared count a few times per window. Across instances never more than the budget is
// admitted; an instance may end a window holding unspent points of its last lease (at most
// maxShare of the budget), which the other instances cannot use meanwhile. A refusal is kept
// until the window ends: the budget is spent for everyone.
import { LRUCache } from 'lru-cache';
import type { RateLimitDecision, RateLimiter } from './rate-limiter.ts';

interface Lease {
  left: number;
  endsAt: number;
  // Points counted in the shared window when this lease was taken.
  consumed: number;
  nextSize: number;
  refused: boolean;
  // The store's refusal that ended the window's budget, not yet reported.
  firstRefusal: boolean;
}

export interface LeaseOptions {
  maxShare?: number;
  maxKeys?: number;
  now?: () => number;
}

export function createLeasedRateLimiter(shared: RateLimiter, options: LeaseOptions = {}): RateLimiter {
  const now = options.now ?? Date.now;
  const maxLease = Math.max(1, Math.floor(shared.points * (options.maxShare ?? 0.05)));
  const leases = new LRUCache<string, Lease>({ max: options.maxKeys ?? 100_000 });
  const renewing = new Map<string, Promise<void>>();

  async function renew(key: string, previous: Lease | undefined): Promise<void> {
    const size = previous && previous.endsAt > now() ? Math.min(previous.nextSize, maxLease) : 1;
    const taken = await shared.consume(key, size);
    // The store counts a refused lease in full; the part of it still inside the budget is ours.
    const granted = Math.max(0, Math.min(size, shared.points - (taken.consumed - size)));
    leases.set(key, { left: granted, endsAt: now() + taken.resetInMs, consumed: taken.consumed, nextSize: size * 2, refused: granted === 0, firstRefusal: granted === 0 && taken.firstRefusal });
  }

  function decision(lease: Lease, allowed: boolean, at: number): RateLimitDecision {
    const firstRefusal = !allowed && lease.firstRefusal;
    if (firstRefusal) lease.firstRefusal = false;
    const resetInMs = Math.max(0, lease.endsAt - at);
    return {
      allowed,
      remaining: allowed ? Math.max(0, shared.points - lease.consumed) + lease.left : 0,
      retryAfterSeconds: Math.max(allowed ? 0 : 1, Math.ceil(resetInMs / 1000)),
      firstRefusal,
      consumed: lease.consumed,
      resetInMs,
    };
  }

  return {
    name: shared.name,
    points: shared.points,
    durationSeconds: shared.durationSeconds,

    async consume(key, cost = 1) {
      // A look without spending (cost 0) is answered by a lease that still holds points.
      if (cost === 0) {
        const lease = leases.get(key);
        const at = now();
        if (lease && lease.endsAt > at && lease.left > 0) return decision(lease, true, at);
      }
      // Leases hold single points; anything else is counted in the shared window directly.
      if (cost !== 1) return shared.consume(key, cost);
      for (;;) {
        const lease = leases.get(key);
        const at = now();
        if (lease && lease.endsAt > at) {
          if (lease.left > 0) {
            lease.left--;
            return decision(lease, true, at);
          }
          if (lease.refused) return decision(lease, false, at);
        }
        // One lease at a time per key; callers arriving meanwhile wait for it and try again.
        let pending = renewing.get(key);
        if (!pending) {
          pending = renew(key, lease).finally(() => renewing.delete(key));
          renewing.set(key, pending);
        }
        await pending;
      }
    },

    async reset(key) {
      leases.delete(key);
      await shared.reset(key);
    },
  };
}
