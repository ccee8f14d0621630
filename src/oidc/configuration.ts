// oidc-provider configuration. Every option the library asks us to decide is decided here, so it
// prints no development warnings.
import type { Configuration, KoaContextWithOIDC, ResourceServer, UnknownObject } from 'oidc-provider';
import { errors, interactionPolicy } from 'oidc-provider';
import { ACR_VALUES, acrLevel, requestedAcrLevel } from './assurance.ts';
import { LOCALES } from '../i18n/catalogues.ts';
import type { Config } from '../config.ts';
import type { ClientService } from '../clients/service.ts';
import type { UserService } from '../users/service.ts';
import type { ApiResourceService } from './api-resources.ts';
import type { EffectiveAccess, RbacService } from '../rbac/service.ts';
import type { LoginTenantResolver } from '../tenants/login-tenant.ts';
import type { Views } from '../http/views.ts';
import { mtlsEndpointAliases, mtlsFeature, offeredAuthMethods } from '../clients/mtls.ts';
import { createAccountFinder } from './account.ts';
import { REFRESH_TOKEN_BITS } from './model-storage.ts';
import { actClaimsOf } from './token-exchange.ts';
import { userOfRequest } from './request-user.ts';
import { firstPartyGrantLoader } from './first-party-grant.ts';
import { logoutPages } from './logout-pages.ts';
import type { Branding } from '../tenants/branding.ts';
import type { SessionPolicyHooks } from '../sessions/provider-hooks.ts';

interface Subject {
  tenantId: string;
  type: 'user' | 'client';
  id: string;
}

interface SubjectAccess {
  subject: Subject;
  access: EffectiveAccess;
}

export interface ConfigurationDependencies {
  rbac: RbacService;
  loginTenant: LoginTenantResolver;
  config: Config;
  cookieKeys: string[];
  jwks: { keys: UnknownObject[] };
  adapter: NonNullable<Configuration['adapter']>;
  clients: ClientService;
  users: UserService;
  apis: ApiResourceService;
  views: Views;
  // A tenant's branding for the logout pages; undefined for a tenant that is gone.
  brandingOf(tenantId: string): Promise<Branding | undefined>;
  // Told of every JWT access token before it is signed (src/oidc/revocation.ts records its jti
  // under its grant, so revoking the grant can deny it).
  onJwtAccessToken?(token: { grantId?: string; accountId?: string; jti: string; exp: number }): Promise<void>;
  // The tenant's session policy (src/sessions/provider-hooks.ts): idle and absolute limits, remember-me.
  sessionPolicy?: SessionPolicyHooks;
}

const ASYMMETRIC_ALGS = ['RS256', 'PS256', 'ES256', 'EdDSA'];

