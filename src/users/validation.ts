// Input checks for the users domain: which fields each caller may set, and what each may hold.
// Every problem is reported at once, keyed by field, so a form or an API client can show them all.
import { ValidationError } from '../errors.ts';
import { validateAttributes, type AttributeSchema } from '../tenants/attribute-schema.ts';
import { isUuid } from '../ids.ts';
import { MAX_PASSWORD_LENGTH } from '../security/password-policy.ts';
import { toE164 } from '../otp/phone.ts';
import { INSTANT_RANGE, representable } from '../store/instant.ts';

export const USER_STATUSES = ['active', 'suspended', 'deactivated'] as const;
export type UserStatus = (typeof USER_STATUSES)[number];

export const MAX_EMAIL = 254;
export const MAX_NAME = 256;
export const MIN_PASSWORD = 8;
// One maximum for every path that takes a password: the password policy's.
export const MAX_PASSWORD = MAX_PASSWORD_LENGTH;
export const MAX_USERNAME = 64;
export const MAX_REASON = 512;
export const MAX_QUERY = 256;
export const MAX_LIMIT = 200;
export const DEFAULT_LIMIT = 50;

// Standard OIDC profile claims (camelCase here, snake_case in tokens and in the table).
export const PROFILE_FIELDS = ['name', 'givenName', 'familyName', 'middleName', 'nickname', 'picture', 'website', 'gender', 'birthdate', 'zoneinfo', 'locale'] as const;
// What only an administrator may set (besides the profile).
export const ADMIN_FIELDS = ['email', 'username', 'emailVerified', 'phoneNumber', 'phoneNumberVerified', 'password', 'isAdmin'] as const;
// What a person registering themselves may set.
export const SELF_REGISTRATION_FIELDS = ['email', 'username', 'password', 'phoneNumber', ...PROFILE_FIELDS, 'customAttributes'] as const;

export type ProfileField = (typeof PROFILE_FIELDS)[number];
export type AdminField = (typeof ADMIN_FIELDS)[number];
export type UserField = ProfileField | AdminField | 'customAttributes';

export const COLUMNS: Record<Exclude<UserField, 'password' | 'customAttributes'>, string> = {
  name: 'name',
  givenName: 'given_name',
  familyName: 'family_name',
  middleName: 'middle_name',
  nickname: 'nickname',
  picture: 'picture',
  website: 'website',
  gender: 'gender',
  birthdate: 'birthdate',
  zoneinfo: 'zoneinfo',
  locale: 'locale',
  email: 'email',
  username: 'username',
  emailVerified: 'email_verified',
  phoneNumber: 'phone_number',
  phoneNumberVerified: 'phone_number_verified',
  isAdmin: 'is_admin',
};

// Characters PostgreSQL text cannot hold (NUL) or that have no place in a name or an address.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const EMAIL_LOCAL = /^[^\s@"(),:;<>[\]\\]{1,64}$/u;
const DOMAIN_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
const USERNAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$/;
const BIRTHDATE = /^(?:(\d{4})|(\d{4})-(\d{2})-(\d{2}))$/;

type Check = (value: unknown) => string | undefined;

function isEmail(value: string): boolean {
  const at = value.lastIndexOf('@');
  if (at < 1) return false;
  const labels = value.slice(at + 1).split('.');
  return (
    EMAIL_LOCAL.test(value.slice(0, at)) &&
    labels.length >= 2 &&
    labels.every((label) => DOMAIN_LABEL.test(label)) &&
    !/^[0-9]+$/.test(labels.at(-1)!) &&
    value.length - at - 1 <= 253
  );
}

function text(max: number, extra?: (value: string) => string | undefined): Check {
  return (value) => {
    if (typeof value !== 'string') return 'must be a string';
    if (value.trim() === '') return 'must not be empty (send null to clear it)';
    if (value.length > max) return `at most ${max} characters`;
    if (CONTROL.test(value)) return 'must not contain control characters';
    return extra?.(value);
  };
}

