// The hash chain: each entry's hash covers its own fields and the hash of the entry before it, so
// changing, removing or reordering any entry breaks every link after it.
import { createHash } from 'node:crypto';

export const GENESIS_HASH = '0'.repeat(64);

export interface HashedFields {
  tenantId: string;
  seq: number;
  id: string;
  occurredAt: Date;
  type: string;
  outcome: string;
  actorId: string | null;
  targetId: string | null;
  targetRef: string | null;
  details: unknown;
  prevHash: string;
}

// JSON with object keys sorted at every level, so the same value always yields the same text
// (jsonb does not keep the key order it was given).
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, child]) => child !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([key, child]) => `${JSON.stringify(key)}:${canonicalJson(child)}`).join(',')}}`;
}

export function entryHash(fields: HashedFields): string {
  const payload = canonicalJson({ ...fields, occurredAt: fields.occurredAt.toISOString() });
  return createHash('sha256').update(payload).digest('hex');
}
