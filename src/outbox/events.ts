// The events this provider tells other services about, and the envelope each travels in (on the
// Redis stream and in webhook bodies alike). docs/events.md describes every type's data.
export const EVENT_TYPES = [
  'user.created',
  'user.updated',
  'user.deleted',
  'user.registered',
  'auth.login.success',
  'auth.login.failed',
  'session.revoked',
  'role.changed',
  'apikey.revoked',
  'apikey.created',
  'apikey.rotated',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

export function isEventType(value: string): value is EventType {
  return (EVENT_TYPES as readonly string[]).includes(value);
}

// `id` is the idempotency key: the same event delivered twice carries the same id.
export interface EventEnvelope {
  id: string;
  type: EventType;
  tenantId: string;
  occurredAt: string;
  data: Record<string, unknown>;
}

// Events leave the provider: a field named like a credential is refused at enqueue, at any depth,
// so a careless `data: { ...row }` cannot ship a password hash or a secret.
const CREDENTIAL_FIELD = /^(password|password_?hash|secret|secret_?sealed|client_?secret|token|access_?token|refresh_?token|id_?token|code|otp|backup_?codes?)$/i;

export function credentialField(data: unknown, path = 'data'): string | undefined {
  if (data === null || typeof data !== 'object') return undefined;
  for (const [key, value] of Object.entries(data)) {
    if (CREDENTIAL_FIELD.test(key)) return `${path}.${key}`;
    const nested = credentialField(value, `${path}.${key}`);
    if (nested) return nested;
  }
  return undefined;
}

// What a change records: never secrets, password hashes, tokens or codes.
export interface NewEvent {
  tenantId: string;
  type: EventType;
  data: Record<string, unknown>;
}
