// Two client errors oidc-provider answers as invalid_request, where RFC 6749 section 5.2 names
// them: a request with no client authentication at all is invalid_client (401, with a challenge,
// as RFC 9110 requires of every 401; RFC 7662 and RFC 7009 defer to this for introspection and
// revocation), and a grant type the client is not registered for is unauthorized_client.
// The library's wording is matched exactly; the bad-input end-to-end suite catches any drift.
import type { Middleware } from 'koa';

const REWRITES = new Map<string, { status: number; error: string }>([
  ['no client authentication mechanism provided', { status: 401, error: 'invalid_client' }],
  ['requested grant type is not allowed for this client', { status: 400, error: 'unauthorized_client' }],
]);

export function rfc6749ClientErrors(issuer: string): Middleware {
  return async (ctx, next) => {
    await next();
    const body = ctx.body as { error?: unknown; error_description?: unknown } | null | undefined;
    if (ctx.status !== 400 || !body || typeof body !== 'object' || body.error !== 'invalid_request') return;
    const rewrite = typeof body.error_description === 'string' ? REWRITES.get(body.error_description) : undefined;
    if (!rewrite) return;
    ctx.body = { ...body, error: rewrite.error };
    ctx.status = rewrite.status;
    if (rewrite.status === 401) ctx.set('WWW-Authenticate', `Basic realm="${issuer}"`);
  };
}
