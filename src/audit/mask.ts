// What may enter the hashed, never-erasable part of an entry: no secrets and no personal data.
// Secrets are recognised by their field name, personal data by field name or by looking like an
// e-mail address or an international phone number.
import { canonicalJson } from './chain.ts';

const SECRET_KEY = /password|secret|token|key|code|otp|credential/i;
// Names that say what a field measures or refers to, not what it holds: accessTokenTtl,
// token_endpoint_auth_method, passwordPolicy, apiKeyId, clientSecretExpiresAt are not secrets.
const DESCRIBES_NOT_HOLDS = /(?:[a-z0-9](?:Ttl|Seconds|Minutes|Hours|Days|Method|Methods|Policy|At|Count|Length|Format|Type|Types|Enabled|Required|Id|Ids)|_(?:ttl|seconds|minutes|hours|days|method|methods|policy|at|count|length|format|type|types|enabled|required|id|ids))$/;
const PERSONAL_KEY = /e-?mail|phone|mobile/i;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const PHONE = /^\+[0-9][0-9 ().-]{5,22}[0-9]$/;

export const MASKED = '[masked]';
export const PERSONAL = '[personal]';

const MAX_DEPTH = 10;

function maskValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return EMAIL.test(value) || PHONE.test(value) ? PERSONAL : value;
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_DEPTH) return MASKED;
  if (Array.isArray(value)) return value.map((item) => maskValue(item, depth + 1));
  return Object.fromEntries(Object.entries(value).map(([key, child]) => [key, maskField(key, child, depth + 1)]));
}

function maskField(key: string, value: unknown, depth: number): unknown {
  if (value === undefined || value === null) return value;
  if (SECRET_KEY.test(key) && !DESCRIBES_NOT_HOLDS.test(key)) return MASKED;
  if (PERSONAL_KEY.test(key)) return PERSONAL;
  return maskValue(value, depth);
}

export function maskDetails<T>(value: T): T {
  return maskValue(value, 0) as T;
}

export interface FieldChange {
  field: string;
  before: unknown;
  after: unknown;
}

// The top-level fields that differ between two versions of a resource, each value masked as its
// field name requires: the before/after of an admin change.
export function changeDetails(before: Record<string, unknown> | null | undefined, after: Record<string, unknown> | null | undefined): { changes: FieldChange[] } {
  const old = before ?? {};
  const now = after ?? {};
  const fields = [...new Set([...Object.keys(old), ...Object.keys(now)])].sort();
  const changes: FieldChange[] = [];
  for (const field of fields) {
    if (canonicalJson(old[field]) === canonicalJson(now[field])) continue;
    changes.push({ field, before: maskField(field, old[field] ?? null, 0), after: maskField(field, now[field] ?? null, 0) });
  }
  return { changes };
}
