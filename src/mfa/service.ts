// Second factors per user: TOTP (enrolment confirmed with a first code, verification with one
// step of drift and no replay) and single-use backup codes. The TOTP secret is sealed at rest
// under the key-encryption key; backup codes are kept only as SHA-256 digests. Every read and
// write runs in withTenant, under row-level security.
import type { Database } from '../store/database.ts';
import { withTenant } from '../store/tenant-scope.ts';
import { seal, unseal, type SealingKeys } from '../security/crypto.ts';
import { rewrapAll, type RewrapReport } from '../security/rewrap.ts';
import { ConflictError, NotFoundError, ValidationError } from '../errors.ts';
import { isUuid } from '../ids.ts';
import { mfaQueries } from './queries.ts';
import { matchingTimeStep, newTotpSecret, normaliseTotpCode, otpauthUri } from './totp.ts';
import { backupCodeDigest, newBackupCodes, normaliseBackupCode } from './backup-codes.ts';
import type { AuditEvent, AuditPerson, AuditService } from '../audit/service.ts';
import type { Knex } from 'knex';
import QRCode from 'qrcode';

export interface MfaStatus {
  totp: boolean;
  confirmedAt: Date | null;
  backupCodesRemaining: number;
}

// What second factors a user has and since when, never the secrets (GDPR export).
export interface MfaEnrolments {
  totp: { active: boolean; confirmedAt: Date | null; enrolmentPendingSince: Date | null };
  backupCodes: { remaining: number; issuedAt: Date | null };
}

export interface MfaServiceOptions {
  db: Database;
  keyEncryptionKey: SealingKeys;
  // Every change (and every second-factor check) is recorded in the transaction that makes it.
  audit: Pick<AuditService, 'record'>;
  // The clock TOTP codes are checked against; tests fix it.
  now?: () => Date;
}

const MAX_LABEL = 200;
// How long a started enrolment can be confirmed: as long as a sign-in may take (Keycloak's login
// timeout). An older pending secret counts as none; the next enrolment overwrites it.
export const PENDING_ENROLMENT_SECONDS = 30 * 60;

// Who caused an MFA change or check, and from where: the audit entry's actor and context. The
// admin API passes the administrator; self-service and sign-in pass the person.
export interface MfaAuditNote {
  actor: AuditPerson;
  context?: AuditEvent['context'];
}

function isForeignKeyViolation(error: unknown): boolean {
  return (error as { code?: string })?.code === '23503';
}

