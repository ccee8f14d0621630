// What a sign-in leaves in the tenant's audit trail and tells other services: a completed login
// (auth.login + auth.login.success), a refused password (auth.login failure + auth.login.failed)
// and a second-factor lockout or rate-limit block. Nothing here tells whether an identifier
// exists: a refused password is `invalid_credentials` whoever typed it, and it is recorded only
// when the tenant was known before the password was checked.
import type { Database } from '../store/database.ts';
import { withTenant } from '../store/tenant-scope.ts';
import type { AuditPerson, AuditService } from '../audit/service.ts';
import type { OutboxService } from '../outbox/service.ts';
import type { MfaAuditNote } from '../mfa/service.ts';
import type { User } from '../users/service.ts';
import { requestContext } from '../audit/origin.ts';
import { DEFAULT_TENANT_ID } from '../tenants/constants.ts';
import type { Step } from './step.ts';

export interface SignInAuditDependencies {
  db: Database;
  audit: Pick<AuditService, 'record'>;
  outbox: Pick<OutboxService, 'enqueue'>;
}

export type BlockKind = 'security.lockout' | 'security.rate_limited';

// Password sign-in protection (sign-in-guard.ts): never says whether the identifier exists.
export type SignInSecurityEvent = 'security.lockout' | 'security.rate_limited' | 'security.captcha_required' | 'security.captcha_failed' | 'security.spraying_detected';


function clientIdOf(step: Step): string | undefined {
  const clientId = step.interaction.params.client_id;
  return typeof clientId === 'string' ? clientId : undefined;
}

// The tenant a refused password is recorded in: only one named before the password was checked
// (a tenant-bound client, the `tenant` parameter, the organization page), never one found by
// looking the identifier up.
function namedTenant(step: Step): string | undefined {
  return step.requested.kind === 'fixed' ? step.requested.tenantId : step.state.tenantId;
}

export function createSignInAudit(deps: SignInAuditDependencies) {
  const { db, audit, outbox } = deps;

  function person(user: Pick<User, 'id' | 'email'>): AuditPerson {
    return { type: 'user', id: user.id, email: user.email };
  }

  return {
    // The person signing in, for the MFA service's entries (mfa.verify, mfa.enrol).
    note(step: Step): MfaAuditNote {
      return { actor: { type: 'user', id: step.state.user!.userId }, context: requestContext(step.ctx) };
    },

    async succeeded(step: Step, user: User, amr: string[]): Promise<void> {
      const clientId = clientIdOf(step);
      await withTenant(db, user.tenantId, async (trx) => {
        await audit.record(trx, {
          tenantId: user.tenantId,
          type: 'auth.login',
          outcome: 'success',
          actor: person(user),
          target: clientId ? { ref: clientId } : undefined,
          details: { clientId, amr },
          context: requestContext(step.ctx),
        });
        await outbox.enqueue(trx, { tenantId: user.tenantId, type: 'auth.login.success', data: { userId: user.id, clientId: clientId ?? null, amr } });
      });
    },

    async failed(step: Step, identifier: string): Promise<void> {
      const tenantId = namedTenant(step);
      if (!tenantId) return;
      const clientId = clientIdOf(step);
      const reason = 'invalid_credentials';
      await withTenant(db, tenantId, async (trx) => {
        await audit.record(trx, {
          tenantId,
          type: 'auth.login',
          outcome: 'failure',
          target: clientId ? { ref: clientId } : undefined,
          details: { clientId, reason },
          context: requestContext(step.ctx),
        });
        await outbox.enqueue(trx, { tenantId, type: 'auth.login.failed', data: { identifier, reason, clientId: clientId ?? null } });
      });
    },

    // A lockout, block or challenge of a password sign-in, in the tenant named before the password
    // was checked, else in the platform tenant; details carry digests, never the identifier.
    async security(step: Step, type: SignInSecurityEvent, details: Record<string, unknown>): Promise<void> {
      const tenantId = namedTenant(step) ?? DEFAULT_TENANT_ID;
      const clientId = clientIdOf(step);
      await audit.record(undefined, { tenantId, type, outcome: 'failure', target: clientId ? { ref: clientId } : undefined, details: { ...details, clientId }, context: requestContext(step.ctx) });
    },

    // A second-factor budget ran out: recorded once per window, at its first refusal.
    async blocked(step: Step, kind: BlockKind, limiter: string): Promise<void> {
      const { tenantId, userId } = step.state.user!;
      const person: AuditPerson = { type: 'user', id: userId };
      await audit.record(undefined, { tenantId, type: kind, outcome: 'failure', actor: person, target: person, details: { limiter, step: 'second_factor' }, context: requestContext(step.ctx) });
    },
  };
}

export type SignInAudit = ReturnType<typeof createSignInAudit>;
