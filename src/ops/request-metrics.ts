// Times every request into the latency histogram. The route label is the matched route's template
// (`/api/v1/tenants/:tenantId/users/:userId`) or oidc-provider's route name (`token`,
// `authorization`), never the raw path: ids in paths would make the label set unbounded.
import type { Context, Middleware } from 'koa';
import { timeRequest } from './metrics.ts';

const UNMATCHED_ROUTE = 'unmatched';
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export function requestMetrics(): Middleware {
  return async (ctx, next) => {
    const done = timeRequest();
    try {
      await next();
    } finally {
      done({ method: METHODS.has(ctx.method) ? ctx.method : 'other', route: routeLabel(ctx), status: String(ctx.status) });
    }
  };
}

interface RouterLayer {
  path: unknown;
  methods: string[];
}

function routeLabel(ctx: Context): string {
  // Set by oidc-provider on its own routes.
  const oidcRoute = (ctx as { oidc?: { route?: unknown } }).oidc?.route;
  if (typeof oidcRoute === 'string') return oidcRoute;
  // @koa/router lists the layers whose path matched; the route is the one for this method (not a
  // router.use() layer, whose path is a prefix pattern).
  const layers = (ctx as { matched?: RouterLayer[] }).matched ?? [];
  const template = layers.filter((layer) => layer.methods.includes(ctx.method)).at(-1)?.path;
  return typeof template === 'string' ? template : UNMATCHED_ROUTE;
}
