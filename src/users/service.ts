// Users, per tenant: created by an administrator or self-registered (when the tenant allows it),
// listed with filters and keyset pagination, changed by themselves (profile) or an administrator
// (everything), suspended, deactivated, soft- and hard-deleted. Standard OIDC claims plus custom
// attributes checked against the tenant's schema.
//
// What belongs to other domains comes in as functions: the tenant's attribute schema and
// self-registration setting, the role filter (RBAC), and what to do when a user's access must end
// (the OIDC layer revokes their sessions, grants and tokens). Every tenant-scoped read and write
// runs in withTenant, under row-level security.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { Database } from '../store/database.ts';
import type { PasswordHashing } from '../security/passwords.ts';
import type { AttributeSchema } from '../tenants/attribute-schema.ts';
import { withTenant, type TenantTransaction } from '../store/tenant-scope.ts';
import { ConflictError, ForbiddenError, NotFoundError, VersionMismatchError } from '../errors.ts';
import { platformUserQueries, userQueries, type PasswordColumns, type RoleSubquery, type UserRow } from './queries.ts';
import { LRUCache } from 'lru-cache';
import {
  ADMIN_FIELDS,
  MAX_EMAIL,
  MAX_PASSWORD,
  PROFILE_FIELDS,
  SELF_REGISTRATION_FIELDS,
  checkCustomAttributes,
  checkInput,
  checkListOptions,
  checkReason,
  checkStatus,
  encodeCursor,
  invalid,
  type ListOptions,
  type UserField,
  type UserStatus,
} from './validation.ts';
import { isUuid } from '../ids.ts';
import { checkPassword, PasswordPolicyError, type PasswordPolicy } from '../security/password-policy.ts';
import { passwordQueries } from './password-queries.ts';
import type { AuditService } from '../audit/service.ts';
import { originOf, type ChangeOrigin } from '../audit/origin.ts';
import type { OutboxService } from '../outbox/service.ts';
import { userChanges } from './change-record.ts';

export { USER_STATUSES, type UserStatus, type ListOptions } from './validation.ts';
export type { RoleSubquery } from './queries.ts';

