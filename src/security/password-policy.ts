// A tenant's password policy applied to a new password: long enough, not too long, not on the
// bundled list of leaked passwords, not one of the user's last N. Problems come back as codes with
// parameters, so the API can say them in English and the pages in the reader's language.
import { randomInt } from 'node:crypto';
import { dictionary } from '@zxcvbn-ts/language-common';
import { ValidationError } from '../errors.ts';
import type { TenantPolicies } from '../tenants/policies.ts';

export type PasswordPolicy = TenantPolicies['password'];

export const MAX_PASSWORD_LENGTH = 1024;

export type PasswordProblem =
  | { code: 'tooShort'; params: { min: number } }
  | { code: 'tooLong'; params: { max: number } }
  | { code: 'common' }
  | { code: 'reused'; params: { count: number } };

export interface PasswordCheckOptions {
  // Hashes of the current and earlier passwords, newest first: at most historySize are compared.
  previousHashes?: readonly string[];
  verify?: (hash: string, password: string) => Promise<boolean>;
}

// About 49,000 leaked passwords, all lower case in the package.
let common: Set<string> | undefined;
function commonPasswords(): Set<string> {
  common ??= new Set(dictionary['passwords-common']);
  return common;
}

// Digits and punctuation people put around a word to get past a length rule ("password123456").
const DECORATION = /^[\d\W_]*(.*?)[\d\W_]*$/u;

export function isCommonPassword(password: string): boolean {
  const list = commonPasswords();
  const lower = password.toLowerCase();
  if (list.has(lower)) return true;
  const stem = DECORATION.exec(lower)?.[1] ?? '';
  return stem.length >= 4 && stem !== lower && list.has(stem);
}

// Length is counted in code points, so an emoji counts once.
export async function checkPassword(policy: PasswordPolicy, password: string, options: PasswordCheckOptions = {}): Promise<PasswordProblem[]> {
  const length = [...password].length;
  if (password.length > MAX_PASSWORD_LENGTH) return [{ code: 'tooLong', params: { max: MAX_PASSWORD_LENGTH } }];
  const problems: PasswordProblem[] = [];
  if (length < policy.minLength) problems.push({ code: 'tooShort', params: { min: policy.minLength } });
  if (policy.refuseCommon && isCommonPassword(password)) problems.push({ code: 'common' });
  if (!problems.length && policy.historySize > 0 && options.verify) {
    for (const hash of (options.previousHashes ?? []).slice(0, policy.historySize)) {
      if (await options.verify(hash, password)) {
        problems.push({ code: 'reused', params: { count: policy.historySize } });
        break;
      }
    }
  }
  return problems;
}

export function describePasswordProblem(problem: PasswordProblem): string {
  switch (problem.code) {
    case 'tooShort':
      return `must be at least ${problem.params.min} characters`;
    case 'tooLong':
      return `must be at most ${problem.params.max} characters`;
    case 'common':
      return 'is too common: it appears in lists of leaked passwords; choose a longer passphrase';
    case 'reused':
      return problem.params.count === 1 ? 'must differ from the current password' : `must differ from the last ${problem.params.count} passwords`;
  }
}

// A 422 with a readable message for the field, and the problem codes for pages to translate.
export class PasswordPolicyError extends ValidationError {
  readonly problems: PasswordProblem[];

  constructor(problems: PasswordProblem[], field = 'password') {
    const message = problems.map(describePasswordProblem).join('; ');
    super(`the password is not accepted: ${message}`, { [field]: message });
    this.problems = problems;
  }
}

// Unambiguous characters (no 0/O, 1/l/I), grouped for reading aloud: 5-character groups of
// 31 symbols carry about 24.8 bits each; four groups and more are far beyond guessing.
const TEMPORARY_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789';

export function generateTemporaryPassword(policy: PasswordPolicy): string {
  // 6 × groups − 1 characters with the dashes: at least the policy's minimum.
  const groups = Math.max(4, Math.ceil((policy.minLength + 1) / 6));
  const parts: string[] = [];
  for (let group = 0; group < groups; group++) {
    let part = '';
    for (let index = 0; index < 5; index++) part += TEMPORARY_ALPHABET[randomInt(TEMPORARY_ALPHABET.length)];
    parts.push(part);
  }
  return parts.join('-');
}

// The problems in the reader's language, for pages (keys password.problem.*).
export function translatePasswordProblems(problems: readonly PasswordProblem[], t: (key: string, params?: Record<string, unknown>) => string): string {
  return problems
    .map((problem) => {
      if (problem.code === 'reused' && problem.params.count === 1) return t('password.problem.reusedCurrent');
      return t(`password.problem.${problem.code}`, 'params' in problem ? problem.params : undefined);
    })
    .join(' ');
}
