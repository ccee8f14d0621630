// Versioned resources are changed with If-Match: the ETag ("<version>") the caller last read.
import type { Context } from 'koa';
import { ValidationError } from '../errors.ts';

export function ifMatchVersion(ctx: Context): number | undefined {
  const header = ctx.get('if-match');
  if (!header) return undefined;
  const match = /^(?:W\/)?"(\d{1,9})"$/.exec(header.trim());
  if (!match) throw new ValidationError('If-Match must be an ETag this API sent, such as "3"', { 'If-Match': 'not an ETag of this API' });
  return Number(match[1]);
}
