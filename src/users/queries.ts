// The users table. Tenant-scoped functions take a transaction from withTenant (row-level security
// confines them; the explicit tenant_id filters are there for the indexes). The platform functions
// at the end run outside any tenant, for code that has only a user id (findAccount).
//
// Look-ups by e-mail or username compare the generated *_normalized columns with plain equality:
// under row-level security only leakproof conditions can be index conditions (migration 009).
import type { Knex } from 'knex';
import type { Database } from '../store/database.ts';
import { storableText } from '../store/text.ts';
import type { TenantTransaction } from '../store/tenant-scope.ts';
import { batchedByKey } from '../store/batching.ts';
import type { ListFilters, UserStatus } from './validation.ts';
import { containsPattern } from './validation.ts';

export interface UserRow {
  id: string;
  tenant_id: string;
  email: string;
  username: string | null;
  password_hash?: string | null;
  name: string | null;
  given_name: string | null;
  family_name: string | null;
  middle_name: string | null;
  nickname: string | null;
  picture: string | null;
  website: string | null;
  gender: string | null;
  birthdate: string | null;
  zoneinfo: string | null;
  locale: string | null;
  email_verified: boolean;
  phone_number: string | null;
  phone_number_verified: boolean;
  is_admin: boolean;
  custom_attributes: Record<string, unknown> | string;
  status: UserStatus;
  status_reason: string | null;
  version: number;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
  has_password?: boolean;
  // Only in list results: created_at at full precision, for the cursor.
  cursor_created_at?: string;
}

// What authentication reads beside the user: the hash and the state of the password.
export interface PasswordColumns {
  password_hash: string | null;
  password_changed_at: Date | string | null;
  password_must_change: boolean;
}

// Everything but the password hash, which only authentication reads.
const COLUMNS = [
  'id', 'tenant_id', 'email', 'username', 'name', 'given_name', 'family_name', 'middle_name', 'nickname', 'picture', 'website',
  'gender', 'birthdate', 'zoneinfo', 'locale', 'email_verified', 'phone_number', 'phone_number_verified', 'is_admin',
  'custom_attributes', 'status', 'status_reason', 'version', 'created_at', 'updated_at', 'deleted_at',
].map((column) => `users.${column}`);

function selectUser(query: Knex.QueryBuilder, trx: Knex) {
  return query.select([...COLUMNS, trx.raw('(users.password_hash IS NOT NULL) AS has_password')]);
}

// The role filter other domains provide: a subquery of user ids.
export type RoleSubquery = (trx: TenantTransaction, tenantId: string, roleName: string) => Knex.QueryBuilder;

