// The private key this provider authenticates to an upstream with (private_key_jwt), and the JWS
// algorithm it signs with.
import { importJWK, type CryptoKey, type JWK } from 'jose';
import { UpstreamError } from '../connector.ts';

const CURVE_ALGS: Record<string, string> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512', Ed25519: 'EdDSA' };

export function signingAlgorithm(jwk: JWK): string {
  if (jwk.alg) return jwk.alg;
  if (jwk.kty === 'RSA') return 'RS256';
  const alg = jwk.crv ? CURVE_ALGS[jwk.crv] : undefined;
  if (!alg) throw new UpstreamError('invalid_client', 'the connector key has no usable signing algorithm');
  return alg;
}

export interface ClientKey {
  key: CryptoKey;
  alg: string;
  kid?: string;
}

export async function importClientKey(jwk: JWK | undefined): Promise<ClientKey> {
  if (!jwk || !jwk.d) throw new UpstreamError('invalid_client', 'the connector has no private key for private_key_jwt');
  const alg = signingAlgorithm(jwk);
  try {
    const key = (await importJWK(jwk, alg)) as CryptoKey;
    return { key, alg, ...(jwk.kid && { kid: jwk.kid }) };
  } catch {
    throw new UpstreamError('invalid_client', 'the connector private key cannot be used');
  }
}
