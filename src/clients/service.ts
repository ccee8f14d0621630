// OAuth clients stored in PostgreSQL. Secrets are generated here, shown once and kept only as
// SHA-256 (they are 256-bit random, so a slow hash would add nothing but latency).
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { Database } from '../store/database.ts';
import type { HotStore } from '../store/hot-store.ts';
import { BroadcastCache } from '../store/local-cache.ts';
import { randomToken, sha256Hex } from '../security/crypto.ts';
import { privateMembersOf } from '../security/jwk.ts';
import { clientQueries, type ClientRow } from './queries.ts';
import type { AuditService } from '../audit/service.ts';
import { originOf, type ChangeOrigin } from '../audit/origin.ts';
import { changeDetails } from '../audit/mask.ts';
import { DEFAULT_TENANT_ID } from '../tenants/constants.ts';

export const CLIENT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none', 'tls_client_auth', 'self_signed_tls_client_auth'] as const;
export type ClientAuthMethod = (typeof CLIENT_AUTH_METHODS)[number];
// Mutual TLS (RFC 8705): offered only where the provider sees client certificates (src/clients/mtls.ts).
export const MTLS_AUTH_METHODS = ['tls_client_auth', 'self_signed_tls_client_auth'] as const;

// The certificate subject a tls_client_auth client registers: exactly one of these.
export interface TlsClientAuthSubject {
  subjectDn?: string;
  sanDns?: string;
  sanIp?: string;
  sanEmail?: string;
  sanUri?: string;
}

const SUBJECT_FIELDS = {
  subjectDn: 'tls_client_auth_subject_dn',
  sanDns: 'tls_client_auth_san_dns',
  sanIp: 'tls_client_auth_san_ip',
  sanEmail: 'tls_client_auth_san_email',
  sanUri: 'tls_client_auth_san_uri',
} as const satisfies Record<keyof TlsClientAuthSubject, string>;

export interface NewClient {
  clientId?: string;
  // The tenant a machine client acts for; interactive clients may be shared by every tenant.
  tenantId?: string;
  name: string;
  redirectUris?: string[];
  postLogoutRedirectUris?: string[];
  grantTypes?: string[];
  authMethod?: ClientAuthMethod;
  scope?: string;
  firstParty?: boolean;
  backchannelLogoutUri?: string;
  jwksUri?: string;
  jwks?: { keys: unknown[] };
  tlsClientAuth?: TlsClientAuthSubject;
  // Access tokens bound to the client certificate (RFC 8705 §3); default: on for the mTLS methods.
  certificateBoundAccessTokens?: boolean;
}

export interface ClientRecord {
  clientId: string;
  tenantId: string | null;
  metadata: Record<string, unknown>;
  firstParty: boolean;
  createdAt: Date;
}

// What oidc-provider receives: the metadata plus the secret's digest in place of the secret.
export type ProviderClientMetadata = Record<string, unknown> & { client_id: string };

export class ClientValidationError extends Error {}

// A client that authenticates with keys or certificates has no secret to replace.
export class ClientWithoutSecretError extends Error {}

// A client registers public keys only; a private or symmetric key here would be a leaked secret.
function assertPublicKeys(jwks: { keys: unknown[] }): void {
  for (const key of jwks.keys) {
    const leaked = typeof key === 'object' && key ? privateMembersOf(key) : [];
    if (leaked.length) {
      throw new ClientValidationError(`client keys must be public keys: remove the private members ${leaked.join(', ')} and register the public key only`);
    }
  }
}

function applyMutualTls(metadata: Record<string, unknown>, authMethod: ClientAuthMethod, input: NewClient): void {
  const subject = Object.entries(input.tlsClientAuth ?? {}).filter(([, value]) => value !== undefined && value !== '');
  if (subject.length && authMethod !== 'tls_client_auth') {
    throw new ClientValidationError('a certificate subject (tlsClientAuth) is registered only with the tls_client_auth method');
  }
  if (authMethod === 'tls_client_auth' && subject.length !== 1) {
    throw new ClientValidationError('tls_client_auth needs exactly one certificate subject: subjectDn, sanDns, sanIp, sanEmail or sanUri');
  }
  for (const [field, value] of subject) metadata[SUBJECT_FIELDS[field as keyof TlsClientAuthSubject]] = value;
  const bound = input.certificateBoundAccessTokens ?? (MTLS_AUTH_METHODS as readonly string[]).includes(authMethod);
  if (bound) metadata.tls_client_certificate_bound_access_tokens = true;
}

export interface ClientServiceOptions {
  db: Database;
  hot: HotStore;
  // oidc-provider's own metadata validation, so nothing is stored that the provider would refuse.
  validate?: (metadata: Record<string, unknown>) => Promise<void>;
  // Registrations and deletions are recorded in the transaction that makes them.
  audit: Pick<AuditService, 'record'>;
}

type AuditedClient = Pick<ClientRow, 'client_id' | 'secret_sha256' | 'metadata' | 'first_party' | 'tenant_id'>;

// What an audit entry shows of a client: its metadata (public keys and the secret masked).
function auditView(row: AuditedClient): Record<string, unknown> {
  return { ...row.metadata, first_party: row.first_party, tenant_id: row.tenant_id, client_secret: row.secret_sha256 ? 'set' : null };
}

