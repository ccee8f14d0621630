// GDPR for one person of a tenant: the export of everything held about them as one document
// (Art. 15 / 20) and the erasure that pseudonymises them across the product (Art. 17). Each domain
// is asked through its own service; this module only gathers and sequences.
import type { UserService, User } from '../users/service.ts';
import type { RbacService } from '../rbac/service.ts';
import type { MfaService } from '../mfa/service.ts';
import type { SessionService } from '../sessions/service.ts';
import type { IdentityLinkService } from '../account/identities/service.ts';
import type { AuditEntry, AuditService } from '../audit/service.ts';
import type { OutboxService } from '../outbox/service.ts';
import type { AccountGrant } from '../oidc/durable-payloads.ts';
import { originOf, type ChangeOrigin } from '../audit/origin.ts';
import type { Knex } from 'knex';
import { NotFoundError } from '../errors.ts';
import type { Database } from '../store/database.ts';
import { withTenant } from '../store/tenant-scope.ts';

export interface PrivacyServiceDependencies {
  users: Pick<UserService, 'get' | 'passwordStatus' | 'lastLoginAt' | 'hardDelete'>;
  rbac: Pick<RbacService, 'rolesOf' | 'effectiveAccess'>;
  mfa: Pick<MfaService, 'enrolments'>;
  sessions: Pick<SessionService, 'history'>;
  identities: Pick<IdentityLinkService, 'list'>;
  // The person's consents: the provider's live Grants of the account.
  grantsOf(userId: string): Promise<AccountGrant[]>;
  audit: Pick<AuditService, 'all' | 'record' | 'erase' | 'knownPerson'>;
  // The API keys the user owns (src/apikeys), when that domain is wired.
  apiKeysOf?(tenantId: string, userId: string): Promise<OwnedApiKey[]>;
  // Deletes the API keys the user owns, in the erasure's transaction; how many.
  eraseApiKeysOf?(trx: Knex.Transaction, tenantId: string, userId: string): Promise<number>;
  outbox: Pick<OutboxService, 'pseudonymiseUser'>;
  // For the transaction of an erasure of a user deleted before (no queries of its own).
  db: Database;
  now?: () => Date;
}

// An API key as the export shows it: what it is and how it was used, never its secret or digest.
export interface OwnedApiKey {
  id: string;
  name: string;
  display: string;
  status: string;
  permissions: Array<{ api: string; permission: string }>;
  createdAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
  lastUsedIp: string | null;
}

export interface ErasureResult {
  userId: string;
  erasedAt: string;
  // Audit pseudonyms blanked (0 or 1) and request contexts (IP, user agent) removed.
  auditPeopleErased: number;
  auditContextsRemoved: number;
  // Stored events that lost the person's e-mail address or typed identifier.
  eventsPseudonymised: number;
  // API keys the person owned, deleted with their usage.
  apiKeysDeleted: number;
}

const iso = (date: Date | null | undefined) => (date ? date.toISOString() : null);

function profileOf(user: User) {
  const { hasPassword: _password, version: _version, ...profile } = user;
  return { ...profile, createdAt: iso(user.createdAt), updatedAt: iso(user.updatedAt) };
}

// Entries where the person acted or was acted upon, newest first, each once.
async function entriesAbout(audit: PrivacyServiceDependencies['audit'], tenantId: string, userId: string): Promise<AuditEntry[]> {
  const bySeq = new Map<number, AuditEntry>();
  for await (const entry of audit.all(tenantId, { actor: userId })) bySeq.set(entry.seq, entry);
  for await (const entry of audit.all(tenantId, { target: userId })) bySeq.set(entry.seq, entry);
  return [...bySeq.values()].sort((a, b) => b.seq - a.seq);
}

