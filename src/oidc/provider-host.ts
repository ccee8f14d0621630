// Holds the running oidc-provider instance. Keys are fixed when a Provider is constructed, so a
// key change builds a new Provider and swaps it in; requests already in flight finish on the old one.
import Provider, { type Adapter, type AdapterPayload } from 'oidc-provider';
import compose from 'koa-compose';
import { createLocalJWKSet } from 'jose';
import type { Middleware } from 'koa';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { HotStore } from '../store/hot-store.ts';
import type { Database } from '../store/database.ts';
import type { ClientService } from '../clients/service.ts';
import type { UserService } from '../users/service.ts';
import type { ApiResourceService } from './api-resources.ts';
import type { RbacService } from '../rbac/service.ts';
import type { LoginTenantResolver } from '../tenants/login-tenant.ts';
import type { Branding } from '../tenants/branding.ts';
import type { KeyService } from '../keys/service.ts';
import type { Views } from '../http/views.ts';
import { KEYS_CHANGED_CHANNEL } from '../keys/service.ts';
import { digestsEqual, sha256Hex } from '../security/crypto.ts';
import { publicPartOf } from '../security/jwk.ts';
import { buildConfiguration } from './configuration.ts';
import type { SessionPolicyHooks } from '../sessions/provider-hooks.ts';
import { createAdapterFactory } from './adapter.ts';
import { accountGrants, type AccountGrant } from './durable-payloads.ts';
import { rfc6749ClientErrors } from './rfc6749-errors.ts';
import { createRevocation, type Revocation, type RevocationReason, type RevokeUserOptions } from './revocation.ts';
import { installRevocationHooks } from './revocation-hooks.ts';
import type { RevocationBus } from '../events/revocation-bus.ts';
import { registerTokenExchange } from './token-exchange.ts';
import { userOfRequest } from './request-user.ts';
import type { AuditService } from '../audit/service.ts';
import { countTokenIssued } from '../ops/metrics.ts';
import { installLogoutAudit } from './logout-audit.ts';
import { installAtomicReplayDetection } from './replay-detection.ts';
import { oidcStoreUnavailable } from '../http/errors.ts';
import type { ApiKeyVerifier } from '../apikeys/verifier.ts';
import type { IpRuleService } from '../security/ip-rules.ts';

export interface ProviderHostDependencies {
  config: Config;
  cookieKeys: string[];
  db: Database;
  hot: HotStore;
  log: Logger;
  clients: ClientService;
  users: UserService;
  apis: ApiResourceService;
  rbac: RbacService;
  loginTenant: LoginTenantResolver;
  // A tenant's branding, for the logout pages; undefined for a tenant that is gone.
  brandingOf(tenantId: string): Promise<Branding | undefined>;
  keys: KeyService;
  views: Views;
  // Device sessions (src/sessions): told when a sign-in completes and when a session is used again.
  sessionActivity?: SessionActivity;
  // Revocation events for resource servers (src/events/revocation-bus.ts).
  revocationBus?: RevocationBus;
  // The tenant's session policy as oidc-provider asks for it (src/sessions/provider-hooks.ts).
  sessionPolicy?: SessionPolicyHooks;
  // The tamper-evident audit trail (impersonations, RP-initiated logout).
  audit?: Pick<AuditService, 'record'>;
  // API keys exchanged for access tokens (RFC 8693), under the tenant's IP rules for them.
  apiKeys?: Pick<ApiKeyVerifier, 'verify'>;
  ipRules?: Pick<IpRuleService, 'check'>;
}

export interface SessionActivity {
  record(signIn: { tenantId: string; userId: string; sid: string; clientId?: string; userAgent?: string; ip?: string; amr?: string[] }): Promise<void>;
  touch(tenantId: string, sid: string): Promise<void>;
  // The provider session `sid` was ended by a revocation (sign-out elsewhere, suspension...).
  ended(tenantId: string, sid: string): Promise<void>;
}

