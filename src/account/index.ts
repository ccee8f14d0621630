// Wires account self-service for the app: the pages under /account and the JSON API under
// /api/v1/me, both over one account service.
import type Router from '@koa/router';
import type { Runtime } from '../runtime.ts';
import { createAccountService } from './service.ts';
import { accountRoutes } from './routes.ts';
import { accountApiRoutes } from './api.ts';
import { accountBearerResolver } from './bearer.ts';
import { createAccountAudit } from './account-audit.ts';

export function accountRouters(runtime: Runtime): { pages: Router; api: Router } {
  const { config, providerHost, users, tenants, clients } = runtime;
  const account = createAccountService({
    users,
    tenants,
    sessions: runtime.sessions,
    identities: runtime.identities,
    mfa: runtime.mfa,
    credentials: runtime.credentials,
    records: createAccountAudit({ audit: runtime.audit }),
    hot: runtime.hot,
    issuerLabel: new URL(config.issuer).host,
    revokeUserAccess: (tenantId, userId, keepSessionUid) => providerHost.revokeAccount(userId, 'password_changed', { tenantId, keepSessionUid }),
    oneTimeCodes: runtime.oneTimeCodes,
    connectorNames: async (tenantId) => new Map((await runtime.connectors.list(tenantId)).map((connector) => [connector.id, connector.displayName])),
  });
  return {
    pages: accountRoutes({ issuer: config.issuer, account, providerHost, users, tenants, hot: runtime.hot, views: runtime.views, csrfKey: runtime.secrets.cookieKeys[0], codeTtlSeconds: runtime.oneTimeCodes.codeTtlSeconds }),
    api: accountApiRoutes({
      account,
      exportData: (tenantId, userId, context) => runtime.privacy.exportUser(tenantId, userId, { actor: { type: 'user', id: userId }, context }),
      resolvePrincipal: accountBearerResolver({ issuer: config.issuer, adminApi: runtime.adminApi, providerHost, users, clients }),
    }),
  };
}
