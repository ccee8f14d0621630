// What the account pages and API need from services other domains build. Typed here as the
// subset they call, so the account code depends on the contract, not on the implementation.
import type { ValidationError } from '../errors.ts';
import type { MfaAuditNote } from '../mfa/service.ts';
import type { RequestContext } from '../audit/origin.ts';

export interface AccountMfa {
  status(tenantId: string, userId: string): Promise<{ totp: boolean; confirmedAt: Date | null; backupCodesRemaining: number }>;
  beginTotpEnrolment(tenantId: string, userId: string, labels: { accountName: string; issuer: string }): Promise<{ secret: string; otpauthUri: string; qrSvg: string }>;
  // With the note, the change is recorded in the audit trail in its own transaction.
  confirmTotpEnrolment(tenantId: string, userId: string, code: string, note?: MfaAuditNote): Promise<{ backupCodes: string[] } | undefined>;
  regenerateBackupCodes(tenantId: string, userId: string, note?: MfaAuditNote): Promise<string[]>;
  remove(tenantId: string, userId: string, note?: MfaAuditNote): Promise<void>;
}

export interface AccountCredentials {
  // Throws a ValidationError with `fields` (field -> message) for a wrong current password or a
  // new one the tenant's policy refuses.
  // Recorded as password.change, with the request's address and user agent.
  changePassword(tenantId: string, userId: string, currentPassword: string, newPassword: string, locale?: string, context?: RequestContext): Promise<void>;
}

export type { ValidationError, MfaAuditNote, RequestContext };
