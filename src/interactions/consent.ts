// The consent step: which scopes a client asks for and the grant that records them.
import type Provider from 'oidc-provider';
import type { Details } from './step.ts';

interface MissingConsent {
  missingOIDCScope?: string[];
  missingOIDCClaims?: string[];
  missingResourceScopes?: Record<string, string[]>;
}

export function requestedScopes(interaction: Details): string[] {
  const details = interaction.prompt.details as MissingConsent;
  return [...(details.missingOIDCScope ?? []), ...Object.values(details.missingResourceScopes ?? {}).flat()];
}

export async function grantConsent(provider: Provider, interaction: Details): Promise<string> {
  const details = interaction.prompt.details as MissingConsent;
  const accountId = interaction.session?.accountId;
  const existing = interaction.grantId ? await provider.Grant.find(interaction.grantId) : undefined;
  const grant = existing ?? new provider.Grant({ accountId, clientId: interaction.params.client_id as string });
  if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
  if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  return grant.save();
}
