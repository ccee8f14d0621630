// Cross-site request forgery on the JSON APIs: a state-changing request that a browser could have
// sent on its own (it carries cookies, not an Authorization header, which a cross-site page cannot
// set without a CORS preflight this server never grants) must come from this server's own origin.
// Bearer-authenticated calls pass untouched: a forged request cannot carry the token.
import type { Middleware } from 'koa';
import { problem } from './errors.ts';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function sameOriginForCookieRequests(options: { issuer: string; prefix: string }): Middleware {
  const ownOrigin = new URL(options.issuer).origin;
  return async (ctx, next) => {
    if (SAFE_METHODS.has(ctx.method) || !ctx.path.startsWith(options.prefix) || ctx.get('authorization') || !ctx.get('cookie')) return next();
    const fetchSite = ctx.get('sec-fetch-site');
    const origin = ctx.get('origin');
    const crossSite = (fetchSite !== '' && fetchSite !== 'same-origin' && fetchSite !== 'none') || (origin !== '' && origin !== ownOrigin);
    if (crossSite) return problem(ctx, 403, 'cross-origin', 'state-changing requests with cookies must come from this server’s own pages');
    await next();
  };
}