export function createClientService(options: ClientServiceOptions) {
  const queries = clientQueries(options.db);
  const cache = new BroadcastCache<{ row: ClientRow } | { missing: true }>(options.hot, 'clients:changed', {
    max: 10_000,
    ttlSeconds: 60,
  });

  function toRecord(row: ClientRow): ClientRecord {
    return { clientId: row.client_id, tenantId: row.tenant_id, metadata: row.metadata, firstParty: row.first_party, createdAt: row.created_at };
  }

  // A shared client (no tenant) is the platform tenant's to record.
  async function record(trx: Knex.Transaction, type: string, row: AuditedClient, details: Record<string, unknown>, origin: ChangeOrigin | undefined) {
    await options.audit.record(trx, { tenantId: row.tenant_id ?? DEFAULT_TENANT_ID, type, outcome: 'success', ...originOf(origin), target: { type: 'client', id: row.client_id }, details });
  }

  async function cachedRow(clientId: string): Promise<ClientRow | undefined> {
    const entry = await cache.get(clientId, async () => {
      const row = await queries.find(clientId);
      return row ? { row } : { missing: true as const };
    });
    return entry && 'row' in entry ? entry.row : undefined;
  }

  return {
    start: () => cache.start(),

    async create(input: NewClient, origin?: ChangeOrigin): Promise<{ client: ClientRecord; clientSecret?: string }> {
      const authMethod = input.authMethod ?? 'client_secret_basic';
      const grantTypes = input.grantTypes ?? ['authorization_code', 'refresh_token'];
      const usesRedirects = grantTypes.includes('authorization_code');
      const metadata: Record<string, unknown> = {
        client_id: input.clientId ?? randomUUID(),
        client_name: input.name,
        grant_types: grantTypes,
        response_types: usesRedirects ? ['code'] : [],
        redirect_uris: usesRedirects ? (input.redirectUris ?? []) : [],
        post_logout_redirect_uris: input.postLogoutRedirectUris ?? [],
        token_endpoint_auth_method: authMethod,
      };
      if (input.scope) metadata.scope = input.scope;
      if (input.backchannelLogoutUri) {
        metadata.backchannel_logout_uri = input.backchannelLogoutUri;
        metadata.backchannel_logout_session_required = true;
      }
      if (input.jwksUri) metadata.jwks_uri = input.jwksUri;
      applyMutualTls(metadata, authMethod, input);
      if (input.jwks) {
        assertPublicKeys(input.jwks);
        metadata.jwks = input.jwks;
      }

      const clientSecret = authMethod.startsWith('client_secret_') ? randomToken(32) : undefined;
      const secretSha256 = clientSecret ? sha256Hex(clientSecret) : null;
      if (options.validate) {
        try {
          await options.validate(secretSha256 ? { ...metadata, client_secret: secretSha256 } : metadata);
        } catch (error) {
          const description = (error as { error_description?: string }).error_description ?? String(error);
          // The provider offers the mutual TLS methods only where it can see client certificates.
          if ((MTLS_AUTH_METHODS as readonly string[]).includes(authMethod) && description.startsWith('token_endpoint_auth_method')) {
            throw new ClientValidationError(`${authMethod} is not available: this deployment sees no client certificates (set TLS_CERT_FILE and TLS_KEY_FILE, or MTLS_CERTIFICATE_HEADER behind a trusted proxy)`);
          }
          throw new ClientValidationError(description);
        }
      }
      const row = { client_id: metadata.client_id as string, secret_sha256: secretSha256, metadata, first_party: input.firstParty ?? false, tenant_id: input.tenantId ?? null };
      await options.db.transaction(async (trx) => {
        await clientQueries(trx).insert(row);
        await record(trx, 'client.create', row, changeDetails(null, auditView(row)), origin);
      });
      await cache.invalidate(row.client_id);
      return { client: { clientId: row.client_id, tenantId: row.tenant_id, metadata, firstParty: row.first_party, createdAt: new Date() }, clientSecret };
    },

    // A new secret replaces the old one at once, on every instance (Keycloak's "Regenerate
    // secret"); tokens already issued stay valid. Undefined: no such client. Only a client that
    // authenticates with a secret has one to replace.
    async rotateSecret(clientId: string, origin?: ChangeOrigin): Promise<string | undefined> {
      const clientSecret = randomToken(32);
      const rotated = await options.db.transaction(async (trx) => {
        const row = await clientQueries(trx).findForUpdate(clientId);
        if (!row) return false;
        if (!row.secret_sha256) throw new ClientWithoutSecretError(`client ${clientId} authenticates with ${String(row.metadata.token_endpoint_auth_method)}: it has no secret`);
        await clientQueries(trx).replaceSecret(clientId, sha256Hex(clientSecret));
        await record(trx, 'client.secret_rotate', row, {}, origin);
        return true;
      });
      if (!rotated) return undefined;
      await cache.invalidate(clientId);
      return clientSecret;
    },

    async list(tenantId?: string): Promise<ClientRecord[]> {
      return (await queries.list(tenantId)).map(toRecord);
    },

    async get(clientId: string): Promise<ClientRecord | undefined> {
      const row = await cachedRow(clientId);
      return row ? toRecord(row) : undefined;
    },

    async delete(clientId: string, origin?: ChangeOrigin): Promise<boolean> {
      const deleted = await options.db.transaction(async (trx) => {
        const row = await clientQueries(trx).find(clientId);
        if (!row || !(await clientQueries(trx).delete(clientId))) return false;
        await record(trx, 'client.delete', row, changeDetails(auditView(row), null), origin);
        return true;
      });
      await cache.invalidate(clientId);
      return deleted;
    },

    async providerMetadata(clientId: string): Promise<ProviderClientMetadata | undefined> {
      const row = await cachedRow(clientId);
      if (!row) return undefined;
      const metadata = { ...row.metadata, client_id: row.client_id };
      return row.secret_sha256 ? { ...metadata, client_secret: row.secret_sha256 } : metadata;
    },
  };
}

export type ClientService = ReturnType<typeof createClientService>;
