// What a tenant's upstream identity provider connector is, shared by the parts of federation:
// the admin side stores and validates connectors (connectors/), the upstream client talks to the
// upstream (upstream/), and the login glue (login/) ties a sign-in to both.
import type { JWK } from 'jose';

// oidc: an OpenID Connect provider found from its issuer (discovery). oauth2: plain OAuth 2 with
// an authorize, a token and a profile endpoint and a claim mapping. genesys: OAuth 2 with the
// endpoints filled from a Genesys Cloud region and the agent's roles or divisions as groups.
export const CONNECTOR_KINDS = ['oidc', 'oauth2', 'genesys'] as const;
export type ConnectorKind = (typeof CONNECTOR_KINDS)[number];

export const UPSTREAM_CLIENT_AUTH = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'] as const;
export type UpstreamClientAuth = (typeof UPSTREAM_CLIENT_AUTH)[number];

// Dotted paths into the upstream profile JSON (or ID token claims): "id", "user.email",
// "authorization.roles.name" (a path through an array collects from every element).
export interface ClaimMapping {
  subject: string;
  email?: string;
  emailVerified?: string;
  name?: string;
  groups?: string;
}

export interface GenesysSettings {
  region: string;
  // When set, only agents of this Genesys organization may sign in.
  organizationId?: string;
  // Which of the agent's Genesys attributes become groups for the role mapping.
  groupSource: 'roles' | 'divisions';
}

export interface RoleMapping {
  // An upstream group (OIDC groups claim, mapped groups path, Genesys role or division name).
  group: string;
  roleId: string;
}

export interface Connector {
  id: string;
  tenantId: string;
  // Unique within the tenant, [a-z0-9-]; used in URLs. Linked identities hold the id, which survives a rename.
  name: string;
  displayName: string;
  kind: ConnectorKind;
  enabled: boolean;
  clientId: string;
  clientAuth: UpstreamClientAuth;
  scopes: string[];
  // oidc
  issuer?: string;
  useUserinfo: boolean;
  // oauth2 and genesys (genesys: filled from the region unless given)
  authorizationEndpoint?: string;
  tokenEndpoint?: string;
  profileEndpoint?: string;
  // oidc: optional (defaults: sub, email, email_verified, name, groups); oauth2: subject required;
  // genesys: defaults for the users/me shape.
  claimMapping?: ClaimMapping;
  genesys?: GenesysSettings;
  // The upstream's e-mail addresses count as verified when it says nothing either way.
  trustEmail: boolean;
  // Create the local user on the first sign-in through this connector.
  jitProvisioning: boolean;
  // Home-realm discovery: identifiers at these e-mail domains go straight to this connector.
  emailDomains: string[];
  roleMappings: RoleMapping[];
  // private_key_jwt: the public half of the key this provider signs its client assertions with,
  // to register at the upstream.
  publicJwk?: JWK;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

// Held encrypted at rest; only the upstream client sees them, never the admin API.
export interface ConnectorSecrets {
  clientSecret?: string;
  privateJwk?: JWK;
}

export type ConnectorWithSecrets = Connector & { secrets: ConnectorSecrets };

// Who the upstream says signed in, in the connector's terms.
export interface UpstreamProfile {
  subject: string;
  email?: string;
  emailVerified: boolean;
  name?: string;
  groups: string[];
}

// Why an upstream sign-in failed, in words an administrator and the person can act on.
export const UPSTREAM_FAILURES = [
  'unreachable', // network error, timeout or 5xx from the upstream
  'invalid_client', // the upstream refused our client credentials (wrong secret or key)
  'state_mismatch', // unknown, reused or foreign state
  'access_denied', // the person (or the upstream) declined
  'organization_mismatch', // Genesys: another organization than the one allowed
  'invalid_response', // a bad ID token, a profile without the mapped subject, an unexpected answer
  'upstream_error', // any other error the upstream reported
] as const;
export type UpstreamFailure = (typeof UPSTREAM_FAILURES)[number];

export class UpstreamError extends Error {
  readonly failure: UpstreamFailure;
  constructor(failure: UpstreamFailure, message: string) {
    super(message);
    this.name = 'UpstreamError';
    this.failure = failure;
  }
}
