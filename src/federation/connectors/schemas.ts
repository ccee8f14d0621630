// The shape of a connector as an administrator writes it. What depends on the kind (which fields
// it needs, how URLs may look, which domains are free) is checked by settings.ts and the service.
import { z } from 'zod';
import { CONNECTOR_KINDS, UPSTREAM_CLIENT_AUTH } from '../connector.ts';
import { GENESYS_REGIONS } from './genesys-regions.ts';

export const CONNECTOR_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const MAX_EMAIL_DOMAINS = 50;
export const MAX_ROLE_MAPPINGS = 500;
export const MAX_URL_LENGTH = 2048;

const url = z.string().min(1).max(MAX_URL_LENGTH);
// "id", "user.email", "authorization.roles.name"
const claimPath = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9_:$@-]+(\.[A-Za-z0-9_:$@-]+)*$/, { message: 'must be a dotted path such as "user.email"' });

export const claimMappingSchema = z
  .object({ subject: claimPath, email: claimPath.optional(), emailVerified: claimPath.optional(), name: claimPath.optional(), groups: claimPath.optional() })
  .strict();

export const genesysSchema = z
  .object({
    region: z.enum(GENESYS_REGIONS, { message: `must be a Genesys Cloud region: ${GENESYS_REGIONS.join(', ')}` }),
    organizationId: z.string().trim().min(1).max(128).optional().describe('only agents of this Genesys organization may sign in'),
    groupSource: z.enum(['roles', 'divisions']).optional().describe('which Genesys attributes become groups for the role mappings (default roles)'),
  })
  .strict();

export const roleMappingSchema = z.object({ group: z.string().trim().min(1).max(256), roleId: z.uuid({ message: 'must be a UUID' }) }).strict();
export const roleMappingsSchema = z.array(roleMappingSchema).max(MAX_ROLE_MAPPINGS);

const fields = {
  displayName: z.string().trim().min(1).max(200).describe('what the sign-in page shows on the button'),
  enabled: z.boolean(),
  clientId: z.string().min(1).max(512).describe('this provider’s client id at the upstream'),
  clientAuth: z.enum(UPSTREAM_CLIENT_AUTH).describe('how this provider authenticates at the upstream token endpoint (default client_secret_basic)'),
  clientSecret: z.string().min(1).max(4096).describe('write-only; required for client_secret_basic and client_secret_post'),
  privateJwk: z.record(z.string(), z.unknown()).describe('write-only; private_key_jwt: your own private key; generated (ES256) when left out'),
  scopes: z
    .array(z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]{1,200}$/, { message: 'must be a scope token (no spaces or quotes)' }))
    .max(50)
    .describe('default: openid profile email for oidc, none otherwise'),
  issuer: url.describe('oidc: the issuer, whose discovery document describes the upstream'),
  useUserinfo: z.boolean().describe('oidc: also read the userinfo endpoint'),
  authorizationEndpoint: url,
  tokenEndpoint: url,
  profileEndpoint: url.describe('oauth2 and genesys: the JSON profile read with the access token'),
  claimMapping: claimMappingSchema,
  genesys: genesysSchema,
  trustEmail: z.boolean().describe('count the upstream’s e-mail addresses as verified when it says nothing either way'),
  jitProvisioning: z.boolean().describe('create the local user at the first sign-in'),
  emailDomains: z.array(z.string().min(1).max(253)).max(MAX_EMAIL_DOMAINS).describe('home-realm discovery: identifiers at these domains go to this connector'),
};

export const createConnectorSchema = z
  .object({
    name: z.string().regex(CONNECTOR_NAME, { message: 'must be 1-63 lowercase letters, digits or hyphens, starting with a letter or digit' }),
    kind: z.enum(CONNECTOR_KINDS),
    displayName: fields.displayName,
    clientId: fields.clientId,
    enabled: fields.enabled.optional(),
    clientAuth: fields.clientAuth.optional(),
    clientSecret: fields.clientSecret.optional(),
    privateJwk: fields.privateJwk.optional(),
    scopes: fields.scopes.optional(),
    issuer: fields.issuer.optional(),
    useUserinfo: fields.useUserinfo.optional(),
    authorizationEndpoint: fields.authorizationEndpoint.optional(),
    tokenEndpoint: fields.tokenEndpoint.optional(),
    profileEndpoint: fields.profileEndpoint.optional(),
    claimMapping: fields.claimMapping.optional(),
    genesys: fields.genesys.optional(),
    trustEmail: fields.trustEmail.optional(),
    jitProvisioning: fields.jitProvisioning.optional(),
    emailDomains: fields.emailDomains.optional(),
    roleMappings: roleMappingsSchema.optional(),
  })
  .strict();

// name and kind are fixed at creation (linked identities carry the name). null takes an optional
// setting back to its default (an explicit genesys endpoint back to the region's).
export const updateConnectorSchema = z
  .object({
    displayName: fields.displayName.optional(),
    enabled: fields.enabled.optional(),
    clientId: fields.clientId.optional(),
    clientAuth: fields.clientAuth.optional(),
    clientSecret: fields.clientSecret.optional(),
    privateJwk: fields.privateJwk.optional(),
    scopes: fields.scopes.optional(),
    issuer: fields.issuer.optional(),
    useUserinfo: fields.useUserinfo.optional(),
    authorizationEndpoint: fields.authorizationEndpoint.nullable().optional(),
    tokenEndpoint: fields.tokenEndpoint.nullable().optional(),
    profileEndpoint: fields.profileEndpoint.nullable().optional(),
    claimMapping: fields.claimMapping.nullable().optional(),
    genesys: fields.genesys.optional(),
    trustEmail: fields.trustEmail.optional(),
    jitProvisioning: fields.jitProvisioning.optional(),
    emailDomains: fields.emailDomains.optional(),
  })
  .strict();

export const setRoleMappingsSchema = z.object({ roleMappings: roleMappingsSchema }).strict();

export type CreateConnectorInput = z.infer<typeof createConnectorSchema>;
export type UpdateConnectorInput = z.infer<typeof updateConnectorSchema>;
export type RoleMappingInput = z.infer<typeof roleMappingSchema>;
