// Builds the Koa application: shared middleware, our routes, then oidc-provider for the rest.
import Koa from 'koa';
import type { Runtime } from './runtime.ts';
import { requestContext } from './http/request-context.ts';
import { errorHandler, problem } from './http/errors.ts';
import { securityHeaders } from './http/security-headers.ts';
import { opsRoutes } from './ops/routes.ts';
import { requestMetrics } from './ops/request-metrics.ts';
import { interactionRoutes } from './interactions/routes.ts';
import { adminApi, adminRoutes } from './api/index.ts';
import { principalResolver } from './api/principal.ts';
import { accountRouters } from './account/index.ts';
import { credentialRoutes } from './credentials/routes.ts';
import { outboxPageEnabled, outboxRoutes } from './mail/routes.ts';
import { revocationStreamRoutes } from './events/routes.ts';

export function buildApp(runtime: Runtime): Koa {
  const { config, log, views, providerHost } = runtime;
  const app = new Koa({ proxy: config.trustedProxies.length > 0, keys: runtime.secrets.cookieKeys });
  app.silent = true;
  app.on('error', (error) => log.error({ err: error }, 'unhandled koa error'));

  app.use(requestContext(log));
  app.use(requestMetrics());
  app.use(securityHeaders());
  app.use(errorHandler(views, log));

  const ops = opsRoutes(runtime.db, runtime.hot, { registry: runtime.metrics, token: config.metricsToken });
  app.use(ops.routes());
  // Resource servers learn of revocations at once (SSE, authenticated by a client credential).
  app.use(revocationStreamRoutes({ revocations: runtime.revocations, clients: runtime.clients, rbac: runtime.rbac, tenants: runtime.tenants, adminApi: runtime.adminApi, log }).routes());
  const interactions = interactionRoutes({
    providerHost,
    users: runtime.users,
    clients: runtime.clients,
    tenants: runtime.tenants,
    loginTenant: runtime.loginTenant,
    mfa: runtime.mfa,
    credentials: runtime.credentials,
    views,
    hot: runtime.hot,
    csrfKey: runtime.secrets.cookieKeys[0],
    interactionTtlSeconds: config.ttl.interaction,
    sessions: runtime.sessions,
    db: runtime.db,
    audit: runtime.audit,
    outbox: runtime.outbox,
  });
  app.use(interactions.routes());
  app.use(interactions.allowedMethods());
  const credentialPages = credentialRoutes({ credentials: runtime.credentials, tenants: runtime.tenants, views, csrfKey: runtime.secrets.cookieKeys[0] });
  app.use(credentialPages.routes());
  app.use(credentialPages.allowedMethods());
  // Only with the local outbox on the embedded default (or MAIL_OUTBOX_PAGE=true): elsewhere /outbox does not exist.
  if (runtime.mailer.outbox && outboxPageEnabled(config)) app.use(outboxRoutes({ outbox: runtime.mailer.outbox, views, issuer: config.issuer }).routes());
  // Account self-service: its /api/v1/me routes come before the admin API's.
  const account = accountRouters(runtime);
  app.use(account.pages.routes());
  app.use(account.pages.allowedMethods());
  app.use(account.api.routes());
  app.use(account.api.allowedMethods());
  const services = { tenants: runtime.tenants, rbac: runtime.rbac, clients: runtime.clients, apis: runtime.apis, users: runtime.users, mfa: runtime.mfa, credentials: runtime.credentials, sessions: runtime.sessions, webhooks: runtime.webhooks, audit: runtime.audit, adminApi: runtime.adminApi };
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
