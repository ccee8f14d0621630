// A connector's non-secret configuration as stored (connectors.settings), the checks that depend on
// its kind, and the defaults filled in when it is read.
import type { ClaimMapping, Connector, ConnectorKind, UpstreamClientAuth } from '../connector.ts';
import { isLoopbackHost, parseOutboundUrl } from '../../webhooks/destination.ts';
import { GENESYS_CLAIM_MAPPING, genesysEndpoints, type GenesysRegion } from './genesys-regions.ts';

// As stored: the endpoints as the administrator gave them (a genesys connector without them
// follows its region), publicJwk the public half of the sealed private key.
export type ConnectorSettings = Pick<
  Connector,
  'clientId' | 'clientAuth' | 'scopes' | 'issuer' | 'useUserinfo' | 'authorizationEndpoint' | 'tokenEndpoint' | 'profileEndpoint' | 'claimMapping' | 'genesys' | 'publicJwk'
>;

// What the administrator's input (merged over the stored connector, for a change) asks for.
export interface SettingsDraft {
  clientId: string;
  clientAuth?: UpstreamClientAuth;
  scopes?: string[];
  issuer?: string;
  useUserinfo?: boolean;
  authorizationEndpoint?: string | null;
  tokenEndpoint?: string | null;
  profileEndpoint?: string | null;
  claimMapping?: ClaimMapping | null;
  genesys?: { region: GenesysRegion; organizationId?: string; groupSource?: 'roles' | 'divisions' };
}

export const OIDC_DEFAULT_SCOPES = ['openid', 'profile', 'email'];
const ENDPOINTS = ['authorizationEndpoint', 'tokenEndpoint', 'profileEndpoint'] as const;

// Why the URL cannot be an upstream endpoint or issuer, or undefined when it can. Plain http only
// to this machine, and only where the deployment allows private-network peers (development, tests).
export function upstreamUrlProblem(value: string, allowPrivateNetwork: boolean, options: { issuer?: boolean } = {}): string | undefined {
  const url = parseOutboundUrl(value);
  if (typeof url === 'string') return url;
  if (options.issuer && url.search) return 'an issuer has no query';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:' && allowPrivateNetwork && isLoopbackHost(url.hostname)) return undefined;
  return allowPrivateNetwork ? 'must be https (plain http only to localhost)' : 'must be https';
}

// The settings to store, or the fields that are wrong (keyed body.<field>).
export function checkSettings(kind: ConnectorKind, draft: SettingsDraft, allowPrivateNetwork: boolean): { settings: ConnectorSettings; fields: Record<string, string> } {
  const fields: Record<string, string> = {};
  const url = (field: string, value: string | null | undefined, options: { issuer?: boolean } = {}) => {
    if (value == null) return undefined;
    const problem = upstreamUrlProblem(value, allowPrivateNetwork, options);
    if (problem) fields[`body.${field}`] = problem;
    return value;
  };
  const unused = (field: string, value: unknown, kinds: string) => {
    if (value != null) fields[`body.${field}`] = `only for ${kinds} connectors`;
  };
  const settings: ConnectorSettings = {
    clientId: draft.clientId,
    clientAuth: draft.clientAuth ?? 'client_secret_basic',
    scopes: [...new Set(draft.scopes ?? (kind === 'oidc' ? OIDC_DEFAULT_SCOPES : []))],
    useUserinfo: draft.useUserinfo ?? false,
  };
  if (draft.claimMapping) settings.claimMapping = draft.claimMapping;

  if (kind === 'oidc') {
    if (!draft.issuer) fields['body.issuer'] = 'required for an oidc connector';
    else settings.issuer = url('issuer', draft.issuer, { issuer: true });
    // An OpenID Connect request without openid is plain OAuth 2: there would be no ID token.
    if (!settings.scopes.includes('openid')) settings.scopes.unshift('openid');
    for (const field of ENDPOINTS) unused(field, draft[field], 'oauth2 and genesys (oidc reads them from discovery)');
    unused('genesys', draft.genesys, 'genesys');
  } else {
    unused('issuer', draft.issuer, 'oidc');
    if (draft.useUserinfo) fields['body.useUserinfo'] = 'only for oidc connectors';
    for (const field of ENDPOINTS) {
      const value = url(field, draft[field]);
      if (value) settings[field] = value;
    }
  }

  if (kind === 'oauth2') {
    for (const field of ENDPOINTS) if (!draft[field]) fields[`body.${field}`] = 'required for an oauth2 connector';
    if (!draft.claimMapping?.subject) fields['body.claimMapping.subject'] = 'required for an oauth2 connector: the path of the upstream user id in the profile';
    unused('genesys', draft.genesys, 'genesys');
  }

  if (kind === 'genesys') {
    if (!draft.genesys) fields['body.genesys.region'] = 'required for a genesys connector';
    else settings.genesys = { region: draft.genesys.region, groupSource: draft.genesys.groupSource ?? 'roles', ...(draft.genesys.organizationId ? { organizationId: draft.genesys.organizationId } : {}) };
  }
  return { settings, fields };
}

// The endpoints and claim mapping a connector uses: a genesys connector's defaults come from its
// region and the users/me shape, unless the administrator gave their own.
export function effectiveSettings(kind: ConnectorKind, settings: ConnectorSettings): Pick<ConnectorSettings, 'authorizationEndpoint' | 'tokenEndpoint' | 'profileEndpoint' | 'claimMapping'> {
  const explicit = { authorizationEndpoint: settings.authorizationEndpoint, tokenEndpoint: settings.tokenEndpoint, profileEndpoint: settings.profileEndpoint, claimMapping: settings.claimMapping };
  if (kind !== 'genesys' || !settings.genesys) return explicit;
  const region = genesysEndpoints(settings.genesys.region as GenesysRegion);
  return {
    authorizationEndpoint: settings.authorizationEndpoint ?? region.authorizationEndpoint,
    tokenEndpoint: settings.tokenEndpoint ?? region.tokenEndpoint,
    profileEndpoint: settings.profileEndpoint ?? region.profileEndpoint,
    claimMapping: settings.claimMapping ?? { ...GENESYS_CLAIM_MAPPING },
  };
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

// Lower-cased, without a trailing dot, each once; or the first domain that is no domain name.
export function normalizeDomains(values: string[]): { domains: string[]; invalid?: string } {
  const domains: string[] = [];
  for (const value of values) {
    const domain = value.trim().toLowerCase().replace(/\.$/, '');
    const labels = domain.split('.');
    const valid = domain.length <= 253 && labels.length >= 2 && labels.every((label) => LABEL.test(label)) && !/^\d+$/.test(labels[labels.length - 1]);
    if (!valid) return { domains, invalid: value };
    if (!domains.includes(domain)) domains.push(domain);
  }
  return { domains };
}
