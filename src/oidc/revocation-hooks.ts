// What revocation needs inside oidc-provider's request handling:
// - refresh token rotation with a reuse grace window: a rotated-out refresh token presented again
//   by its own client within REFRESH_TOKEN_REUSE_GRACE_SECONDS of its rotation is served like a
//   current one (a new access token and a new refresh token, Auth0's "reuse interval"; parallel
//   refreshes of one app must not sign the user out). Later, the library's reuse detection
//   revokes the whole grant; this is logged as a security event and published.
// - grants the library revokes itself (RP-initiated logout, the revocation endpoint, reuse): the
//   JWT access tokens they issued go on the deny list before the response leaves.
// - introspection of our JWT access tokens (the library finds only stored tokens): active while
//   the signature, issuer and expiry hold and the `jti` is not denied.
import { AsyncLocalStorage } from 'node:async_hooks';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from 'pino';
import { jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { Revocation } from './revocation.ts';

export interface RevocationHookDependencies {
  revocation: Revocation;
  log: Logger;
  issuer: string;
  refreshReuseGraceSeconds: number;
  verificationKeys(): JWTVerifyGetKey;
  now?: () => number;
}

interface RequestState {
  ctx: KoaContextWithOIDC;
  // Work that must finish before the response leaves.
  pending: Promise<void>[];
  // A rotated-out refresh token presented after the grace window, in this request.
  reuse?: { grantId?: string; clientId?: string; accountId?: string };
}

const MAX_JWT_LENGTH = 16 * 1024;

export function installRevocationHooks(provider: Provider, deps: RevocationHookDependencies): void {
  const { revocation, log } = deps;
  const requests = new AsyncLocalStorage<RequestState>();
  const nowSeconds = () => Math.floor((deps.now?.() ?? Date.now()) / 1000);

  provider.use(async (ctx, next) => {
    const state: RequestState = { ctx: ctx as KoaContextWithOIDC, pending: [] };
    await requests.run(state, next);
    await Promise.all(state.pending);
  });

  const refreshTokens = provider.RefreshToken as unknown as { find(value: unknown, options?: unknown): Promise<RefreshTokenLike | undefined> };
  const find = refreshTokens.find.bind(refreshTokens);
  refreshTokens.find = async (value, options) => {
    const token = await find(value, options);
    const state = requests.getStore();
    const oidc = state?.ctx.oidc;
    if (!token?.consumed || !state || oidc?.route !== 'token' || oidc.params?.grant_type !== 'refresh_token') return token;
    // Another client's token: the library refuses it (client mismatch) without revoking anything.
    if (oidc.client?.clientId !== token.clientId) return token;
    const age = nowSeconds() - token.consumed;
    // A grace of 0 turns the window off (age is in whole seconds, so 0 would still match).
    if (deps.refreshReuseGraceSeconds > 0 && age >= 0 && age <= deps.refreshReuseGraceSeconds) {
      token.consumed = undefined;
      log.debug({ event: 'refresh_token.reuse_within_grace', clientId: token.clientId, age }, 'rotated-out refresh token reused within the grace window');
    } else {
      state.reuse = { grantId: token.grantId, clientId: token.clientId, accountId: token.accountId };
    }
    return token;
  };

  provider.on('grant.revoked', (ctx: KoaContextWithOIDC, grantId: string) => {
    const state = requests.getStore();
    const reuse = state?.reuse?.grantId === grantId ? state.reuse : undefined;
    const clientId = reuse?.clientId ?? ctx.oidc?.client?.clientId;
    const userId = reuse?.accountId ?? (ctx.oidc?.entities as { Grant?: { accountId?: string } } | undefined)?.Grant?.accountId;
    if (reuse) {
      log.warn(
        { event: 'refresh_token.reuse', clientId, userId, ip: ctx.ip },
        'a rotated-out refresh token was presented again after the grace window: the grant is revoked',
      );
    }
    const work = revocation
      .denyJwtsOfRevokedGrant(grantId, {
        reason: reuse ? 'refresh_token_reuse' : 'grant_revoked',
        userId,
        clientIds: clientId ? [clientId] : undefined,
      })
      .catch((error) => log.error({ err: error }, 'could not deny the access tokens of a revoked grant'));
    if (state) state.pending.push(work);
  });

  // The library refuses JWTs at its introspection endpoint (unsupported_token_type) once the
  // client is authenticated; RFC 7662 asks for an answer: ours.
  provider.use(async (ctx, next) => {
    await next();
    const oidc = (ctx as KoaContextWithOIDC).oidc;
    if (oidc?.route !== 'introspection' || ctx.status !== 400 || !oidc.client) return;
    if ((ctx.body as { error?: unknown } | undefined)?.error !== 'unsupported_token_type') return;
    const token = oidc.params?.token;
    if (typeof token !== 'string' || token.length > MAX_JWT_LENGTH) return;
    ctx.status = 200;
    ctx.body = (await introspectJwt(token, oidc.client)) ?? { active: false };
  });

  async function introspectJwt(token: string, client: { clientId: string; clientAuthMethod?: string }): Promise<Record<string, unknown> | undefined> {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, deps.verificationKeys(), { issuer: deps.issuer, typ: 'at+jwt' }));
    } catch {
      return undefined;
    }
    // The same rule as for stored tokens: any confidential client, a public client only its own.
    if (client.clientAuthMethod === 'none' && payload.client_id !== client.clientId) return undefined;
    if (await revocation.isDenied(payload.jti)) return undefined;
    const cnf = payload.cnf as Record<string, unknown> | undefined;
    return {
      ...payload,
      active: true,
      token_type: cnf?.jkt ? 'DPoP' : 'Bearer',
    };
  }
}

interface RefreshTokenLike {
  consumed?: number;
  clientId?: string;
  grantId?: string;
  accountId?: string;
}
