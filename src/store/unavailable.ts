// Whether an error means a store could not be reached (PostgreSQL down or cut off, the pool without
// a free connection in time, Redis down with its fallback full), as opposed to a bug or bad input.
// Such a request is answered 503 and can be retried; nothing of it was committed.
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
// SQLSTATE: connection exceptions (class 08), the server shutting down or starting, no free slot.
const SQLSTATES = /^(08...|57P0[1-3]|53300)$/;
const MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
  'Query read timeout',
  'Knex: Timeout acquiring a connection',
];
const NAMES = new Set(['KnexTimeoutError', 'HotStoreUnavailableError']);

export function isStoreUnavailable(error: unknown, depth = 0): boolean {
  if (!error || typeof error !== 'object' || depth > 3) return false;
  const { name, code, message, cause } = error as { name?: string; code?: string; message?: string; cause?: unknown };
  if (name && NAMES.has(name)) return true;
  if (typeof code === 'string' && (CONNECTION_CODES.has(code) || SQLSTATES.test(code))) return true;
  if (typeof message === 'string' && MESSAGES.some((text) => message.startsWith(text))) return true;
  return isStoreUnavailable(cause, depth + 1);
}