export function buildConfiguration(deps: ConfigurationDependencies): Configuration {
  const { config, clients, apis, views } = deps;
  const logout = logoutPages({ views, users: deps.users, clients, brandingOf: deps.brandingOf });

  // Who a token is for (the signed-in user, or the machine client itself for client credentials),
  // with what that subject holds. Resolved once per request: issuing one JWT asks both for the
  // token's scope (getResourceServerInfo) and for its claims (extraTokenClaims).
  const resolvedPerRequest = new WeakMap<object, Map<string, Promise<SubjectAccess | undefined>>>();

  function accessOf(ctx: KoaContextWithOIDC | undefined, client?: { clientId: string }, accountId?: string): Promise<SubjectAccess | undefined> {
    const entities = (ctx?.oidc?.entities ?? {}) as Record<string, { accountId?: string } | undefined>;
    const account = accountId ?? ctx?.oidc?.session?.accountId ?? entities.AuthorizationCode?.accountId ?? entities.RefreshToken?.accountId ?? entities.Grant?.accountId;
    const key = account ? `user:${account}` : client ? `client:${client.clientId}` : undefined;
    if (!key) return Promise.resolve(undefined);
    let perRequest = ctx ? resolvedPerRequest.get(ctx) : undefined;
    if (ctx && !perRequest) resolvedPerRequest.set(ctx, (perRequest = new Map()));
    const known = perRequest?.get(key);
    if (known) return known;
    const resolving = (async (): Promise<SubjectAccess | undefined> => {
      let subject: Subject | undefined;
      if (account) {
        const user = await userOfRequest(ctx, deps.users, account);
        subject = user ? { tenantId: user.tenantId, type: 'user', id: user.id } : undefined;
      } else {
        const record = await clients.get(client!.clientId);
        subject = record?.tenantId ? { tenantId: record.tenantId, type: 'client', id: record.clientId } : undefined;
      }
      return subject && { subject, access: await deps.rbac.effectiveAccess(subject.tenantId, subject.type, subject.id) };
    })();
    perRequest?.set(key, resolving);
    return resolving;
  }

  // An API's scopes are its permissions: a token carries only those its subject holds through RBAC.
  async function getResourceServerInfo(ctx: KoaContextWithOIDC, indicator: string, client: { clientId: string }): Promise<ResourceServer> {
    const api = await apis.find(indicator);
    if (!api) throw new errors.InvalidTarget('the resource is not a registered API');
    const grantType = ctx.oidc?.params?.grant_type;
    const resolved = await accessOf(ctx, grantType === 'client_credentials' ? client : undefined);
    const held = resolved?.access.permissions[indicator] ?? [];
    return {
      scope: api.scopes.filter((scope) => held.includes(scope)).join(' '),
      audience: api.identifier,
      accessTokenTTL: api.accessTokenTtl ?? config.ttl.accessToken,
      accessTokenFormat: 'jwt',
      jwt: { sign: { alg: (api.signingAlg ?? config.signingAlg) as 'RS256' } },
    };
  }

  return {
    adapter: deps.adapter,
    clients: [],
    jwks: deps.jwks as Configuration['jwks'],
    findAccount: createAccountFinder(deps.users, async (tenantId, userId) => (await deps.rbac.effectiveAccess(tenantId, 'user', userId)).roles),
    cookies: {
      keys: deps.cookieKeys,
      names: { session: '_session', interaction: '_interaction', resume: '_interaction_resume' },
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    claims: {
      // The ID token always says how the person signed in (acr, amr); auth_time and sid when
      // asked for (max_age, a claims request) or needed (logout).
      acr: null,
      amr: null,
      auth_time: null,
      sid: null,
      openid: ['sub', 'tenant_id', 'acr', 'amr'],
      email: ['email', 'email_verified'],
      // The user's role names in their tenant (as Logto's `roles` scope): for downstream providers.
      roles: ['roles'],
      phone: ['phone_number', 'phone_number_verified'],
      profile: [
        'name', 'given_name', 'family_name', 'middle_name', 'nickname', 'preferred_username', 'picture', 'website',
        'gender', 'birthdate', 'zoneinfo', 'locale', 'updated_at',
      ],
    },
    scopes: ['openid', 'offline_access', 'email', 'phone', 'profile', 'roles'],
    // `tenant=<slug>` picks the tenant a user signs in to (unless the client is bound to one).
    extraParams: ['tenant'],
    acrValues: [...ACR_VALUES],
    // The login pages speak these languages (Accept-Language, or ui_locales on the request).
    // mtls_endpoint_aliases only when the certificate endpoints have their own host (RFC 8705 §5).
    discovery: { ui_locales_supported: [...LOCALES], ...mtlsEndpointAliases(config) },
    // Authorization code only: the implicit and hybrid flows are deprecated (RFC 9700).
    responseTypes: ['code'],
    clientAuthMethods: offeredAuthMethods(config) as never,
    // Client secrets are stored only as digests, so nothing can be HMAC-signed with them.
    enabledJWA: {
      clientAuthSigningAlgValues: ASYMMETRIC_ALGS as never,
      requestObjectSigningAlgValues: ASYMMETRIC_ALGS as never,
      idTokenSigningAlgValues: ASYMMETRIC_ALGS as never,
      userinfoSigningAlgValues: ASYMMETRIC_ALGS as never,
      introspectionSigningAlgValues: ASYMMETRIC_ALGS as never,
      authorizationSigningAlgValues: ASYMMETRIC_ALGS as never,
    },
    clientDefaults: {
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: config.signingAlg,
    },
    pkce: {
      // RFC 9700: PKCE for every public client; confidential clients may use it and are encouraged to.
      required: (_ctx, client) => client.clientAuthMethod === 'none',
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // Any confidential client (a resource server) may introspect; a public client only its own tokens.
        allowedPolicy: async (_ctx, client, token) =>
          client.clientAuthMethod !== 'none' || token.clientId === client.clientId,
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: logout.logoutSource,
        postLogoutSuccessSource: logout.postLogoutSuccessSource,
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: async () => false,
        getResourceServerInfo,
      },
      userinfo: { enabled: true },
      dPoP: { enabled: true },
      pushedAuthorizationRequests: { enabled: true },
      // Mutual TLS client authentication and certificate-bound tokens (src/clients/mtls.ts).
      mTLS: mtlsFeature(config) as never,
    },
    loadExistingGrant: firstPartyGrantLoader(async (clientId) => (await clients.get(clientId))?.firstParty ?? false),
    issueRefreshToken: async (_ctx, client, code) => {
      if (!client.grantTypeAllowed('refresh_token')) return false;
      if (code.scopes.has('offline_access')) return true;
      // First-party apps keep their users signed in with a refresh token bound to the session.
      return (await clients.get(client.clientId))?.firstParty ?? false;
    },
    // JWT access tokens for an API say which tenant and roles they were issued under.
    extraTokenClaims: async (ctx, token) => {
      if (!('resourceServer' in token) || !token.resourceServer) return undefined;
      const accountId = 'accountId' in token ? token.accountId : undefined;
      const resolved = await accessOf(ctx, accountId ? undefined : { clientId: token.clientId! }, accountId);
      // A token issued by token exchange also names who acts for the user (RFC 8693 `act`).
      return resolved && { tenant_id: resolved.subject.tenantId, roles: resolved.access.roles, ...actClaimsOf(token) };
    },
    formats: {
      bitsOfOpaqueRandomness: (_ctx, token) => (token.kind === 'RefreshToken' ? REFRESH_TOKEN_BITS : 256),
      customizers: {
        jwt: async (_ctx, token, jwt) => {
          const { jti, exp } = jwt.payload as { jti?: string; exp?: number };
          const grantId = 'grantId' in token ? (token.grantId as string | undefined) : undefined;
          const accountId = 'accountId' in token ? (token.accountId as string | undefined) : undefined;
          if (jti && exp) await deps.onJwtAccessToken?.({ grantId, accountId, jti, exp });
        },
      },
    },
    // Rotate on every use; presenting a rotated-out token revokes the whole grant, unless its own
    // client presents it again within the reuse grace window (src/oidc/revocation-hooks.ts).
    // (The session policy's refresh check runs here: after the token and client are verified,
    // before anything is issued.)
    rotateRefreshToken: async (ctx) => {
      await deps.sessionPolicy?.checkRefresh(ctx);
      return true;
    },
    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? config.ttl.accessToken,
      AuthorizationCode: config.ttl.authorizationCode,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? config.ttl.clientCredentials,
      IdToken: config.ttl.idToken,
      RefreshToken: config.ttl.refreshToken,
      Session: (ctx) => Math.min(deps.sessionPolicy?.sessionTtl(ctx) ?? config.ttl.session, config.ttl.session),
      Grant: config.ttl.grant,
      Interaction: config.ttl.interaction,
      DeviceCode: 600,
      BackchannelAuthenticationRequest: 600,
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
      policy: tenantAwarePolicy(deps),
    },
    clientBasedCORS: (_ctx, origin, client) => {
      const allowed = [...(client.redirectUris ?? []), ...(client.postLogoutRedirectUris ?? [])];
      return allowed.some((uri) => {
        try {
          return new URL(uri).origin === origin;
        } catch {
          return false;
        }
      });
    },
    // oidc-provider refuses loopback and private addresses on outgoing requests (SSRF protection)
    // by passing its own dispatcher; dropping it is an explicit opt-in for private deployments.
    ...(config.outboundAllowPrivateNetwork
      ? { fetch: (url: string | URL | Request, options?: RequestInit) => fetch(url, { ...options, dispatcher: undefined } as RequestInit) }
      : {}),
    renderError: async (ctx, out) => {
      views.page(ctx, 'error.njk', { error: out.error, description: out.error_description });
    },
  };
}

