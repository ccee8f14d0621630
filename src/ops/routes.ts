import Router from '@koa/router';
import type { Database } from '../store/database.ts';
import type { HotStore } from '../store/hot-store.ts';
import { pendingMigrations } from '../store/database.ts';
import { problem } from '../http/errors.ts';

export function opsRoutes(db: Database, hot: HotStore): Router {
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    const checks = await Promise.all([
      withTimeout(db.raw('select 1').then(() => true), 2000),
      withTimeout(hot.ping(), 2000),
      withTimeout(pendingMigrations(db).then((pending) => pending === 0), 2000),
    ]);
    const [database, hotStore, migrations] = checks;
    if (checks.every(Boolean)) ctx.body = { status: 'ready', checks: { database, hotStore, migrations } };
    else problem(ctx, 503, 'not-ready', 'a dependency is unavailable', { checks: { database, hotStore, migrations } });
  });
  return router;
}

async function withTimeout(check: Promise<boolean>, ms: number): Promise<boolean> {
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
