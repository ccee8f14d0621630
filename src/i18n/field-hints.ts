// The words shown beside a refused form field, in the page's language. The services name what is
// wrong in English for API callers (problem+json); a page says instead what the field expects,
// from the catalogue, by the field's name (the last segment of its path).
import type { Translate } from './catalogues.ts';

const HINTED = new Set(['email', 'website', 'picture', 'birthdate', 'zoneinfo', 'locale', 'phoneNumber', 'username']);

export function fieldHint(path: string, serviceMessage: string, t: Translate): string {
  const field = path.split('.').pop()!;
  if (serviceMessage === 'required') return t('common.fieldHint.required');
  return t(HINTED.has(field) ? `common.fieldHint.${field}` : 'common.fieldHint.other');
}

// Every refused field of a form, keyed by its name, with its hint.
export function fieldHints(fields: Record<string, string> | undefined, t: Translate): Record<string, string> {
  const hints: Record<string, string> = {};
  for (const [path, message] of Object.entries(fields ?? {})) hints[path.split('.').pop()!] = fieldHint(path, message, t);
  return hints;
}
