// One publishing round: claim a batch of unpublished events, append each to the stream, hand the
// batch to the in-transaction subscribers (webhook fan-out, in-process consumers) and record the
// publication, all in one transaction. A crash anywhere before the commit leaves the rows
// unpublished for the next round; the stream drops the copies of events it already holds.
import type { Logger } from 'pino';
import type { Knex } from 'knex';
import type { Database } from '../store/database.ts';
import type { EventEnvelope } from './events.ts';
import type { EventStream } from './stream.ts';
import { outboxQueries } from './queries.ts';

// Runs inside the publishing transaction (platform context): its writes commit with the publication.
export type EventSubscriber = (trx: Knex.Transaction, events: EventEnvelope[]) => Promise<void>;

export interface PublisherOptions {
  db: Database;
  stream: EventStream;
  subscribers: EventSubscriber[];
  log: Logger;
  now: () => Date;
  batchSize: number;
}

// How many events the round published.
export function eventPublisher(options: PublisherOptions): () => Promise<number> {
  const { db, stream, subscribers, log, now, batchSize } = options;
  return () =>
    db.transaction(async (trx) => {
      const events = await outboxQueries.claimUnpublished(trx, batchSize);
      if (!events.length) return 0;
      let duplicates = 0;
      // One after the other, so a batch keeps its seq order in the stream.
      for (const event of events) if (!(await stream.append(event))) duplicates++;
      if (duplicates) log.info({ duplicates }, 'events already in the stream were not appended again');
      for (const subscriber of subscribers) await subscriber(trx, events);
      await outboxQueries.markPublished(
        trx,
        events.map((event) => event.id),
        now(),
      );
      return events.length;
    });
}
