// Who may read the revocation stream: a confidential client of a tenant, authenticated with HTTP
// Basic (RFC 6749 §2.3.1) and holding the admin API permission `revocations:read` through RBAC.
// A client of the platform tenant reads every tenant's events; any other only its own tenant's.
import type { Context } from 'koa';
import type { ClientService } from '../clients/service.ts';
import type { RbacService } from '../rbac/service.ts';
import type { TenantService } from '../tenants/service.ts';
import { digestsEqual, sha256Hex } from '../security/crypto.ts';

export const REVOCATIONS_READ = 'revocations:read';

export interface StreamReader {
  clientId: string;
  tenantId: string;
  platform: boolean;
}

export interface StreamAccessDependencies {
  clients: ClientService;
  rbac: RbacService;
  tenants: TenantService;
  adminApi: string;
}

export type StreamAccess = { ok: true; reader: StreamReader } | { ok: false; status: 401 | 403; detail: string };

// Compared against when the client is unknown, so an unknown id costs what a wrong secret costs.
const NO_SECRET = sha256Hex('');

export function streamAccess(deps: StreamAccessDependencies) {
  async function allowed(clientId: string): Promise<StreamAccess> {
    const client = await deps.clients.get(clientId);
    if (!client) return { ok: false, status: 401, detail: 'the client no longer exists' };
    if (!client.tenantId) return { ok: false, status: 403, detail: 'only a client bound to a tenant may read the revocation stream' };
    const tenant = await deps.tenants.get(client.tenantId).catch(() => undefined);
    if (!tenant || tenant.status !== 'active') return { ok: false, status: 403, detail: 'the client’s tenant is not active' };
    if (!(await deps.rbac.check(client.tenantId, 'client', clientId, deps.adminApi, REVOCATIONS_READ))) {
      return { ok: false, status: 403, detail: `the client lacks the permission ${REVOCATIONS_READ} on the admin API` };
    }
    return { ok: true, reader: { clientId, tenantId: client.tenantId, platform: tenant.platform } };
  }

  return {
    async authenticate(ctx: Context): Promise<StreamAccess> {
      const credentials = basicCredentials(ctx.get('authorization'));
      if (!credentials) return { ok: false, status: 401, detail: 'authenticate with the client’s id and secret: Authorization: Basic base64(client_id:client_secret)' };
      const metadata = await deps.clients.providerMetadata(credentials.clientId);
      const stored = typeof metadata?.client_secret === 'string' ? metadata.client_secret : NO_SECRET;
      const secretMatches = digestsEqual(stored, sha256Hex(credentials.clientSecret));
      if (!metadata || !secretMatches || stored === NO_SECRET) return { ok: false, status: 401, detail: 'invalid client credentials' };
      return allowed(credentials.clientId);
    },
    // Re-checked while a stream stays open: a deleted client or a withdrawn permission ends it.
    stillAllowed: async (reader: StreamReader) => (await allowed(reader.clientId)).ok,
  };
}

function basicCredentials(header: string): { clientId: string; clientSecret: string } | undefined {
  const match = /^Basic ([A-Za-z0-9+/]+=*)$/i.exec(header.trim());
  if (!match) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  try {
    // Both halves are form-urlencoded before encoding (RFC 6749 §2.3.1).
    const formDecode = (value: string) => decodeURIComponent(value.replace(/\+/g, ' '));
    return { clientId: formDecode(decoded.slice(0, colon)), clientSecret: formDecode(decoded.slice(colon + 1)) };
  } catch {
    return undefined;
  }
}
