// Wires the services together once, for the server, the CLI and the tests alike.
import type { Logger } from 'pino';
import type { Config } from './config.ts';
import { closeDatabase, createDatabase, migrateToLatest, type Database } from './store/database.ts';
import { createHotStore } from './store/index.ts';
import type { HotStore } from './store/hot-store.ts';
import { resolveInstanceSecrets, type InstanceSecrets } from './security/instance-secrets.ts';
import { createPasswordHashing } from './security/passwords.ts';
import { createUserService, type UserService } from './users/service.ts';
import { createRbacService, type RbacService } from './rbac/service.ts';
import { rbacQueries, usersHoldingRole } from './rbac/queries.ts';
import { createTenantService, type TenantService } from './tenants/service.ts';
import { ADMIN_API_PERMISSIONS } from './tenants/system-roles.ts';
import { loginTenantResolver, type LoginTenantResolver } from './tenants/login-tenant.ts';
import { DEFAULT_TENANT_ID } from './tenants/constants.ts';
import { brandingLookup } from './tenants/branding.ts';
import { createClientService, type ClientService } from './clients/service.ts';
import { createApiResourceService, type ApiResourceService } from './oidc/api-resources.ts';
import { createKeyService, type KeyService } from './keys/service.ts';
import { createMfaService, type MfaService } from './mfa/service.ts';
import { ProviderHost } from './oidc/provider-host.ts';
import { createSessionService, type SessionService } from './sessions/service.ts';
import { createSessionPolicyHooks } from './sessions/provider-hooks.ts';
import { startSessionPurge } from './sessions/purge-job.ts';
import { createIdentityLinkService, type IdentityLinkService } from './account/identities/service.ts';
import { ensureAccountConsoleClient } from './account/console-client.ts';
import { createMailer, type Mailer } from './mail/mailer.ts';
import { announceMailTransport } from './mail/routes.ts';
import { createCredentialService, type CredentialService } from './credentials/service.ts';
import { createViews, type Views } from './http/views.ts';
import { createLogger } from './http/logger.ts';
import { createRevocationBus, type RevocationBus } from './events/revocation-bus.ts';
import { REVOCATIONS_READ } from './events/stream-access.ts';
import { createEventPipeline, type EventPipeline } from './outbox/pipeline.ts';
import type { OutboxService } from './outbox/service.ts';
import type { EventWorker } from './outbox/worker.ts';
import type { WebhookService } from './webhooks/service.ts';
import type { Registry } from 'prom-client';
import { createInstanceMetrics, sampleOutboxLagOnScrape } from './ops/metrics.ts';
import { createAuditService, type AuditService } from './audit/service.ts';
import { createPrivacyService, type PrivacyService } from './privacy/service.ts';
import { createComplianceService, type ComplianceService } from './compliance/service.ts';
import { createIpRuleService, type IpRuleService } from './security/ip-rules.ts';
import { createRateLimits, type RateLimits } from './security/rate-limits.ts';
import { createSignInProtection, type SignInProtection } from './security/brute-force-guard.ts';
import { createApiKeyService, type ApiKeyService } from './apikeys/service.ts';
import { createVerifier, type ApiKeyVerifier } from './apikeys/verifier.ts';
import { createUsageTracker, type UsageTracker } from './apikeys/usage.ts';
import { startUsageFlush } from './apikeys/flush-job.ts';
import { createConnectorService, type ConnectorService } from './federation/connectors/service.ts';
import { createFederatedSignIn, type FederatedSignIn } from './federation/login/service.ts';
import { pendingSignIns } from './federation/login/pending-sign-ins.ts';
import { createUpstreamClient } from './federation/upstream/index.ts';
import { setUpOneTimeCodes } from './otp/setup.ts';
import type { OneTimeCodeService } from './otp/service.ts';

