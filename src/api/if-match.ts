// Versioned resources are changed with If-Match: the ETag ("<version>") the caller last read.
// "*" asks only that the resource exists, which every write here checks anyway (404), so it names
// no version: a write that needs one still answers 428.
import type { Context } from 'koa';
import { ValidationError } from '../errors.ts';

export function ifMatchVersion(ctx: Context): number | undefined {
  const header = ctx.get('if-match').trim();
  if (!header || header === '*') return undefined;
  const match = /^(?:W\/)?"(\d{1,9})"$/.exec(header);
  if (!match) throw new ValidationError('If-Match must be an ETag this API sent, such as "3", or *', { 'If-Match': 'not an ETag of this API' });
  return Number(match[1]);
}
