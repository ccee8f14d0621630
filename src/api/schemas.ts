// Shared pieces of the admin API's input schemas.
import { z } from 'zod';

export const uuid = z.uuid({ message: 'must be a UUID' });
export const tenantParams = z.object({ tenantId: uuid }).strict();
export const version = z.number().int().positive();

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

export function decodeCursor(cursor: string | undefined): { createdAt: Date; id: string } | undefined {
  if (!cursor) return undefined;
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    const date = new Date(createdAt);
    if (Number.isNaN(date.getTime()) || typeof id !== 'string' || !uuid.safeParse(id).success) throw new Error('bad cursor');
    return { createdAt: date, id };
  } catch {
    return undefined;
  }
}
