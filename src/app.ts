// Builds the Koa application: shared middleware, our routes, then oidc-provider for the rest.
import Koa from 'koa';
import type { Runtime } from './runtime.ts';
import { requestContext } from './http/request-context.ts';
import { errorHandler, problem } from './http/errors.ts';
import { securityHeaders } from './http/security-headers.ts';
import { opsRoutes } from './ops/routes.ts';
import { interactionRoutes } from './interactions/routes.ts';
import { adminApi, adminRoutes } from './api/index.ts';
import { principalResolver } from './api/principal.ts';

export function buildApp(runtime: Runtime): Koa {
  const { config, log, views, providerHost } = runtime;
  const app = new Koa({ proxy: config.trustedProxies.length > 0, keys: runtime.secrets.cookieKeys });
  app.silent = true;
  app.on('error', (error) => log.error({ err: error }, 'unhandled koa error'));

  app.use(requestContext(log));
  app.use(securityHeaders());
  app.use(errorHandler(views, log));

  const ops = opsRoutes(runtime.db, runtime.hot);
  app.use(ops.routes());
  const interactions = interactionRoutes({
    providerHost,
    users: runtime.users,
    clients: runtime.clients,
    loginTenant: runtime.loginTenant,
    views,
    csrfKey: runtime.secrets.cookieKeys[0],
  });
  app.use(interactions.routes());
  app.use(interactions.allowedMethods());
  const services = { tenants: runtime.tenants, rbac: runtime.rbac, clients: runtime.clients, apis: runtime.apis, users: runtime.users, adminApi: runtime.adminApi };
  const admin = adminApi({
    routes: adminRoutes(services),
    issuer: config.issuer,
    adminApi: runtime.adminApi,
    resolvePrincipal: principalResolver({ issuer: config.issuer, providerHost, ...services }),
  });
  app.use(admin.routes());
  app.use(providerHost.middleware);
  app.use(async (ctx) => {
    if (ctx.status === 404 && !ctx.body) problem(ctx, 404, 'not-found', `no route for ${ctx.method} ${ctx.path}`);
  });
  return app;
}
