// Counts each request against the rate limits its endpoint has (src/security/rate-limits.ts) and
// refuses it with 429 and Retry-After once its client address is over one. On the token endpoint
// the client is limited too: a request is checked against the budget of the client it names (its
// Basic credentials or the client_id / client_assertion of its form body) and counted once the
// library has authenticated that client, so nobody can spend another client's budget by naming it.
import type { Context, Middleware } from 'koa';
import type { Views } from './views.ts';
import { refuseRateLimited } from './refusals.ts';
import { requestContext } from '../audit/origin.ts';
import { TOKEN_PATH, type RateLimits } from '../security/rate-limits.ts';
import type { RateLimiter } from '../security/rate-limiter.ts';
import { claimedClientId } from './token-client.ts';

export interface RateLimitingDependencies {
  limits: RateLimits;
  views: Views;
  clientTenant(clientId: string): Promise<string | undefined>;
  // An address over the sign-in limit: its next sign-ins ask for a CAPTCHA (src/security/spraying.ts).
  onSignInLimited?(ip: string, retryAfterSeconds: number): Promise<void>;
}

export function rateLimiting(deps: RateLimitingDependencies): Middleware {
  const { limits, views } = deps;
  return async (ctx, next) => {
    for (const { rule, limiter } of limits.match(ctx.method, ctx.path)) {
      const decision = await limiter.consume(ctx.ip);
      if (decision.allowed) continue;
      if (decision.firstRefusal) {
        await limits.recordBlock({ limiter, path: ctx.path, retryAfterSeconds: decision.retryAfterSeconds, context: requestContext(ctx) });
        if (rule.limit === 'loginPerIp') await deps.onSignInLimited?.(ctx.ip, decision.retryAfterSeconds);
      }
      return refuseRateLimited(ctx, views, rule.surface, decision.retryAfterSeconds);
    }
    const perClient = ctx.method === 'POST' && ctx.path === TOKEN_PATH ? limits.tokenPerClient : undefined;
    if (!perClient) return next();
    let claimed: string | undefined;
    try {
      claimed = await claimedClientId(ctx);
    } catch {
      // Oversized or broken off: answered as oidc-provider answers a body it cannot read.
      ctx.status = 400;
      ctx.body = { error: 'invalid_request', error_description: 'failed to parse the request body' };
      return;
    }
    if (claimed && (await refusedForClient(ctx, perClient, claimed))) return;
    await next();
    const authenticated = authenticatedClient(ctx);
    if (authenticated) await perClient.consume(authenticated);
  };

  // The budget is checked without spending (cost 0); once it is spent, the refusal itself is
  // counted, which tells the first refusal of the window (audited) from the later ones.
  async function refusedForClient(ctx: Context, limiter: RateLimiter, clientId: string): Promise<boolean> {
    const check = await limiter.consume(clientId, 0);
    if (check.allowed && check.remaining > 0) return false;
    const refusal = await limiter.consume(clientId);
    if (refusal.allowed) return false;
    if (refusal.firstRefusal) {
      const tenantId = await deps.clientTenant(clientId).catch(() => undefined);
      await limits.recordBlock({ limiter, tenantId, clientId, path: ctx.path, retryAfterSeconds: refusal.retryAfterSeconds, context: requestContext(ctx) });
    }
    refuseRateLimited(ctx, views, 'protocol', refusal.retryAfterSeconds);
    return true;
  }
}

// The client oidc-provider found and authenticated for this request (a failed authentication
// answers invalid_client).
function authenticatedClient(ctx: Context): string | undefined {
  const clientId = (ctx as { oidc?: { client?: { clientId?: string } } }).oidc?.client?.clientId;
  if (!clientId || ctx.status === 401) return undefined;
  const body = ctx.body as { error?: unknown } | undefined;
  if (body && typeof body === 'object' && body.error === 'invalid_client') return undefined;
  return clientId;
}
