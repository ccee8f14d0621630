// The RP-initiated logout pages (the confirmation and "signed out") wear the branding of the tenant
// the person is signing out of, as the sign-in pages do: the tenant of the session's account, else
// of a tenant-bound client. The "signed out" page comes after the session is gone, so the
// confirmation leaves the tenant in a short-lived cookie for it.
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { ClientService } from '../clients/service.ts';
import type { UserService } from '../users/service.ts';
import type { Views } from '../http/views.ts';
import type { Branding } from '../tenants/branding.ts';
import { isUuid } from '../ids.ts';
import { userOfRequest } from './request-user.ts';

const TENANT_COOKIE = '_logout_tenant';
const TENANT_COOKIE_SECONDS = 600;

export interface LogoutPageDependencies {
  views: Views;
  users: Pick<UserService, 'findById'>;
  clients: Pick<ClientService, 'get'>;
  // The tenant's branding; undefined when the tenant is unknown (the pages then look like the platform's).
  brandingOf(tenantId: string): Promise<Branding | undefined>;
}

export function logoutPages(deps: LogoutPageDependencies) {
  async function clientTenant(ctx: KoaContextWithOIDC): Promise<string | undefined> {
    const clientId = ctx.oidc.client?.clientId;
    return clientId ? ((await deps.clients.get(clientId))?.tenantId ?? undefined) : undefined;
  }

  async function accountTenant(ctx: KoaContextWithOIDC): Promise<string | undefined> {
    const accountId = ctx.oidc.session?.accountId;
    return accountId ? (await userOfRequest(ctx, deps.users, accountId))?.tenantId : undefined;
  }

  async function brand(ctx: KoaContextWithOIDC, tenantId: string | undefined): Promise<void> {
    const branding = tenantId ? await deps.brandingOf(tenantId) : undefined;
    if (branding) ctx.state.branding = branding;
  }

  return {
    async logoutSource(ctx: KoaContextWithOIDC, form: string): Promise<void> {
      const tenantId = (await accountTenant(ctx)) ?? (await clientTenant(ctx));
      if (tenantId) {
        ctx.cookies.set(TENANT_COOKIE, tenantId, { httpOnly: true, sameSite: 'lax', secure: ctx.secure, signed: true, maxAge: TENANT_COOKIE_SECONDS * 1000, path: new URL(ctx.oidc.urlFor('end_session')).pathname, overwrite: true });
      }
      await brand(ctx, tenantId);
      deps.views.page(ctx, 'logout.njk', { form, clientName: ctx.oidc.client?.clientName });
    },

    async postLogoutSuccessSource(ctx: KoaContextWithOIDC): Promise<void> {
      const remembered = ctx.cookies.get(TENANT_COOKIE, { signed: true });
      await brand(ctx, (await clientTenant(ctx)) ?? (remembered && isUuid(remembered) ? remembered : undefined));
      deps.views.page(ctx, 'logged-out.njk', { clientName: ctx.oidc.client?.clientName });
    },
  };
}
