// What the account self-service leaves in the tenant's audit trail and tells other services:
// sessions the person signed out (session.revoke + session.revoked, one per session) and the
// person's own guessing budget running out (security.lockout).
import type { Database } from '../store/database.ts';
import { withTenant } from '../store/tenant-scope.ts';
import type { AuditPerson, AuditService } from '../audit/service.ts';
import type { RequestContext } from '../audit/origin.ts';
import type { OutboxService } from '../outbox/service.ts';

// Which sign-out it was: one session, every other one, or all of them.
export type SignOutScope = 'one' | 'others' | 'all';
// Why: the person signed the sessions out, or changed the password (which ends the others).
export type SignOutReason = 'signed_out' | 'password_changed';

export interface AccountAuditDependencies {
  db: Database;
  audit: Pick<AuditService, 'record'>;
  outbox: Pick<OutboxService, 'enqueue'>;
}

export function createAccountAudit(deps: AccountAuditDependencies) {
  const { db, audit, outbox } = deps;
  const person = (userId: string): AuditPerson => ({ type: 'user', id: userId });

  return {
    async sessionsRevoked(tenantId: string, userId: string, sessionIds: string[], scope: SignOutScope, reason: SignOutReason, context?: RequestContext): Promise<void> {
      if (!sessionIds.length) return;
      await withTenant(db, tenantId, async (trx) => {
        for (const sessionId of sessionIds) {
          // The shape of an administrator's revocation (src/sessions), with the person as actor.
          await audit.record(trx, { tenantId, type: 'session.revoke', outcome: 'success', actor: person(userId), target: person(userId), details: { sessionId, scope, reason, via: 'account' }, context });
          await outbox.enqueue(trx, { tenantId, type: 'session.revoked', data: { userId, sessionId, reason } });
        }
      });
    },

    async lockedOut(tenantId: string, userId: string, limiter: string, context?: RequestContext): Promise<void> {
      await audit.record(undefined, { tenantId, type: 'security.lockout', outcome: 'failure', actor: person(userId), target: person(userId), details: { limiter, via: 'account' }, context });
    },
  };
}

export type AccountAudit = ReturnType<typeof createAccountAudit>;
