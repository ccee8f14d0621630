// Who made a change and from where, as the services that record changes receive it from their
// callers (the admin API passes its principal and the request's address). A change without an
// actor came from the command line.
import type { AuditEvent, AuditPerson } from './service.ts';

export type ChangeOrigin = Pick<AuditEvent, 'actor' | 'context'>;

// Where a request came from, as an audit entry keeps it (outside the hash, erasable).
export type RequestContext = AuditEvent['context'];

export function requestContext(ctx: { ip: string; get(header: string): string }): RequestContext {
  return { ip: ctx.ip, userAgent: ctx.get('user-agent') || undefined };
}

// An origin whose actor is known (the admin API always knows its principal).
export type KnownOrigin = ChangeOrigin & { actor: AuditPerson };

export const CLI_ACTOR: AuditPerson = { type: 'system', id: 'cli' };

// The actor and context of an audit event for a change made by `origin`.
export function originOf(origin: ChangeOrigin | undefined): KnownOrigin {
  return { actor: origin?.actor ?? CLI_ACTOR, context: origin?.context };
}