// An SSO session belongs to one tenant: a request for another tenant (a tenant-bound client or the
// `tenant` parameter) asks for a new sign-in instead of reusing it. A session below the assurance
// level the client asks for (acr_values, step-up) signs in again too.
function tenantAwarePolicy(deps: ConfigurationDependencies) {
  const policy = interactionPolicy.base();
  const login = policy.get('login')!;
  login.checks.add(
    new interactionPolicy.Check('tenant_mismatch', 'the session belongs to another tenant', async (ctx) => {
      const accountId = ctx.oidc.session?.accountId;
      if (!accountId) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      const wanted = await deps.loginTenant(ctx.oidc.params?.client_id, ctx.oidc.params?.tenant);
      if (wanted.kind === 'open') return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      const user = await userOfRequest(ctx, deps.users, accountId);
      return user && wanted.kind === 'fixed' && user.tenantId === wanted.tenantId ? interactionPolicy.Check.NO_NEED_TO_PROMPT : interactionPolicy.Check.REQUEST_PROMPT;
    }),
  );
  login.checks.add(
    new interactionPolicy.Check('session_policy_expired', 'the session passed the tenant’s idle timeout or absolute lifetime', 'login_required', async (ctx) =>
      (await deps.sessionPolicy?.loginRequired(ctx)) ? interactionPolicy.Check.REQUEST_PROMPT : interactionPolicy.Check.NO_NEED_TO_PROMPT,
    ),
  );
  login.checks.add(
    new interactionPolicy.Check('acr_step_up', 'the session does not meet the requested assurance level', (ctx) => {
      if (!ctx.oidc.session?.accountId) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      const needed = requestedAcrLevel((ctx.oidc.params ?? {}) as Record<string, unknown>);
      return acrLevel(ctx.oidc.session.acr) >= needed ? interactionPolicy.Check.NO_NEED_TO_PROMPT : interactionPolicy.Check.REQUEST_PROMPT;
    }),
  );
  return policy;
}
