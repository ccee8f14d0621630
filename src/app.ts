// Builds the Koa application: shared middleware, our routes, then oidc-provider for the rest.
import Koa from 'koa';
import type { Runtime } from './runtime.ts';
import { requestContext } from './http/request-context.ts';
import { errorHandler, unrouted } from './http/errors.ts';
import { securityHeaders } from './http/security-headers.ts';
import { captchaCspSources } from './security/captcha/index.ts';
import { clientAddress } from './http/client-ip.ts';
import { canonicalHost } from './http/canonical-host.ts';
import { clientAddressResolver } from './security/client-ip.ts';
import { requestDeadline } from './http/deadline.ts';
import { sameOriginForCookieRequests } from './http/origin-check.ts';
import { markSuspiciousAddress } from './security/spraying.ts';
import { clientCertificateSource } from './clients/client-certificate.ts';
import { rateLimiting } from './http/rate-limit.ts';
import { adminApiAddressCheck } from './http/ip-rules-guard.ts';
import { opsRoutes } from './ops/routes.ts';
import { requestMetrics } from './ops/request-metrics.ts';
import { interactionRoutes, type InteractionDependencies } from './interactions/routes.ts';
import { federationCallbackRoutes, federationCallbackUrl } from './interactions/federation.ts';
import { adminApi, adminRoutes } from './api/index.ts';
import { principalResolver } from './api/principal.ts';
import { accountRouters } from './account/index.ts';
import { credentialRoutes } from './credentials/routes.ts';
import { outboxPageEnabled, outboxRoutes } from './mail/routes.ts';
import { revocationStreamRoutes } from './events/routes.ts';
import { apiKeyVerificationRoutes } from './apikeys/routes.ts';

export function buildApp(runtime: Runtime): Koa {
  const { config, log, views, providerHost } = runtime;
  const app = new Koa({ proxy: config.trustedProxies.length > 0, keys: runtime.secrets.cookieKeys });
  app.silent = true;
  app.on('error', (error) => log.error({ err: error }, 'unhandled koa error'));

  // First: every later use of ctx.ip sees the client address (X-Forwarded-For from trusted proxies only).
  app.use(clientAddress(clientAddressResolver(config.trustedProxies)));
  app.use(canonicalHost(config.issuer, config.mtls.endpointAliasesUrl ? [config.mtls.endpointAliasesUrl] : []));
  app.use(requestContext(log));
  app.use(requestMetrics());
  // Pages may load the configured CAPTCHA's script and frame (the proof-of-work script is same-origin).
  app.use(securityHeaders({ extraSources: captchaCspSources(config.signInProtection) }));
  app.use(errorHandler(views, log));
  app.use(unrouted(views));
  app.use(requestDeadline({ seconds: config.requestTimeoutSeconds, log, oauthPaths: ['/token', '/token/introspection', '/token/revocation', '/request'] }));
  app.use(sameOriginForCookieRequests({ issuer: config.issuer, prefix: '/api/' }));
  app.use(rateLimiting({
    limits: runtime.rateLimits,
    views,
    clientTenant: async (clientId) => (await runtime.clients.get(clientId))?.tenantId ?? undefined,
    // Rate-limited at sign-in: a CAPTCHA for as long as a sprayer would be asked for one.
    onSignInLimited: (ip) => markSuspiciousAddress(runtime.hot, ip, config.signInProtection.spraying.blockSeconds),
  }));

  const ops = opsRoutes(runtime.db, runtime.hot, { registry: runtime.metrics, token: config.metricsToken });
  app.use(ops.routes());
  // Resource servers learn of revocations at once (SSE, authenticated by a client credential).
  app.use(revocationStreamRoutes({ revocations: runtime.revocations, clients: runtime.clients, rbac: runtime.rbac, tenants: runtime.tenants, adminApi: runtime.adminApi, log }).routes());
  // Resource servers verify API keys presented to them (authenticated by a client credential).
  app.use(apiKeyVerificationRoutes({ verifier: runtime.apiKeyVerifier, clients: runtime.clients, tenants: runtime.tenants, ipRules: runtime.ipRules }).routes());
  const interactionDeps: InteractionDependencies = {
    providerHost,
    ipRules: runtime.ipRules,
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
    signInProtection: runtime.signInProtection,
    db: runtime.db,
    audit: runtime.audit,
    outbox: runtime.outbox,
    oneTimeCodes: runtime.oneTimeCodes,
    federation: { signIn: runtime.federatedSignIn, callbackUrl: federationCallbackUrl(config.issuer) },
  };
  const interactions = interactionRoutes(interactionDeps);
  app.use(interactions.routes());
  // The upstream connectors' callback (one address per deployment) hands back to the sign-in.
  app.use(federationCallbackRoutes(interactionDeps).routes());
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
  const services = { tenants: runtime.tenants, rbac: runtime.rbac, clients: runtime.clients, apis: runtime.apis, users: runtime.users, mfa: runtime.mfa, credentials: runtime.credentials, sessions: runtime.sessions, webhooks: runtime.webhooks, audit: runtime.audit, privacy: runtime.privacy, compliance: runtime.compliance, ipRules: runtime.ipRules, apiKeys: runtime.apiKeys, connectors: runtime.connectors, lockouts: runtime.signInProtection.bruteForce, adminApi: runtime.adminApi };
  const admin = adminApi({
    routes: adminRoutes(services),
    issuer: config.issuer,
    adminApi: runtime.adminApi,
    checkAddress: adminApiAddressCheck(runtime.ipRules),
    resolvePrincipal: principalResolver({
      issuer: config.issuer,
      providerHost,
      ...services,
      apiKeys: runtime.apiKeyVerifier,
      clientCertificate: clientCertificateSource({ trustedProxies: config.trustedProxies, certificateHeader: config.mtls.certificateHeader }),
    }),
  });
  app.use(admin.routes());
  app.use(providerHost.middleware);
  return app;
}
