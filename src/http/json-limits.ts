// A JSON body nested deeper than a real request ever is (a cheap way to make every later walk of
// it expensive) is refused before anything reads it, with 422 like every other body the API
// cannot accept. Runs after the body parser.
import type { Middleware } from 'koa';
import { problem } from './errors.ts';

export const MAX_JSON_DEPTH = 20;

// Stops descending one level past the limit, so a hostile body costs at most its size.
export function jsonDepthExceeds(value: unknown, limit: number, level = 0): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (level >= limit) return true;
  for (const child of Object.values(value)) if (jsonDepthExceeds(child, limit, level + 1)) return true;
  return false;
}

export function jsonDepthLimit(limit = MAX_JSON_DEPTH): Middleware {
  return async (ctx, next) => {
    const body = (ctx.request as { body?: unknown }).body;
    if (jsonDepthExceeds(body, limit)) return problem(ctx, 422, 'too-deep', `the JSON body is nested deeper than ${limit} levels`);
    await next();
  };
}
