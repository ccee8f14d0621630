// The in-process consumer of auth.login.success: the users' last sign-in times, through the users
// service, one statement per tenant of the batch. It runs in the publishing transaction, so it
// sees each event exactly once.
import type { UserService } from '../users/service.ts';
import type { EventSubscriber } from './publisher.ts';

export function lastLoginConsumer(users: Pick<UserService, 'recordLogins'>): EventSubscriber {
  return async (trx, events) => {
    const byTenant = new Map<string, Array<{ userId: string; at: string }>>();
    for (const event of events) {
      if (event.type !== 'auth.login.success' || typeof event.data.userId !== 'string') continue;
      const logins = byTenant.get(event.tenantId) ?? [];
      logins.push({ userId: event.data.userId, at: event.occurredAt });
      byTenant.set(event.tenantId, logins);
    }
    for (const [tenantId, logins] of byTenant) await users.recordLogins(trx, tenantId, logins);
  };
}
