// The provider's own addresses come from its configuration, never from the request. oidc-provider
// derives the endpoint URLs it publishes (discovery, redirects, audiences) from the request's host;
// a Host (or, behind a trusted proxy, X-Forwarded-Host) naming anything else would put another
// site into the discovery document a cache may keep, and one that is not a host at all fails URL
// parsing deep in the library. Such a request is served as if it had named the issuer's host.
import type { Middleware } from 'koa';

export function canonicalHost(issuer: string, otherOrigins: readonly string[] = []): Middleware {
  const issuerHost = new URL(issuer).host;
  const known = new Set([issuer, ...otherOrigins].map((origin) => new URL(origin).host));
  return async (ctx, next) => {
    // The header itself stays as sent: the loopback-only pages check it (DNS rebinding).
    if (!known.has(ctx.host)) Object.defineProperty(ctx.request, 'host', { value: issuerHost, configurable: true });
    await next();
  };
}
