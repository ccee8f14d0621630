// RP-initiated logout in the tenant's audit trail (auth.logout) and in the device sessions (the
// row of the provider session it ended ends too, so tenant-wide counts drop at once). oidc-provider
// ends the session itself and only then emits end_session.success, synchronously; both are written
// before the response leaves, and a failure fails the response rather than passing unnoticed.
import type Provider from 'oidc-provider';
import type { AuditService } from '../audit/service.ts';
import type { UserService } from '../users/service.ts';
import { requestContext } from '../audit/origin.ts';
import { userOfRequest } from './request-user.ts';

export interface LogoutAuditDependencies {
  audit: Pick<AuditService, 'record'>;
  users: Pick<UserService, 'findById'>;
  sessionEnded?(tenantId: string, sid: string): Promise<void>;
}

export function installLogoutAudit(provider: Provider, deps: LogoutAuditDependencies): void {
  const pending = new WeakMap<object, Promise<unknown>>();
  provider.on('end_session.success', (ctx) => {
    const accountId = ctx.oidc.session?.accountId;
    const clientId = ctx.oidc.client?.clientId;
    const sid = ctx.oidc.session?.uid;
    // "Stay signed in" with no client to sign out of changes nothing.
    const sessionEnded = ctx.oidc.params?.logout === 'yes';
    if (!accountId || (!sessionEnded && !clientId)) return;
    const work = (async () => {
      const user = await userOfRequest(ctx, deps.users, accountId);
      if (!user) return;
      if (sessionEnded && sid) await deps.sessionEnded?.(user.tenantId, sid);
      const person = { type: 'user' as const, id: user.id, email: user.email };
      await deps.audit.record(undefined, {
        tenantId: user.tenantId,
        type: 'auth.logout',
        outcome: 'success',
        actor: person,
        target: clientId ? { ref: clientId } : undefined,
        details: { clientId, sessionEnded },
        context: requestContext(ctx),
      });
    })();
    // Settled by the middleware below; until then an early rejection must not crash the process.
    work.catch(() => {});
    pending.set(ctx, work);
  });
  provider.use(async (ctx, next) => {
    await next();
    await pending.get(ctx);
  });
}
