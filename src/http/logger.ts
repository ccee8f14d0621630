import { pino, type DestinationStream, type Logger } from 'pino';

// Fields that hold a secret wherever they appear, at the top level or one level down. Request
// parameters and bodies (where authorization codes travel) never belong in a log line at all.
// `code` alone is not among them: it names error codes (ECONNREFUSED, EAUTH), which operators need.
const SECRET_FIELDS = ['password', 'client_secret', 'clientSecret', 'token', 'refresh_token', 'access_token', 'id_token', 'secret', 'authorization', 'cookie', 'query', 'body'];

// Structured JSON logs. Anything that can carry a secret is redacted at the source.
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: undefined,
      serializers: { err: errorSummary },
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]', ...SECRET_FIELDS.flatMap((field) => [field, `*.${field}`])],
        censor: '[redacted]',
      },
    },
    destination,
  );
}

// An error is logged by what it is, not by what it carries: libraries hang the request body
// (co-body's `body`), Redis command arguments (ioredis's `command`) or request options with their
// headers on their errors, so only these fields are kept, and `code` only when it has the shape of
// an error code.
const ERROR_CODE = /^[A-Z0-9_]{1,64}$/;

function errorSummary(error: unknown, depth = 0): unknown {
  if (!(error instanceof Error)) return error;
  const { code, status } = error as { code?: unknown; status?: unknown };
  const errorCode = (typeof code === 'string' && ERROR_CODE.test(code)) || typeof code === 'number' ? { code } : {};
  return {
    type: error.name,
    message: error.message,
    stack: error.stack,
    ...errorCode,
    ...(typeof status === 'number' ? { status } : {}),
    ...(error.cause !== undefined && depth < 3 ? { cause: errorSummary(error.cause, depth + 1) } : {}),
  };
}