export function createPrivacyService(deps: PrivacyServiceDependencies) {
  const now = deps.now ?? (() => new Date());

  // user.erase is recorded about the person (no e-mail or name), then the person's audit pseudonym
  // is blanked with the request context of their entries (the entries stay and still verify), and
  // stored events lose the e-mail address and the identifiers the person typed.
  async function eraseTraces(trx: Knex.Transaction, tenantId: string, userId: string, identifiers: Array<string | null | undefined>, origin: ChangeOrigin): Promise<ErasureResult> {
    await deps.audit.record(trx, { tenantId, type: 'user.erase', outcome: 'success', ...originOf(origin), target: { type: 'user', id: userId } });
    const erased = await deps.audit.erase(tenantId, 'user', userId, trx);
    const events = await deps.outbox.pseudonymiseUser(trx, tenantId, userId, identifiers.filter((value): value is string => Boolean(value)));
    const apiKeysDeleted = deps.eraseApiKeysOf ? await deps.eraseApiKeysOf(trx, tenantId, userId) : 0;
    return { userId, erasedAt: now().toISOString(), auditPeopleErased: erased.people, auditContextsRemoved: erased.contexts, eventsPseudonymised: events, apiKeysDeleted };
  }

  return {
    // Everything held about a user of the tenant (NotFoundError for no such live user), never a
    // secret: which credentials exist and when they were set, not their hashes. The export is a
    // privileged read and is recorded (user.export) once the document is complete.
    async exportUser(tenantId: string, userId: string, origin: ChangeOrigin) {
      const user = await deps.users.get(tenantId, userId);
      const [password, lastLoginAt, direct, effective, mfa, sessions, identities, grants, apiKeys, auditEntries] = await Promise.all([
        deps.users.passwordStatus(tenantId, userId),
        deps.users.lastLoginAt(tenantId, userId),
        deps.rbac.rolesOf(tenantId, 'user', userId),
        deps.rbac.effectiveAccess(tenantId, 'user', userId),
        deps.mfa.enrolments(tenantId, userId),
        deps.sessions.history(tenantId, userId),
        deps.identities.list(tenantId, userId),
        deps.grantsOf(userId),
        deps.apiKeysOf ? deps.apiKeysOf(tenantId, userId) : Promise.resolve([]),
        entriesAbout(deps.audit, tenantId, userId),
      ]);
      const document = {
        format: 'idp-gdpr-export/1',
        exportedAt: now().toISOString(),
        tenantId,
        userId,
        profile: { ...profileOf(user), lastLoginAt: iso(lastLoginAt) },
        credentials: {
          password: { set: password.hasPassword, changedAt: iso(password.changedAt), mustChange: password.mustChange },
          totp: { active: mfa.totp.active, confirmedAt: iso(mfa.totp.confirmedAt), enrolmentPendingSince: iso(mfa.totp.enrolmentPendingSince) },
          backupCodes: { remaining: mfa.backupCodes.remaining, issuedAt: iso(mfa.backupCodes.issuedAt) },
        },
        mfa: [
          ...(mfa.totp.active ? [{ kind: 'totp', enrolledAt: iso(mfa.totp.confirmedAt) }] : []),
          ...(mfa.backupCodes.remaining ? [{ kind: 'backup_codes', enrolledAt: iso(mfa.backupCodes.issuedAt), remaining: mfa.backupCodes.remaining }] : []),
        ],
        roles: { direct, effective: effective.roles, permissions: effective.permissions },
        sessions: sessions.map((session) => ({
          id: session.id,
          clientIds: session.clientIds,
          userAgent: session.userAgent,
          browser: session.browser,
          os: session.os,
          device: session.device,
          ip: session.ip,
          amr: session.amr,
          createdAt: iso(session.createdAt),
          lastActiveAt: iso(session.lastActiveAt),
          endedAt: iso(session.endedAt),
        })),
        consents: grants.map((grant) => ({ ...grant, grantedAt: iso(grant.grantedAt), expiresAt: iso(grant.expiresAt) })),
        linkedIdentities: identities.map((identity) => ({ ...identity, linkedAt: iso(identity.linkedAt) })),
        apiKeys: apiKeys.map((apiKey) => ({
          id: apiKey.id,
          name: apiKey.name,
          display: apiKey.display,
          status: apiKey.status,
          permissions: apiKey.permissions,
          createdAt: iso(apiKey.createdAt),
          expiresAt: iso(apiKey.expiresAt),
          revokedAt: iso(apiKey.revokedAt),
          lastUsedAt: iso(apiKey.lastUsedAt),
          lastUsedIp: apiKey.lastUsedIp,
        })),
        auditEntries,
      };
      await deps.audit.record(undefined, { tenantId, type: 'user.export', outcome: 'success', ...originOf(origin), target: { type: 'user', id: userId } });
      return document;
    },

    // Erases a user of the tenant in one transaction: the user row with everything that hangs off
    // it (credentials, MFA, device sessions, linked identities, role assignments), recorded as
    // user.delete (reason erasure) with a user.deleted event; then the person's traces (below).
    // After the commit every session, grant and token of the user is revoked. A user deleted
    // before (hard delete) whom the audit trail still names has only their traces erased. Nothing
    // left to erase (an unknown user, or erased already) is a NotFoundError: a repeat answers 404.
    async eraseUser(tenantId: string, userId: string, origin: ChangeOrigin): Promise<ErasureResult> {
      let result: ErasureResult | undefined;
      try {
        await deps.users.hardDelete(tenantId, userId, origin, {
          reason: 'erasure',
          inTransaction: async (trx, user) => {
            result = await eraseTraces(trx, tenantId, userId, [user.email, user.username], origin);
          },
        });
        return result!;
      } catch (error) {
        if (!(error instanceof NotFoundError)) throw error;
        const known = await deps.audit.knownPerson(tenantId, 'user', userId);
        if (!known) throw error;
        return withTenant(deps.db, tenantId, (trx) => eraseTraces(trx, tenantId, userId, [known.email], origin));
      }
    },
  };
}

export type PrivacyService = ReturnType<typeof createPrivacyService>;
