// Dotted paths into an upstream's JSON (a profile or ID token claims): "id", "user.email",
// "authorization.roles.name". A path that passes through an array continues into every element
// and collects what each yields, so "authorization.roles.name" is the name of every role.
import type { ClaimMapping, UpstreamProfile } from '../connector.ts';
import { UpstreamError } from '../connector.ts';

export function isClaimPath(path: string): boolean {
  return path.length > 0 && path.length <= 200 && path.split('.').every((segment) => segment.length > 0);
}

function descend(value: unknown, segments: string[], out: unknown[]): void {
  if (Array.isArray(value)) {
    for (const element of value) descend(element, segments, out);
    return;
  }
  if (segments.length === 0) {
    if (value !== undefined && value !== null) out.push(value);
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  const [head, ...rest] = segments;
  // Own properties only: "constructor" or "__proto__" in a mapping must not reach the prototype.
  if (!Object.hasOwn(value, head)) return;
  descend((value as Record<string, unknown>)[head], rest, out);
}

// Every value the path reaches, arrays at the end flattened.
export function valuesAt(document: unknown, path: string): unknown[] {
  if (!isClaimPath(path)) return [];
  const out: unknown[] = [];
  descend(document, path.split('.'), out);
  return out;
}

// The first string the path reaches, if any.
export function stringAt(document: unknown, path: string): string | undefined {
  return valuesAt(document, path).find((value): value is string => typeof value === 'string' && value.length > 0);
}

// Every distinct non-empty string the path reaches, in order.
export function stringsAt(document: unknown, path: string): string[] {
  const strings = valuesAt(document, path).filter((value): value is string => typeof value === 'string' && value.length > 0);
  return [...new Set(strings)];
}

// The subject: exactly one string or integer (some upstreams number their users).
export function subjectAt(document: unknown, path: string): string | undefined {
  const values = valuesAt(document, path);
  if (values.length !== 1) return undefined;
  const [value] = values;
  if (typeof value === 'string' && value.length > 0 && value.length <= 255) return value;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  return undefined;
}

// true, false or undefined (the upstream said nothing usable).
export function booleanAt(document: unknown, path: string): boolean | undefined {
  const [value] = valuesAt(document, path);
  if (typeof value === 'boolean') return value;
  if (value === 'true') return true;
  if (value === 'false') return false;
  return undefined;
}

export const OIDC_DEFAULT_MAPPING: ClaimMapping = { subject: 'sub', email: 'email', emailVerified: 'email_verified', name: 'name', groups: 'groups' };

// The profile in the connector's terms. emailVerified is what the upstream says when it says it,
// else `trustEmail`.
export function mapProfile(document: unknown, mapping: ClaimMapping, trustEmail: boolean): UpstreamProfile {
  const subject = subjectAt(document, mapping.subject);
  if (subject === undefined) throw new UpstreamError('invalid_response', `the upstream's answer has no usable subject at "${mapping.subject}"`);
  const email = mapping.email ? stringAt(document, mapping.email) : undefined;
  const said = mapping.emailVerified ? booleanAt(document, mapping.emailVerified) : undefined;
  const name = mapping.name ? stringAt(document, mapping.name) : undefined;
  return {
    subject,
    ...(email !== undefined && { email }),
    emailVerified: said ?? trustEmail,
    ...(name !== undefined && { name }),
    groups: mapping.groups ? stringsAt(document, mapping.groups) : [],
  };
}