function bool(value: unknown): string | undefined {
  return typeof value === 'boolean' ? undefined : 'must be true or false';
}

function httpUrl(value: string): string | undefined {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:' ? undefined : 'must be an http or https URL';
  } catch {
    return 'must be an absolute URL';
  }
}

function birthdate(value: string): string | undefined {
  const match = BIRTHDATE.exec(value);
  const message = 'YYYY-MM-DD, 0000-MM-DD (year withheld) or YYYY';
  if (!match) return message;
  if (match[1]) return undefined;
  const [year, month, day] = [Number(match[2]), Number(match[3]), Number(match[4])];
  // 2000 stands in for a withheld year (0000): a leap year, so 0000-02-29 is allowed.
  const date = new Date(Date.UTC(year || 2000, month - 1, day));
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return 'not a real date';
  if (year && date.getTime() > Date.now()) return 'must not be in the future';
  return undefined;
}

function zoneinfo(value: string): string | undefined {
  try {
    new Intl.DateTimeFormat('en', { timeZone: value });
    return undefined;
  } catch {
    return 'must be an IANA time zone such as Europe/Paris';
  }
}

function locale(value: string): string | undefined {
  try {
    Intl.getCanonicalLocales(value.replace('_', '-'));
    return undefined;
  } catch {
    return 'must be a BCP 47 language tag such as en-US';
  }
}

const CHECKS: Record<Exclude<UserField, 'customAttributes'>, Check> = {
  name: text(MAX_NAME),
  givenName: text(MAX_NAME),
  familyName: text(MAX_NAME),
  middleName: text(MAX_NAME),
  nickname: text(MAX_NAME),
  picture: text(2048, httpUrl),
  website: text(2048, httpUrl),
  gender: text(MAX_NAME),
  birthdate: text(10, birthdate),
  zoneinfo: text(64, zoneinfo),
  locale: text(35, locale),
  email: text(MAX_EMAIL, (value) => (isEmail(value.trim()) ? undefined : 'not an e-mail address')),
  username: text(MAX_USERNAME, (value) => (USERNAME.test(value.trim()) ? undefined : 'letters, digits, . _ and -, starting and ending with a letter or digit')),
  emailVerified: bool,
  // National formats are taken when they carry the country code (+49 30 1234567, 0049 30 1234567); stored as E.164.
  phoneNumber: text(32, (value) => (toE164(value) ? undefined : 'must be in E.164 form, such as +14155550123')),
  phoneNumberVerified: bool,
  password: (value) => {
    if (typeof value !== 'string') return 'must be a string';
    if (value.length < MIN_PASSWORD) return `at least ${MIN_PASSWORD} characters`;
    if (value.length > MAX_PASSWORD) return `at most ${MAX_PASSWORD} characters`;
    return undefined;
  },
  isAdmin: bool,
};

// Fields that may be null in a change (clearing them); the rest must hold a value when sent.
const NULLABLE = new Set<UserField>([...PROFILE_FIELDS, 'username', 'phoneNumber']);
// Stored trimmed; the other strings are stored as sent.
const TRIMMED = new Set<UserField>(['email', 'username', 'phoneNumber', ...PROFILE_FIELDS]);

