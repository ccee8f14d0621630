// Who may call the verification endpoint: a confidential machine client bound to a tenant (the
// resource server), authenticated with HTTP Basic (RFC 6749 §2.3.1). It verifies keys of its own
// tenant; a client of the platform tenant verifies keys of every tenant.
import type { Context } from 'koa';
import type { ClientService } from '../clients/service.ts';
import { authenticatedClientId } from '../clients/basic-auth.ts';

export interface Verifier {
  clientId: string;
  tenantId: string;
  platform: boolean;
}

export async function authenticateResourceServer(ctx: Context, deps: { clients: Pick<ClientService, 'providerMetadata' | 'get'>; platformTenant: (tenantId: string) => Promise<boolean> }): Promise<Verifier | undefined> {
  const clientId = await authenticatedClientId(ctx.get('authorization'), deps.clients);
  if (!clientId) return undefined;
  const tenantId = (await deps.clients.get(clientId))?.tenantId;
  if (!tenantId) return undefined;
  return { clientId, tenantId, platform: await deps.platformTenant(tenantId) };
}
