// Backup codes: 10 random codes of 10 characters (about 50 bits each) from an alphabet without
// look-alikes (no 0/o, 1/l/i), shown as "xxxxx-xxxxx". Only their SHA-256 digest is stored.
import { randomInt } from 'node:crypto';
import { sha256Hex } from '../security/crypto.ts';

export const BACKUP_CODE_COUNT = 10;
const ALPHABET = '23456789abcdefghjkmnpqrstuvwxyz';
const LENGTH = 10;
const GROUP = 5;
const VALID = new RegExp(`^[${ALPHABET}]{${LENGTH}}$`);

export function newBackupCodes(): string[] {
  return Array.from({ length: BACKUP_CODE_COUNT }, () => {
    const chars = Array.from({ length: LENGTH }, () => ALPHABET[randomInt(ALPHABET.length)]).join('');
    return `${chars.slice(0, GROUP)}-${chars.slice(GROUP)}`;
  });
}

// Case, spaces and dashes do not matter; undefined when it cannot be one of our codes.
export function normaliseBackupCode(input: unknown): string | undefined {
  if (typeof input !== 'string' || input.length > 64) return undefined;
  const code = input.toLowerCase().replace(/[\s\-‐-―]+/g, '');
  return VALID.test(code) ? code : undefined;
}

// Bound to the user, so one digest cannot be precomputed for every user at once.
export function backupCodeDigest(userId: string, normalisedCode: string): string {
  return sha256Hex(`mfa_backup_code:${userId}:${normalisedCode}`);
}
