// Who calls the admin API: a user or a machine client of one tenant, proven by an access token
// this provider issued for the admin API. Permissions are re-read from RBAC on every call (cached
// in the hot store), so a removed permission stops working at once, not when the token expires.
// Or an API key (Authorization: Bearer idp_... or X-API-Key), resolved to its owner: the key's
// admin API permissions that the owner still holds (src/apikeys/verifier.ts).
import type { Context } from 'koa';
import { jwtVerify } from 'jose';
import type { ProviderHost } from '../oidc/provider-host.ts';
import type { RbacService, SubjectType } from '../rbac/service.ts';
import type { ClientService } from '../clients/service.ts';
import type { UserService } from '../users/service.ts';
import type { TenantService } from '../tenants/service.ts';
import { TooManyAttemptsError, UnauthorizedError, ValidationError } from '../errors.ts';
import { looksLikeApiKey } from '../apikeys/format.ts';
import type { ApiKeyVerifier } from '../apikeys/verifier.ts';
import type { KeyPermission } from '../apikeys/queries.ts';
import { requestContext, type KnownOrigin } from '../audit/origin.ts';
import { certificateThumbprintMatches } from '../security/certificate-binding.ts';
import type { ClientCertificateSource } from '../clients/client-certificate.ts';

export interface Principal {
  tenantId: string;
  platform: boolean;
  subjectType: SubjectType;
  subjectId: string;
  scopes: Set<string>;
  permissions: Set<string>;
  // Set when the caller authenticated with an API key: its id and what it grants now on every API.
  apiKey?: { id: string; permissions: KeyPermission[] };
}

export interface PrincipalDependencies {
  issuer: string;
  adminApi: string;
  providerHost: ProviderHost;
  rbac: RbacService;
  clients: ClientService;
  users: UserService;
  tenants: TenantService;
  apiKeys?: Pick<ApiKeyVerifier, 'verify'>;
  // The client certificate of the request (TLS, or a trusted proxy's header): certificate-bound
  // tokens (RFC 8705) are accepted only with the certificate they are bound to.
  clientCertificate?: ClientCertificateSource;
}

export function principalResolver(deps: PrincipalDependencies) {
  async function apiKeyPrincipal(value: string, ctx: Context): Promise<Principal> {
    const result = await deps.apiKeys!.verify(value, ctx.ip);
    if (!result.ok) {
      if (result.reason === 'rate_limited') throw new TooManyAttemptsError('this API key made too many requests; retry later', result.retryAfterSeconds);
      throw new UnauthorizedError('the API key is invalid, expired, revoked, not allowed from this address, or its owner is no longer active');
    }
    const { key } = result;
    const tenant = await deps.tenants.get(key.tenantId);
    const permissions = new Set(key.permissions.filter((p) => p.api === deps.adminApi).map((p) => p.permission));
    return { tenantId: key.tenantId, platform: tenant.platform, subjectType: key.owner.type, subjectId: key.owner.id, scopes: permissions, permissions, apiKey: { id: key.id, permissions: key.permissions } };
  }

  return async function resolve(ctx: Context): Promise<Principal> {
    const header = ctx.get('authorization');
    const apiKeyHeader = ctx.get('x-api-key');
    if (deps.apiKeys && apiKeyHeader) {
      if (header) throw new ValidationError('send one credential: Authorization or X-API-Key, not both');
      return apiKeyPrincipal(apiKeyHeader.trim(), ctx);
    }
    const bearer = /^Bearer (\S+)$/.exec(header)?.[1];
    if (deps.apiKeys && bearer && looksLikeApiKey(bearer)) return apiKeyPrincipal(bearer, ctx);
    const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(header);
    if (!match) throw new UnauthorizedError('send an access token for the admin API: Authorization: Bearer <token>');
    let payload;
    try {
      ({ payload } = await jwtVerify(match[1], deps.providerHost.verificationKeys, {
        issuer: deps.issuer,
        audience: deps.adminApi,
        typ: 'at+jwt',
      }));
    } catch {
      throw new UnauthorizedError('the access token is invalid or expired');
    }
    // Revoked before it expired (its session ended, its user suspended, its grant revoked).
    if (await deps.providerHost.revocation.isDenied(payload.jti)) throw new UnauthorizedError('the access token has been revoked');
    if (!certificateThumbprintMatches(payload as { cnf?: unknown }, deps.clientCertificate?.(ctx.req))) {
      throw new UnauthorizedError('the access token is bound to a client certificate this request did not present');
    }
    const clientId = String(payload.client_id ?? '');
    const isClientToken = payload.sub === clientId;
    const subjectType: SubjectType = isClientToken ? 'client' : 'user';
    const subjectId = String(payload.sub);
    const tenantId = isClientToken ? (await deps.clients.get(clientId))?.tenantId : (await deps.users.findById(subjectId))?.tenantId;
    if (!tenantId) throw new UnauthorizedError('the token’s subject no longer exists or belongs to no tenant');
    const tenant = await deps.tenants.get(tenantId);
    if (tenant.status !== 'active') throw new UnauthorizedError('the tenant is disabled');
    const access = await deps.rbac.effectiveAccess(tenantId, subjectType, subjectId);
    return {
      tenantId,
      platform: tenant.platform,
      subjectType,
      subjectId,
      scopes: new Set(String(payload.scope ?? '').split(' ').filter(Boolean)),
      permissions: new Set(access.permissions[deps.adminApi] ?? []),
    };
  };
}

// Who the audit trail records as making a change through the admin API, and from where.
export function changeOrigin(principal: Principal, ctx: Context): KnownOrigin {
  return { actor: { type: principal.subjectType, id: principal.subjectId }, context: requestContext(ctx) };
}

// Held by the subject now (RBAC) and granted to this token (its scope).
export function holds(principal: Principal, permission: string): boolean {
  return principal.permissions.has(permission) && principal.scopes.has(permission);
}