interface Built {
  provider: Provider;
  middleware: Middleware;
  version: number;
  verificationKeys: ReturnType<typeof createLocalJWKSet>;
}


export class ProviderHost {
  #deps: ProviderHostDependencies;
  #current?: Built;
  #adapterFor: (model: string) => Adapter;
  #rebuilding?: Promise<void>;
  #revocation: Revocation;

  constructor(deps: ProviderHostDependencies) {
    this.#deps = deps;
    const storage = createAdapterFactory({ db: deps.db, hot: deps.hot, log: deps.log });
    const clientAdapter = new ClientAdapter(deps.clients);
    const adapters = new Map<string, Adapter>();
    this.#adapterFor = (model) => {
      if (model === 'Client') return clientAdapter;
      let adapter = adapters.get(model);
      if (!adapter) adapters.set(model, (adapter = storage(model)));
      return adapter;
    };
    this.#revocation = createRevocation({
      db: deps.db,
      hot: deps.hot,
      log: deps.log,
      adapterFor: this.#adapterFor,
      provider: () => this.#current?.provider,
      tenantOf: async (userId) => (await deps.users.findById(userId))?.tenantId,
      bus: deps.revocationBus,
      onSessionEnded: async (tenantId, sid) => deps.sessionActivity?.ended(tenantId, sid),
    });
  }

  // The one revocation path (src/oidc/revocation.ts): sessions, grants, denied JWTs, back-channel
  // logout and events.
  get revocation(): Revocation {
    return this.#revocation;
  }

  get provider(): Provider {
    if (!this.#current) throw new Error('provider not built yet');
    return this.#current.provider;
  }

  get version(): number {
    return this.#current?.version ?? -1;
  }

  // The published keys, for verifying this provider's own tokens (the admin API's bearer tokens).
  get verificationKeys(): ReturnType<typeof createLocalJWKSet> {
    if (!this.#current) throw new Error('provider not built yet');
    return this.#current.verificationKeys;
  }

  adapterFor(model: string): Adapter {
    return this.#adapterFor(model);
  }

  // Ends all an account holds, at once (a suspended or deleted user): every grant with all it
  // issued, in both stores (refresh tokens, and the access tokens and codes only the hot store
  // holds), and every session, through the adapters so no cached copy survives. findAccount
  // refusing the account covers whatever a request in flight creates meanwhile.
  async revokeAccount(accountId: string, reason: RevocationReason = 'access_revoked', options: RevokeUserOptions = {}): Promise<void> {
    await this.#revocation.revokeUser(accountId, reason, options);
  }

  // What the account consented to, per client (live Grants), for the person's data export.
  async grantsOf(accountId: string): Promise<AccountGrant[]> {
    return accountGrants(this.#deps.db, accountId);
  }

  // The account a provider session (by its uid, stable for the session's life) belongs to, while
  // the session exists and has not expired.
  async sessionAccount(sessionUid: string): Promise<string | undefined> {
    const payload = await this.#adapterFor('Session').findByUid(sessionUid);
    return payload && (!payload.exp || payload.exp > Math.floor(Date.now() / 1000)) ? (payload.accountId as string | undefined) : undefined;
  }

  // Ends one provider session: every grant made in it with all it issued (refresh tokens, access
  // tokens, codes), then the session itself, through the adapters so no cached copy survives.
  // Clients that registered a back-channel logout URI are told.
  async endSession(sessionUid: string, reason: RevocationReason = 'session_ended'): Promise<void> {
    await this.#revocation.revokeSession(sessionUid, reason);
  }

  // Revokes every grant made in one provider session (its tokens die) and keeps the session: a
  // sign-in starting again in it (its idle or absolute limit passed) must not revive old tokens.
  async revokeSessionGrants(sessionUid: string): Promise<void> {
    const payload = await this.#adapterFor('Session').findByUid(sessionUid);
    if (payload) await this.#revokeSessionGrants(payload);
  }

  async #revokeSessionGrants(payload: AdapterPayload): Promise<void> {
    const authorizations = Object.values((payload.authorizations ?? {}) as Record<string, { grantId?: unknown }>);
    const grantIds = authorizations.map((authorization) => authorization.grantId).filter((grantId): grantId is string => typeof grantId === 'string');
    const context = { reason: 'session_ended' as const, userId: payload.accountId as string | undefined };
    await Promise.all(grantIds.map((grantId) => this.#revocation.revokeGrant(grantId, context)));
  }

  readonly middleware: Middleware = (ctx, next) => {
    if (!this.#current) throw new Error('provider not built yet');
    return this.#current.middleware(ctx, next);
  };

  async start(): Promise<void> {
    await this.#build();
    await this.#deps.hot.subscribe(KEYS_CHANGED_CHANNEL, () => void this.refresh());
  }

  // Rebuilds when the stored key version moved; safe to call often (it is one small query).
  async refresh(): Promise<void> {
    this.#rebuilding ??= (async () => {
      try {
        const version = await this.#deps.keys.version();
        if (version !== this.version) await this.#build();
      } catch (error) {
        this.#deps.log.error({ err: error }, 'could not refresh signing keys');
      } finally {
        this.#rebuilding = undefined;
      }
    })();
    return this.#rebuilding;
  }

  // A throwaway Provider with the current keys, for validating client metadata outside a request.
  async validateClientMetadata(metadata: Record<string, unknown>): Promise<void> {
    const provider = this.#current?.provider ?? (await this.#construct()).provider;
    await provider.Client.validate(metadata as never);
  }

  async #build(): Promise<void> {
    const built = await this.#construct();
    this.#current = built;
    this.#deps.log.info({ keyVersion: built.version }, 'oidc provider ready');
  }

  async #construct(): Promise<Built> {
    const { config, log } = this.#deps;
    const { version, jwks } = await this.#deps.keys.providerJwks(config.signingAlg);
    const configuration = buildConfiguration({
      config,
      cookieKeys: this.#deps.cookieKeys,
      jwks: jwks as never,
      adapter: this.#adapterFor,
      clients: this.#deps.clients,
      users: this.#deps.users,
      apis: this.#deps.apis,
      rbac: this.#deps.rbac,
      loginTenant: this.#deps.loginTenant,
      brandingOf: this.#deps.brandingOf,
      views: this.#deps.views,
      sessionPolicy: this.#deps.sessionPolicy,
      onJwtAccessToken: (token) => this.#revocation.recordAccessToken(token),
    });
    const resourceServerInfo = configuration.features!.resourceIndicators!.getResourceServerInfo!;
    const provider = new Provider(config.issuer, configuration);
    provider.proxy = config.trustedProxies.length > 0;
    installAtomicReplayDetection(provider, this.#deps.hot);
    // Stored client secrets are SHA-256 digests: compare the digest of what the client sent.
    provider.Client.prototype.compareClientSecret = function compareClientSecret(this: { clientSecret: string }, actual: string) {
      return digestsEqual(this.clientSecret, sha256Hex(actual));
    } as never;
    // A store outage is a 503 temporarily_unavailable (docs/operations.md, "Outages"), not a bug.
    provider.on('server_error', (ctx, error) => {
      if (!oidcStoreUnavailable(ctx, this.#deps.views, log, error)) log.error({ err: error }, 'oidc server error');
    });
    provider.on('grant.success', (ctx) => countTokenIssued(String(ctx.oidc.params?.grant_type)));
    provider.on('backchannel.error', (_ctx, error, client) =>
      log.warn({ err: { message: error.message }, clientId: client.clientId }, 'back-channel logout delivery failed'),
    );
    provider.use(rfc6749ClientErrors(config.issuer));
    this.#trackSessions(provider);
    installRevocationHooks(provider, {
      revocation: this.#revocation,
      log,
      issuer: config.issuer,
      refreshReuseGraceSeconds: config.refreshTokenReuseGraceSeconds,
      verificationKeys: () => this.verificationKeys,
    });
    if (this.#deps.audit) {
      const activity = this.#deps.sessionActivity;
      installLogoutAudit(provider, { audit: this.#deps.audit, users: this.#deps.users, sessionEnded: activity && ((tenantId, sid) => activity.ended(tenantId, sid)) });
    }
    registerTokenExchange(provider, {
      issuer: config.issuer,
      adminApi: `${config.issuer}/api`,
      users: this.#deps.users,
      apis: this.#deps.apis,
      clients: this.#deps.clients,
      rbac: this.#deps.rbac,
      log,
      verificationKeys: () => this.verificationKeys,
      isRevokedJti: (jti) => this.#revocation.isDenied(jti),
      audit: this.#deps.audit,
      apiKeys: this.#deps.apiKeys,
      ipRules: this.#deps.ipRules,
      resourceServerInfo: (ctx, indicator, client) => Promise.resolve(resourceServerInfo(ctx, indicator, client as never)),
    });
    const publicKeys = jwks.keys.map(publicPartOf);
    return { provider, middleware: compose(provider.middleware), version, verificationKeys: createLocalJWKSet({ keys: publicKeys as never }) };
  }

  // A completed authorization records the session it ran in (device, address, client); a code
  // redeemed or a token refreshed under a session touches it. The write finishes before the
  // response leaves, so the next page the browser opens sees it; a failure is logged, never fatal.
  #trackSessions(provider: Provider): void {
    const activity = this.#deps.sessionActivity;
    if (!activity) return;
    const { users, log } = this.#deps;
    const pending = new WeakMap<object, Promise<void>>();
    const track = (ctx: object, work: () => Promise<void>) => {
      pending.set(ctx, work().catch((error) => log.warn({ err: error }, 'could not record session activity')));
    };
    provider.on('authorization.success', (ctx) => {
      const session = ctx.oidc.session;
      const accountId = session?.accountId;
      if (!session || !accountId) return;
      track(ctx, async () => {
        const user = await userOfRequest(ctx, users, accountId);
        if (!user) return;
        await activity.record({
          tenantId: user.tenantId,
          userId: user.id,
          sid: session.uid,
          clientId: ctx.oidc.client?.clientId,
          userAgent: ctx.get('user-agent'),
          ip: ctx.ip,
          amr: session.amr,
        });
      });
    });
    provider.on('grant.success', (ctx) => {
      const entities = ctx.oidc.entities as Record<string, { sessionUid?: string; accountId?: string } | undefined>;
      const token = entities.RefreshToken ?? entities.AuthorizationCode;
      const { sessionUid, accountId } = token ?? {};
      if (!sessionUid || !accountId) return;
      track(ctx, async () => {
        const user = await userOfRequest(ctx, users, accountId);
        if (user) await activity.touch(user.tenantId, sessionUid);
      });
    });
    provider.use(async (ctx, next) => {
      await next();
      await pending.get(ctx);
    });
  }
}

// Clients come from the clients service (cached per instance, invalidated on change everywhere).
class ClientAdapter implements Adapter {
  #clients: ClientService;
  constructor(clients: ClientService) {
    this.#clients = clients;
  }
  async find(id: string): Promise<AdapterPayload | undefined> {
    return (await this.#clients.providerMetadata(id)) as AdapterPayload | undefined;
  }
  async upsert(): Promise<void> {
    throw new Error('clients are managed through the clients service');
  }
  async findByUid(): Promise<undefined> {
    return undefined;
  }
  async findByUserCode(): Promise<undefined> {
    return undefined;
  }
  async consume(): Promise<void> {}
  async destroy(): Promise<void> {
    throw new Error('clients are managed through the clients service');
  }
  async revokeByGrantId(): Promise<void> {}
}
