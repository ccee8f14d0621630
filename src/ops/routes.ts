import Router from '@koa/router';
import type { Registry } from 'prom-client';
import type { Database } from '../store/database.ts';
import type { HotStore } from '../store/hot-store.ts';
import { problem } from '../http/errors.ts';
import { digestsEqual, sha256Hex } from '../security/crypto.ts';
import { checkStores, readinessOf } from './store-health.ts';

export interface MetricsExposure {
  registry: Registry;
  // Without a token /metrics does not exist: it is never world-readable on the public listener.
  token?: string;
}

export function opsRoutes(db: Database, hot: HotStore, metrics?: MetricsExposure): Router {
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    const checks = await checkStores(db, hot);
    const status = readinessOf(checks, hot);
    if (status !== 'not-ready') ctx.body = { status, checks };
    else problem(ctx, 503, 'not-ready', 'a dependency is unavailable', { checks });
  });
  if (metrics?.token) {
    const { registry } = metrics;
    const tokenDigest = sha256Hex(metrics.token);
    router.get('/metrics', async (ctx) => {
      ctx.set('Cache-Control', 'no-store');
      const presented = /^Bearer ([\x21-\x7e]+)$/.exec(ctx.get('authorization'))?.[1];
      if (!presented || !digestsEqual(sha256Hex(presented), tokenDigest)) {
        ctx.set('WWW-Authenticate', 'Bearer realm="metrics"');
        return problem(ctx, 401, 'unauthorized', 'GET /metrics needs the metrics bearer token (METRICS_TOKEN)');
      }
      ctx.type = registry.contentType;
      ctx.body = await registry.metrics();
    });
  }
  return router;
}
