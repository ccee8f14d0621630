// The webhook_endpoints and webhook_deliveries tables. Endpoint queries run in tenant-scoped
// transactions; the fan-out and the delivery claims run in the platform context of the worker.
import type { Knex } from 'knex';
import type { EventEnvelope, EventType } from '../outbox/events.ts';

export const DELIVERY_STATUSES = ['pending', 'delivered', 'dead'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

export interface EndpointRow {
  id: string;
  tenant_id: string;
  url: string;
  description: string | null;
  event_types: string[];
  enabled: boolean;
  secret_sealed: string;
  version: number;
  created_at: Date;
  updated_at: Date;
}

export interface DeliveryRow {
  id: string;
  tenant_id: string;
  endpoint_id: string;
  event_id: string;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: Date;
  last_attempt_at: Date | null;
  last_status_code: number | null;
  last_error: string | null;
  delivered_at: Date | null;
  created_at: Date;
  event_type: string;
}

// A claimed delivery with what sending it needs.
export interface DueDelivery {
  id: string;
  attempts: number;
  endpointId: string;
  url: string;
  secretSealed: string;
  event: EventEnvelope;
}

export const endpointQueries = {
  list(trx: Knex.Transaction, tenantId: string): Promise<EndpointRow[]> {
    return trx('webhook_endpoints').where({ tenant_id: tenantId }).orderBy([{ column: 'created_at' }, { column: 'id' }]);
  },

  async count(trx: Knex.Transaction, tenantId: string): Promise<number> {
    const [{ count }] = await trx('webhook_endpoints').where({ tenant_id: tenantId }).count({ count: '*' });
    return Number(count);
  },

  find(trx: Knex.Transaction, tenantId: string, id: string): Promise<EndpointRow | undefined> {
    return trx('webhook_endpoints').where({ tenant_id: tenantId, id }).first();
  },

  async insert(trx: Knex.Transaction, row: Omit<EndpointRow, 'version' | 'created_at' | 'updated_at'>): Promise<EndpointRow> {
    const [created] = await trx('webhook_endpoints').insert(row).returning('*');
    return created;
  },

  // Only when the version still matches; undefined otherwise.
  async update(trx: Knex.Transaction, tenantId: string, id: string, version: number, changes: Partial<Pick<EndpointRow, 'url' | 'description' | 'event_types' | 'enabled'>>, at: Date): Promise<EndpointRow | undefined> {
    const [updated] = await trx('webhook_endpoints')
      .where({ tenant_id: tenantId, id, version })
      .update({ ...changes, version: trx.raw('version + 1'), updated_at: at })
      .returning('*');
    return updated;
  },

  // Whatever the version: a rotation does not conflict with an edit, but still marks a change.
  async replaceSecret(trx: Knex.Transaction, tenantId: string, id: string, secretSealed: string, at: Date): Promise<EndpointRow | undefined> {
    const [updated] = await trx('webhook_endpoints')
      .where({ tenant_id: tenantId, id })
      .update({ secret_sealed: secretSealed, version: trx.raw('version + 1'), updated_at: at })
      .returning('*');
    return updated;
  },

  // With a version, only while it still matches.
  async remove(trx: Knex.Transaction, tenantId: string, id: string, version?: number): Promise<boolean> {
    const query = trx('webhook_endpoints').where({ tenant_id: tenantId, id });
    if (version !== undefined) query.andWhere({ version });
    return (await query.delete(['id'])).length > 0;
  },

  // Re-wrapping after a key-encryption key rotation, platform context (all tenants): the
  // endpoints after `after` in id order, locked.
  sealedPage(trx: Knex.Transaction, after: string | undefined, limit: number): Promise<Array<Pick<EndpointRow, 'tenant_id' | 'id' | 'secret_sealed'>>> {
    const query = trx('webhook_endpoints').orderBy('id').limit(limit).forUpdate().select('tenant_id', 'id', 'secret_sealed');
    return after === undefined ? query : query.where('id', '>', after);
  },

  // The same secret sealed anew: no version change, so no edit in flight conflicts.
  async replaceSealed(trx: Knex.Transaction, tenantId: string, id: string, sealed: string): Promise<void> {
    await trx('webhook_endpoints').where({ tenant_id: tenantId, id }).update({ secret_sealed: sealed });
  },
};

export const deliveryQueries = {
  // Keyset pages, newest first.
  list(trx: Knex.Transaction, tenantId: string, endpointId: string, options: { status?: DeliveryStatus; limit: number; before?: { createdAt: Date; id: string } }): Promise<DeliveryRow[]> {
    const query = trx('webhook_deliveries as d')
      .join('outbox_events as e', 'e.id', 'd.event_id')
      .select('d.*', 'e.type as event_type')
      .where({ 'd.tenant_id': tenantId, 'd.endpoint_id': endpointId })
      .orderBy([{ column: 'd.created_at', order: 'desc' }, { column: 'd.id', order: 'desc' }])
      .limit(options.limit);
    if (options.status) query.where('d.status', options.status);
    if (options.before) query.whereRaw('(d.created_at, d.id) < (?, ?)', [options.before.createdAt, options.before.id]);
    return query;
  },

  // Back to pending with a fresh attempt budget, due now.
  async replay(trx: Knex.Transaction, tenantId: string, endpointId: string, filter: { id?: string; status?: DeliveryStatus }, at: Date, limit: number): Promise<number> {
    const ids = trx('webhook_deliveries').select('id').where({ tenant_id: tenantId, endpoint_id: endpointId }).limit(limit);
    if (filter.id) ids.where('id', filter.id);
    if (filter.status) ids.where('status', filter.status);
    const replayed = await trx('webhook_deliveries')
      .whereIn('id', ids)
      .update({ status: 'pending', attempts: 0, next_attempt_at: at, last_error: null, last_status_code: null, delivered_at: null }, ['id']);
    return replayed.length;
  },

  // One pending delivery per enabled endpoint of the event's tenant that wants its type; how many.
  async fanOut(trx: Knex.Transaction, events: EventEnvelope[], at: Date): Promise<number> {
    if (!events.length) return 0;
    const inserted = await trx.raw(
      `INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_id, status, attempts, next_attempt_at, created_at)
       SELECT gen_random_uuid(), w.tenant_id, w.id, e.id, 'pending', 0, ?, ?
       FROM unnest(?::uuid[], ?::uuid[], ?::text[]) AS e(id, tenant_id, type)
       JOIN webhook_endpoints w ON w.tenant_id = e.tenant_id AND w.enabled AND (e.type = ANY(w.event_types) OR '*' = ANY(w.event_types))
       ON CONFLICT (endpoint_id, event_id) DO NOTHING`,
      [at, at, events.map((event) => event.id), events.map((event) => event.tenantId), events.map((event) => event.type)],
    );
    return inserted.rowCount ?? inserted.affectedRows ?? 0;
  },

  // Takes due deliveries of enabled endpoints and leases them until leaseUntil: a worker that dies
  // while sending leaves them to be taken again after the lease.
  async claimDue(db: Knex, at: Date, leaseUntil: Date, limit: number): Promise<DueDelivery[]> {
    const { rows } = await db.raw(
      `WITH claimed AS (
         UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ?, last_attempt_at = ?
         WHERE id IN (
           SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id AND w.enabled
           WHERE d.status = 'pending' AND d.next_attempt_at <= ?
           ORDER BY d.next_attempt_at LIMIT ? FOR UPDATE OF d SKIP LOCKED)
         RETURNING id, attempts, endpoint_id, event_id)
       SELECT c.id, c.attempts, c.endpoint_id, w.url, w.secret_sealed, e.id AS event_id, e.type, e.tenant_id, e.data, e.created_at
       FROM claimed c JOIN webhook_endpoints w ON w.id = c.endpoint_id JOIN outbox_events e ON e.id = c.event_id`,
      [leaseUntil, at, at, limit],
    );
    return (rows as Array<Record<string, any>>).map((row) => ({
      id: row.id,
      attempts: row.attempts,
      endpointId: row.endpoint_id,
      url: row.url,
      secretSealed: row.secret_sealed,
      event: { id: row.event_id, type: row.type as EventType, tenantId: row.tenant_id, occurredAt: new Date(row.created_at).toISOString(), data: row.data },
    }));
  },

  async recordSuccess(db: Knex, id: string, statusCode: number, at: Date): Promise<void> {
    await db('webhook_deliveries').where({ id, status: 'pending' }).update({ status: 'delivered', delivered_at: at, last_status_code: statusCode, last_error: null });
  },

  async recordFailure(db: Knex, id: string, result: { statusCode?: number; error: string }, next: { dead: boolean; retryAt: Date }): Promise<void> {
    await db('webhook_deliveries')
      .where({ id, status: 'pending' })
      .update({ status: next.dead ? 'dead' : 'pending', next_attempt_at: next.retryAt, last_status_code: result.statusCode ?? null, last_error: result.error });
  },
};
