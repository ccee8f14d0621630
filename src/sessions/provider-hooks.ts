// What oidc-provider asks of the tenant's session policy, in the places it offers: a login check
// (an idle or too-old session signs in again instead of giving SSO), ttl.Session (the provider
// session and its remembered cookie live no longer than the policy allows) and the refresh-token
// grant (a session-bound refresh token of an idle or too-old session is refused, and the session
// ends with all its tokens). Every decision uses the session service's clock.
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { UserService } from '../users/service.ts';
import type { SessionService } from './service.ts';
import { userOfRequest } from '../oidc/request-user.ts';

export interface SessionPolicyHooks {
  loginRequired(ctx: KoaContextWithOIDC): Promise<boolean>;
  // Synchronous (oidc-provider calls ttl.Session so): what loginRequired prepared for this request.
  sessionTtl(ctx: KoaContextWithOIDC): number | undefined;
  checkRefresh(ctx: KoaContextWithOIDC): Promise<void>;
}

export function createSessionPolicyHooks(deps: { sessions: SessionService; users: UserService }): SessionPolicyHooks {
  const ttlPerRequest = new WeakMap<object, number>();

  async function tenantOf(ctx: KoaContextWithOIDC, accountId: string | undefined): Promise<string | undefined> {
    return accountId ? (await userOfRequest(ctx, deps.users, accountId))?.tenantId : undefined;
  }

  return {
    async loginRequired(ctx) {
      const session = ctx.oidc.session;
      const tenantId = await tenantOf(ctx, session?.accountId);
      if (!session || !tenantId) return false;
      const limits = await deps.sessions.limits(tenantId, session.uid);
      ttlPerRequest.set(ctx, limits.ttlSeconds);
      // A sign-in that just completed in this request is the answer to the prompt.
      if (ctx.oidc.result?.login) return false;
      return limits.expiry !== undefined;
    },

    sessionTtl(ctx) {
      return ttlPerRequest.get(ctx);
    },

    async checkRefresh(ctx) {
      const token = (ctx.oidc.entities as { RefreshToken?: { accountId?: string; sessionUid?: string; expiresWithSession?: boolean } }).RefreshToken;
      // Offline tokens (offline_access) outlive the session by definition; their own TTL bounds them.
      if (!token?.expiresWithSession || !token.sessionUid) return;
      const tenantId = await tenantOf(ctx, token.accountId);
      if (!tenantId) return;
      const expiry = await deps.sessions.endIfExpired(tenantId, token.sessionUid);
      if (expiry) throw new errors.InvalidGrant(expiry === 'idle' ? 'the session ended after a period of inactivity' : 'the session reached its maximum lifetime');
    },
  };
}
