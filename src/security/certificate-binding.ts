// Certificate-bound access tokens (RFC 8705 §3): a token whose confirmation names a certificate
// (`cnf["x5t#S256"]`, from introspection or the JWT itself) may be used only over a connection
// that presented that very certificate.
import { X509Certificate, createHash } from 'node:crypto';
import { constantTimeEqual } from './crypto.ts';

// The base64url SHA-256 of the certificate's DER encoding, as `x5t#S256` carries it.
export function certificateThumbprint(certificate: X509Certificate): string {
  return createHash('sha256').update(certificate.raw).digest('base64url');
}

// True when the token is not bound to a certificate, or is bound to the one presented.
// `token` is an introspection answer or a JWT access token's payload.
export function certificateThumbprintMatches(token: { cnf?: unknown }, presented: X509Certificate | undefined): boolean {
  const cnf = token.cnf;
  const expected = cnf && typeof cnf === 'object' ? (cnf as Record<string, unknown>)['x5t#S256'] : undefined;
  if (expected === undefined) return true;
  if (typeof expected !== 'string' || !presented) return false;
  return constantTimeEqual(certificateThumbprint(presented), expected);
}
