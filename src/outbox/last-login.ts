// The in-process consumer of auth.login.success: the user's last sign-in time, through the users
// service. It runs in the publishing transaction, so it sees each event exactly once.
import type { UserService } from '../users/service.ts';
import type { EventSubscriber } from './publisher.ts';

export function lastLoginConsumer(users: Pick<UserService, 'recordLogin'>): EventSubscriber {
  return async (trx, events) => {
    for (const event of events) {
      if (event.type !== 'auth.login.success' || typeof event.data.userId !== 'string') continue;
      await users.recordLogin(trx, event.tenantId, event.data.userId, event.occurredAt);
    }
  };
}
