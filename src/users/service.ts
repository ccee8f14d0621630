import { randomUUID } from 'node:crypto';
import type { Database } from '../store/database.ts';
import type { PasswordHashing } from '../security/passwords.ts';
import { userQueries, type UserRow } from './queries.ts';
import { DEFAULT_TENANT_ID } from '../tenants/constants.ts';

export interface User {
  id: string;
  tenantId: string;
  email: string;
  username: string | null;
  name: string | null;
  emailVerified: boolean;
  isAdmin: boolean;
}

export interface NewUser {
  tenantId?: string;
  email: string;
  username?: string;
  name?: string;
  password: string;
  emailVerified?: boolean;
  isAdmin?: boolean;
}

export class DuplicateUserError extends Error {}

function toUser(row: UserRow): User {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    email: row.email,
    username: row.username,
    name: row.name,
    emailVerified: row.email_verified,
    isAdmin: row.is_admin,
  };
}

export function createUserService(db: Database, passwords: PasswordHashing) {
  const queries = userQueries(db);
  return {
    async create(input: NewUser): Promise<User> {
      const row = {
        id: randomUUID(),
        tenant_id: input.tenantId ?? DEFAULT_TENANT_ID,
        email: input.email,
        username: input.username ?? null,
        name: input.name ?? null,
        password_hash: await passwords.hash(input.password),
        email_verified: input.emailVerified ?? false,
        is_admin: input.isAdmin ?? false,
      };
      try {
        await queries.insert(row);
      } catch (error) {
        if ((error as { code?: string }).code === '23505') throw new DuplicateUserError('a user with this e-mail or username exists');
        throw error;
      }
      return toUser({ ...row, created_at: new Date(), updated_at: new Date() });
    },

    async findById(id: string): Promise<User | undefined> {
      const row = await queries.findById(id);
      return row ? toUser(row) : undefined;
    },

    // Spends one argon2id verification whether or not the identifier exists.
    async authenticate(identifier: string, password: string, tenantId = DEFAULT_TENANT_ID): Promise<User | undefined> {
      const row = identifier ? await queries.findByIdentifier(tenantId, identifier) : undefined;
      const valid = await passwords.verify(row?.password_hash, password);
      return row && valid ? toUser(row) : undefined;
    },

    count: () => queries.count(),
  };
}

export type UserService = ReturnType<typeof createUserService>;
