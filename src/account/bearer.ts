// Who calls /api/v1/me: a person, proven by an access token this provider issued to them through a
// first-party application. Opaque tokens are looked up in the provider; JWT access tokens are
// accepted for the admin API's audience (the only JWT audience whose tokens this server reads).
// Machine tokens (client credentials) have no person behind them and are refused with 403.
import type { Context } from 'koa';
import { jwtVerify } from 'jose';
import type { ProviderHost } from '../oidc/provider-host.ts';
import type { UserService } from '../users/service.ts';
import type { ClientService } from '../clients/service.ts';
import { ForbiddenError, UnauthorizedError } from '../errors.ts';

export interface AccountPrincipal {
  tenantId: string;
  userId: string;
  clientId: string;
  // The provider session the token was issued in, when known ("this device").
  sessionUid?: string;
}

export interface AccountBearerDependencies {
  issuer: string;
  adminApi: string;
  providerHost: ProviderHost;
  users: UserService;
  clients: ClientService;
}

interface TokenSubject {
  accountId?: string;
  clientId: string;
  sessionUid?: string;
  // Bound to a key (DPoP, mTLS): presenting it as a plain bearer token proves nothing.
  constrained: boolean;
}

const MAX_TOKEN = 4096;

export function accountBearerResolver(deps: AccountBearerDependencies) {
  async function jwtSubject(token: string): Promise<TokenSubject | undefined> {
    try {
      const { payload } = await jwtVerify(token, deps.providerHost.verificationKeys, { issuer: deps.issuer, audience: deps.adminApi, typ: 'at+jwt' });
      if (await deps.providerHost.revocation.isDenied(payload.jti)) return undefined;
      const clientId = String(payload.client_id ?? '');
      return {
        accountId: payload.sub && payload.sub !== clientId ? payload.sub : undefined,
        clientId,
        sessionUid: undefined,
        constrained: payload.cnf !== undefined,
      };
    } catch {
      return undefined;
    }
  }

  async function opaqueSubject(token: string): Promise<TokenSubject | undefined> {
    const provider = deps.providerHost.provider;
    const accessToken = await provider.AccessToken.find(token);
    if (accessToken) {
      return {
        accountId: accessToken.accountId,
        clientId: accessToken.clientId!,
        sessionUid: accessToken.sessionUid,
        constrained: Boolean(accessToken.jkt || accessToken['x5t#S256']),
      };
    }
    const machineToken = await provider.ClientCredentials.find(token);
    return machineToken ? { clientId: machineToken.clientId!, constrained: false } : undefined;
  }

  return async function resolve(ctx: Context): Promise<AccountPrincipal> {
    const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(ctx.get('authorization'));
    if (!match || match[1].length > MAX_TOKEN) throw new UnauthorizedError('send your access token: Authorization: Bearer <token>');
    const token = match[1];
    const subject = token.split('.').length === 3 ? await jwtSubject(token) : await opaqueSubject(token);
    if (!subject) throw new UnauthorizedError('the access token is invalid or expired');
    if (subject.constrained) throw new UnauthorizedError('this access token is sender-constrained (DPoP or mTLS); the account API accepts bearer tokens only');
    if (!subject.accountId) throw new ForbiddenError('this token was issued to an application, not to a person; the account API needs a user’s access token');
    const client = await deps.clients.get(subject.clientId);
    // A third-party application holding a user's token must not manage that user's account.
    if (!client?.firstParty) throw new ForbiddenError('the account API accepts tokens of first-party applications only');
    const user = await deps.users.findById(subject.accountId);
    if (!user) throw new UnauthorizedError('the token’s user no longer exists or may not sign in');
    return { tenantId: user.tenantId, userId: user.id, clientId: subject.clientId, sessionUid: subject.sessionUid };
  };
}