export function createMfaService(options: MfaServiceOptions) {
  const { db, keyEncryptionKey } = options;
  const now = options.now ?? (() => new Date());
  const sealContext = (userId: string) => `mfa_totp:${userId}`;
  const open = (sealed: string, userId: string) => unseal(keyEncryptionKey, sealed, sealContext(userId));

  function pendingIsLive(row: { pending_secret_sealed?: string | null; pending_created_at?: Date | string | null } | undefined): boolean {
    if (!row?.pending_secret_sealed || !row.pending_created_at) return false;
    return now().getTime() - new Date(row.pending_created_at).getTime() < PENDING_ENROLMENT_SECONDS * 1000;
  }

  function known(tenantId: string, userId: string): boolean {
    return isUuid(tenantId) && isUuid(userId);
  }

  function requireKnown(tenantId: string, userId: string): void {
    if (!known(tenantId, userId)) throw new NotFoundError('no such user in this tenant');
  }

  // Without a note the caller records the change itself (the admin API, in its own words).
  async function record(trx: Knex.Transaction, tenantId: string, userId: string, note: MfaAuditNote | undefined, type: string, outcome: 'success' | 'failure', details: Record<string, unknown>): Promise<void> {
    if (!note) return;
    await options.audit.record(trx, { tenantId, type, outcome, actor: note.actor, target: { type: 'user', id: userId }, details, context: note.context });
  }

  // Accepts a code of the active secret, each time step once.
  async function useTotpCode(trx: Knex.Transaction, tenantId: string, userId: string, totpCode: string): Promise<boolean> {
    const row = await mfaQueries.findTotp(trx, tenantId, userId);
    if (!row?.secret_sealed) return false;
    const lastUsed = row.last_used_step === null ? undefined : Number(row.last_used_step);
    const step = await matchingTimeStep(open(row.secret_sealed, userId), totpCode, now(), lastUsed);
    if (step === undefined) return false;
    return mfaQueries.useStep(trx, tenantId, userId, row.secret_sealed, step);
  }

  function checkLabel(name: string, value: unknown): string {
    if (typeof value !== 'string' || !value.trim() || value.length > MAX_LABEL) {
      throw new ValidationError(`${name} must be a non-empty text of at most ${MAX_LABEL} characters`, { [name]: 'invalid' });
    }
    return value.trim();
  }

  const service = {
    async status(tenantId: string, userId: string): Promise<MfaStatus> {
      const { totp, backupCodes } = await service.enrolments(tenantId, userId);
      return { totp: totp.active, confirmedAt: totp.confirmedAt, backupCodesRemaining: backupCodes.remaining };
    },

    // Starts (or restarts) an enrolment. The secret is not active until confirmed; an active one
    // stays active meanwhile.
    async beginTotpEnrolment(tenantId: string, userId: string, labels: { accountName: string; issuer: string }): Promise<{ secret: string; otpauthUri: string; qrSvg: string }> {
      requireKnown(tenantId, userId);
      const accountName = checkLabel('accountName', labels?.accountName);
      const issuer = checkLabel('issuer', labels?.issuer);
      const secret = newTotpSecret();
      try {
        await withTenant(db, tenantId, (trx) => mfaQueries.savePending(trx, tenantId, userId, seal(keyEncryptionKey, secret, sealContext(userId))));
      } catch (error) {
        if (isForeignKeyViolation(error)) throw new NotFoundError('no such user in this tenant');
        throw error;
      }
      const uri = otpauthUri(secret, { accountName, issuer });
      const qrSvg = await QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
      return { secret, otpauthUri: uri, qrSvg };
    },

    // Activates the pending secret with a first code from the app; returns fresh backup codes
    // (shown once). undefined when nothing is pending or the code is wrong.
    async confirmTotpEnrolment(tenantId: string, userId: string, code: string, note?: MfaAuditNote): Promise<{ backupCodes: string[] } | undefined> {
      const totpCode = normaliseTotpCode(code);
      if (!totpCode || !known(tenantId, userId)) return undefined;
      return withTenant(db, tenantId, async (trx) => {
        const row = await mfaQueries.findTotp(trx, tenantId, userId, { forUpdate: true });
        if (!row?.pending_secret_sealed || !pendingIsLive(row)) return undefined;
        const step = await matchingTimeStep(open(row.pending_secret_sealed, userId), totpCode, now());
        if (step === undefined) return undefined;
        if (!(await mfaQueries.activatePending(trx, tenantId, userId, row.pending_secret_sealed, step))) return undefined;
        const backupCodes = newBackupCodes();
        await mfaQueries.replaceBackupCodes(trx, tenantId, userId, backupCodes.map((backupCode) => backupCodeDigest(userId, normaliseBackupCode(backupCode)!)));
        await record(trx, tenantId, userId, note, 'mfa.enrol', 'success', { method: 'totp', issued: backupCodes.length });
        return { backupCodes };
      });
    },

    // A login's second factor. Each time step is accepted once per user, even under concurrency.
    // With a note, the check is recorded (mfa.verify, success or failure) in its transaction.
    async verifyTotp(tenantId: string, userId: string, code: string, note?: MfaAuditNote): Promise<boolean> {
      if (!known(tenantId, userId)) return false;
      const totpCode = normaliseTotpCode(code);
      return withTenant(db, tenantId, async (trx) => {
        const verified = totpCode !== undefined && (await useTotpCode(trx, tenantId, userId, totpCode));
        await record(trx, tenantId, userId, note, 'mfa.verify', verified ? 'success' : 'failure', verified ? { method: 'totp' } : { method: 'totp', reason: 'invalid_code' });
        return verified;
      });
    },

    async verifyBackupCode(tenantId: string, userId: string, code: string, note?: MfaAuditNote): Promise<boolean> {
      if (!known(tenantId, userId)) return false;
      const normalised = normaliseBackupCode(code);
      return withTenant(db, tenantId, async (trx) => {
        const verified = normalised !== undefined && (await mfaQueries.consumeBackupCode(trx, tenantId, userId, backupCodeDigest(userId, normalised)));
        await record(trx, tenantId, userId, note, 'mfa.verify', verified ? 'success' : 'failure', verified ? { method: 'backup' } : { method: 'backup', reason: 'invalid_code' });
        return verified;
      });
    },

    // New codes; the old ones stop working. Only with an active TOTP.
    async regenerateBackupCodes(tenantId: string, userId: string, note?: MfaAuditNote): Promise<string[]> {
      requireKnown(tenantId, userId);
      return withTenant(db, tenantId, async (trx) => {
        const row = await mfaQueries.findTotp(trx, tenantId, userId, { forUpdate: true });
        if (!row?.secret_sealed) throw new ConflictError('backup codes need an active authenticator app (TOTP) first');
        const backupCodes = newBackupCodes();
        await mfaQueries.replaceBackupCodes(trx, tenantId, userId, backupCodes.map((backupCode) => backupCodeDigest(userId, normaliseBackupCode(backupCode)!)));
        await record(trx, tenantId, userId, note, 'mfa.backup_codes.regenerate', 'success', { issued: backupCodes.length });
        return backupCodes;
      });
    },

    // What is set up, and since when (the GDPR export; status() is its summary).
    async enrolments(tenantId: string, userId: string): Promise<MfaEnrolments> {
      requireKnown(tenantId, userId);
      return withTenant(db, tenantId, async (trx) => {
        const { totp, codes } = await mfaQueries.enrolments(trx, tenantId, userId);
        return {
          totp: {
            active: Boolean(totp?.secret_sealed),
            confirmedAt: totp?.secret_sealed && totp.confirmed_at ? new Date(totp.confirmed_at) : null,
            enrolmentPendingSince: pendingIsLive(totp) ? new Date(totp!.pending_created_at!) : null,
          },
          backupCodes: { remaining: codes.count, issuedAt: codes.issuedAt },
        };
      });
    },

    // The users of the tenant with an active authenticator app (for the MFA adoption report).
    async usersWithTotp(tenantId: string): Promise<string[]> {
      if (!isUuid(tenantId)) return [];
      return withTenant(db, tenantId, (trx) => mfaQueries.usersWithTotp(trx, tenantId));
    },

    // Removes TOTP (active and pending) and every backup code.
    async remove(tenantId: string, userId: string, note?: MfaAuditNote): Promise<void> {
      requireKnown(tenantId, userId);
      await withTenant(db, tenantId, async (trx) => {
        await mfaQueries.deleteBackupCodes(trx, tenantId, userId);
        await mfaQueries.deleteTotp(trx, tenantId, userId);
        await record(trx, tenantId, userId, note, 'mfa.remove', 'success', { method: 'totp' });
      });
    },

    // Seals every TOTP secret (active and pending) again under the current key-encryption key
    // (`idp keys rewrap`). A platform task: it pages across all tenants, outside withTenant.
    rewrap(keyRing: SealingKeys): Promise<RewrapReport> {
      return rewrapAll(db, keyRing, {
        kind: 'totp_secret',
        page: async (trx, after, limit) =>
          (await mfaQueries.sealedPage(trx, after, limit)).map((row) => ({
            cursor: row.user_id,
            values: (['secret_sealed', 'pending_secret_sealed'] as const)
              .filter((column) => row[column])
              .map((column) => ({
                id: column === 'secret_sealed' ? row.user_id : `${row.user_id} (pending)`,
                sealed: row[column]!,
                context: sealContext(row.user_id),
                save: (t: Knex.Transaction, resealed: string) => mfaQueries.replaceSealed(t, row.tenant_id, row.user_id, column, resealed),
              })),
          })),
      });
    },
  };
  return service;
}

export type MfaService = ReturnType<typeof createMfaService>;
