import type { Database } from '../store/database.ts';

export interface UserRow {
  id: string;
  tenant_id: string;
  email: string;
  username: string | null;
  password_hash: string | null;
  name: string | null;
  email_verified: boolean;
  is_admin: boolean;
  created_at: Date;
  updated_at: Date;
}

export function userQueries(db: Database) {
  return {
    findById(id: string): Promise<UserRow | undefined> {
      return db('users').where({ id }).first();
    },
    // An identifier is an e-mail address or a username, both case-insensitive.
    findByIdentifier(tenantId: string, identifier: string): Promise<UserRow | undefined> {
      const lowered = identifier.toLowerCase();
      return db('users')
        .where({ tenant_id: tenantId })
        .whereNull('deleted_at')
        .andWhere((q) => q.whereRaw('lower(email) = ?', [lowered]).orWhereRaw('lower(username) = ?', [lowered]))
        .first();
    },
    insert(row: Omit<UserRow, 'created_at' | 'updated_at'>) {
      return db('users').insert(row);
    },
    count(): Promise<number> {
      return db('users').count<{ count: string }[]>({ count: '*' }).then(([row]) => Number(row.count));
    },
  };
}
