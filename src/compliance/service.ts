// Compliance reports of one tenant, each as a list of rows with fixed columns (so the same report
// is served as JSON and CSV). The figures come from the domains that own them: the audit trail
// (failed sign-ins, lockouts, privileged actions), users (last sign-in), RBAC (role holders) and
// MFA (who has a second factor). This module only combines them.
import type { AuditEntry, AuditService } from '../audit/service.ts';
import type { UserService } from '../users/service.ts';
import type { RbacService } from '../rbac/service.ts';
import type { MfaService } from '../mfa/service.ts';
import { IMPERSONATION_AUDIT_TYPE } from '../oidc/token-exchange.ts';

export interface ComplianceDependencies {
  audit: Pick<AuditService, 'all' | 'dailyCounts'>;
  users: Pick<UserService, 'dormant' | 'liveIds'>;
  rbac: Pick<RbacService, 'holdersByRole'>;
  mfa: Pick<MfaService, 'usersWithTotp'>;
  now?: () => Date;
}

// What a report carries at most; a longer list is cut and says so.
export const MAX_ROWS = 10_000;
const DAY_MS = 86_400_000;

// Changes made by an administrator or a machine (the admin API, the command line) to someone or
// something else, and impersonations. What people do to themselves (their own profile, sessions,
// second factor) is not privileged and is left out.
export const PRIVILEGED_TYPES = [
  'user.create', 'user.update', 'user.status', 'user.delete', 'user.export', 'user.erase',
  'role.', 'client.', 'api.', 'tenant.', 'key.', 'webhook.',
  'session.revoke', 'mfa.remove', 'password.admin_reset',
  IMPERSONATION_AUDIT_TYPE,
];

export const FAILED_LOGIN_COLUMNS = ['day', 'failedPasswords', 'failedSecondFactors', 'total'] as const;
export const LOCKOUT_COLUMNS = ['occurredAt', 'userId', 'email', 'limiter', 'via', 'step', 'entryId'] as const;
export const MFA_ADOPTION_COLUMNS = ['roleId', 'role', 'members', 'withMfa', 'ratio'] as const;
export const PRIVILEGED_COLUMNS = ['occurredAt', 'type', 'outcome', 'actorType', 'actorId', 'actorEmail', 'targetType', 'targetId', 'targetEmail', 'targetRef', 'details', 'entryId'] as const;
export const DORMANT_COLUMNS = ['userId', 'email', 'name', 'status', 'createdAt', 'lastLoginAt', 'idleDays'] as const;

// Each UTC day (YYYY-MM-DD) that [from, to) touches.
function daysBetween(from: Date, to: Date): string[] {
  const days: string[] = [];
  // The start of from's UTC day (Date.UTC would read the years 0–99 as 1900–1999).
  for (let at = from.getTime() - (((from.getTime() % DAY_MS) + DAY_MS) % DAY_MS); at < to.getTime(); at += DAY_MS) {
    days.push(new Date(at).toISOString().slice(0, 10));
  }
  return days;
}

const ratio = (part: number, whole: number) => (whole ? Math.round((part / whole) * 10_000) / 10_000 : 0);

async function collect<T>(entries: AsyncIterable<AuditEntry>, map: (entry: AuditEntry) => T): Promise<{ rows: T[]; truncated: boolean }> {
  const rows: T[] = [];
  for await (const entry of entries) {
    if (rows.length === MAX_ROWS) return { rows, truncated: true };
    rows.push(map(entry));
  }
  return { rows, truncated: false };
}

