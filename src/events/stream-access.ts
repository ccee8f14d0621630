// Who may read the revocation stream: a confidential client of a tenant, authenticated with HTTP
// Basic (RFC 6749 §2.3.1) and holding the admin API permission `revocations:read` through RBAC.
// A client of the platform tenant reads every tenant's events; any other only its own tenant's.
import type { Context } from 'koa';
import type { ClientService } from '../clients/service.ts';
import type { RbacService } from '../rbac/service.ts';
import type { TenantService } from '../tenants/service.ts';
import { authenticatedClientId, basicCredentials } from '../clients/basic-auth.ts';

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
      const header = ctx.get('authorization');
      if (!basicCredentials(header)) return { ok: false, status: 401, detail: 'authenticate with the client’s id and secret: Authorization: Basic base64(client_id:client_secret)' };
      const clientId = await authenticatedClientId(header, deps.clients);
      if (!clientId) return { ok: false, status: 401, detail: 'invalid client credentials' };
      return allowed(clientId);
    },
    // Re-checked while a stream stays open: a deleted client or a withdrawn permission ends it.
    stillAllowed: async (reader: StreamReader) => (await allowed(reader.clientId)).ok,
  };
}
