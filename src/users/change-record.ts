// What the audit trail and the outbox learn about a change to a user: which fields changed, with
// values only for the fields that say nothing about the person (flags, status). Everything else a
// user holds is personal data, so its before/after is shown as "[personal]", never its value.
import { changeDetails, MASKED, PERSONAL, type FieldChange } from '../audit/mask.ts';

const NOT_PERSONAL = new Set(['emailVerified', 'phoneNumberVerified', 'isAdmin', 'status']);
// Not a change of their own: hasPassword follows the password, listed as such.
const DERIVED = new Set(['id', 'tenantId', 'version', 'createdAt', 'updatedAt', 'hasPassword']);

// A User (service.ts), read field by field.
type UserShape = object & { hasPassword?: boolean };

function comparable(user: UserShape | null): Record<string, unknown> {
  if (!user) return {};
  return Object.fromEntries(Object.entries(user).filter(([field]) => !DERIVED.has(field)));
}

function personal(value: unknown): unknown {
  return value === null || value === undefined ? null : PERSONAL;
}

// The changed fields of a user (null before: created), personal values replaced. A new password
// is listed as changed, masked, whenever one was set.
export function userChanges(before: UserShape | null, after: UserShape, options: { passwordSet?: boolean } = {}): { changes: FieldChange[] } {
  const [old, now] = [comparable(before), comparable(after)];
  // changeDetails finds the changed fields; the values shown are decided here (its masking takes
  // emailVerified for an e-mail address).
  const changes = changeDetails(old, now).changes.map(({ field }) =>
    NOT_PERSONAL.has(field) ? { field, before: old[field] ?? null, after: now[field] ?? null } : { field, before: personal(old[field]), after: personal(now[field]) },
  );
  if (options.passwordSet) changes.push({ field: 'password', before: before?.hasPassword ? MASKED : null, after: MASKED });
  return { changes: changes.sort((a, b) => a.field.localeCompare(b.field)) };
}
