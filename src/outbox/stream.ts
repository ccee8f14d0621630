// Delivery to the Redis stream other services read with consumer groups. Each event is appended
// with its id as the dedupe key: a publisher that crashed after appending but before recording
// the publication appends it again, and the store drops the copy, so every consumer group sees
// the event once.
import type { HotStore, StreamEntry } from '../store/hot-store.ts';
import type { EventEnvelope } from './events.ts';

export const EVENTS_STREAM = 'events';

// Long enough to outlast any publisher crash and retry; short enough that the markers stay few.
export const STREAM_DEDUPE_SECONDS = 6 * 3600;

export interface EventStream {
  // false when the event was in the stream already.
  append(event: EventEnvelope): Promise<boolean>;
}

export function hotStoreEventStream(hot: HotStore, maxLength: number): EventStream {
  return {
    async append(event) {
      const id = await hot.appendToStream(EVENTS_STREAM, {
        dedupeId: event.id,
        dedupeSeconds: STREAM_DEDUPE_SECONDS,
        maxLength,
        fields: { id: event.id, type: event.type, tenantId: event.tenantId, event: JSON.stringify(event) },
      });
      return id !== null;
    },
  };
}

export function eventOfEntry(entry: StreamEntry): EventEnvelope {
  return JSON.parse(entry.fields.event) as EventEnvelope;
}
