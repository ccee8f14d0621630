// Runs first: fixes ctx.ip (and so every use of it: logs, audit, sessions, limits) to the client
// address src/security/client-ip.ts derives. Koa's own `proxy = true` would believe
// X-Forwarded-For, -Proto and -Host from any peer; for a peer that is not a trusted proxy this
// puts back what the socket says, so a spoofed header changes neither the address nor whether
// the request counts as HTTPS (secure cookies, HSTS) nor its host.
import type { Middleware } from 'koa';
import type { TLSSocket } from 'node:tls';
import { normalizeAddress } from '../security/cidr.ts';
import type { ClientAddressResolver } from '../security/client-ip.ts';

export function clientAddress(resolver: ClientAddressResolver): Middleware {
  return async (ctx, next) => {
    const peer = ctx.req.socket.remoteAddress ?? '';
    const trusted = resolver.trusts(normalizeAddress(peer));
    if (ctx.app.proxy && !trusted) {
      const protocol = (ctx.req.socket as TLSSocket).encrypted ? 'https' : 'http';
      Object.defineProperty(ctx.request, 'protocol', { value: protocol, configurable: true });
      Object.defineProperty(ctx.request, 'host', { value: ctx.get(':authority') || ctx.get('host'), configurable: true });
      Object.defineProperty(ctx.request, 'ips', { value: [], configurable: true });
    }
    ctx.request.ip = resolver.resolve(peer, trusted ? ctx.get('x-forwarded-for') || undefined : undefined);
    await next();
  };
}
