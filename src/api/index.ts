// The admin REST API under /api/v1: every route from the table, and the OpenAPI document.
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { RouteDefinition } from './route-table.ts';
import type { ApiServices } from './services.ts';
import { apiRouter } from './router.ts';
import { openApiDocument } from './openapi.ts';
import { tenantRoutes } from './routes/tenants.ts';
import { roleRoutes } from './routes/roles.ts';
import { clientRoutes } from './routes/clients.ts';
import { apiResourceRoutes } from './routes/apis.ts';
import { userRoutes } from './routes/users.ts';
import { mfaRoutes } from './routes/mfa.ts';
import { sessionRoutes } from './routes/sessions.ts';
import { webhookRoutes } from './routes/webhooks.ts';
import { auditRoutes } from './routes/audit.ts';
import { privacyRoutes } from './routes/privacy.ts';
import { reportRoutes } from './routes/reports.ts';
import { apiKeyRoutes } from './routes/api-keys.ts';
import { ipRuleRoutes } from './routes/ip-rules.ts';
import { connectorRoutes } from './routes/connectors.ts';
import type { Principal } from './principal.ts';

export function adminRoutes(services: ApiServices, extra: RouteDefinition[] = []): RouteDefinition[] {
  return [...tenantRoutes(services), ...userRoutes(services), ...mfaRoutes(services), ...sessionRoutes(services), ...webhookRoutes(services), ...roleRoutes(services), ...clientRoutes(services), ...apiResourceRoutes(services), ...auditRoutes(services), ...privacyRoutes(services), ...reportRoutes(services), ...ipRuleRoutes(services), ...apiKeyRoutes(services), ...connectorRoutes(services), ...extra];
}

export function adminApi(options: { routes: RouteDefinition[]; issuer: string; adminApi: string; resolvePrincipal(ctx: Context): Promise<Principal>; checkAddress?(ctx: Context, principal: Principal): Promise<void> }): Router {
  const document = openApiDocument(options.routes, options.issuer, options.adminApi);
  return apiRouter({
    routes: options.routes,
    resolvePrincipal: options.resolvePrincipal,
    checkAddress: options.checkAddress,
    publicRoutes: (router) => {
      router.get('/openapi.json', (ctx) => {
        ctx.body = document;
      });
    },
  });
}
