// The per-field messages of a refused form, in the page's language. Password-policy problems are
// translated from their codes; other field errors carry the service's own words.
import type { DomainError } from '../errors.ts';
import type { Translate } from '../i18n/catalogues.ts';
import { PasswordPolicyError, translatePasswordProblems } from '../security/password-policy.ts';

export function fieldMessages(error: DomainError, t: Translate): Record<string, string> {
  const messages: Record<string, string> = {};
  for (const [path, message] of Object.entries(error.fields ?? {})) {
    messages[path.split('.').pop()!] = message;
  }
  if (error instanceof PasswordPolicyError) messages.password = translatePasswordProblems(error.problems, t);
  if (!Object.keys(messages).length) messages.form = error.message || t('common.errorDefault');
  return messages;
}
