// Which tenant a sign-in is for: fixed by a tenant-bound client, else named by the `tenant`
// authorization parameter (a slug), else the platform tenant. Undefined: an unknown or disabled
// tenant, where nobody may sign in. (Tenant selection pages come with issue 4.)
import type { ClientService } from '../clients/service.ts';
import type { TenantService } from './service.ts';
import { DEFAULT_TENANT_ID } from './constants.ts';

export function loginTenantResolver(clients: ClientService, tenants: TenantService) {
  return async function loginTenant(clientId: unknown, tenantParameter: unknown): Promise<string | undefined> {
    const client = typeof clientId === 'string' ? await clients.get(clientId) : undefined;
    if (client?.tenantId) return client.tenantId;
    if (typeof tenantParameter !== 'string' || !tenantParameter) return DEFAULT_TENANT_ID;
    const tenant = await tenants.findBySlug(tenantParameter);
    return tenant?.status === 'active' ? tenant.id : undefined;
  };
}

export type LoginTenantResolver = ReturnType<typeof loginTenantResolver>;
