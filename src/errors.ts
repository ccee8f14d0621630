// Errors services raise for the callers' mistakes. The HTTP layer maps them to problem+json;
// the CLI prints their message. Anything else is a bug and becomes a 500 without details.
export class DomainError extends Error {
  readonly status: number = 400;
  readonly type: string = 'bad-request';
  readonly expose = true;
  readonly fields?: Record<string, string>;

  constructor(message: string, fields?: Record<string, string>) {
    super(message);
    this.fields = fields;
  }
}

export class NotFoundError extends DomainError {
  override readonly status = 404;
  override readonly type = 'not-found';
}

export class ConflictError extends DomainError {
  override readonly status = 409;
  override readonly type = 'conflict';
}

// The resource changed since the caller read it (If-Match / version mismatch).
export class VersionMismatchError extends DomainError {
  override readonly status = 412;
  override readonly type = 'version-mismatch';
}

export class ValidationError extends DomainError {
  override readonly status = 422;
  override readonly type = 'validation';
}

export class ForbiddenError extends DomainError {
  override readonly status = 403;
  override readonly type = 'forbidden';
}

// No credentials, or credentials this server does not accept.
export class UnauthorizedError extends DomainError {
  override readonly status = 401;
  override readonly type = 'unauthorized';
}

// Too many attempts at something guessable; the caller may try again after `retryAfterSeconds`.
export class TooManyAttemptsError extends DomainError {
  override readonly status = 429;
  override readonly type = 'too-many-attempts';
  readonly retryAfterSeconds: number;

  constructor(message: string, retryAfterSeconds: number) {
    super(message);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

// Field errors keyed by the dotted path of each schema issue under `prefix` ("body.displayName").
export function fieldErrors(prefix: string, issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>): Record<string, string> {
  return Object.fromEntries(issues.map((issue) => [[prefix, ...issue.path.map(String)].join('.'), issue.message]));
}
