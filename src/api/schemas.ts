// Shared pieces of the admin API's input schemas.
import { z } from 'zod';
import { ValidationError } from '../errors.ts';
import { INSTANT_RANGE, representable } from '../store/instant.ts';

export const uuid = z.uuid({ message: 'must be a UUID' });
export const tenantParams = z.object({ tenantId: uuid }).strict();
export const version = z.number().int().positive();

// A date-time filter: ISO 8601 with an offset, within the years the database holds.
export const timestamp = z.iso
  .datetime({ offset: true, message: 'must be an ISO 8601 date-time, such as 2026-11-23T10:00:00Z' })
  .refine((value) => representable(new Date(value)), { message: INSTANT_RANGE });

export const listQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(200).default(50),
    cursor: z.string().max(512).optional(),
  })
  .strict();

// An opaque keyset cursor: base64url of the last item's (created_at, id).
export function encodeCursor(item: { createdAt: Date; id: string }): string {
  return Buffer.from(JSON.stringify([item.createdAt.toISOString(), item.id])).toString('base64url');
}

// Absent: undefined; present but not one encodeCursor made (or out of the database's range): 422.
export function decodeCursor(cursor: string | undefined): { createdAt: Date; id: string } | undefined {
  if (!cursor) return undefined;
  const decoded = parseCursor(cursor);
  if (!decoded) throw new ValidationError('invalid cursor', { 'query.cursor': 'not a cursor this API returned' });
  return decoded;
}

function parseCursor(cursor: string): { createdAt: Date; id: string } | undefined {
  try {
    const decoded: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (!Array.isArray(decoded) || decoded.length !== 2) return undefined;
    const [createdAt, id] = decoded;
    if (typeof createdAt !== 'string' || typeof id !== 'string' || !uuid.safeParse(id).success) return undefined;
    const date = new Date(createdAt);
    return representable(date) ? { createdAt: date, id } : undefined;
  } catch {
    return undefined;
  }
}
