// The per-field messages of a refused form, in the page's language. Password-policy problems are
// translated from their codes; other fields get the hint of what they expect (src/i18n/field-hints.ts).
import type { DomainError } from '../errors.ts';
import type { Translate } from '../i18n/catalogues.ts';
import { fieldHints } from '../i18n/field-hints.ts';
import { PasswordPolicyError, translatePasswordProblems } from '../security/password-policy.ts';

export function fieldMessages(error: DomainError, t: Translate): Record<string, string> {
  const messages = fieldHints(error.fields, t);
  if (error instanceof PasswordPolicyError) messages.password = translatePasswordProblems(error.problems, t);
  if (!Object.keys(messages).length) messages.form = error.message || t('common.errorDefault');
  return messages;
}
