// Which tenant a sign-in is for, before anyone typed anything: fixed by a tenant-bound client, or
// named by the `tenant` authorization parameter (a slug); otherwise open, and the login pages let
// the identifier, its e-mail domain or the person's choice decide. An unknown or disabled tenant
// named by the parameter is a tenant where nobody may sign in.
import type { ClientService } from '../clients/service.ts';
import type { TenantService } from './service.ts';

export type LoginTenant = { kind: 'fixed'; tenantId: string } | { kind: 'open' } | { kind: 'unknown' };

export function loginTenantResolver(clients: ClientService, tenants: TenantService) {
  return async function loginTenant(clientId: unknown, tenantParameter: unknown): Promise<LoginTenant> {
    const client = typeof clientId === 'string' ? await clients.get(clientId) : undefined;
    if (client?.tenantId) return { kind: 'fixed', tenantId: client.tenantId };
    if (typeof tenantParameter !== 'string' || !tenantParameter) return { kind: 'open' };
    const tenant = await tenants.findBySlug(tenantParameter);
    return tenant?.status === 'active' ? { kind: 'fixed', tenantId: tenant.id } : { kind: 'unknown' };
  };
}

export type LoginTenantResolver = ReturnType<typeof loginTenantResolver>;
