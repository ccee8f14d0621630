// The outbox_events table: rows written with the change, claimed in order by the publisher.
import type { Knex } from 'knex';
import type { EventEnvelope, EventType } from './events.ts';

interface OutboxRow {
  id: string;
  tenant_id: string;
  type: string;
  data: Record<string, unknown>;
  created_at: Date;
}

function envelopeOf(row: OutboxRow): EventEnvelope {
  return { id: row.id, type: row.type as EventType, tenantId: row.tenant_id, occurredAt: new Date(row.created_at).toISOString(), data: row.data };
}

export const outboxQueries = {
  async insert(trx: Knex | Knex.Transaction, envelope: EventEnvelope): Promise<void> {
    await trx('outbox_events').insert({
      id: envelope.id,
      tenant_id: envelope.tenantId,
      type: envelope.type,
      data: JSON.stringify(envelope.data),
      created_at: new Date(envelope.occurredAt),
    });
  },

  // Rows another publisher holds are skipped, so several instances share the work; the row locks
  // last until the caller's transaction ends.
  async claimUnpublished(trx: Knex.Transaction, limit: number): Promise<EventEnvelope[]> {
    const rows: OutboxRow[] = await trx('outbox_events')
      .select('id', 'tenant_id', 'type', 'data', 'created_at')
      .whereNull('published_at')
      .orderBy('seq')
      .limit(limit)
      .forUpdate()
      .skipLocked();
    return rows.map(envelopeOf);
  },

  // When the oldest event still waiting to be published was written; undefined when none waits.
  async oldestUnpublishedAt(db: Knex): Promise<Date | undefined> {
    const row = await db('outbox_events').whereNull('published_at').orderBy('seq').first('created_at');
    return row ? new Date(row.created_at) : undefined;
  },

  async markPublished(trx: Knex.Transaction, ids: string[], at: Date): Promise<void> {
    await trx('outbox_events').whereIn('id', ids).update({ published_at: at });
  },

  // A person's erasure: events about the user lose their e-mail address, failed sign-ins typed
  // with one of the person's identifiers lose the identifier (it becomes null). The caller's
  // tenant-scoped transaction confines it to the tenant. Returns how many events changed.
  async pseudonymiseUser(trx: Knex.Transaction, tenantId: string, userId: string, identifiers: string[]): Promise<number> {
    const withEmail: Array<{ id: string }> = await trx('outbox_events')
      .where('tenant_id', tenantId)
      .whereRaw("data->>'userId' = ?", [userId])
      .whereRaw("data->>'email' IS NOT NULL")
      .update({ data: trx.raw(`data || '{"email": null}'::jsonb`) }, ['id']);
    const lowered = identifiers.filter(Boolean).map((identifier) => identifier.toLowerCase());
    const typed: Array<{ id: string }> = lowered.length
      ? await trx('outbox_events')
        .where('tenant_id', tenantId)
        .where('type', 'auth.login.failed')
        .whereRaw(`lower(data->>'identifier') IN (${lowered.map(() => '?').join(', ')})`, lowered)
        .update({ data: trx.raw(`data || '{"identifier": null}'::jsonb`) }, ['id'])
      : [];
    return withEmail.length + typed.length;
  },

  // Published events older than the retention go, with their webhook deliveries (cascade).
  async purgePublished(db: Knex, before: Date, limit: number): Promise<number> {
    const removed = await db('outbox_events')
      .whereIn('id', db('outbox_events').select('id').whereNotNull('published_at').where('published_at', '<', before).limit(limit))
      .delete(['id']);
    return removed.length;
  },
};
