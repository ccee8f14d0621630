// Revocations as events, for resource servers that hold connections open longer than a token
// check lasts (WebSocket, SSE). Published through the hot store's pub/sub so every instance's
// stream sees what any instance revoked; delivery is best effort and at most once (a resource
// server that missed events while disconnected must treat that gap itself).
import { randomUUID } from 'node:crypto';
import type { HotStore } from '../store/hot-store.ts';

export type RevocationEventType = 'session.revoked' | 'token.revoked' | 'user.suspended';

export interface RevocationEvent {
  type: RevocationEventType;
  // Unique per event: the SSE `id:`.
  id: string;
  tenantId?: string;
  userId?: string;
  // The `sid` claim of the session's ID tokens (oidc-provider's per-client session id).
  sessionId?: string;
  jti?: string;
  clientIds?: string[];
  at: string;
}

export interface RevocationBus {
  publish(event: RevocationEvent): Promise<void>;
  // In-process handlers of this instance; returns the unsubscribe function.
  subscribe(handler: (event: RevocationEvent) => void): () => void;
  // Resolves once this instance receives what any instance publishes (the hot-store subscription).
  ready(): Promise<void>;
  // In-process handlers right now (open streams of this instance).
  subscribers(): number;
  close(): void;
}

export const REVOCATIONS_CHANNEL = 'revocations';
const EVENT_TYPES = new Set<string>(['session.revoked', 'token.revoked', 'user.suspended']);

// Fills in the event id and time.
export function revocationEvent(fields: Omit<RevocationEvent, 'id' | 'at'> & { at?: string }): RevocationEvent {
  return { ...fields, id: randomUUID(), at: fields.at ?? new Date().toISOString() };
}

export function createRevocationBus(hot: HotStore): RevocationBus {
  const handlers = new Set<(event: RevocationEvent) => void>();
  let closed = false;
  let listening: Promise<void> | undefined;

  function deliver(message: string): void {
    if (closed) return;
    const event = parseEvent(message);
    if (!event) return;
    for (const handler of handlers) {
      try {
        handler(event);
      } catch {
        // One failing stream must not keep the event from the others.
      }
    }
  }

  // One hot-store subscription per instance, made on first use so the CLI opens no subscriber
  // connection, fanned out in process.
  function listen(): Promise<void> {
    listening ??= hot.subscribe(REVOCATIONS_CHANNEL, deliver);
    return listening;
  }

  return {
    async publish(event) {
      if (closed) return;
      await hot.publish(REVOCATIONS_CHANNEL, JSON.stringify(event));
    },
    subscribe(handler) {
      handlers.add(handler);
      listen().catch(() => {
        listening = undefined;
      });
      return () => {
        handlers.delete(handler);
      };
    },
    ready: listen,
    subscribers: () => handlers.size,
    close() {
      closed = true;
      handlers.clear();
    },
  };
}

function parseEvent(message: string): RevocationEvent | undefined {
  let value: unknown;
  try {
    value = JSON.parse(message);
  } catch {
    return undefined;
  }
  if (!value || typeof value !== 'object') return undefined;
  const event = value as Record<string, unknown>;
  if (typeof event.type !== 'string' || !EVENT_TYPES.has(event.type)) return undefined;
  if (typeof event.id !== 'string' || typeof event.at !== 'string') return undefined;
  for (const field of ['tenantId', 'userId', 'sessionId', 'jti'] as const) {
    if (event[field] !== undefined && typeof event[field] !== 'string') return undefined;
  }
  if (event.clientIds !== undefined && !(Array.isArray(event.clientIds) && event.clientIds.every((id) => typeof id === 'string'))) return undefined;
  return event as unknown as RevocationEvent;
}