export const userQueries = {
  find(trx: TenantTransaction, tenantId: string, id: string, options: { includeDeleted?: boolean; forUpdate?: boolean } = {}): Promise<UserRow | undefined> {
    const query = selectUser(trx('users').where({ tenant_id: tenantId, id }), trx);
    if (!options.includeDeleted) query.whereNull('deleted_at');
    if (options.forUpdate) query.forUpdate();
    return query.first();
  },

  // An identifier is an e-mail address or a username, both case-insensitive; never a deleted user.
  async findByIdentifier(trx: TenantTransaction, tenantId: string, identifier: string): Promise<(UserRow & PasswordColumns) | undefined> {
    if (!storableText(identifier)) return undefined;
    return selectUser(trx('users'), trx)
      .select('users.password_hash', 'users.password_changed_at', 'users.password_must_change')
      .where({ tenant_id: tenantId })
      .whereNull('deleted_at')
      .andWhere((q) => q.whereRaw('email_normalized = lower(?)', [identifier]).orWhereRaw('username_normalized = lower(?)', [identifier]))
      .first();
  },

  // Live users whose verified phone number is this one (E.164); at most `limit`, to tell one from many.
  findByVerifiedPhone(trx: TenantTransaction, tenantId: string, phoneNumber: string, limit: number): Promise<UserRow[]> {
    return selectUser(trx('users'), trx)
      .where({ tenant_id: tenantId, phone_number: phoneNumber, phone_number_verified: true })
      .whereNull('deleted_at')
      .limit(limit);
  },

  // Which of the given e-mail and username other live users of the tenant already use.
  async taken(trx: TenantTransaction, tenantId: string, values: { email?: string; username?: string | null }, exceptId?: string): Promise<{ email: boolean; username: boolean }> {
    if (!values.email && !values.username) return { email: false, username: false };
    const query = trx('users')
      .where({ tenant_id: tenantId })
      .whereNull('deleted_at')
      .andWhere((q) => {
        if (values.email) q.orWhereRaw('email_normalized = lower(?)', [values.email]);
        if (values.username) q.orWhereRaw('username_normalized = lower(?)', [values.username]);
      })
      .select(
        trx.raw('bool_or(email_normalized = lower(?)) AS email', [values.email ?? '']),
        trx.raw('bool_or(username_normalized = lower(?)) AS username', [values.username ?? '']),
      );
    if (exceptId) query.whereNot({ id: exceptId });
    const [row] = await query;
    return { email: Boolean(row?.email), username: Boolean(row?.username) };
  },

  async insert(trx: TenantTransaction, row: Record<string, unknown>): Promise<UserRow> {
    const [inserted] = await trx('users').insert(row, '*');
    return inserted;
  },

  // Applies the change at the version the caller read; undefined when the version moved on (or
  // the user is gone).
  async update(trx: TenantTransaction, tenantId: string, id: string, expectedVersion: number | undefined, changes: Record<string, unknown>): Promise<UserRow | undefined> {
    const query = trx('users').where({ tenant_id: tenantId, id }).whereNull('deleted_at');
    if (expectedVersion !== undefined) query.andWhere({ version: expectedVersion });
    const [row] = await query.update({ ...changes, version: trx.raw('version + 1'), updated_at: trx.fn.now() }, '*');
    return row;
  },

  // The latest sign-in time; an older one arriving late never moves it back. Not a profile change:
  // the version stays.
  // Sign-ins of several users of the tenant in one statement; a later time never goes back.
  async recordLogins(trx: TenantTransaction, tenantId: string, logins: Array<{ id: string; at: string }>): Promise<void> {
    await trx.raw(
      `UPDATE users SET last_login_at = greatest(coalesce(users.last_login_at, signed_in.at), signed_in.at)
         FROM (SELECT unnest(?::uuid[]) AS id, unnest(?::timestamptz[]) AS at) AS signed_in
        WHERE users.tenant_id = ? AND users.id = signed_in.id`,
      [logins.map((login) => login.id), logins.map((login) => login.at), tenantId],
    );
  },

  // When the user last signed in (null: never), for exports and reports.
  async lastLogin(trx: TenantTransaction, tenantId: string, id: string): Promise<Date | null | undefined> {
    const row = await trx('users').where({ tenant_id: tenantId, id }).whereNull('deleted_at').first('last_login_at');
    return row ? (row.last_login_at ? new Date(row.last_login_at) : null) : undefined;
  },

  // Live users who have not signed in since `before` (never signed in: created before it), the
  // longest idle first.
  dormant(trx: TenantTransaction, tenantId: string, before: Date, limit: number): Promise<Array<UserRow & { last_login_at: Date | null }>> {
    return selectUser(trx('users'), trx)
      .select('users.last_login_at')
      .where('users.tenant_id', tenantId)
      .whereNull('users.deleted_at')
      .where((idle) => idle.where('users.last_login_at', '<', before).orWhere((never) => never.whereNull('users.last_login_at').andWhere('users.created_at', '<', before)))
      .orderByRaw('coalesce(users.last_login_at, users.created_at), users.id')
      .limit(limit);
  },

  async liveIds(trx: TenantTransaction, tenantId: string): Promise<string[]> {
    const rows: Array<{ id: string }> = await trx('users').where({ tenant_id: tenantId }).whereNull('deleted_at').select('id');
    return rows.map((row) => row.id);
  },

  async hardDelete(trx: TenantTransaction, tenantId: string, id: string): Promise<boolean> {
    return (await trx('users').where({ tenant_id: tenantId, id }).delete(['id'])).length > 0;
  },

  // One page in (created_at, id) order, after the cursor: a keyset scan of users_tenant_created
  // that reads about `limit` index entries whatever the page number (never OFFSET).
  list(trx: TenantTransaction, tenantId: string, filters: ListFilters, holdingRole?: RoleSubquery): Promise<UserRow[]> {
    const query = selectUser(trx('users'), trx)
      .select(trx.raw(`to_char(users.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_created_at`))
      .where('users.tenant_id', tenantId)
      .whereNull('users.deleted_at');
    if (filters.email) query.whereRaw('users.email_normalized = lower(?)', [filters.email]);
    if (filters.username) query.whereRaw('users.username_normalized = lower(?)', [filters.username]);
    if (filters.status) query.where('users.status', filters.status);
    if (filters.createdFrom) query.where('users.created_at', '>=', filters.createdFrom);
    if (filters.createdTo) query.where('users.created_at', '<', filters.createdTo);
    if (filters.role && holdingRole) query.whereIn('users.id', holdingRole(trx, tenantId, filters.role));
    if (filters.q) {
      const pattern = containsPattern(filters.q);
      query.andWhere((q) => {
        for (const column of ['email', 'username', 'name', 'given_name', 'family_name']) q.orWhere(`users.${column}`, 'ilike', pattern);
      });
    }
    if (filters.after) query.whereRaw('(users.created_at, users.id) > (?::timestamptz, ?::uuid)', [filters.after.createdAt, filters.after.id]);
    return query.orderBy([{ column: 'users.created_at' }, { column: 'users.id' }]).limit(filters.limit + 1);
  },
};

// Platform context: no tenant is known yet, only the user id.
export function platformUserQueries(db: Database) {
  // Every token and session request looks its user up by id (src/store/batching.ts).
  const activeById = batchedByKey(
    (ids): Promise<UserRow[]> => selectUser(db('users').whereIn('id', ids).andWhere({ status: 'active' }).whereNull('deleted_at'), db),
    (row) => row.id,
  );
  return {
    findActiveById(id: string): Promise<UserRow | undefined> {
      return activeById(id.toLowerCase());
    },
    // The tenants where a live, active user has this e-mail or username (tenant selection at login).
    async tenantsOfIdentifier(identifier: string, limit: number): Promise<string[]> {
      const rows = await db('users')
        .distinct('tenant_id')
        .whereNull('deleted_at')
        .andWhere({ status: 'active' })
        .andWhere((q) => q.whereRaw('email_normalized = lower(?)', [identifier]).orWhereRaw('username_normalized = lower(?)', [identifier]))
        .limit(limit);
      return rows.map((row: { tenant_id: string }) => row.tenant_id);
    },
    // Every user row, deleted ones included (bootstrap runs only on an empty store).
    async count(): Promise<number> {
      const [row] = await db('users').count<{ count: string }[]>({ count: '*' });
      return Number(row.count);
    },
  };
}
