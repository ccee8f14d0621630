// Genesys Cloud: OAuth 2 (authorization code with PKCE) against login.{region}, the agent from
// api.{region}/api/v2/users/me with their organization and authorization expanded, and their roles
// or division as groups. Genesys addresses are managed by the organization, so whether they count
// as verified is the connector's trustEmail.
import type { ClaimMapping, ConnectorWithSecrets, UpstreamProfile } from '../connector.ts';
import { UpstreamError } from '../connector.ts';
import { mapProfile, stringAt } from './claim-paths.ts';
import { checkCallback, safeCode } from './errors.ts';
import type { createOAuth2Flow, OAuth2Endpoints } from './oauth2.ts';
import type { UpstreamTransaction } from './types.ts';

const REGION = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/;
// users/me leaves these out unless asked for.
const EXPAND = ['organization', 'authorization'];

export function genesysEndpoints(connector: ConnectorWithSecrets): OAuth2Endpoints {
  const region = connector.genesys?.region ?? '';
  const fromRegion = REGION.test(region);
  const authorizationEndpoint = connector.authorizationEndpoint ?? (fromRegion ? `https://login.${region}/oauth/authorize` : undefined);
  const tokenEndpoint = connector.tokenEndpoint ?? (fromRegion ? `https://login.${region}/oauth/token` : undefined);
  const profileEndpoint = connector.profileEndpoint ?? (fromRegion ? `https://api.${region}/api/v2/users/me` : undefined);
  if (!authorizationEndpoint || !tokenEndpoint || !profileEndpoint) throw new UpstreamError('unreachable', 'the Genesys connector has no usable region');
  return { authorizationEndpoint, tokenEndpoint, profileEndpoint };
}

function profileUrl(endpoint: string): URL {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new UpstreamError('unreachable', 'the connector profile endpoint is not a URL');
  }
  const expand = new Set((url.searchParams.get('expand') ?? '').split(',').filter(Boolean));
  for (const item of EXPAND) expand.add(item);
  url.searchParams.set('expand', [...expand].join(','));
  return url;
}

export function genesysMapping(connector: ConnectorWithSecrets): ClaimMapping {
  const groups = connector.genesys?.groupSource === 'divisions' ? 'division.name' : 'authorization.roles.name';
  return { subject: 'id', email: 'email', name: 'name', groups, ...connector.claimMapping };
}

export function createGenesysFlow(oauth2: ReturnType<typeof createOAuth2Flow>) {
  return {
    begin(connector: ConnectorWithSecrets, redirectUri: string, extra?: { loginHint?: string }) {
      return oauth2.begin(connector, genesysEndpoints(connector), redirectUri, extra);
    },

    async complete(connector: ConnectorWithSecrets, transaction: UpstreamTransaction, callback: URLSearchParams): Promise<UpstreamProfile> {
      checkCallback(transaction, callback);
      const endpoints = genesysEndpoints(connector);
      const user = await oauth2.profileDocument(connector, endpoints, transaction, callback, profileUrl(endpoints.profileEndpoint));
      const required = connector.genesys?.organizationId;
      if (required) {
        const organization = stringAt(user, 'organization.id');
        if (organization !== required) {
          throw new UpstreamError('organization_mismatch', organization ? `the agent belongs to Genesys organization ${safeCode(organization)}, not ${safeCode(required)}` : 'the Genesys profile names no organization');
        }
      }
      // No e-mail verification flag in Genesys: mapProfile falls back to trustEmail.
      const { emailVerified: _ignored, ...mapping } = genesysMapping(connector);
      return mapProfile(user, mapping, connector.trustEmail);
    },
  };
}
