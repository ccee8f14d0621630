import type { Context, Middleware } from 'koa';
import type { Logger } from 'pino';
import type { Views } from './views.ts';

// RFC 9457 problem details for the JSON APIs.
export function problem(ctx: Context, status: number, type: string, detail: string, extra: Record<string, unknown> = {}): void {
  ctx.status = status;
  ctx.type = 'application/problem+json';
  ctx.body = { type: `urn:idp:problem:${type}`, title: titleFor(status), status, detail, ...extra };
}

function titleFor(status: number): string {
  const titles: Record<number, string> = {
    400: 'Bad Request',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'Not Found',
    405: 'Method Not Allowed',
    409: 'Conflict',
    413: 'Payload Too Large',
    415: 'Unsupported Media Type',
    429: 'Too Many Requests',
    503: 'Service Unavailable',
  };
  return titles[status] ?? (status >= 500 ? 'Internal Server Error' : 'Error');
}

// Errors thrown by our own routes. oidc-provider formats its own errors, per RFC 6749.
// A client error keeps its message; anything else becomes a generic 500 with the request id.
export function errorHandler(views: Views, log: Logger): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      const err = error as { status?: number; expose?: boolean; message?: string; messageKey?: string };
      const status = err.status && err.status >= 400 && err.status < 500 ? err.status : 500;
      const detail = status < 500 && err.expose !== false ? (err.message ?? 'bad request') : 'an unexpected error occurred';
      if (status >= 500) log.error({ err: error, requestId: ctx.state.requestId }, 'unhandled error');
      if (ctx.path.startsWith('/api/') || !ctx.accepts('html')) {
        problem(ctx, status, status >= 500 ? 'internal' : 'bad-request', detail, { requestId: ctx.state.requestId });
      } else {
        const description = status < 500 && err.messageKey ? views.translator(ctx)(err.messageKey) : detail;
        views.page(ctx, 'error.njk', { error: status >= 500 ? 'server_error' : 'invalid_request', description, requestId: ctx.state.requestId }, status);
      }
    }
  };
}