export interface User {
  id: string;
  tenantId: string;
  email: string;
  emailVerified: boolean;
  username: string | null;
  phoneNumber: string | null;
  phoneNumberVerified: boolean;
  name: string | null;
  givenName: string | null;
  familyName: string | null;
  middleName: string | null;
  nickname: string | null;
  picture: string | null;
  website: string | null;
  gender: string | null;
  birthdate: string | null;
  zoneinfo: string | null;
  locale: string | null;
  customAttributes: Record<string, unknown>;
  isAdmin: boolean;
  hasPassword: boolean;
  status: UserStatus;
  statusReason: string | null;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

// What the person may change about themselves. null clears a claim; in customAttributes, null
// removes an attribute.
export interface UserProfileInput {
  name?: string | null;
  givenName?: string | null;
  familyName?: string | null;
  middleName?: string | null;
  nickname?: string | null;
  picture?: string | null;
  website?: string | null;
  gender?: string | null;
  birthdate?: string | null;
  zoneinfo?: string | null;
  locale?: string | null;
  customAttributes?: Record<string, unknown>;
}

// What an administrator may change besides.
export interface UserPatch extends UserProfileInput {
  email?: string;
  username?: string | null;
  emailVerified?: boolean;
  phoneNumber?: string | null;
  phoneNumberVerified?: boolean;
  password?: string;
  isAdmin?: boolean;
}

export interface NewUser extends UserPatch {
  email: string;
}

// Self-registration: no verified flags, no administrator flag; a password is required.
export interface SelfRegistration extends UserProfileInput {
  email: string;
  password: string;
  username?: string;
  phoneNumber?: string;
}

export interface UserPage {
  items: User[];
  nextCursor?: string;
}

export interface UserServiceDependencies {
  db: Database;
  passwords: PasswordHashing;
  // The tenant's custom-attribute schema; throws NotFoundError for an unknown tenant.
  tenantAttributeSchema(tenantId: string): Promise<AttributeSchema>;
  tenantAllowsSelfRegistration(tenantId: string): Promise<boolean>;
  // A subquery of the ids of users holding the named role, directly or inherited.
  rolesFilter: RoleSubquery;
  // Called after a suspension, deactivation or deletion has committed: end every session, grant
  // and token of the user now.
  onAccessRevoked(userId: string, context?: { tenantId: string; reason: 'suspended' | 'deactivated' | 'deleted' }): Promise<void>;
  // Removes the user's role assignments, inside the hard delete's own transaction.
  forgetRoles(trx: TenantTransaction, userId: string): Promise<void>;
  // The tenant's password policy, applied wherever a password is set (length, common passwords,
  // no reuse of the last N). Without it, only the basic length limits apply.
  passwordPolicy?(tenantId: string): Promise<PasswordPolicy>;
  // Every change is recorded in the transaction that makes it: an audit entry, and the event for
  // other services.
  audit: Pick<AuditService, 'record'>;
  outbox: Pick<OutboxService, 'enqueue'>;
}

const ADMIN_ALLOWED: readonly UserField[] = [...ADMIN_FIELDS, ...PROFILE_FIELDS, 'customAttributes'];
const SELF_ALLOWED: readonly UserField[] = [...PROFILE_FIELDS, 'customAttributes'];
const MAX_IDENTIFIER = MAX_EMAIL;

function customAttributesOf(row: UserRow): Record<string, unknown> {
  const value = row.custom_attributes;
  return typeof value === 'string' ? JSON.parse(value) : (value ?? {});
}

export interface PasswordStatus {
  hasPassword: boolean;
  changedAt: Date | null;
  mustChange: boolean;
}

function passwordStatusOf(row: Pick<PasswordColumns, 'password_hash' | 'password_changed_at' | 'password_must_change'>): PasswordStatus {
  return {
    hasPassword: Boolean(row.password_hash),
    changedAt: row.password_changed_at ? new Date(row.password_changed_at) : null,
    mustChange: row.password_must_change,
  };
}

function toUser(row: UserRow): User {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    email: row.email,
    emailVerified: row.email_verified,
    username: row.username,
    phoneNumber: row.phone_number,
    phoneNumberVerified: row.phone_number_verified,
    name: row.name,
    givenName: row.given_name,
    familyName: row.family_name,
    middleName: row.middle_name,
    nickname: row.nickname,
    picture: row.picture,
    website: row.website,
    gender: row.gender,
    birthdate: row.birthdate,
    zoneinfo: row.zoneinfo,
    locale: row.locale,
    customAttributes: customAttributesOf(row),
    isAdmin: row.is_admin,
    hasPassword: row.has_password ?? (row.password_hash !== null && row.password_hash !== undefined),
    status: row.status,
    statusReason: row.status_reason,
    version: row.version,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
}

function isUniqueViolation(error: unknown): error is { code: string; constraint?: string; message: string } {
  return (error as { code?: string })?.code === '23505';
}

function staleUser(expectedVersion: number, currentVersion: number): VersionMismatchError {
  return new VersionMismatchError(`the user changed since version ${expectedVersion} (now ${currentVersion}); read it again`);
}

function conflict(taken: { email: boolean; username: boolean }): ConflictError {
  const fields: Record<string, string> = {};
  if (taken.email) fields.email = 'already used by another user of this tenant';
  if (taken.username) fields.username = 'already used by another user of this tenant';
  const what = taken.email && taken.username ? 'e-mail address and username' : taken.email ? 'e-mail address' : 'username';
  return new ConflictError(`a user with this ${what} exists in this tenant`, fields);
}

// A unique violation that slipped past the check (a concurrent insert): name the field if we can.
function conflictFromViolation(error: { constraint?: string; message: string }): ConflictError {
  const text = `${error.constraint ?? ''} ${error.message}`;
  const username = /username/.test(text);
  return conflict({ email: !username, username });
}

const MAX_TENANTS_PER_IDENTIFIER = 20;

export function createUserService(deps: UserServiceDependencies) {
  const { db, passwords } = deps;
  const platform = platformUserQueries(db);

  function requireTenantId(tenantId: string): void {
    if (!isUuid(tenantId)) throw new NotFoundError(`no tenant ${String(tenantId).slice(0, 64)}`);
  }

  function notFound(id: string): NotFoundError {
    return new NotFoundError(`no user ${String(id).slice(0, 64)} in this tenant`);
  }

  // Refuses a password the tenant's policy does not accept (PasswordPolicyError, a 422 naming the
  // problems), before anything is written. For an existing user, also the current and recent ones.
  async function enforcePasswordPolicy(tenantId: string, password: string, userId?: string): Promise<PasswordPolicy | undefined> {
    if (!deps.passwordPolicy) return undefined;
    const policy = await deps.passwordPolicy(tenantId);
    const previousHashes = userId && isUuid(userId) && policy.historySize > 0
      ? await withTenant(db, tenantId, (trx) => passwordQueries.recentHashes(trx, tenantId, userId, policy.historySize))
      : [];
    const problems = await checkPassword(policy, password, { previousHashes, verify: (hash, candidate) => passwords.verify(hash, candidate) });
    if (problems.length) throw new PasswordPolicyError(problems);
    return policy;
  }

  // The password state of users who just authenticated, for the same sign-in's next question
  // about it; taken once, within a few seconds, and dropped when the password changes.
  const justAuthenticated = new LRUCache<string, PasswordStatus>({ max: 10_000, ttl: 5000 });

  // The columns a new password sets, keeping the replaced hash in the history the policy asks for.
  async function passwordChanges(trx: TenantTransaction, tenantId: string, id: string, hash: string, policy: PasswordPolicy | undefined, mustChange: boolean) {
    justAuthenticated.delete(`${tenantId}:${id}`);
    const current = await passwordQueries.record(trx, tenantId, id);
    await passwordQueries.remember(trx, tenantId, id, current?.password_hash, policy?.historySize ?? 0);
    return { password_hash: hash, password_changed_at: trx.fn.now(), password_must_change: mustChange };
  }

  async function recordChange(trx: TenantTransaction, type: string, user: User, details: Record<string, unknown>, origin: ChangeOrigin | undefined): Promise<void> {
    await deps.audit.record(trx, { tenantId: user.tenantId, type, outcome: 'success', ...originOf(origin), target: { type: 'user', id: user.id, email: user.email }, details });
  }

  async function recordUpdate(trx: TenantTransaction, type: string, before: User, after: User, origin: ChangeOrigin | undefined, passwordSet = false): Promise<void> {
    const details = userChanges(before, after, { passwordSet });
    await recordChange(trx, type, after, details, origin);
    await deps.outbox.enqueue(trx, { tenantId: after.tenantId, type: 'user.updated', data: { userId: after.id, changed: details.changes.map((change) => change.field) } });
  }

  async function insertUser(
    tenantId: string,
    input: unknown,
    allowed: readonly UserField[],
    options: { passwordRequired: boolean; inserted?: (trx: TenantTransaction, user: User) => Promise<void> },
  ): Promise<User> {
    requireTenantId(tenantId);
    const checked = checkInput(input, allowed, { creating: true });
    if (options.passwordRequired && checked.password === undefined) throw invalid({ password: 'required' });
    const schema = await deps.tenantAttributeSchema(tenantId);
    const customAttributes = checkCustomAttributes(schema, {}, checked.customAttributes, true);
    if (checked.password !== undefined) await enforcePasswordPolicy(tenantId, checked.password);
    const passwordHash = checked.password === undefined ? null : await passwords.hash(checked.password);
    const row: Record<string, unknown> = {
      ...checked.values,
      id: randomUUID(),
      tenant_id: tenantId,
      password_hash: passwordHash,
      password_changed_at: passwordHash ? new Date() : null,
      custom_attributes: JSON.stringify(customAttributes),
    };
    return withTenant(db, tenantId, async (trx) => {
      const taken = await userQueries.taken(trx, tenantId, { email: row.email as string, username: row.username as string | undefined });
      if (taken.email || taken.username) throw conflict(taken);
      let user: User;
      try {
        user = toUser(await userQueries.insert(trx, row));
      } catch (error) {
        if (isUniqueViolation(error)) throw conflictFromViolation(error);
        throw error;
      }
      await options.inserted?.(trx, user);
      return user;
    });
  }

  // Runs `work` on the live user, locked, in a tenant-scoped transaction.
  async function changeUser(tenantId: string, id: string, work: (trx: TenantTransaction, current: UserRow) => Promise<UserRow | undefined>) {
    requireTenantId(tenantId);
    if (!isUuid(id)) throw notFound(id);
    return withTenant(db, tenantId, async (trx) => {
      const current = await userQueries.find(trx, tenantId, id, { forUpdate: true });
      if (!current) throw notFound(id);
      return work(trx, current);
    });
  }

  const service = {
    // An administrator creates a user. The password is optional (a user without one cannot sign
    // in with a password until one is set).
    // `inserted` runs in the creating transaction (federation links the upstream identity there).
    create(tenantId: string, input: NewUser, origin?: ChangeOrigin, options: { inserted?: (trx: TenantTransaction, user: User) => Promise<void> } = {}): Promise<User> {
      return insertUser(tenantId, input, ADMIN_ALLOWED, {
        passwordRequired: false,
        inserted: async (trx, user) => {
          await recordChange(trx, 'user.create', user, userChanges(null, user, { passwordSet: user.hasPassword }), origin);
          await deps.outbox.enqueue(trx, { tenantId, type: 'user.created', data: { userId: user.id, email: user.email } });
          await options.inserted?.(trx, user);
        },
      });
    },

    // A person registers themselves, when the tenant allows it. `inserted` runs in the transaction
    // that creates the user (to record the registration with it).
    async selfRegister(tenantId: string, input: SelfRegistration, options: { inserted?: (trx: TenantTransaction, user: User) => Promise<void> } = {}): Promise<User> {
      requireTenantId(tenantId);
      if (!(await deps.tenantAllowsSelfRegistration(tenantId))) throw new ForbiddenError('this tenant does not allow self-registration');
      return insertUser(tenantId, input, SELF_REGISTRATION_FIELDS, { passwordRequired: true, inserted: options.inserted });
    },

    async get(tenantId: string, id: string): Promise<User> {
      requireTenantId(tenantId);
      if (!isUuid(id)) throw notFound(id);
      const row = await withTenant(db, tenantId, (trx) => userQueries.find(trx, tenantId, id));
      if (!row) throw notFound(id);
      return toUser(row);
    },

    // Filters combine (AND). email and username match exactly, ignoring case; q matches a part of
    // the e-mail, username, name, given or family name, ignoring case; role includes users who hold
    // it through an including role; createdFrom <= created < createdTo. Pages are in creation
    // order, and nextCursor, when present, fetches the next one.
    async list(tenantId: string, options: ListOptions = {}): Promise<UserPage> {
      requireTenantId(tenantId);
      const filters = checkListOptions(options);
      const rows = await withTenant(db, tenantId, (trx) => userQueries.list(trx, tenantId, filters, deps.rolesFilter));
      const page = rows.slice(0, filters.limit);
      const last = page.at(-1);
      return {
        items: page.map(toUser),
        nextCursor: rows.length > filters.limit && last ? encodeCursor(last.cursor_created_at!, last.id) : undefined,
      };
    },

    // Changes a user at the version the caller read. As 'self', only profile claims and custom
    // attributes; as 'admin', also e-mail, username, phone, verified flags, password and isAdmin.
    // A new e-mail address or phone number is unverified unless the same change says otherwise.
    // Recorded as done by `origin` (the user themselves when acting as 'self' without one).
    async update(tenantId: string, id: string, expectedVersion: number, patch: UserPatch, options: { as: 'admin' | 'self'; origin?: ChangeOrigin }): Promise<User> {
      if (options?.as !== 'admin' && options?.as !== 'self') throw new Error("update needs { as: 'admin' | 'self' }");
      if (!Number.isInteger(expectedVersion) || expectedVersion < 1) throw invalid({ version: 'must be the positive whole number the user was read at' });
      const checked = checkInput(patch, options.as === 'admin' ? ADMIN_ALLOWED : SELF_ALLOWED, { creating: false });
      const schema = checked.customAttributes ? await deps.tenantAttributeSchema(tenantId) : undefined;
      const policy = checked.password === undefined ? undefined : await enforcePasswordPolicy(tenantId, checked.password, id);
      const passwordHash = checked.password === undefined ? undefined : await passwords.hash(checked.password);
      const row = await changeUser(tenantId, id, async (trx, current) => {
        if (current.version !== expectedVersion) {
          throw staleUser(expectedVersion, current.version);
        }
        const changes: Record<string, unknown> = { ...checked.values };
        if (passwordHash !== undefined) Object.assign(changes, await passwordChanges(trx, tenantId, id, passwordHash, policy, false));
        if (schema) changes.custom_attributes = JSON.stringify(checkCustomAttributes(schema, customAttributesOf(current), checked.customAttributes, false));
        const emailChanged = typeof changes.email === 'string' && changes.email.toLowerCase() !== current.email.toLowerCase();
        if (emailChanged && !('email_verified' in changes)) changes.email_verified = false;
        if ('phone_number' in changes && changes.phone_number !== current.phone_number && !('phone_number_verified' in changes)) {
          changes.phone_number_verified = false;
        }
        const usernameChanged = typeof changes.username === 'string' && changes.username.toLowerCase() !== current.username?.toLowerCase();
        if (emailChanged || usernameChanged) {
          const taken = await userQueries.taken(
            trx,
            tenantId,
            { email: emailChanged ? (changes.email as string) : undefined, username: usernameChanged ? (changes.username as string) : undefined },
            id,
          );
          if (taken.email || taken.username) throw conflict(taken);
        }
        if (!Object.keys(changes).length) return current;
        let updated: UserRow | undefined;
        try {
          updated = await userQueries.update(trx, tenantId, id, expectedVersion, changes);
        } catch (error) {
          if (isUniqueViolation(error)) throw conflictFromViolation(error);
          throw error;
        }
        if (updated) {
          const origin = options.origin ?? (options.as === 'self' ? { actor: { type: 'user' as const, id } } : undefined);
          await recordUpdate(trx, 'user.update', toUser(current), toUser(updated), origin, passwordHash !== undefined);
        }
        return updated;
      });
      if (!row) throw new VersionMismatchError(`the user changed since version ${expectedVersion}; read it again`);
      return toUser(row);
    },

    // active, suspended or deactivated, with an optional reason (kept with the status). Leaving
    // 'active' ends the user's sessions and tokens once the change has committed.
    async setStatus(tenantId: string, id: string, status: UserStatus, reason?: string | null, origin?: ChangeOrigin): Promise<User> {
      const next = checkStatus(status);
      const statusReason = checkReason(reason);
      const row = await changeUser(tenantId, id, async (trx, current) => {
        const updated = (await userQueries.update(trx, tenantId, id, undefined, { status: next, status_reason: statusReason }))!;
        await recordUpdate(trx, 'user.status', toUser(current), toUser(updated), origin);
        return updated;
      });
      if (next !== 'active') await deps.onAccessRevoked(id, { tenantId, reason: next });
      return toUser(row!);
    },

    // Marks the user deleted: invisible to reads and sign-in, the e-mail and username free for a new
    // user, the row kept (an administrator can still hard-delete it). With expectedVersion
    // (If-Match), only at the version the caller read.
    async softDelete(tenantId: string, id: string, origin?: ChangeOrigin, expectedVersion?: number): Promise<void> {
      await changeUser(tenantId, id, async (trx, current) => {
        if (expectedVersion !== undefined && current.version !== expectedVersion) throw staleUser(expectedVersion, current.version);
        await userQueries.update(trx, tenantId, id, undefined, { deleted_at: trx.fn.now() });
        await recordChange(trx, 'user.delete', toUser(current), { hard: false }, origin);
        await deps.outbox.enqueue(trx, { tenantId, type: 'user.deleted', data: { userId: id, hard: false } });
        return undefined;
      });
      await deps.onAccessRevoked(id, { tenantId, reason: 'deleted' });
    },

    // Removes the row, also of a soft-deleted user. For a GDPR erasure (`reason: 'erasure'`, said
    // in the entry and the event), `inTransaction` runs last in the deletion's transaction. With
    // expectedVersion (If-Match), only at the version the caller read.
    async hardDelete(
      tenantId: string,
      id: string,
      origin?: ChangeOrigin,
      options: { reason?: 'erasure'; inTransaction?: (trx: TenantTransaction, user: User) => Promise<void>; expectedVersion?: number } = {},
    ): Promise<void> {
      requireTenantId(tenantId);
      if (!isUuid(id)) throw notFound(id);
      const reason = options.reason ? { reason: options.reason } : {};
      const removed = await withTenant(db, tenantId, async (trx) => {
        const current = await userQueries.find(trx, tenantId, id, { includeDeleted: true, forUpdate: true });
        if (current && options.expectedVersion !== undefined && current.version !== options.expectedVersion) throw staleUser(options.expectedVersion, current.version);
        if (!current || !(await userQueries.hardDelete(trx, tenantId, id))) return false;
        await deps.forgetRoles(trx, id);
        await recordChange(trx, 'user.delete', toUser(current), { hard: true, ...reason }, origin);
        await deps.outbox.enqueue(trx, { tenantId, type: 'user.deleted', data: { userId: id, hard: true, ...reason } });
        await options.inTransaction?.(trx, toUser(current));
        return true;
      });
      if (!removed) throw notFound(id);
      await deps.onAccessRevoked(id, { tenantId, reason: 'deleted' });
    },

    // When the user last signed in (null: never); NotFoundError for no such live user.
    async lastLoginAt(tenantId: string, id: string): Promise<Date | null> {
      requireTenantId(tenantId);
      if (!isUuid(id)) throw notFound(id);
      const at = await withTenant(db, tenantId, (trx) => userQueries.lastLogin(trx, tenantId, id));
      if (at === undefined) throw notFound(id);
      return at;
    },

    // Live users without a sign-in since `before` (those never signed in count from their
    // creation), the longest idle first, at most `limit`.
    async dormant(tenantId: string, before: Date, limit: number): Promise<Array<User & { lastLoginAt: Date | null }>> {
      requireTenantId(tenantId);
      const rows = await withTenant(db, tenantId, (trx) => userQueries.dormant(trx, tenantId, before, limit));
      return rows.map((row) => ({ ...toUser(row), lastLoginAt: row.last_login_at ? new Date(row.last_login_at) : null }));
    },

    // The ids of the tenant's live (not deleted) users.
    liveIds(tenantId: string): Promise<string[]> {
      requireTenantId(tenantId);
      return withTenant(db, tenantId, (trx) => userQueries.liveIds(trx, tenantId));
    },

    // Password sign-in within a tenant. Spends exactly one argon2id verification whatever the
    // outcome (unknown identifier, wrong password, suspended, deactivated or deleted user), so the
    // answer's timing tells nothing; only an active user with the right password gets through.
    async authenticate(identifier: string, password: string, tenantId: string): Promise<User | undefined> {
      const usable = typeof identifier === 'string' && identifier.length > 0 && identifier.length <= MAX_IDENTIFIER && isUuid(tenantId);
      const row = usable ? await withTenant(db, tenantId, (trx) => userQueries.findByIdentifier(trx, tenantId, identifier.trim())) : undefined;
      const candidate = typeof password === 'string' && password.length <= MAX_PASSWORD ? password : '';
      const valid = await passwords.verify(row?.password_hash, candidate);
      if (!row || !valid || row.status !== 'active') return undefined;
      // The sign-in asks for the password's state next (expired? temporary?): it was just read.
      justAuthenticated.set(`${tenantId}:${row.id}`, passwordStatusOf(row));
      return toUser(row);
    },

    // The active user a one-time code for sign-in goes to: by e-mail address, or by verified phone
    // number (E.164); a number verified for several users of the tenant belongs to nobody here.
    async findSignInCandidate(tenantId: string, by: { email: string } | { phoneNumber: string }): Promise<User | undefined> {
      if (!isUuid(tenantId)) return undefined;
      if ('email' in by) {
        if (typeof by.email !== 'string' || !by.email.includes('@') || by.email.length > MAX_IDENTIFIER) return undefined;
        const row = await withTenant(db, tenantId, (trx) => userQueries.findByIdentifier(trx, tenantId, by.email.trim()));
        return row && row.status === 'active' ? toUser(row) : undefined;
      }
      if (typeof by.phoneNumber !== 'string' || !/^\+[1-9][0-9]{1,14}$/.test(by.phoneNumber)) return undefined;
      const rows = await withTenant(db, tenantId, (trx) => userQueries.findByVerifiedPhone(trx, tenantId, by.phoneNumber, 2));
      return rows.length === 1 && rows[0].status === 'active' ? toUser(rows[0]) : undefined;
    },

    // Sign-ins of the tenant's users (ISO times): kept as each user's last login, in the caller's
    // transaction; the latest of a user's wins.
    async recordLogins(trx: Knex.Transaction, tenantId: string, logins: Array<{ userId: string; at: string }>): Promise<void> {
      const latest = new Map<string, string>();
      for (const { userId, at } of logins) {
        if (!isUuid(userId) || Number.isNaN(Date.parse(at))) continue;
        const known = latest.get(userId);
        if (!known || Date.parse(at) > Date.parse(known)) latest.set(userId, at);
      }
      if (!latest.size) return;
      await withTenant(trx, tenantId, (scoped) => userQueries.recordLogins(scoped, tenantId, [...latest].map(([id, at]) => ({ id, at }))));
    },

    // For findAccount and other platform code holding only a user id: active, non-deleted users
    // only, so a suspended or deleted user's tokens and sessions are refused at once.
    async findById(id: string): Promise<User | undefined> {
      if (!isUuid(id)) return undefined;
      const row = await platform.findActiveById(id);
      return row ? toUser(row) : undefined;
    },

    // Which tenants an identifier signs in to; for the login page's tenant selection only, which
    // never shows the answer before the password was verified.
    tenantsOfIdentifier(identifier: string): Promise<string[]> {
      if (typeof identifier !== 'string' || !identifier.trim() || identifier.length > MAX_IDENTIFIER) return Promise.resolve([]);
      return platform.tenantsOfIdentifier(identifier.trim(), MAX_TENANTS_PER_IDENTIFIER);
    },

    // All user rows of every tenant, deleted ones included.
    count: () => platform.count(),

    // Sets a new password (reset, change, forced change, temporary password), enforcing the
    // tenant's policy. mustChange marks a temporary password, to be replaced at the next sign-in.
    // `precondition` runs first in the same transaction (consuming a reset token, say): when it
    // returns false nothing changes and the answer is false.
    async setPassword(
      tenantId: string,
      id: string,
      password: string,
      options: { mustChange?: boolean; precondition?: (trx: TenantTransaction) => Promise<boolean> } = {},
    ): Promise<boolean> {
      requireTenantId(tenantId);
      if (!isUuid(id)) throw notFound(id);
      const checked = checkInput({ password }, ['password'], { creating: false });
      const policy = await enforcePasswordPolicy(tenantId, checked.password!, id);
      const hash = await passwords.hash(checked.password!);
      return withTenant(db, tenantId, async (trx) => {
        if (!(await userQueries.find(trx, tenantId, id, { forUpdate: true }))) throw notFound(id);
        if (options.precondition && !(await options.precondition(trx))) return false;
        await userQueries.update(trx, tenantId, id, undefined, await passwordChanges(trx, tenantId, id, hash, policy, options.mustChange ?? false));
        return true;
      });
    },

    // One argon2id verification of the user's current password (re-authentication).
    async verifyPassword(tenantId: string, id: string, password: string): Promise<boolean> {
      const usable = isUuid(tenantId) && isUuid(id);
      const record = usable ? await withTenant(db, tenantId, (trx) => passwordQueries.record(trx, tenantId, id)) : undefined;
      const candidate = typeof password === 'string' && password.length <= MAX_PASSWORD ? password : '';
      return passwords.verify(record?.password_hash, candidate);
    },

    // When the password was set and whether it must be changed; the policy decides about expiry.
    async passwordStatus(tenantId: string, id: string): Promise<PasswordStatus> {
      requireTenantId(tenantId);
      if (!isUuid(id)) throw notFound(id);
      const key = `${tenantId}:${id}`;
      const readAtSignIn = justAuthenticated.get(key);
      if (readAtSignIn) {
        justAuthenticated.delete(key);
        return readAtSignIn;
      }
      const record = await withTenant(db, tenantId, (trx) => passwordQueries.record(trx, tenantId, id));
      if (!record) throw notFound(id);
      return passwordStatusOf(record);
    },

    // Stores a phone number the person proved with a code: E.164 and verified in one change,
    // replacing any earlier number. Recorded as user.update (with user.updated) by `origin`.
    async setVerifiedPhone(tenantId: string, id: string, e164: string, origin?: ChangeOrigin): Promise<User> {
      if (typeof e164 !== 'string' || !/^\+[1-9][0-9]{1,14}$/.test(e164)) throw invalid({ phoneNumber: 'must be in E.164 form, such as +14155550123' });
      const row = await changeUser(tenantId, id, async (trx, current) => {
        if (current.phone_number === e164 && current.phone_number_verified) return current;
        const updated = (await userQueries.update(trx, tenantId, id, undefined, { phone_number: e164, phone_number_verified: true }))!;
        await recordUpdate(trx, 'user.update', toUser(current), toUser(updated), origin);
        return updated;
      });
      return toUser(row!);
    },

    // Removes the phone number (and its verification); nothing is recorded when there was none.
    async removePhone(tenantId: string, id: string, origin?: ChangeOrigin): Promise<User> {
      const row = await changeUser(tenantId, id, async (trx, current) => {
        if (current.phone_number === null && !current.phone_number_verified) return current;
        const updated = (await userQueries.update(trx, tenantId, id, undefined, { phone_number: null, phone_number_verified: false }))!;
        await recordUpdate(trx, 'user.update', toUser(current), toUser(updated), origin);
        return updated;
      });
      return toUser(row!);
    },

    // Marks the e-mail address verified, if it is still the one a verification mail went to.
    async markEmailVerified(tenantId: string, id: string, email: string): Promise<boolean> {
      requireTenantId(tenantId);
      if (!isUuid(id)) return false;
      return withTenant(db, tenantId, async (trx) => {
        const current = await userQueries.find(trx, tenantId, id, { forUpdate: true });
        if (!current || current.email.toLowerCase() !== email.toLowerCase()) return false;
        if (!current.email_verified) await userQueries.update(trx, tenantId, id, undefined, { email_verified: true });
        return true;
      });
    },
  };
  return service;
}

export type UserService = ReturnType<typeof createUserService>;
