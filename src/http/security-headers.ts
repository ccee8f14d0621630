// Baseline headers for every response. Pages get a strict Content-Security-Policy with a fresh
// nonce per response for scripts (views put it on their <script> elements) and the hash of their
// inline style; framing is refused, HSTS is sent on HTTPS (directly or through a trusted proxy),
// and nothing names the server.
import { createHash, randomBytes } from 'node:crypto';
import type { Context, Middleware } from 'koa';
import type { CspSources } from '../security/captcha/index.ts';


export interface SecurityHeadersOptions {
  // Extra origins a page needs (a hosted CAPTCHA widget's script and frame).
  extraSources?: CspSources;
}

export const HSTS = 'max-age=31536000; includeSubDomains';

export function contentSecurityPolicy(nonce: string, extra?: CspSources): string {
  const directives = [
    "default-src 'none'",
    ['script-src', `'nonce-${nonce}'`, ...(extra?.scriptSrc ?? [])].join(' '),
    ['style-src', `'nonce-${nonce}'`, ...(extra?.styleSrc ?? [])].join(' '),
    "img-src 'self' data:",
    extra?.frameSrc.length ? ['frame-src', ...extra.frameSrc].join(' ') : undefined,
    extra?.connectSrc.length ? ['connect-src', ...extra.connectSrc].join(' ') : undefined,
    // No form-action: browsers apply it to the redirects after a form post, and the login form
    // ends in a redirect to the client, which may be any origin or a native app's scheme.
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ];
  return directives.filter(Boolean).join('; ');
}

// The layout's inline <style> (it carries the tenant's colours) is allowed by its hash rather than
// the nonce: a page's body then stays byte-for-byte the same from one response to the next (the
// sign-in pages must not differ by anything but what they say), while scripts still need the
// per-response nonce. Templates are ours and escape everything they are given, so every <style>
// in the rendered page is one we wrote.
export function allowInlineStyles(ctx: Context, html: string): void {
  const policy = ctx.response.get('Content-Security-Policy');
  if (!policy) return;
  const hashes = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((match) => `'sha256-${createHash('sha256').update(match[1], 'utf8').digest('base64')}'`);
  if (!hashes.length) return;
  ctx.set('Content-Security-Policy', policy.split(';').map((directive) => (directive.trim().startsWith('style-src ') ? `${directive} ${[...new Set(hashes)].join(' ')}` : directive)).join(';'));
}

// Nonces come from a pool of CSPRNG bytes refilled 256 nonces at a time: one getrandom call per
// request cost more than the rest of this middleware. No byte is handed out twice.
const NONCE_BYTES = 16;
const POOL_NONCES = 256;
let pool = Buffer.alloc(0);
let offset = 0;

function nextNonce(): string {
  if (offset + NONCE_BYTES > pool.length) {
    pool = randomBytes(NONCE_BYTES * POOL_NONCES);
    offset = 0;
  }
  const nonce = pool.toString('base64', offset, offset + NONCE_BYTES);
  offset += NONCE_BYTES;
  return nonce;
}

export function securityHeaders(options: SecurityHeadersOptions = {}): Middleware {
  return async (ctx, next) => {
    const nonce = nextNonce();
    ctx.state.cspNonce = nonce;
    // Set before the handler runs: oidc-provider adds the hash of its own inline script (the
    // form_post response page) to the script-src it finds.
    ctx.set('Content-Security-Policy', contentSecurityPolicy(nonce, options.extraSources));
    try {
      await next();
    } finally {
      if (!ctx.response.get('Content-Security-Policy')) ctx.set('Content-Security-Policy', contentSecurityPolicy(nonce, options.extraSources));
      ctx.set('X-Content-Type-Options', 'nosniff');
      ctx.set('Referrer-Policy', 'no-referrer');
      ctx.set('X-Frame-Options', 'DENY');
      ctx.remove('X-Powered-By');
      ctx.remove('Server');
      if (ctx.secure) ctx.set('Strict-Transport-Security', HSTS);
    }
  };
}
