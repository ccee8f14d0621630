// A confidential client proving itself with HTTP Basic (RFC 6749 §2.3.1) at our own endpoints
// outside oidc-provider (the revocation stream, API-key verification). Secrets are stored as
// SHA-256 digests and compared in constant time; an unknown client costs what a wrong secret costs.
import type { ClientService } from './service.ts';
import { digestsEqual, sha256Hex } from '../security/crypto.ts';

const NO_SECRET = sha256Hex('');

export function basicCredentials(header: string): { clientId: string; clientSecret: string } | undefined {
  const match = /^Basic ([A-Za-z0-9+/]+=*)$/i.exec(header.trim());
  if (!match) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  try {
    // Both halves are form-urlencoded before encoding.
    const formDecode = (value: string) => decodeURIComponent(value.replace(/\+/g, ' '));
    return { clientId: formDecode(decoded.slice(0, colon)), clientSecret: formDecode(decoded.slice(colon + 1)) };
  } catch {
    return undefined;
  }
}

// The client id the Authorization header proves, or undefined.
export async function authenticatedClientId(header: string, clients: Pick<ClientService, 'providerMetadata'>): Promise<string | undefined> {
  const credentials = basicCredentials(header);
  if (!credentials) return undefined;
  const metadata = await clients.providerMetadata(credentials.clientId);
  const stored = typeof metadata?.client_secret === 'string' ? metadata.client_secret : NO_SECRET;
  const secretMatches = digestsEqual(stored, sha256Hex(credentials.clientSecret));
  return metadata && secretMatches && stored !== NO_SECRET ? credentials.clientId : undefined;
}