export interface Runtime {
  config: Config;
  log: Logger;
  db: Database;
  hot: HotStore;
  secrets: InstanceSecrets;
  // The key-encryption keys: the current one (seals) first, then KEY_ENCRYPTION_KEY_PREVIOUS (still open).
  keyRing: readonly Buffer[];
  users: UserService;
  tenants: TenantService;
  rbac: RbacService;
  // The resource indicator of the admin API.
  adminApi: string;
  loginTenant: LoginTenantResolver;
  clients: ClientService;
  apis: ApiResourceService;
  keys: KeyService;
  mfa: MfaService;
  sessions: SessionService;
  identities: IdentityLinkService;
  views: Views;
  providerHost: ProviderHost;
  mailer: Mailer;
  credentials: CredentialService;
  // Revocation events for resource servers (GET /events/revocations), across instances.
  revocations: RevocationBus;
  // Events for other services (docs/events.md): changes enqueue into the outbox; the worker
  // (running when serving) publishes them to the Redis stream and the tenants' webhooks.
  outbox: OutboxService;
  webhooks: WebhookService;
  eventWorker: EventWorker;
  // The tamper-evident audit trail: every domain records its events through it.
  audit: AuditService;
  // GDPR export and erasure of a person (src/privacy), compliance reports (src/compliance).
  privacy: PrivacyService;
  compliance: ComplianceService;
  // Per-tenant allow / deny CIDR lists for sign-in, admin API and API keys (docs/security.md).
  ipRules: IpRuleService;
  // Per-address and per-client request limits on the abuse-prone endpoints (docs/security.md).
  rateLimits: RateLimits;
  // What GET /metrics serves (src/ops/metrics.ts).
  metrics: Registry;
  // Password sign-in protection: lockouts, spraying detection, CAPTCHA, per-identifier limits.
  signInProtection: SignInProtection;
  // API keys (docs/api-keys.md): administration, verification on use, usage in the hot store.
  apiKeys: ApiKeyService;
  apiKeyVerifier: ApiKeyVerifier;
  apiKeyUsage: UsageTracker;
  // Upstream identity provider connectors per tenant (docs/federation.md).
  connectors: ConnectorService;
  // Sign-in through those connectors (src/interactions/federation.ts).
  federatedSignIn: FederatedSignIn;
  // One-time codes by e-mail, SMS and WhatsApp (docs/one-time-codes.md).
  oneTimeCodes: OneTimeCodeService;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  log?: Logger;
  // Build the Provider and subscribe to changes (the server); the CLI only needs the services.
  serve?: boolean;
  // The clock of session policy decisions (idle and absolute limits); tests move it.
  now?: () => Date;
}

