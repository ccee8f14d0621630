// A request still unanswered after the deadline is answered 503 (problem+json) instead of holding
// its connection and its client: a stuck dependency then shows as errors, not as a pile-up. The
// handler's late result is dropped (Koa ignores changes to a response already sent). Streams (server-sent events) are not affected: their handler
// returns once the stream is set up.
import type { Middleware } from 'koa';
import type { Logger } from 'pino';
import { problem } from './errors.ts';

// oauthPaths: endpoints whose clients expect RFC 6749's JSON error object rather than problem+json.
export function requestDeadline(options: { seconds: number; log: Logger; oauthPaths?: readonly string[] }): Middleware {
  const oauthPaths = new Set(options.oauthPaths ?? []);
  const ms = options.seconds * 1000;
  return async (ctx, next) => {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'expired'>((resolve) => {
      timer = setTimeout(() => resolve('expired'), ms);
    });
    const handled = next().then(() => 'handled' as const);
    try {
      const outcome = await Promise.race([handled, expired]);
      if (outcome === 'handled') return;
      // The handler may still fail later; nobody is waiting for it any more.
      handled.catch((error) => options.log.warn({ err: error, requestId: ctx.state.requestId }, 'request failed after its deadline'));
      options.log.warn({ requestId: ctx.state.requestId, method: ctx.method, path: ctx.path, seconds: options.seconds }, 'request deadline passed');
      ctx.set('Retry-After', '1');
      ctx.set('Connection', 'close');
      const detail = `the request was not answered within ${options.seconds} seconds`;
      if (oauthPaths.has(ctx.path)) {
        ctx.status = 503;
        ctx.body = { error: 'temporarily_unavailable', error_description: detail };
      } else {
        problem(ctx, 503, 'timeout', detail);
      }
    } finally {
      clearTimeout(timer);
    }
  };
}
