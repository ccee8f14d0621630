import type { Database } from '../store/database.ts';
import { storableText } from '../store/text.ts';

export interface TenantRow {
  id: string;
  slug: string;
  display_name: string;
  email_domains: string[];
  status: 'active' | 'disabled';
  policies: Record<string, unknown>;
  user_attribute_schema: Record<string, unknown>;
  self_registration: boolean;
  branding: Record<string, unknown>;
  platform: boolean;
  version: number;
  created_at: Date;
  updated_at: Date;
}

// Tenants are platform-level rows (no tenant scope): only platform code reads them directly.
export function tenantQueries(db: Database) {
  return {
    find(id: string, trx: Database = db): Promise<TenantRow | undefined> {
      return trx('tenants').where({ id }).first();
    },
    async findBySlug(slug: string): Promise<TenantRow | undefined> {
      if (!storableText(slug)) return undefined;
      return db('tenants').whereRaw('lower(slug) = ?', [slug.toLowerCase()]).first();
    },
    async findByEmailDomain(domain: string): Promise<TenantRow[]> {
      if (!storableText(domain)) return [];
      return db('tenants').whereRaw('? = ANY(email_domains)', [domain.toLowerCase()]).andWhere({ status: 'active' });
    },
    list(limit: number, after?: { createdAt: Date; id: string }): Promise<TenantRow[]> {
      const query = db('tenants').orderBy([{ column: 'created_at' }, { column: 'id' }]).limit(limit);
      if (after) query.whereRaw('(created_at, id) > (?, ?)', [after.createdAt, after.id]);
      return query;
    },
    insert(trx: Database, row: Omit<TenantRow, 'created_at' | 'updated_at' | 'version' | 'platform'>) {
      return trx('tenants').insert({
        ...row,
        policies: JSON.stringify(row.policies),
        user_attribute_schema: JSON.stringify(row.user_attribute_schema),
        branding: JSON.stringify(row.branding),
      });
    },
    // Optimistic concurrency: the update applies only at the version the caller read.
    async update(id: string, expectedVersion: number, changes: Partial<TenantRow>): Promise<TenantRow | undefined> {
      const values: Record<string, unknown> = { ...changes, version: db.raw('version + 1'), updated_at: db.fn.now() };
      for (const json of ['policies', 'user_attribute_schema', 'branding']) if (json in values) values[json] = JSON.stringify(values[json]);
      const [row] = await db('tenants').where({ id, version: expectedVersion }).update(values, '*');
      return row;
    },
    // With expectedVersion, only at the version the caller read.
    async delete(id: string, expectedVersion?: number): Promise<boolean> {
      const query = db('tenants').where({ id, platform: false });
      if (expectedVersion !== undefined) query.andWhere({ version: expectedVersion });
      return (await query.delete(['id'])).length > 0;
    },
  };
}
