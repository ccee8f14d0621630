// The api_keys and api_key_usage tables. Administration runs in tenant-scoped transactions; the
// lookup by public id runs in the platform context, because a presented key names no tenant.
import type { Knex } from 'knex';
import type { Database } from '../store/database.ts';

export interface KeyPermission {
  api: string;
  permission: string;
}

export interface ApiKeyRow {
  id: string;
  tenant_id: string;
  public_id: string;
  environment: string;
  secret_sha256: string;
  name: string;
  owner_type: 'user' | 'client';
  owner_id: string;
  permissions: KeyPermission[];
  allowed_ips: string[] | null;
  rate_limit: number | null;
  expires_at: Date | null;
  revoked_at: Date | null;
  replaced_by: string | null;
  created_by_type: string | null;
  created_by_id: string | null;
  created_at: Date;
  last_used_at: Date | null;
  last_used_ip: string | null;
}

export interface UsageRow {
  day: string;
  requests: number;
}

export type NewKeyRow = Omit<ApiKeyRow, 'revoked_at' | 'replaced_by' | 'last_used_at' | 'last_used_ip'>;

function toRow(row: ApiKeyRow): ApiKeyRow {
  // jsonb arrives parsed from pg and from PGlite alike; keep the type honest either way.
  return { ...row, permissions: typeof row.permissions === 'string' ? JSON.parse(row.permissions) : row.permissions };
}

export const apiKeyQueries = {
  async insert(trx: Knex.Transaction, row: NewKeyRow): Promise<ApiKeyRow> {
    const [inserted] = await trx('api_keys')
      .insert({ ...row, permissions: JSON.stringify(row.permissions) })
      .returning('*');
    return toRow(inserted);
  },

  async find(trx: Knex.Transaction, tenantId: string, id: string): Promise<ApiKeyRow | undefined> {
    const row = await trx('api_keys').where({ tenant_id: tenantId, id }).first();
    return row && toRow(row);
  },

  async list(trx: Knex.Transaction, tenantId: string, options: { limit: number; before?: { createdAt: Date; id: string }; ownerType?: string; ownerId?: string }): Promise<ApiKeyRow[]> {
    const query = trx('api_keys').where({ tenant_id: tenantId });
    if (options.ownerType) query.andWhere({ owner_type: options.ownerType });
    if (options.ownerId) query.andWhere({ owner_id: options.ownerId });
    if (options.before) query.andWhereRaw('(created_at, id) < (?, ?)', [options.before.createdAt, options.before.id]);
    const rows = await query.orderBy([{ column: 'created_at', order: 'desc' }, { column: 'id', order: 'desc' }]).limit(options.limit);
    return rows.map(toRow);
  },

  async revoke(trx: Knex.Transaction, tenantId: string, id: string, at: Date): Promise<ApiKeyRow | undefined> {
    const [row] = await trx('api_keys').where({ tenant_id: tenantId, id }).whereNull('revoked_at').update({ revoked_at: at }).returning('*');
    return row && toRow(row);
  },

  // The old key of a rotation: valid until `until` (never longer than it already was), then gone.
  async supersede(trx: Knex.Transaction, tenantId: string, id: string, successor: string, until: Date): Promise<ApiKeyRow | undefined> {
    const [row] = await trx('api_keys')
      .where({ tenant_id: tenantId, id })
      .whereNull('revoked_at')
      .whereNull('replaced_by')
      .update({ replaced_by: successor, expires_at: trx.raw('LEAST(coalesce(expires_at, ?), ?)', [until, until]) })
      .returning('*');
    return row && toRow(row);
  },

  async usage(trx: Knex.Transaction, tenantId: string, keyId: string, since: string): Promise<UsageRow[]> {
    const rows: Array<{ day: string | Date; requests: string | number }> = await trx('api_key_usage')
      .where({ tenant_id: tenantId, key_id: keyId })
      .andWhere('day', '>=', since)
      .orderBy('day', 'desc')
      .select('day', 'requests');
    return rows.map((row) => ({ day: typeof row.day === 'string' ? row.day.slice(0, 10) : isoDay(row.day), requests: Number(row.requests) }));
  },

  // An owner's keys with their usage (the usage rows go by cascade); the ids deleted.
  async deleteOwnedBy(trx: Knex.Transaction, tenantId: string, ownerType: string, ownerId: string): Promise<string[]> {
    const rows: Array<{ id: string }> = await trx('api_keys').where({ tenant_id: tenantId, owner_type: ownerType, owner_id: ownerId }).delete().returning('id');
    return rows.map((row) => row.id);
  },

  // A day's count only grows: the hot store holds the day's running total, flushed as an absolute value.
  async recordUsage(trx: Knex.Transaction, tenantId: string, keyId: string, day: string, requests: number): Promise<void> {
    await trx.raw(
      `INSERT INTO api_key_usage (tenant_id, key_id, day, requests) VALUES (?, ?, ?, ?)
       ON CONFLICT (key_id, day) DO UPDATE SET requests = GREATEST(api_key_usage.requests, EXCLUDED.requests)`,
      [tenantId, keyId, day, requests],
    );
  },

  async recordLastUse(trx: Knex.Transaction, tenantId: string, keyId: string, at: Date, ip: string): Promise<void> {
    await trx('api_keys')
      .where({ tenant_id: tenantId, id: keyId })
      .andWhere((where) => where.whereNull('last_used_at').orWhere('last_used_at', '<', at))
      .update({ last_used_at: at, last_used_ip: ip });
  },
};

// Platform context: the one lookup a presented key needs.
export async function findByPublicId(db: Database, publicId: string): Promise<ApiKeyRow | undefined> {
  const row = await db('api_keys').where({ public_id: publicId }).first();
  return row && toRow(row);
}

export function isoDay(date: Date): string {
  return date.toISOString().slice(0, 10);
}