export function invalid(fields: Record<string, string>, what = 'invalid user data'): ValidationError {
  const summary = Object.entries(fields).slice(0, 5).map(([field, problem]) => `${field}: ${problem}`).join('; ');
  return new ValidationError(`${what}: ${summary}`, fields);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

export interface CheckedInput {
  // Column values (password excluded), ready to write.
  values: Record<string, unknown>;
  password?: string;
  // Custom attributes as sent (null means remove), checked against the tenant's schema later.
  customAttributes?: Record<string, unknown>;
}

// Checks the shape of a create or change request. `allowed` lists the fields this caller may set;
// any other field is refused (with a clearer word when only an administrator may set it).
export function checkInput(input: unknown, allowed: readonly UserField[], options: { creating: boolean }): CheckedInput {
  if (!isPlainObject(input)) throw new ValidationError('the user data must be an object', { '': 'must be an object' });
  const errors: Record<string, string> = {};
  const checked: CheckedInput = { values: {} };
  for (const [field, value] of Object.entries(input)) {
    if (value === undefined) continue;
    if (!allowed.includes(field as UserField)) {
      const known = (CHECKS as Record<string, unknown>)[field] !== undefined || field === 'customAttributes';
      errors[field] = known ? 'only an administrator may set this' : 'not a field of a user';
      continue;
    }
    if (field === 'customAttributes') {
      if (!isPlainObject(value)) errors[field] = 'must be an object';
      else checked.customAttributes = value;
      continue;
    }
    const name = field as Exclude<UserField, 'customAttributes'>;
    if (value === null) {
      if (NULLABLE.has(name) && !options.creating) checked.values[COLUMNS[name as keyof typeof COLUMNS]] = null;
      else if (!NULLABLE.has(name)) errors[field] = 'must not be null';
      continue;
    }
    const problem = CHECKS[name](value);
    if (problem) {
      errors[field] = problem;
      continue;
    }
    if (name === 'password') checked.password = value as string;
    else if (name === 'phoneNumber') checked.values[COLUMNS[name]] = toE164(value as string);
    else checked.values[COLUMNS[name]] = TRIMMED.has(name) ? (value as string).trim() : value;
  }
  if (options.creating) {
    if (input.email === undefined || input.email === null) errors.email ??= 'required';
  }
  if (Object.keys(errors).length) throw invalid(errors);
  return checked;
}

// Custom attributes against the tenant's schema. Creating: the full set, required ones included.
// Changing: only what is sent; null removes an attribute unless the schema requires it.
export function checkCustomAttributes(
  schema: AttributeSchema,
  current: Record<string, unknown>,
  sent: Record<string, unknown> | undefined,
  creating: boolean,
): Record<string, unknown> {
  const errors: Record<string, string> = {};
  const merged: Record<string, unknown> = { ...current };
  const toCheck: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(sent ?? {})) {
    if (value === null || value === undefined) {
      if (schema[name]?.required) errors[`customAttributes.${name}`] = 'required: it cannot be removed';
      delete merged[name];
      continue;
    }
    // jsonb cannot hold NUL, and a stray control character in an attribute is a mistake.
    if (typeof value === 'string' && value.includes('\u0000')) {
      errors[`customAttributes.${name}`] = 'must not contain NUL characters';
      continue;
    }
    toCheck[name] = value;
    merged[name] = value;
  }
  for (const [field, problem] of Object.entries(validateAttributes(schema, toCheck, !creating))) {
    errors[field.replace(/^custom_attributes\./, 'customAttributes.')] ??= problem;
  }
  if (Object.keys(errors).length) throw invalid(errors, 'invalid custom attributes');
  return merged;
}

export function checkReason(reason: unknown): string | null {
  if (reason === undefined || reason === null) return null;
  if (typeof reason !== 'string') throw invalid({ reason: 'must be a string' });
  const trimmed = reason.trim();
  if (trimmed.length > MAX_REASON) throw invalid({ reason: `at most ${MAX_REASON} characters` });
  if (trimmed.includes('\u0000')) throw invalid({ reason: 'must not contain NUL characters' });
  return trimmed || null;
}

export function checkStatus(status: unknown): UserStatus {
  if (!USER_STATUSES.includes(status as UserStatus)) throw invalid({ status: `one of ${USER_STATUSES.join(', ')}` });
  return status as UserStatus;
}

export interface ListOptions {
  email?: string;
  username?: string;
  status?: UserStatus;
  role?: string;
  createdFrom?: Date | string;
  createdTo?: Date | string;
  q?: string;
  limit?: number;
  cursor?: string;
}

