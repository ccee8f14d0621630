import { createHmac } from 'node:crypto';
import type { Context, Middleware } from 'koa';
import { constantTimeEqual, randomToken } from '../security/crypto.ts';

const COOKIE = 'csrf';

// Synchroniser token bound to a per-browser cookie: forms carry HMAC(key, cookie). A cross-site
// page can neither read the cookie nor compute the token. Validates every non-GET request.
export function csrfProtection(key: string): Middleware {
  const tokenFor = (secret: string) => createHmac('sha256', key).update(secret).digest('base64url');
  return async (ctx, next) => {
    let secret = ctx.cookies.get(COOKIE);
    if (!secret || secret.length < 32) {
      secret = randomToken(32);
      ctx.cookies.set(COOKIE, secret, { httpOnly: true, sameSite: 'strict', secure: ctx.secure, overwrite: true });
    }
    ctx.state.csrfToken = tokenFor(secret);
    if (!['GET', 'HEAD', 'OPTIONS'].includes(ctx.method)) {
      const sent = formField(ctx, 'csrf');
      if (!sent || !constantTimeEqual(sent, ctx.state.csrfToken)) {
        ctx.throw(403, 'The form expired or was sent from another site. Go back and try again.', { messageKey: 'common.formExpired' });
      }
    }
    await next();
  };
}

export function formField(ctx: Context, name: string): string | undefined {
  const body = (ctx.request as { body?: Record<string, unknown> }).body;
  const value = body?.[name];
  return typeof value === 'string' ? value : undefined;
}
