// What the account pages and API need from services other domains build. Typed here as the
// subset they call, so the account code depends on the contract, not on the implementation.
import type { ValidationError } from '../errors.ts';

export interface AccountMfa {
  status(tenantId: string, userId: string): Promise<{ totp: boolean; confirmedAt: Date | null; backupCodesRemaining: number }>;
  beginTotpEnrolment(tenantId: string, userId: string, labels: { accountName: string; issuer: string }): Promise<{ secret: string; otpauthUri: string; qrSvg: string }>;
  confirmTotpEnrolment(tenantId: string, userId: string, code: string): Promise<{ backupCodes: string[] } | undefined>;
  regenerateBackupCodes(tenantId: string, userId: string): Promise<string[]>;
  remove(tenantId: string, userId: string): Promise<void>;
}

export interface AccountCredentials {
  // Throws a ValidationError with `fields` (field -> message) for a wrong current password or a
  // new one the tenant's policy refuses.
  changePassword(tenantId: string, userId: string, currentPassword: string, newPassword: string, locale?: string): Promise<void>;
}

export type { ValidationError };