export interface ListFilters {
  email?: string;
  username?: string;
  status?: UserStatus;
  role?: string;
  createdFrom?: Date;
  createdTo?: Date;
  q?: string;
  limit: number;
  after?: { createdAt: string; id: string };
}

// The cursor is opaque to callers: base64url of the last item's (created_at, id), created_at with
// the database's full microsecond precision so the next page starts exactly after it.
const CURSOR_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

export function encodeCursor(createdAt: string, id: string): string {
  return Buffer.from(JSON.stringify([createdAt, id])).toString('base64url');
}

export function decodeCursor(cursor: string): { createdAt: string; id: string } | undefined {
  if (cursor.length > 200 || !/^[A-Za-z0-9_-]+$/.test(cursor)) return undefined;
  try {
    const decoded: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (!Array.isArray(decoded) || decoded.length !== 2) return undefined;
    const [createdAt, id] = decoded;
    if (typeof createdAt !== 'string' || !CURSOR_TIME.test(createdAt) || !representable(new Date(createdAt)) || !isUuid(id)) return undefined;
    return { createdAt, id };
  } catch {
    return undefined;
  }
}

function checkDate(value: unknown, field: string, errors: Record<string, string>): Date | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const date = value instanceof Date ? value : typeof value === 'string' ? new Date(value) : undefined;
  if (!date || Number.isNaN(date.getTime())) {
    errors[field] = 'must be a date and time (ISO 8601)';
    return undefined;
  }
  if (!representable(date)) {
    errors[field] = INSTANT_RANGE;
    return undefined;
  }
  return date;
}

function checkFilterText(value: unknown, field: string, max: number, errors: Record<string, string>): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') errors[field] = 'must be a string';
  else if (value.length > max) errors[field] = `at most ${max} characters`;
  else if (value.includes('\u0000')) errors[field] = 'must not contain NUL characters';
  else return value.trim();
  return undefined;
}

const LIST_OPTIONS = new Set(['email', 'username', 'status', 'role', 'createdFrom', 'createdTo', 'q', 'limit', 'cursor']);

export function checkListOptions(options: ListOptions | undefined): ListFilters {
  const input = (options ?? {}) as Record<string, unknown>;
  const errors: Record<string, string> = {};
  for (const key of Object.keys(input)) if (!LIST_OPTIONS.has(key) && input[key] !== undefined) errors[key] = 'not a filter of the user list';
  const filters: ListFilters = { limit: DEFAULT_LIMIT };
  if (input.limit !== undefined && input.limit !== null) {
    const limit = input.limit;
    if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) errors.limit = `a whole number from 1 to ${MAX_LIMIT}`;
    else filters.limit = limit;
  }
  filters.email = checkFilterText(input.email, 'email', MAX_EMAIL, errors);
  filters.username = checkFilterText(input.username, 'username', MAX_USERNAME, errors);
  filters.role = checkFilterText(input.role, 'role', MAX_NAME, errors);
  filters.q = checkFilterText(input.q, 'q', MAX_QUERY, errors);
  if (input.status !== undefined && input.status !== null && input.status !== '') {
    if (!USER_STATUSES.includes(input.status as UserStatus)) errors.status = `one of ${USER_STATUSES.join(', ')}`;
    else filters.status = input.status as UserStatus;
  }
  filters.createdFrom = checkDate(input.createdFrom, 'createdFrom', errors);
  filters.createdTo = checkDate(input.createdTo, 'createdTo', errors);
  if (input.cursor !== undefined && input.cursor !== null && input.cursor !== '') {
    const after = typeof input.cursor === 'string' ? decodeCursor(input.cursor) : undefined;
    if (!after) errors.cursor = 'not a cursor this list returned';
    else filters.after = after;
  }
  if (Object.keys(errors).length) throw invalid(errors, 'invalid list filters');
  return filters;
}

// For ILIKE: the text matched literally, anywhere in the value.
export function containsPattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (char) => `\\${char}`)}%`;
}
