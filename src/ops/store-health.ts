// The checks behind /readyz and the store-health gauges: PostgreSQL answers, the hot store answers,
// and every migration is applied. Each check gives up after a timeout and then counts as failed.
import type { Database } from '../store/database.ts';
import type { HotStore } from '../store/hot-store.ts';
import { pendingMigrations } from '../store/database.ts';

export const STORE_CHECK_TIMEOUT_MS = 2000;

export interface StoreHealth {
  database: boolean;
  hotStore: boolean;
  migrations: boolean;
}

export async function checkStores(db: Database, hot: HotStore, timeoutMs = STORE_CHECK_TIMEOUT_MS): Promise<StoreHealth> {
  const [database, hotStore, migrations] = await Promise.all([
    withTimeout(db.raw('select 1').then(() => true), timeoutMs),
    withTimeout(hot.ping(), timeoutMs),
    withTimeout(pendingMigrations(db).then((pending) => pending === 0), timeoutMs),
  ]);
  return { database, hotStore, migrations };
}

export async function withTimeout(check: Promise<boolean>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([check.catch(() => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export type Readiness = 'ready' | 'degraded' | 'not-ready';

// Without PostgreSQL (or with migrations pending) nothing can be served. Without Redis an instance
// that has the outage fallback still serves, degraded (docs/operations.md, "Outages"): taking
// every instance out of the load balancer for a Redis outage would turn it into a full one.
export function readinessOf(health: StoreHealth, hot: HotStore): Readiness {
  if (!health.database || !health.migrations) return 'not-ready';
  if (health.hotStore) return 'ready';
  return hot.resilient ? 'degraded' : 'not-ready';
}
