// Request bodies, parsed by @koa/bodyparser, and refused with a 4xx when they cannot be taken in:
// a body whose Content-Encoding does not decode (a zlib error carries no status of its own), and
// text PostgreSQL cannot hold (NUL, unpaired surrogates), named by field.
import { bodyParser } from '@koa/bodyparser';
import type { Middleware } from 'koa';
import { DomainError, ValidationError } from '../errors.ts';
import { unstorableTextPaths } from '../store/text.ts';

type BodyParserOptions = Parameters<typeof bodyParser>[0];

export const UNSTORABLE_TEXT = 'must not contain NUL characters or unpaired surrogates';

export function parsedBody(options: BodyParserOptions): Middleware {
  const parse = bodyParser(options);
  return async (ctx, next) => {
    try {
      await parse(ctx, async () => {});
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (typeof code === 'string' && code.startsWith('Z_')) throw new DomainError('the request body does not decode as its Content-Encoding says');
      throw error;
    }
    refuseUnstorableText(ctx.request.body, 'body');
    await next();
  };
}

// Throws a 422 naming each field whose text PostgreSQL cannot hold.
export function refuseUnstorableText(value: unknown, prefix: string): void {
  const paths = unstorableTextPaths(value, prefix);
  if (paths.length) throw new ValidationError(`invalid ${prefix}`, Object.fromEntries(paths.map((path) => [path, UNSTORABLE_TEXT])));
}
