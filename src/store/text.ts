// What PostgreSQL can hold: a text value never holds NUL, and JSON (jsonb) never holds a string
// with an unpaired UTF-16 surrogate. A value that breaks either can match no stored row and must
// not reach a statement, where it would fail as a server error.
export function storableText(value: string): boolean {
  return !value.includes('\u0000') && value.isWellFormed();
}

// The dotted paths (under `prefix`) of every string in a parsed body, query or parameter set,
// keys included, that PostgreSQL cannot hold.
export function unstorableTextPaths(value: unknown, prefix: string): string[] {
  if (typeof value === 'string') return storableText(value) ? [] : [prefix];
  if (Array.isArray(value)) return value.flatMap((item, index) => unstorableTextPaths(item, `${prefix}.${index}`));
  if (value && typeof value === 'object') {
    return Object.entries(value).flatMap(([key, item]) => (storableText(key) ? unstorableTextPaths(item, `${prefix}.${key}`) : [`${prefix}.${key.replace(/[\u0000\ud800-\udfff]/g, '\ufffd')}`]));
  }
  return [];
}
