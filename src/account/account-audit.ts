// What the account self-service leaves in the tenant's audit trail: the person's own guessing
// budget running out (security.lockout). Sign-outs are recorded by the sessions service.
import type { AuditPerson, AuditService } from '../audit/service.ts';
import type { RequestContext } from '../audit/origin.ts';

// Which sign-out it was (kept in its session.revoke entry): one session, every other one, or all.
export type SignOutScope = 'one' | 'others' | 'all';
// Why: the person signed the sessions out, or changed the password (which ends the others).
export type SignOutReason = 'signed_out' | 'password_changed';

export interface AccountAuditDependencies {
  audit: Pick<AuditService, 'record'>;
}

export function createAccountAudit(deps: AccountAuditDependencies) {
  const { audit } = deps;
  const person = (userId: string): AuditPerson => ({ type: 'user', id: userId });

  return {
    async lockedOut(tenantId: string, userId: string, limiter: string, context?: RequestContext): Promise<void> {
      await audit.record(undefined, { tenantId, type: 'security.lockout', outcome: 'failure', actor: person(userId), target: person(userId), details: { limiter, via: 'account' }, context });
    },
  };
}

export type AccountAudit = ReturnType<typeof createAccountAudit>;
