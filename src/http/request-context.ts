import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';
import type { Logger } from 'pino';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

// Gives every request an id (the caller's when it is well-formed), echoes it back and logs one
// line per request: method, path without query (codes and tokens travel in queries), status, time.
export function requestContext(log: Logger): Middleware {
  return async (ctx, next) => {
    const incoming = ctx.get('x-request-id');
    const id = REQUEST_ID.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = id;
    ctx.set('X-Request-Id', id);
    const started = performance.now();
    try {
      await next();
    } finally {
      const ms = Math.round((performance.now() - started) * 10) / 10;
      const fields = { requestId: id, method: ctx.method, path: ctx.path, status: ctx.status, ms };
      if (ctx.status >= 500) log.error(fields, 'request');
      else if (log.isLevelEnabled('debug')) log.debug(fields, 'request');
    }
  };
}
