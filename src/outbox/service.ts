// The transactional outbox: a change records its event in its own transaction, so the event
// exists exactly when the change does. The publisher (worker.ts) takes it from there.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { Database } from '../store/database.ts';
import { withTenant } from '../store/tenant-scope.ts';
import { isUuid } from '../ids.ts';
import { credentialField, isEventType, type EventEnvelope, type NewEvent } from './events.ts';
import { outboxQueries } from './queries.ts';

export interface OutboxService {
  // With the caller's transaction (tenant-scoped or platform), the event commits or rolls back
  // with the change; without one it is written on its own.
  enqueue(trx: Knex.Transaction | undefined, event: NewEvent): Promise<EventEnvelope>;
  // Called after an event is committed, to wake the publisher in this process.
  onEnqueued(listener: () => void): void;
  // Seconds the oldest unpublished event has waited (0 when none waits): the outbox lag metric.
  lagSeconds(): Promise<number>;
  // GDPR erasure, in the erasure's tenant-scoped transaction: stored events (and so the webhook
  // deliveries still to be sent or replayed) keep the user id but lose the person's e-mail
  // address and the identifiers they typed. Returns how many events changed.
  pseudonymiseUser(trx: Knex.Transaction, tenantId: string, userId: string, identifiers: string[]): Promise<number>;
}

export function createOutboxService(options: { db: Database; now?: () => Date }): OutboxService {
  const { db } = options;
  const now = options.now ?? (() => new Date());
  const listeners: Array<() => void> = [];
  const notify = () => {
    for (const listener of listeners) listener();
  };

  return {
    async enqueue(trx, event) {
      if (!isUuid(event.tenantId)) throw new Error('an event needs the tenant id (uuid)');
      if (!isEventType(event.type)) throw new Error(`unknown event type ${event.type}`);
      const credential = credentialField(event.data);
      if (credential) throw new Error(`event data must not carry credentials (${credential})`);
      const envelope: EventEnvelope = { id: randomUUID(), type: event.type, tenantId: event.tenantId, occurredAt: now().toISOString(), data: event.data };
      if (trx) {
        await outboxQueries.insert(trx, envelope);
        // Settles when this transaction (or savepoint) ends; the interval covers an outer commit.
        trx.executionPromise.then(notify, () => {});
      } else {
        await withTenant(db, event.tenantId, (scoped) => outboxQueries.insert(scoped, envelope));
        notify();
      }
      return envelope;
    },
    async lagSeconds() {
      const oldest = await outboxQueries.oldestUnpublishedAt(db);
      return oldest ? Math.max(0, (now().getTime() - oldest.getTime()) / 1000) : 0;
    },
    pseudonymiseUser(trx, tenantId, userId, identifiers) {
      return outboxQueries.pseudonymiseUser(trx, tenantId, userId, identifiers);
    },
    onEnqueued(listener) {
      listeners.push(listener);
    },
  };
}
