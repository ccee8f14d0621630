// The key a private_key_jwt connector signs its client assertions with (RFC 7523): generated here
// (ES256) unless the administrator brings one. The private half is sealed with the connector's
// other secrets; the public half is what the administrator registers at the upstream.
import { calculateJwkThumbprint, compactVerify, CompactSign, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { privateMembersOf } from '../../security/jwk.ts';

const CURVE_ALGORITHMS: Record<string, string> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512', Ed25519: 'EdDSA' };
const RSA_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
const MIN_RSA_BYTES = 256;

export async function generateSigningKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: await calculateJwkThumbprint(jwk), alg: 'ES256', use: 'sig' };
}

function algorithmOf(jwk: JWK): string | undefined {
  if (jwk.kty === 'RSA') {
    if (jwk.alg !== undefined) return RSA_ALGORITHMS.includes(jwk.alg) ? jwk.alg : undefined;
    return 'RS256';
  }
  const algorithm = (jwk.kty === 'EC' || jwk.kty === 'OKP') && jwk.crv ? CURVE_ALGORITHMS[jwk.crv] : undefined;
  if (jwk.alg !== undefined && jwk.alg !== algorithm) return undefined;
  return algorithm;
}

// A key an administrator supplied, completed with kid, alg and use; or why it cannot be used.
export async function acceptSigningKey(input: Record<string, unknown>): Promise<{ jwk: JWK } | { problem: string }> {
  const jwk = { ...input } as JWK;
  if (jwk.kty === 'oct') return { problem: 'must be an asymmetric key (EC, RSA or OKP), not a shared secret' };
  if (!privateMembersOf(jwk).includes('d')) return { problem: 'must be a private key (with "d")' };
  const alg = algorithmOf(jwk);
  if (!alg) return { problem: 'must be an EC (P-256, P-384, P-521), Ed25519 or RSA key, with a matching "alg" if one is given' };
  if (jwk.kty === 'RSA' && Buffer.from(String(jwk.n ?? ''), 'base64url').length < MIN_RSA_BYTES) return { problem: 'an RSA key must have at least 2048 bits' };
  if (jwk.use !== undefined && jwk.use !== 'sig') return { problem: 'must be a signing key ("use": "sig")' };
  try {
    // Sign with the private half and verify with the public one: both halves belong together.
    const payload = new TextEncoder().encode('connector key check');
    const signed = await new CompactSign(payload).setProtectedHeader({ alg }).sign(await importJWK(jwk, alg));
    await compactVerify(signed, await importJWK(publicMembersOf(jwk), alg));
  } catch {
    return { problem: 'is not a valid key, or its private and public parts do not belong together' };
  }
  const kid = typeof jwk.kid === 'string' && jwk.kid ? jwk.kid : await calculateJwkThumbprint(publicMembersOf(jwk));
  return { jwk: { ...publicMembersOf(jwk), ...Object.fromEntries(privateMembersOf(jwk).map((member) => [member, (jwk as Record<string, unknown>)[member]])), kid, alg, use: 'sig' } };
}

// Only the members that describe the public key, so nothing else the administrator sent travels on.
function publicMembersOf(jwk: JWK): JWK {
  return jwk.kty === 'RSA' ? { kty: jwk.kty, n: jwk.n, e: jwk.e } : { kty: jwk.kty, crv: jwk.crv, x: jwk.x, ...(jwk.y !== undefined ? { y: jwk.y } : {}) };
}

export function publicJwkOf(jwk: JWK): JWK {
  return { ...publicMembersOf(jwk), kid: jwk.kid, alg: jwk.alg, use: 'sig' };
}
