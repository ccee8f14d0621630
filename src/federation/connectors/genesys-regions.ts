// The Genesys Cloud regions a genesys connector may name, and the upstream endpoints each implies.
// Genesys serves sign-in from login.<region> and its Platform API from api.<region>.
export const GENESYS_REGIONS = [
  'mypurecloud.com',
  'use2.us-gov-pure.cloud',
  'usw2.pure.cloud',
  'cac1.pure.cloud',
  'mypurecloud.ie',
  'euw2.pure.cloud',
  'mypurecloud.de',
  'euc2.pure.cloud',
  'aps1.pure.cloud',
  'mypurecloud.jp',
  'apne2.pure.cloud',
  'apne3.pure.cloud',
  'mypurecloud.com.au',
  'sae1.pure.cloud',
  'mec1.pure.cloud',
] as const;

export type GenesysRegion = (typeof GENESYS_REGIONS)[number];

export function isGenesysRegion(value: string): value is GenesysRegion {
  return (GENESYS_REGIONS as readonly string[]).includes(value);
}

export function genesysEndpoints(region: GenesysRegion): { authorizationEndpoint: string; tokenEndpoint: string; profileEndpoint: string } {
  return {
    authorizationEndpoint: `https://login.${region}/oauth/authorize`,
    tokenEndpoint: `https://login.${region}/oauth/token`,
    // organization: to enforce GenesysSettings.organizationId; authorization: the agent's roles.
    profileEndpoint: `https://api.${region}/api/v2/users/me?expand=organization,authorization`,
  };
}

// What GET users/me answers: { id, name, email, organization: { id }, authorization: { roles: [{ name }] } }.
export const GENESYS_CLAIM_MAPPING = { subject: 'id', email: 'email', name: 'name' } as const;
