// A request refused before it reached its handler (rate limit, IP rule), answered in the format
// of the endpoint it was for: OAuth error JSON on the protocol endpoints, problem+json on the
// JSON APIs, a page for browsers.
import type { Context } from 'koa';
import type { Views } from './views.ts';
import { problem } from './errors.ts';
import type { Surface } from '../security/rate-limits.ts';

// RFC 6749 has no code for "too many requests". temporarily_unavailable (registered for the
// authorization endpoint) says what happened and that a retry later will work; invalid_request
// would tell the client to fix a request that was fine.
export const OAUTH_RATE_LIMITED = 'temporarily_unavailable';

export function refuseRateLimited(ctx: Context, views: Views, surface: Surface, retryAfterSeconds: number): void {
  ctx.set('Retry-After', String(retryAfterSeconds));
  ctx.set('Cache-Control', 'no-store');
  if (surface === 'protocol') {
    ctx.status = 429;
    ctx.type = 'application/json';
    ctx.body = { error: OAUTH_RATE_LIMITED, error_description: `too many requests; retry after ${retryAfterSeconds} seconds` };
  } else if (surface === 'page' && ctx.accepts('html')) {
    views.page(ctx, 'rate-limited.njk', { retryAfterSeconds, requestId: ctx.state.requestId }, 429);
  } else {
    problem(ctx, 429, 'rate-limited', `too many requests; retry after ${retryAfterSeconds} seconds`, { retryAfterSeconds });
  }
}
