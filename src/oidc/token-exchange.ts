// OAuth 2.0 Token Exchange (RFC 8693) for service-to-service delegation, registered with
// oidc-provider's registerGrantType. A confidential client (the acting service) trades a user's
// access token for a narrower JWT access token for one downstream API: the audience is one
// registered API and the scopes can only shrink. The issued token is the library's own AccessToken
// with its resourceServer formatting (an RFC 9068 JWT signed with the provider's keys); only the
// `act` claim comes from here (through extraTokenClaims, see actClaimsOf).
// Impersonation (an administrator obtaining a token as a user, without the user's token) needs
// the users:impersonate permission on the admin API, checked through RBAC on every call.
// An API key (subject_token_type API_KEY_TOKEN_TYPE) can be exchanged too, by a confidential client
// of the key's tenant: the token is for the key's owner, its scopes at most the key's permissions
// on the target that the owner still holds (docs/api-keys.md).
import type Provider from 'oidc-provider';
import { errors, type KoaContextWithOIDC, type ResourceServer, type TokenEndpointGrantContext } from 'oidc-provider';
import { jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { Logger } from 'pino';
import type { UserService } from '../users/service.ts';
import type { ClientService } from '../clients/service.ts';
import type { RbacService } from '../rbac/service.ts';
import type { ApiResourceService } from './api-resources.ts';
import { isUuid } from '../ids.ts';
import type { AuditService } from '../audit/service.ts';
import { requestContext } from '../audit/origin.ts';
import { IMPERSONATION_PERMISSION } from '../tenants/system-roles.ts';
import type { ApiKeyVerifier } from '../apikeys/verifier.ts';
import type { IpRuleService } from '../security/ip-rules.ts';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
// Impersonation names its subject by user id (RFC 8693 section 3 allows token types beyond its own).
export const USER_ID_TOKEN_TYPE = 'urn:idp:params:oauth:token-type:user-id';
export const API_KEY_TOKEN_TYPE = 'urn:idp:params:oauth:token-type:api-key';
export const IMPERSONATION_EVENT = 'token_exchange.impersonation';
export const IMPERSONATION_AUDIT_TYPE = 'token.impersonation';

const PARAMETERS = ['audience', 'resource', 'scope', 'requested_token_type', 'subject_token', 'subject_token_type', 'actor_token', 'actor_token_type'];
const REPEATABLE = ['audience', 'resource'];
// Far above any token this provider issues; a longer value is refused before any lookup.
const MAX_TOKEN_LENGTH = 16_384;

export interface ActClaim {
  sub: string;
  act?: ActClaim;
}

type ResourceServerInfo = (ctx: KoaContextWithOIDC, indicator: string, client: { clientId: string }) => Promise<ResourceServer>;

export interface TokenExchangeDependencies {
  issuer: string;
  // The admin API's resource indicator: the permission lives there, and no impersonation token is
  // issued for it (it would let an administrator act with a more privileged user's admin rights).
  adminApi: string;
  users: Pick<UserService, 'findById'>;
  apis: Pick<ApiResourceService, 'find'>;
  clients: Pick<ClientService, 'get'>;
  rbac: Pick<RbacService, 'effectiveAccess' | 'check'>;
  log: Logger;
  verificationKeys: () => JWTVerifyGetKey;
  // The provider's own resolution of an API (audience, lifetime, signing): one source for every grant.
  resourceServerInfo: ResourceServerInfo;
  // The deny list of revoked JWT access tokens, by jti (src/oidc/revocation.ts).
  isRevokedJti?: (jti: string) => Promise<boolean>;
  // API keys as subject tokens (src/apikeys), under the tenant's IP rules for them.
  apiKeys?: Pick<ApiKeyVerifier, 'verify'>;
  ipRules?: Pick<IpRuleService, 'check'>;
  // Impersonations, granted and refused, go to the tenant's audit trail.
  audit?: Pick<AuditService, 'record'>;
}

// An access token this provider issued to a user, still valid.
interface PresentedToken {
  userId: string;
  tenantId: string;
  clientId: string;
  scopes: Set<string>;
  exp: number;
  act?: ActClaim;
}

interface ExchangeParams {
  audience?: string | string[];
  resource?: string | string[];
  scope?: string;
  requested_token_type?: string;
  subject_token?: string;
  subject_token_type?: string;
  actor_token?: string;
  actor_token_type?: string;
}

// The `act` claim of tokens this grant issues, keyed by the token object the library formats.
const actors = new WeakMap<object, ActClaim>();

// For extraTokenClaims: the `act` claim of a token issued by a token exchange, else nothing.
export function actClaimsOf(token: object): { act: ActClaim } | undefined {
  const act = actors.get(token);
  return act && { act };
}

export function registerTokenExchange(provider: Provider, deps: TokenExchangeDependencies): void {
  provider.registerGrantType(TOKEN_EXCHANGE_GRANT, (ctx) => exchange(provider, deps, ctx as TokenEndpointGrantContext<ExchangeParams>), PARAMETERS, REPEATABLE);
}

async function exchange(provider: Provider, deps: TokenExchangeDependencies, ctx: TokenEndpointGrantContext<ExchangeParams>): Promise<void> {
  const { client, params } = ctx.oidc;
  if (client.clientAuthMethod === 'none') throw new errors.UnauthorizedClient('a public client cannot exchange tokens');
  if (params.requested_token_type !== undefined && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest(`requested_token_type must be ${ACCESS_TOKEN_TYPE}`);
  }
  // Sender-constrained results need the library's DPoP/mTLS helpers, which it does not expose to
  // custom grants; refuse rather than silently hand out a bearer token.
  if (ctx.get('dpop') || client.dpopBoundAccessTokens || client.tlsClientCertificateBoundAccessTokens) {
    throw new errors.InvalidRequest('token exchange issues bearer tokens only; sender-constrained exchange is not supported');
  }
  const subjectToken = requiredString(params.subject_token, 'subject_token');
  const subjectTokenType = requiredString(params.subject_token_type, 'subject_token_type');
  const indicator = singleTarget(params);
  const info = await deps.resourceServerInfo(ctx, indicator, client);

  let exchanged: { subject: { id: string; tenantId: string; type?: 'user' | 'client' }; act?: ActClaim; ceiling?: Set<string>; notAfter: number; impersonation: boolean };
  if (subjectTokenType === ACCESS_TOKEN_TYPE) {
    if (params.actor_token !== undefined || params.actor_token_type !== undefined) {
      throw new errors.InvalidRequest(`actor_token is used only for impersonation (subject_token_type ${USER_ID_TOKEN_TYPE}); the acting party of a delegation is the client`);
    }
    const presented = await readAccessToken(provider, deps, subjectToken, 'subject_token');
    exchanged = {
      subject: { id: presented.userId, tenantId: presented.tenantId },
      // RFC 8693 4.1: the current actor on top, earlier actors nested below it.
      act: presented.act ? { sub: client.clientId, act: presented.act } : { sub: client.clientId },
      ceiling: presented.scopes,
      notAfter: presented.exp,
      impersonation: false,
    };
  } else if (subjectTokenType === USER_ID_TOKEN_TYPE) {
    exchanged = await impersonation(provider, deps, client.clientId, subjectToken, params, info.audience ?? indicator);
  } else if (subjectTokenType === API_KEY_TOKEN_TYPE && deps.apiKeys) {
    if (params.actor_token !== undefined || params.actor_token_type !== undefined) throw new errors.InvalidRequest('actor_token is not used with an API key');
    exchanged = await apiKeyExchange(deps, ctx, client.clientId, subjectToken, indicator, info.accessTokenTTL);
  } else {
    throw new errors.InvalidRequest(`unsupported subject_token_type: use ${ACCESS_TOKEN_TYPE} (delegation), ${USER_ID_TOKEN_TYPE} (impersonation) or ${API_KEY_TOKEN_TYPE} (an API key)`);
  }

  const { subject, act, ceiling, notAfter } = exchanged;
  const record = await deps.clients.get(client.clientId);
  if (record?.tenantId && record.tenantId !== subject.tenantId) throw invalidGrant('the subject belongs to another tenant than the client');

  // The result's scopes: what the API defines, the user holds there through RBAC now, the subject
  // token carried (delegation), and the request asked for. Never more than any of them.
  const api = await deps.apis.find(indicator);
  if (!api) throw new errors.InvalidTarget('the resource is not a registered API');
  const held = new Set((await deps.rbac.effectiveAccess(subject.tenantId, subject.type ?? 'user', subject.id)).permissions[indicator] ?? []);
  const allowed = api.scopes.filter((scope) => held.has(scope) && (!ceiling || ceiling.has(scope)));
  const requested = params.scope ? [...new Set(params.scope.split(' ').filter(Boolean))] : undefined;
  const excess = requested?.filter((scope) => !allowed.includes(scope)) ?? [];
  if (excess.length) throw new errors.InvalidScope('the requested scope exceeds what the subject may delegate to this API', excess.join(' '));
  const granted = requested ?? allowed;
  if (!granted.length) throw new errors.InvalidScope('no scope of the subject applies to this API', params.scope ?? '');

  const remaining = notAfter - Math.floor(Date.now() / 1000);
  if (remaining <= 0) throw invalidGrant('the presented token has expired');
  const resourceServer = new provider.ResourceServer(indicator, { ...info, scope: allowed.join(' ') });
  const token = new provider.AccessToken({
    // A service account's token is its own, like one from client credentials (sub = client_id).
    accountId: subject.type === 'client' ? undefined : subject.id,
    client,
    gty: TOKEN_EXCHANGE_GRANT,
    scope: granted.join(' '),
    resourceServer,
    // Never outlives what it was exchanged for.
    expiresIn: Math.min(info.accessTokenTTL ?? remaining, remaining),
    // No grant stands behind it: like a client-credentials token, it lives only as the signed JWT.
  } as never);
  if (act) actors.set(token, act);
  ctx.oidc.entity('AccessToken', token);
  const value = await token.save();

  if (exchanged.impersonation && act) {
    // Recorded before the token leaves: no audit entry, no impersonation token.
    await deps.audit?.record(undefined, {
      tenantId: subject.tenantId,
      type: IMPERSONATION_AUDIT_TYPE,
      outcome: 'success',
      actor: { type: 'user', id: act.sub },
      target: { type: 'user', id: subject.id },
      details: { clientId: client.clientId, audience: indicator, scope: token.scope, jti: token.jti, expiresIn: token.expiration },
      context: requestContext(ctx),
    });
    deps.log.info(
      { event: IMPERSONATION_EVENT, tenantId: subject.tenantId, actorId: act.sub, subjectId: subject.id, clientId: client.clientId, audience: indicator, scope: token.scope, jti: token.jti },
      'impersonation token issued',
    );
  }

  ctx.body = {
    access_token: value,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: token.tokenType,
    expires_in: token.expiration,
    scope: token.scope,
  };
}

// An API key, verified like any use of it (counted and rate limited): the token is for the key's
// owner, in the key's tenant, never beyond the key's permissions on the target or the key's expiry.
async function apiKeyExchange(deps: TokenExchangeDependencies, ctx: TokenEndpointGrantContext<ExchangeParams>, clientId: string, value: string, indicator: string, ttl: number | undefined) {
  const result = await deps.apiKeys!.verify(value, ctx.ip);
  if (!result.ok) {
    if (result.reason === 'rate_limited') {
      ctx.set('Retry-After', String(result.retryAfterSeconds));
      throw Object.assign(new errors.OIDCProviderError(429, 'rate_limited'), { error_description: 'the API key made too many requests; retry later' });
    }
    throw invalidGrant('the API key is invalid, expired, revoked, not allowed from this address, or its owner is no longer active');
  }
  const { key } = result;
  // The tenant's IP rules for API keys, as at the admin API and the verification endpoint.
  if (deps.ipRules && !(await deps.ipRules.check(key.tenantId, 'apiKeys', ctx.ip, { actor: key.owner, context: requestContext(ctx) }))) {
    throw invalidGrant('the API key is invalid, expired, revoked, not allowed from this address, or its owner is no longer active');
  }
  const record = await deps.clients.get(clientId);
  if (record?.tenantId !== key.tenantId) throw invalidGrant('only a client of the API key’s tenant may exchange it');
  if (key.owner.type === 'client' && key.owner.id !== clientId) throw invalidGrant('a service account’s API key is exchanged by that service account only');
  const now = Math.floor(Date.now() / 1000);
  const keyEnd = key.expiresAt ? Math.floor(key.expiresAt.getTime() / 1000) : Number.MAX_SAFE_INTEGER;
  return {
    subject: { id: key.owner.id, tenantId: key.tenantId, type: key.owner.type },
    act: key.owner.type === 'user' ? { sub: clientId } : undefined,
    ceiling: new Set(key.permissions.filter((p) => p.api === indicator).map((p) => p.permission)),
    notAfter: Math.min(keyEnd, now + (ttl ?? 3600)),
    impersonation: false,
  };
}

// An administrator (the actor token's user) obtains a token as another user of the same tenant.
async function impersonation(provider: Provider, deps: TokenExchangeDependencies, clientId: string, userId: string, params: ExchangeParams, audience: string) {
  const actorToken = requiredString(params.actor_token, 'actor_token');
  if (params.actor_token_type !== ACCESS_TOKEN_TYPE) throw new errors.InvalidRequest(`actor_token_type must be ${ACCESS_TOKEN_TYPE}`);
  const actor = await readAccessToken(provider, deps, actorToken, 'actor_token');
  // The administrator's own token, obtained by this client: not one passed around or delegated.
  if (actor.clientId !== clientId) throw invalidGrant('the actor token was issued to another client');
  if (actor.act) throw invalidGrant('a delegated token cannot be used to impersonate');
  if (!(await deps.rbac.check(actor.tenantId, 'user', actor.userId, deps.adminApi, IMPERSONATION_PERMISSION))) {
    await deps.audit?.record(undefined, {
      tenantId: actor.tenantId,
      type: IMPERSONATION_AUDIT_TYPE,
      outcome: 'failure',
      actor: { type: 'user', id: actor.userId },
      target: isUuid(userId) ? { type: 'user', id: userId } : undefined,
      details: { reason: 'missing_permission', clientId },
    });
    throw invalidGrant(`the actor lacks the ${IMPERSONATION_PERMISSION} permission`);
  }
  if (audience === deps.adminApi) throw new errors.InvalidTarget('impersonation tokens are not issued for the admin API');
  const user = await deps.users.findById(userId);
  // Users of other tenants are reported exactly like unknown ones.
  if (!user || user.tenantId !== actor.tenantId) throw invalidGrant('no such active user in the actor\'s tenant');
  if (user.id === actor.userId) throw new errors.InvalidRequest('an actor cannot impersonate themselves');
  return {
    subject: { id: user.id, tenantId: user.tenantId },
    act: { sub: actor.userId },
    notAfter: actor.exp,
    impersonation: true,
  };
}

// Opaque access tokens are looked up (gone once revoked or expired); JWT ones are verified against
// this provider's keys and issuer. Either way the user must still be active.
async function readAccessToken(provider: Provider, deps: TokenExchangeDependencies, value: string, name: string): Promise<PresentedToken> {
  const invalid = () => invalidGrant(`the ${name} is invalid, expired, revoked or not issued by this provider`);
  if (value.length > MAX_TOKEN_LENGTH) throw invalid();
  let presented: Omit<PresentedToken, 'tenantId'> & { tenantId?: unknown };
  if (value.split('.').length === 3) {
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(value, deps.verificationKeys(), { issuer: deps.issuer, typ: 'at+jwt' }));
    } catch {
      throw invalid();
    }
    const { sub, client_id: tokenClient, exp, jti, scope, act, tenant_id: tenantId } = payload;
    if (typeof sub !== 'string' || typeof tokenClient !== 'string' || typeof exp !== 'number' || typeof jti !== 'string') throw invalid();
    if (deps.isRevokedJti && (await deps.isRevokedJti(jti))) throw invalid();
    presented = { userId: sub, clientId: tokenClient, exp, tenantId, scopes: scopeSet(scope), act: isActClaim(act) ? act : undefined };
  } else {
    const token = await provider.AccessToken.find(value);
    if (!token || token.isExpired || !token.accountId || !token.exp) throw invalid();
    presented = { userId: token.accountId, clientId: token.clientId!, exp: token.exp, scopes: scopeSet(token.scope) };
  }
  const user = await deps.users.findById(presented.userId);
  if (!user) throw invalid();
  if (presented.tenantId !== undefined && presented.tenantId !== user.tenantId) throw invalid();
  return { ...presented, tenantId: user.tenantId };
}

