// What this resource server has learned is revoked, kept only as long as a token issued before the
// revocation could still be valid (the access token lifetime), so memory stays bounded.
import type { RevocationStreamEvent } from './revocation-stream.ts';

export interface TokenClaims {
  sub: string;
  jti?: string;
  // The provider session the token was issued in, when the token carries it.
  sid?: string;
  iat?: number;
  exp?: number;
}

// Does this event revoke this token? A session event matches tokens that carry that session's
// `sid`; the provider's access tokens carry none today, and it names every JWT access token of an
// ended session in a `token.revoked` event of its own, so those match by `jti`. A suspension
// refuses every token of the user issued up to it.
export function revokes(event: RevocationStreamEvent, claims: TokenClaims): boolean {
  switch (event.type) {
    case 'token.revoked':
      return event.jti !== undefined && event.jti === claims.jti;
    case 'session.revoked':
      return claims.sid !== undefined && event.sessionId === claims.sid;
    case 'user.suspended':
      return event.userId !== undefined && event.userId === claims.sub && (claims.iat ?? 0) <= Math.floor(Date.parse(event.at) / 1000);
    default:
      return false;
  }
}

export function createRevokedList(retainSeconds: number) {
  const remembered = new Map<string, { event: RevocationStreamEvent; until: number }>();
  // Indexes so a request costs a few map lookups, not a scan.
  const byKey = new Map<string, Set<string>>();
  const keysOf = (event: RevocationStreamEvent) =>
    [event.jti && `jti:${event.jti}`, event.sessionId && `sid:${event.sessionId}`, event.userId && `sub:${event.userId}`].filter((key): key is string => Boolean(key));

  function forget(id: string): void {
    const entry = remembered.get(id);
    if (!entry) return;
    remembered.delete(id);
    for (const key of keysOf(entry.event)) {
      byKey.get(key)?.delete(id);
      if (byKey.get(key)?.size === 0) byKey.delete(key);
    }
  }

  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const [id, entry] of remembered) if (entry.until <= now) forget(id);
  }, 60_000);
  sweeper.unref();

  return {
    add(event: RevocationStreamEvent): void {
      if (remembered.has(event.id)) return;
      const at = Date.parse(event.at);
      remembered.set(event.id, { event, until: (Number.isNaN(at) ? Date.now() : at) + retainSeconds * 1000 });
      for (const key of keysOf(event)) {
        if (!byKey.has(key)) byKey.set(key, new Set());
        byKey.get(key)!.add(event.id);
      }
    },
    // The revocation that refuses this token, if any.
    refusing(claims: TokenClaims): RevocationStreamEvent | undefined {
      const candidates = [claims.jti && `jti:${claims.jti}`, claims.sid && `sid:${claims.sid}`, `sub:${claims.sub}`];
      for (const key of candidates) {
        if (!key) continue;
        for (const id of byKey.get(key) ?? []) {
          const event = remembered.get(id)?.event;
          if (event && revokes(event, claims)) return event;
        }
      }
      return undefined;
    },
    size: () => remembered.size,
    close: () => clearInterval(sweeper),
  };
}