export async function createRuntime(config: Config, options: RuntimeOptions = {}): Promise<Runtime> {
  const log = options.log ?? createLogger(config.logLevel);
  const secrets = resolveInstanceSecrets(config);
  const keyRing = [secrets.keyEncryptionKey, ...config.previousKeyEncryptionKeys];
  const db = createDatabase(config.database);
  const hot = createHotStore(config, log);
  const revocations = createRevocationBus(hot);
  try {
    await migrateToLatest(db);
    const views = createViews();
    const audit = createAuditService({ db });
    const ipRules = createIpRuleService({ db, hot, audit });
    const rateLimits = createRateLimits({ hot, settings: config.rateLimits, audit, log });
    // The pipeline needs the user service, the services need its outbox: they meet once both exist.
    let pipeline: EventPipeline | undefined;
    const outbox: Pick<OutboxService, 'enqueue'> = { enqueue: (trx, event) => pipeline!.outbox.enqueue(trx, event) };
    const passwords = createPasswordHashing(config.argon2);
    const apis = createApiResourceService(db, hot, audit);
    const rbac = createRbacService(db, hot, apis, { audit, outbox });
    const adminApi = `${config.issuer}/api`;
    const tenants = createTenantService(db, rbac, () => adminApi, hot, audit);
    let providerHost: ProviderHost | undefined;
    let apiKeyVerifier: ApiKeyVerifier | undefined;
    const users = createUserService({
      db,
      passwords,
      tenantAttributeSchema: async (tenantId) => (await tenants.get(tenantId)).userAttributeSchema,
      tenantAllowsSelfRegistration: async (tenantId) => {
        const tenant = await tenants.get(tenantId);
        return tenant.status === 'active' && tenant.selfRegistration;
      },
      rolesFilter: usersHoldingRole,
      // A suspended or deleted user's sessions, grants and tokens end at once (and their API keys stop).
      onAccessRevoked: async (userId, context) => {
        await providerHost!.revokeAccount(userId, context?.reason, { tenantId: context?.tenantId });
        if (context?.tenantId) await apiKeyVerifier?.changed(context.tenantId);
      },
      forgetRoles: (trx, userId) => rbacQueries.forgetSubject(trx, 'user', userId),
      passwordPolicy: async (tenantId) => (await tenants.get(tenantId)).policies.password,
      audit,
      outbox,
    });
    const events = createEventPipeline({ config, db, hot, log, keyEncryptionKey: keyRing, users, audit, now: options.now });
    pipeline = events;
    const mailer = createMailer(config, log);
    const oneTimeCodes = setUpOneTimeCodes({ config, hot, keyEncryptionKey: secrets.keyEncryptionKey, mailer, views, tenants, rateLimits, log });
    const signInProtection = createSignInProtection(config.signInProtection, { db, hot, tenants, users, audit, outbox, log, captchaKey: secrets.cookieKeys[0] });
    const credentials = createCredentialService({
      db,
      users,
      tenants,
      mailer,
      views,
      issuer: config.issuer,
      hot,
      audit,
      // The pipeline is built below; enqueue is only called while serving requests.
      outbox: { enqueue: (trx, event) => events.outbox.enqueue(trx, event) },
      onAccessRevoked: (userId, context) => providerHost!.revokeAccount(userId, context?.reason, { tenantId: context?.tenantId }),
      lockouts: signInProtection.bruteForce,
      identifierLimit: { points: config.signInProtection.identifierLimits.reset, windowSeconds: config.signInProtection.identifierLimits.windowSeconds },
    });
    const maxSignedTokenLifetimeSeconds = Math.max(config.ttl.idToken, config.ttl.accessToken, config.ttl.clientCredentials) + 60;
    const keys = createKeyService({ db, hot, keyEncryptionKey: keyRing, maxSignedTokenLifetimeSeconds, audit });
    const mfa = createMfaService({ db, keyEncryptionKey: keyRing, audit });
    const clients = createClientService({
      db,
      hot,
      validate: (metadata) => providerHost!.validateClientMetadata(metadata),
      audit,
    });
    const loginTenant = loginTenantResolver(clients, tenants);
    const sessions = createSessionService({
      db,
      providerSessionAccount: (sid) => providerHost!.sessionAccount(sid),
      endProviderSession: (sid) => providerHost!.endSession(sid),
      revokeProviderSessionGrants: (sid) => providerHost!.revokeSessionGrants(sid),
      hot,
      policy: async (tenantId) => (await tenants.policies(tenantId)).sessions,
      maxSessionSeconds: config.ttl.session,
      now: options.now,
      audit,
      outbox: events.outbox,
    });
    const sessionPolicy = createSessionPolicyHooks({ sessions, users });
    const identities = createIdentityLinkService({ db });
    // The API key verifier is built further down; the token exchange calls it only while serving.
    const apiKeysForExchange = { verify: (value: string, ip: string | undefined) => apiKeyVerifier!.verify(value, ip) };
    providerHost = new ProviderHost({ config, cookieKeys: secrets.cookieKeys, db, hot, log, clients, users, apis, rbac, loginTenant, brandingOf: brandingLookup(tenants), keys, views, sessionActivity: sessions, sessionPolicy, revocationBus: revocations, audit, apiKeys: apiKeysForExchange, ipRules });
    const privacy = createPrivacyService({ users, rbac, mfa, sessions, identities, grantsOf: (userId) => providerHost!.grantsOf(userId), db, apiKeysOf: (tenantId, userId) => apiKeys.list(tenantId, { limit: 200, ownerType: 'user', ownerId: userId }), eraseApiKeysOf: (trx, tenantId, userId) => apiKeys.eraseOwnedBy(trx, tenantId, 'user', userId), audit, outbox: events.outbox });
    const connectors = createConnectorService({ db, hot, keyEncryptionKey: keyRing, rbac, audit, allowPrivateNetwork: config.outboundAllowPrivateNetwork, now: options.now, unlinkIdentities: identities.unlinkConnector });
    const federatedSignIn = createFederatedSignIn({
      db,
      connectors,
      upstream: createUpstreamClient({ allowPrivateNetwork: config.outboundAllowPrivateNetwork, timeoutMs: config.federation.timeoutMs }),
      users,
      identities,
      audit,
      pending: pendingSignIns(hot, config.ttl.interaction),
    });
    const compliance = createComplianceService({ audit, users, rbac, mfa });
    await keys.ensureKeys();
    // The admin API is an API resource of this provider; the platform tenant's system roles use it.
    await apis.ensure({ identifier: adminApi, name: 'Admin API', scopes: ADMIN_API_PERMISSIONS });
    // Granted through RBAC to the machine clients of resource servers that read the revocation stream.
    await apis.ensure({ identifier: adminApi, name: 'Admin API', scopes: [REVOCATIONS_READ] });
    await tenants.ensurePlatformRoles(DEFAULT_TENANT_ID);
    const now = options.now ?? (() => new Date());
    const apiKeyUsage = createUsageTracker({ db, hot, now, log, lockSeconds: Math.min(300, Math.max(1, Math.floor(config.apiKeys.usageFlushIntervalSeconds / 2))) });
    apiKeyVerifier = createVerifier({
      db,
      hot,
      rbac,
      users,
      clients,
      tenants,
      usage: apiKeyUsage,
      environment: config.apiKeys.environment,
      cacheSeconds: config.apiKeys.cacheSeconds,
      rateLimit: { points: config.apiKeys.rateLimit, windowSeconds: config.apiKeys.rateWindowSeconds },
      now,
      log,
    });
    const apiKeys = createApiKeyService({ db, rbac, users, clients, audit, outbox: events.outbox, verifier: apiKeyVerifier, usage: apiKeyUsage, environment: config.apiKeys.environment, defaultRateLimit: config.apiKeys.rateLimit, now });
    const stopUsageFlush = options.serve ? startUsageFlush(apiKeyUsage, log, config.apiKeys.usageFlushIntervalSeconds) : () => {};
    const stopSessionPurge = options.serve ? startSessionPurge(sessions, log, config.purgeIntervalSeconds) : () => {};
    const stopLagProbe = options.serve ? sampleOutboxLagOnScrape(() => events.outbox.lagSeconds()) : () => {};
    if (options.serve) {
      announceMailTransport(config, log);
      await Promise.all([clients.start(), apis.start(), tenants.start(), ipRules.start(), connectors.start(), rbac.start(), apiKeyVerifier.start()]);
      await ensureAccountConsoleClient(clients, config.issuer);
      await providerHost.start();
      events.worker.start();
    }
    return {
      config,
      log,
      db,
      hot,
      secrets,
      keyRing,
      users,
      tenants,
      rbac,
      adminApi,
      loginTenant,
      clients,
      apis,
      keys,
      mfa,
      sessions,
      identities,
      views,
      providerHost,
      mailer,
      credentials,
      revocations,
      outbox: events.outbox,
      webhooks: events.webhooks,
      eventWorker: events.worker,
      audit,
      privacy,
      compliance,
      ipRules,
      rateLimits,
      metrics: createInstanceMetrics(db, hot),
      signInProtection,
      apiKeys,
      apiKeyVerifier,
      apiKeyUsage,
      connectors,
      federatedSignIn,
      oneTimeCodes,
      async close() {
        stopSessionPurge();
        stopUsageFlush();
        // Counts of the last second reach the hot store before it closes.
        await apiKeyUsage.stop().catch((error) => log.warn({ err: error }, 'publishing API key usage failed'));
        stopLagProbe();
        // Events committed before the shutdown get a moment to reach the stream and their webhooks.
        await events.worker.stop({ flushMs: 5000 });
        revocations.close();
        // Mail still on its way gets a moment to leave.
        await Promise.race([mailer.idle(), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
        mailer.close();
        await signInProtection.bruteForce.idle();
        await hot.close();
        await closeDatabase(db);
      },
    };
  } catch (error) {
    await hot.close().catch(() => {});
    await closeDatabase(db).catch(() => {});
    throw error;
  }
}
