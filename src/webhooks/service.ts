// Webhook endpoints of a tenant and their deliveries, for the admin API. The signing secret is
// generated here, returned once (at creation and at rotation) and kept sealed under the instance's
// key-encryption key. Every read and write runs tenant-scoped, under row-level security.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { Database } from '../store/database.ts';
import { withTenant } from '../store/tenant-scope.ts';
import { seal } from '../security/crypto.ts';
import { ConflictError, NotFoundError, ValidationError, VersionMismatchError } from '../errors.ts';
import { isEventType, type EventEnvelope } from '../outbox/events.ts';
import type { EventSubscriber } from '../outbox/publisher.ts';
import { endpointUrlProblem } from './destination.ts';
import { generateSigningSecret } from './signature.ts';
import { deliveryQueries, endpointQueries, type DeliveryRow, type DeliveryStatus, type EndpointRow } from './queries.ts';

export { DELIVERY_STATUSES, type DeliveryStatus } from './queries.ts';

export const MAX_ENDPOINTS_PER_TENANT = 20;
export const MAX_REPLAY = 1000;
// Every event type, present and future.
export const ALL_EVENTS = '*';

export interface WebhookEndpoint {
  id: string;
  tenantId: string;
  url: string;
  description: string | null;
  eventTypes: string[];
  enabled: boolean;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

export interface WebhookDelivery {
  id: string;
  endpointId: string;
  eventId: string;
  eventType: string;
  status: DeliveryStatus;
  attempts: number;
  nextAttemptAt: Date | null;
  lastAttemptAt: Date | null;
  lastStatusCode: number | null;
  lastError: string | null;
  deliveredAt: Date | null;
  createdAt: Date;
}

export interface EndpointInput {
  url: string;
  description?: string | null;
  eventTypes: string[];
  enabled?: boolean;
}

export interface WebhookService {
  list(tenantId: string): Promise<WebhookEndpoint[]>;
  get(tenantId: string, id: string): Promise<WebhookEndpoint>;
  // The secret is in the answer and nowhere else, ever again.
  create(tenantId: string, input: EndpointInput): Promise<{ endpoint: WebhookEndpoint; secret: string }>;
  update(tenantId: string, id: string, version: number, changes: Partial<EndpointInput>): Promise<WebhookEndpoint>;
  remove(tenantId: string, id: string): Promise<void>;
  rotateSecret(tenantId: string, id: string): Promise<{ endpoint: WebhookEndpoint; secret: string }>;
  deliveries(tenantId: string, endpointId: string, options: { status?: DeliveryStatus; limit: number; before?: { createdAt: Date; id: string } }): Promise<WebhookDelivery[]>;
  replay(tenantId: string, endpointId: string, deliveryId: string): Promise<void>;
  // Every dead-lettered delivery of the endpoint (up to MAX_REPLAY per call); how many.
  replayDead(tenantId: string, endpointId: string): Promise<number>;
  // The publisher's fan-out: one delivery per matching endpoint, in the publishing transaction.
  fanOut: EventSubscriber;
}

export function endpointSealContext(endpointId: string): string {
  return `webhook_endpoints:${endpointId}`;
}

function endpointView(row: EndpointRow): WebhookEndpoint {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    url: row.url,
    description: row.description,
    eventTypes: row.event_types,
    enabled: row.enabled,
    version: row.version,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
}

function deliveryView(row: DeliveryRow): WebhookDelivery {
  const date = (value: Date | null) => (value ? new Date(value) : null);
  return {
    id: row.id,
    endpointId: row.endpoint_id,
    eventId: row.event_id,
    eventType: row.event_type,
    status: row.status,
    attempts: row.attempts,
    nextAttemptAt: row.status === 'pending' ? new Date(row.next_attempt_at) : null,
    lastAttemptAt: date(row.last_attempt_at),
    lastStatusCode: row.last_status_code,
    lastError: row.last_error,
    deliveredAt: date(row.delivered_at),
    createdAt: new Date(row.created_at),
  };
}

function checkEndpoint(changes: Partial<EndpointInput>): void {
  const fields: Record<string, string> = {};
  if (changes.url !== undefined) {
    const problem = endpointUrlProblem(changes.url);
    if (problem) fields['body.url'] = problem;
  }
  if (changes.eventTypes !== undefined) {
    const unknown = changes.eventTypes.filter((type) => type !== ALL_EVENTS && !isEventType(type));
    if (!changes.eventTypes.length) fields['body.eventTypes'] = 'name at least one event type, or "*" for all';
    else if (unknown.length) fields['body.eventTypes'] = `unknown event types: ${unknown.join(', ')}`;
  }
  if (Object.keys(fields).length) throw new ValidationError('invalid webhook endpoint', fields);
}

export function createWebhookService(options: { db: Database; keyEncryptionKey: Buffer; now?: () => Date }): WebhookService {
  const { db, keyEncryptionKey } = options;
  const now = options.now ?? (() => new Date());

  async function existing(trx: Knex.Transaction, tenantId: string, id: string): Promise<EndpointRow> {
    const row = await endpointQueries.find(trx, tenantId, id);
    if (!row) throw new NotFoundError('no such webhook endpoint in this tenant');
    return row;
  }

  return {
    list: (tenantId) => withTenant(db, tenantId, async (trx) => (await endpointQueries.list(trx, tenantId)).map(endpointView)),

    get: (tenantId, id) => withTenant(db, tenantId, async (trx) => endpointView(await existing(trx, tenantId, id))),

    async create(tenantId, input) {
      checkEndpoint(input);
      const id = randomUUID();
      const secret = generateSigningSecret();
      const endpoint = await withTenant(db, tenantId, async (trx) => {
        if ((await endpointQueries.count(trx, tenantId)) >= MAX_ENDPOINTS_PER_TENANT) {
          throw new ConflictError(`a tenant has at most ${MAX_ENDPOINTS_PER_TENANT} webhook endpoints`);
        }
        return endpointQueries.insert(trx, {
          id,
          tenant_id: tenantId,
          url: input.url,
          description: input.description ?? null,
          event_types: [...new Set(input.eventTypes)],
          enabled: input.enabled ?? true,
          secret_sealed: seal(keyEncryptionKey, secret, endpointSealContext(id)),
        });
      });
      return { endpoint: endpointView(endpoint), secret };
    },

    async update(tenantId, id, version, changes) {
      checkEndpoint(changes);
      return withTenant(db, tenantId, async (trx) => {
        await existing(trx, tenantId, id);
        const updated = await endpointQueries.update(
          trx,
          tenantId,
          id,
          version,
          {
            ...(changes.url !== undefined ? { url: changes.url } : {}),
            ...(changes.description !== undefined ? { description: changes.description } : {}),
            ...(changes.eventTypes !== undefined ? { event_types: [...new Set(changes.eventTypes)] } : {}),
            ...(changes.enabled !== undefined ? { enabled: changes.enabled } : {}),
          },
          now(),
        );
        if (!updated) throw new VersionMismatchError('the endpoint changed since you read it: read it again');
        return endpointView(updated);
      });
    },

    async remove(tenantId, id) {
      const removed = await withTenant(db, tenantId, (trx) => endpointQueries.remove(trx, tenantId, id));
      if (!removed) throw new NotFoundError('no such webhook endpoint in this tenant');
    },

    async rotateSecret(tenantId, id) {
      const secret = generateSigningSecret();
      const endpoint = await withTenant(db, tenantId, (trx) => endpointQueries.replaceSecret(trx, tenantId, id, seal(keyEncryptionKey, secret, endpointSealContext(id)), now()));
      if (!endpoint) throw new NotFoundError('no such webhook endpoint in this tenant');
      return { endpoint: endpointView(endpoint), secret };
    },

    deliveries: (tenantId, endpointId, query) =>
      withTenant(db, tenantId, async (trx) => {
        await existing(trx, tenantId, endpointId);
        return (await deliveryQueries.list(trx, tenantId, endpointId, query)).map(deliveryView);
      }),

    async replay(tenantId, endpointId, deliveryId) {
      const replayed = await withTenant(db, tenantId, async (trx) => {
        await existing(trx, tenantId, endpointId);
        return deliveryQueries.replay(trx, tenantId, endpointId, { id: deliveryId }, now(), 1);
      });
      if (!replayed) throw new NotFoundError('no such delivery of this endpoint');
    },

    replayDead: (tenantId, endpointId) =>
      withTenant(db, tenantId, async (trx) => {
        await existing(trx, tenantId, endpointId);
        return deliveryQueries.replay(trx, tenantId, endpointId, { status: 'dead' }, now(), MAX_REPLAY);
      }),

    fanOut: (trx: Knex.Transaction, events: EventEnvelope[]) => deliveryQueries.fanOut(trx, events, now()),
  };
}
