import type { Context, Middleware } from 'koa';
import type { Logger } from 'pino';
import type { Views } from './views.ts';
import { DomainError, TooManyAttemptsError } from '../errors.ts';
import { isStoreUnavailable } from '../store/unavailable.ts';
import { countStoreUnavailable } from '../ops/metrics.ts';

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
    408: 'Request Timeout',
    409: 'Conflict',
    412: 'Precondition Failed',
    413: 'Content Too Large',
    415: 'Unsupported Media Type',
    422: 'Unprocessable Content',
    428: 'Precondition Required',
    429: 'Too Many Requests',
    503: 'Service Unavailable',
  };
  return titles[status] ?? (status >= 500 ? 'Internal Server Error' : 'Error');
}

// The JSON APIs' errors as problem+json, never cached: domain errors with their status (and the
// headers RFC 6750 and RFC 9110 ask for), a body the parser refused as 400/413; anything else
// goes on to errorHandler.
export function jsonApiErrors(): Middleware {
  return async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    try {
      await next();
    } catch (error) {
      if (error instanceof DomainError) {
        if (error.status === 401) ctx.set('WWW-Authenticate', 'Bearer error="invalid_token"');
        if (error instanceof TooManyAttemptsError) ctx.set('Retry-After', String(error.retryAfterSeconds));
        return problem(ctx, error.status, error.type, error.message, error.fields ? { errors: error.fields } : {});
      }
      const status = (error as { status?: number }).status;
      if (status && status >= 400 && status < 500) {
        return problem(ctx, status, status === 413 ? 'too-large' : 'bad-request', status === 413 ? 'the request body is too large' : 'the request body is not valid JSON');
      }
      throw error;
    }
  };
}

// A request no route answered: 404, or 405 with Allow when a router knows the path but not the
// method (its allowedMethods leave the body empty). problem+json, or a page for a browser outside
// the APIs.
export function unrouted(views: Views): Middleware {
  return async (ctx, next) => {
    await next();
    if ((ctx.body !== undefined && ctx.body !== null) || (ctx.status !== 404 && ctx.status !== 405)) return;
    if (!ctx.path.startsWith('/api/') && ctx.accepts('json', 'html') === 'html') {
      const status = ctx.status;
      return views.page(ctx, 'error.njk', { error: status === 404 ? 'not_found' : 'method_not_allowed', description: status === 404 ? views.translator(ctx)('common.pageNotFound') : undefined }, status);
    }
    if (ctx.status === 404) problem(ctx, 404, 'not-found', `no route for ${ctx.method} ${ctx.path}`);
    else problem(ctx, 405, 'method-not-allowed', `${ctx.method} is not allowed here; see Allow`);
  };
}

// Errors thrown by our own routes. oidc-provider formats its own errors, per RFC 6749.
// A client error keeps its message; anything else becomes a generic 500 with the request id.
export function errorHandler(views: Views, log: Logger): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      if (isStoreUnavailable(error)) return storeUnavailable(ctx, views, log, error);
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

// Seconds a client should wait before retrying while a store is unreachable.
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;
const UNAVAILABLE_DETAIL = 'a storage dependency is briefly unavailable; try again shortly';

// A request a store outage stopped (docs/operations.md, "Outages"): 503 with Retry-After, as
// problem+json on APIs and a page in the browser. Logged at most every 10 seconds, with a count.
export function storeUnavailable(ctx: Context, views: Views, log: Logger, error: unknown): void {
  noteStoreUnavailable(log, error);
  ctx.set('Retry-After', String(UNAVAILABLE_RETRY_AFTER_SECONDS));
  if (ctx.path.startsWith('/api/') || !ctx.accepts('html')) {
    problem(ctx, 503, 'unavailable', UNAVAILABLE_DETAIL, { requestId: ctx.state.requestId });
  } else {
    views.page(ctx, 'error.njk', { error: 'temporarily_unavailable', description: views.translator(ctx)('common.unavailable'), requestId: ctx.state.requestId }, 503);
  }
}

// The same for oidc-provider's endpoints, whose errors the library has already rendered as a
// server_error: called from its 'server_error' event, it turns the answer into RFC 6749's
// temporarily_unavailable with 503 (a page where the library rendered one). True when it did.
export function oidcStoreUnavailable(ctx: Context, views: Views, log: Logger, error: unknown): boolean {
  if (!isStoreUnavailable(error)) return false;
  noteStoreUnavailable(log, error);
  ctx.status = 503;
  ctx.set('Retry-After', String(UNAVAILABLE_RETRY_AFTER_SECONDS));
  if (ctx.body && typeof ctx.body === 'object' && !Buffer.isBuffer(ctx.body)) {
    ctx.body = { error: 'temporarily_unavailable', error_description: UNAVAILABLE_DETAIL };
  } else {
    views.page(ctx, 'error.njk', { error: 'temporarily_unavailable', description: views.translator(ctx)('common.unavailable'), requestId: ctx.state.requestId }, 503);
  }
  return true;
}

let lastUnavailableLog = 0;
let unavailableSinceLog = 0;

function noteStoreUnavailable(log: Logger, error: unknown): void {
  countStoreUnavailable();
  unavailableSinceLog++;
  const now = Date.now();
  if (now - lastUnavailableLog < 10_000) return;
  const err = error as { name?: string; code?: string; message?: string };
  log.warn({ err: { name: err.name, code: err.code, message: err.message }, requests: unavailableSinceLog }, 'a store is unavailable: requests are answered 503');
  lastUnavailableLog = now;
  unavailableSinceLog = 0;
}
