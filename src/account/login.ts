// The account pages sign in like any other client: an authorization request with PKCE to this
// provider's own authorization endpoint. The code comes back to us, so it is redeemed in-process
// from the provider's AuthorizationCode model instead of over HTTP to our own token endpoint (no
// loopback call, no client secret): the same checks the token endpoint makes for a public client.
import { createHash, randomBytes } from 'node:crypto';
import type Provider from 'oidc-provider';
import { constantTimeEqual } from '../security/crypto.ts';
import { ACCOUNT_CLIENT_ID, accountConsoleUris } from './console-client.ts';

export interface AuthorizationOptions {
  issuer: string;
  state: string;
  verifier: string;
  tenant?: string;
  loginHint?: string;
  // Asks for a fresh sign-in even with a session (re-authentication).
  reauthenticate?: boolean;
}

export interface RedeemedLogin {
  accountId: string;
  sessionUid: string;
  authTime: number;
  amr: string[];
}

const MAX_CODE = 256;

export function newVerifier(): string {
  return randomBytes(32).toString('base64url');
}

function s256(verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url');
}

export function authorizationUrl(provider: Provider, options: AuthorizationOptions): string {
  const url = new URL(provider.urlFor('authorization'));
  const params: Record<string, string> = {
    client_id: ACCOUNT_CLIENT_ID,
    response_type: 'code',
    redirect_uri: accountConsoleUris(options.issuer).redirectUri,
    scope: 'openid profile email',
    state: options.state,
    code_challenge: s256(options.verifier),
    code_challenge_method: 'S256',
  };
  if (options.tenant) params.tenant = options.tenant;
  if (options.loginHint) params.login_hint = options.loginHint;
  if (options.reauthenticate) params.prompt = 'login';
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  return url.href;
}

export function endSessionUrl(provider: Provider, issuer: string): string {
  const url = new URL(provider.urlFor('end_session'));
  url.searchParams.set('client_id', ACCOUNT_CLIENT_ID);
  url.searchParams.set('post_logout_redirect_uri', accountConsoleUris(issuer).postLogoutRedirectUri);
  return url.href;
}

// The code's sign-in, once; undefined for anything not issued to the account pages with this
// verifier, expired or used.
export async function redeemCode(provider: Provider, issuer: string, code: unknown, verifier: string): Promise<RedeemedLogin | undefined> {
  if (typeof code !== 'string' || !code || code.length > MAX_CODE) return undefined;
  const found = await provider.AuthorizationCode.find(code);
  if (!found || (found as unknown as { consumed?: unknown }).consumed) return undefined;
  if (found.clientId !== ACCOUNT_CLIENT_ID || found.redirectUri !== accountConsoleUris(issuer).redirectUri) return undefined;
  if (found.codeChallengeMethod !== 'S256' || typeof found.codeChallenge !== 'string' || !constantTimeEqual(s256(verifier), found.codeChallenge)) return undefined;
  await found.consume();
  if (!found.accountId || !found.sessionUid || typeof found.authTime !== 'number') return undefined;
  return { accountId: found.accountId, sessionUid: found.sessionUid, authTime: found.authTime, amr: Array.isArray(found.amr) ? found.amr : [] };
}
