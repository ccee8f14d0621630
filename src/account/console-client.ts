// The account pages are a first-party OIDC client of this provider ("account-console"): a public
// client (the code is redeemed in-process, never at the token endpoint) with PKCE, registered at
// startup and re-registered when the issuer, and with it the redirect URIs, changed.
import type { ClientService } from '../clients/service.ts';

export const ACCOUNT_CLIENT_ID = 'account-console';

export function accountConsoleUris(issuer: string) {
  return { redirectUri: `${issuer}/account/callback`, postLogoutRedirectUri: `${issuer}/account/signed-out` };
}

function sameList(value: unknown, expected: string[]): boolean {
  return Array.isArray(value) && value.length === expected.length && value.every((item, index) => item === expected[index]);
}

export async function ensureAccountConsoleClient(clients: ClientService, issuer: string): Promise<void> {
  const { redirectUri, postLogoutRedirectUri } = accountConsoleUris(issuer);
  const existing = await clients.get(ACCOUNT_CLIENT_ID);
  if (existing) {
    const metadata = existing.metadata;
    const current =
      existing.firstParty &&
      existing.tenantId === null &&
      metadata.token_endpoint_auth_method === 'none' &&
      sameList(metadata.redirect_uris, [redirectUri]) &&
      sameList(metadata.post_logout_redirect_uris, [postLogoutRedirectUri]) &&
      sameList(metadata.grant_types, ['authorization_code']);
    if (current) return;
    await clients.delete(ACCOUNT_CLIENT_ID);
  }
  try {
    await clients.create({
      clientId: ACCOUNT_CLIENT_ID,
      name: 'Account',
      redirectUris: [redirectUri],
      postLogoutRedirectUris: [postLogoutRedirectUri],
      grantTypes: ['authorization_code'],
      authMethod: 'none',
      scope: 'openid profile email',
      firstParty: true,
    });
  } catch (error) {
    // Another instance registered it at the same moment.
    if ((error as { code?: string }).code !== '23505') throw error;
  }
}
