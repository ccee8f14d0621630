import type { Middleware } from 'koa';

// Baseline headers for every response; pages get a strict CSP (no external assets exist).
export function securityHeaders(): Middleware {
  return async (ctx, next) => {
    await next();
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    if (ctx.response.is('html')) {
      ctx.set('X-Frame-Options', 'DENY');
      if (!ctx.response.get('Content-Security-Policy')) {
        // No form-action: browsers apply it to the redirects after a form post, and the login form
        // ends in a redirect to the client, which may be any origin or a native app's scheme.
        ctx.set('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'");
      }
    }
    if (ctx.secure) ctx.set('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
  };
}