export function createComplianceService(deps: ComplianceDependencies) {
  const now = deps.now ?? (() => new Date());

  function frame(report: string, tenantId: string, columns: readonly string[]) {
    return { report, tenantId, generatedAt: now().toISOString(), columns };
  }

  return {
    // Refused passwords (auth.login failures) and second-factor codes (mfa.verify failures) per
    // UTC day, every day of the range listed (zero when quiet).
    async failedLogins(tenantId: string, from: Date, to: Date) {
      const counts = await deps.audit.dailyCounts(tenantId, [{ type: 'auth.login', outcome: 'failure' }, { type: 'mfa.verify', outcome: 'failure' }], from, to);
      const countOf = new Map(counts.map((count) => [`${count.day} ${count.type}`, count.count]));
      const rows = daysBetween(from, to).map((day) => {
        const failedPasswords = countOf.get(`${day} auth.login`) ?? 0;
        const failedSecondFactors = countOf.get(`${day} mfa.verify`) ?? 0;
        return { day, failedPasswords, failedSecondFactors, total: failedPasswords + failedSecondFactors };
      });
      const total = rows.reduce((sum, row) => sum + row.total, 0);
      return { ...frame('failed-logins', tenantId, FAILED_LOGIN_COLUMNS), from: from.toISOString(), to: to.toISOString(), total, rows };
    },

    // Every security.lockout entry of the range, newest first.
    async lockouts(tenantId: string, from: Date, to: Date) {
      const { rows, truncated } = await collect(deps.audit.all(tenantId, { type: 'security.lockout', from, to }), (entry) => ({
        occurredAt: entry.occurredAt,
        userId: entry.target?.id ?? null,
        email: entry.target?.email ?? null,
        limiter: (entry.details.limiter as string | undefined) ?? null,
        via: (entry.details.via as string | undefined) ?? null,
        step: (entry.details.step as string | undefined) ?? null,
        entryId: entry.id,
      }));
      return { ...frame('lockouts', tenantId, LOCKOUT_COLUMNS), from: from.toISOString(), to: to.toISOString(), total: rows.length, truncated, rows };
    },

    // Per role, how many live users hold it (directly or inherited) and how many of them have an
    // active second factor (TOTP); `all` counts every live user of the tenant.
    async mfaAdoption(tenantId: string) {
      const [live, withTotp, roles] = await Promise.all([deps.users.liveIds(tenantId), deps.mfa.usersWithTotp(tenantId), deps.rbac.holdersByRole(tenantId)]);
      const liveSet = new Set(live);
      const mfaSet = new Set(withTotp.filter((id) => liveSet.has(id)));
      const rows = roles.map((role) => {
        const members = role.userIds.filter((id) => liveSet.has(id));
        const withMfa = members.filter((id) => mfaSet.has(id)).length;
        return { roleId: role.id, role: role.name, members: members.length, withMfa, ratio: ratio(withMfa, members.length) };
      });
      const all = { members: liveSet.size, withMfa: mfaSet.size, ratio: ratio(mfaSet.size, liveSet.size) };
      return { ...frame('mfa-adoption', tenantId, MFA_ADOPTION_COLUMNS), all, rows };
    },

    // Administrative changes, exports, erasures and impersonations of the range, newest first.
    async privilegedActions(tenantId: string, from: Date, to: Date) {
      const { rows, truncated } = await collect(deps.audit.all(tenantId, { anyType: PRIVILEGED_TYPES, notSelf: true, from, to }), (entry) => ({
        occurredAt: entry.occurredAt,
        type: entry.type,
        outcome: entry.outcome,
        actorType: entry.actor?.type ?? null,
        actorId: entry.actor?.id ?? null,
        actorEmail: entry.actor?.email ?? null,
        targetType: entry.target?.type ?? null,
        targetId: entry.target?.id ?? null,
        targetEmail: entry.target?.email ?? null,
        targetRef: entry.targetRef,
        details: entry.details,
        entryId: entry.id,
      }));
      return { ...frame('privileged-actions', tenantId, PRIVILEGED_COLUMNS), from: from.toISOString(), to: to.toISOString(), total: rows.length, truncated, rows };
    },

    // Live users without a sign-in for `days` days (never signed in: counted from their creation),
    // the longest idle first.
    async dormantAccounts(tenantId: string, days: number) {
      const at = now();
      const cutoff = new Date(at.getTime() - days * DAY_MS);
      const users = await deps.users.dormant(tenantId, cutoff, MAX_ROWS + 1);
      const rows = users.slice(0, MAX_ROWS).map((user) => ({
        userId: user.id,
        email: user.email,
        name: user.name,
        status: user.status,
        createdAt: user.createdAt.toISOString(),
        lastLoginAt: user.lastLoginAt?.toISOString() ?? null,
        idleDays: Math.floor((at.getTime() - (user.lastLoginAt ?? user.createdAt).getTime()) / DAY_MS),
      }));
      return { ...frame('dormant-accounts', tenantId, DORMANT_COLUMNS), days, cutoff: cutoff.toISOString(), total: rows.length, truncated: users.length > MAX_ROWS, rows };
    },
  };
}

export type ComplianceService = ReturnType<typeof createComplianceService>;