// RFC 8693 allows several targets; a token here is for exactly one API, named by either parameter.
function singleTarget(params: ExchangeParams): string {
  const values = [params.resource, params.audience].flatMap((value) => (value === undefined ? [] : Array.isArray(value) ? value : [value]));
  const targets = [...new Set(values)];
  if (!targets.length) throw new errors.InvalidRequest('resource or audience (the downstream API) is required');
  if (targets.length > 1) throw new errors.InvalidTarget('only one downstream API can be the target of a token exchange');
  if (typeof targets[0] !== 'string' || !targets[0]) throw new errors.InvalidTarget('the target must name a registered API');
  return targets[0];
}

// The library's InvalidGrant keeps its text out of the response; the caller deserves to know which
// check failed (none of these says more than the caller already holds).
function invalidGrant(description: string) {
  return Object.assign(new errors.InvalidGrant(description), { error_description: description });
}

function requiredString(value: unknown, name: string): string {
  if (typeof value !== 'string' || !value) throw new errors.InvalidRequest(`missing required parameter '${name}'`);
  return value;
}

function scopeSet(scope: unknown): Set<string> {
  return new Set(typeof scope === 'string' ? scope.split(' ').filter(Boolean) : []);
}

function isActClaim(value: unknown): value is ActClaim {
  if (!value || typeof value !== 'object') return false;
  const { sub, act } = value as { sub?: unknown; act?: unknown };
  return typeof sub === 'string' && (act === undefined || isActClaim(act));
}
