// Webhook endpoints of a tenant and their deliveries, for the admin API. The signing secret is
// generated here, returned once (at creation and at rotation) and kept sealed under the instance's
// key-encryption key. Every read and write runs tenant-scoped, under row-level security.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { Database } from '../store/database.ts';
import { withTenant } from '../store/tenant-scope.ts';
import { seal, type SealingKeys } from '../security/crypto.ts';
import { rewrapAll, type RewrapReport } from '../security/rewrap.ts';
import { ConflictError, NotFoundError, ValidationError, VersionMismatchError } from '../errors.ts';
import { isEventType, type EventEnvelope } from '../outbox/events.ts';
import type { EventSubscriber } from '../outbox/publisher.ts';
import { endpointUrlProblem } from './destination.ts';
import { generateSigningSecret } from './signature.ts';
import { deliveryQueries, endpointQueries, type DeliveryRow, type DeliveryStatus, type EndpointRow } from './queries.ts';
import type { AuditService } from '../audit/service.ts';
import { originOf, type ChangeOrigin } from '../audit/origin.ts';
import { changeDetails } from '../audit/mask.ts';

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
  // Changes to endpoints are recorded in the audit trail, in their transaction, as done by `origin`.
  create(tenantId: string, input: EndpointInput, origin?: ChangeOrigin): Promise<{ endpoint: WebhookEndpoint; secret: string }>;
  update(tenantId: string, id: string, version: number, changes: Partial<EndpointInput>, origin?: ChangeOrigin): Promise<WebhookEndpoint>;
  // With a version (If-Match), only while it still matches.
  remove(tenantId: string, id: string, origin?: ChangeOrigin, version?: number): Promise<void>;
  rotateSecret(tenantId: string, id: string, origin?: ChangeOrigin): Promise<{ endpoint: WebhookEndpoint; secret: string }>;
  deliveries(tenantId: string, endpointId: string, options: { status?: DeliveryStatus; limit: number; before?: { createdAt: Date; id: string } }): Promise<WebhookDelivery[]>;
  replay(tenantId: string, endpointId: string, deliveryId: string, origin?: ChangeOrigin): Promise<void>;
  // Every dead-lettered delivery of the endpoint (up to MAX_REPLAY per call); how many.
  replayDead(tenantId: string, endpointId: string, origin?: ChangeOrigin): Promise<number>;
  // The publisher's fan-out: one delivery per matching endpoint, in the publishing transaction.
  fanOut: EventSubscriber;
  // Called once deliveries made by a fan-out are committed, to wake the dispatcher in this process.
  onQueued(listener: () => void): void;
  // Seals every endpoint secret again under the current key-encryption key (`idp keys rewrap`).
  rewrap(keyRing: SealingKeys): Promise<RewrapReport>;
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

// A webhook URL may carry a credential in its path or query (many receivers work that way): the
// audit trail shows only its origin, and that it changed.
function urlOrigin(url: unknown): string | null {
  if (typeof url !== 'string') return null;
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
}

function endpointChanges(before: WebhookEndpoint | null, after: WebhookEndpoint | null): Record<string, unknown> {
  const view = (endpoint: WebhookEndpoint | null) => endpoint && { url: endpoint.url, description: endpoint.description, eventTypes: endpoint.eventTypes, enabled: endpoint.enabled };
  const { changes } = changeDetails(view(before), view(after));
  return { changes: changes.map((change) => (change.field === 'url' ? { field: 'url', before: urlOrigin(change.before), after: urlOrigin(change.after) } : change)) };
}

export function createWebhookService(options: { db: Database; keyEncryptionKey: SealingKeys; audit: Pick<AuditService, 'record'>; now?: () => Date }): WebhookService {
  const { db, keyEncryptionKey } = options;
  const now = options.now ?? (() => new Date());
  const queued: Array<() => void> = [];

  async function record(trx: Knex.Transaction, tenantId: string, type: string, endpointId: string, details: Record<string, unknown>, origin: ChangeOrigin | undefined): Promise<void> {
    await options.audit.record(trx, { tenantId, type, outcome: 'success', ...originOf(origin), target: { ref: endpointId }, details });
  }

  async function existing(trx: Knex.Transaction, tenantId: string, id: string): Promise<EndpointRow> {
    const row = await endpointQueries.find(trx, tenantId, id);
    if (!row) throw new NotFoundError('no such webhook endpoint in this tenant');
    return row;
  }

  return {
    list: (tenantId) => withTenant(db, tenantId, async (trx) => (await endpointQueries.list(trx, tenantId)).map(endpointView)),

    get: (tenantId, id) => withTenant(db, tenantId, async (trx) => endpointView(await existing(trx, tenantId, id))),

    async create(tenantId, input, origin) {
      checkEndpoint(input);
      const id = randomUUID();
      const secret = generateSigningSecret();
      const endpoint = await withTenant(db, tenantId, async (trx) => {
        if ((await endpointQueries.count(trx, tenantId)) >= MAX_ENDPOINTS_PER_TENANT) {
          throw new ConflictError(`a tenant has at most ${MAX_ENDPOINTS_PER_TENANT} webhook endpoints`);
        }
        const created = endpointView(
          await endpointQueries.insert(trx, {
            id,
            tenant_id: tenantId,
            url: input.url,
            description: input.description ?? null,
            event_types: [...new Set(input.eventTypes)],
            enabled: input.enabled ?? true,
            secret_sealed: seal(keyEncryptionKey, secret, endpointSealContext(id)),
          }),
        );
        await record(trx, tenantId, 'webhook.endpoint.create', id, endpointChanges(null, created), origin);
        return created;
      });
      return { endpoint, secret };
    },

    async update(tenantId, id, version, changes, origin) {
      checkEndpoint(changes);
      return withTenant(db, tenantId, async (trx) => {
        const before = endpointView(await existing(trx, tenantId, id));
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
        const after = endpointView(updated);
        await record(trx, tenantId, 'webhook.endpoint.update', id, endpointChanges(before, after), origin);
        return after;
      });
    },

    async remove(tenantId, id, origin, version) {
      await withTenant(db, tenantId, async (trx) => {
        const before = endpointView(await existing(trx, tenantId, id));
        const removed = await endpointQueries.remove(trx, tenantId, id, version);
        if (!removed && version !== undefined) throw new VersionMismatchError('the endpoint changed since you read it: read it again');
        await record(trx, tenantId, 'webhook.endpoint.delete', id, endpointChanges(before, null), origin);
      });
    },

    async rotateSecret(tenantId, id, origin) {
      const secret = generateSigningSecret();
      const endpoint = await withTenant(db, tenantId, async (trx) => {
        const rotated = await endpointQueries.replaceSecret(trx, tenantId, id, seal(keyEncryptionKey, secret, endpointSealContext(id)), now());
        if (!rotated) throw new NotFoundError('no such webhook endpoint in this tenant');
        await record(trx, tenantId, 'webhook.endpoint.secret.rotate', id, {}, origin);
        return rotated;
      });
      return { endpoint: endpointView(endpoint), secret };
    },

    deliveries: (tenantId, endpointId, query) =>
      withTenant(db, tenantId, async (trx) => {
        await existing(trx, tenantId, endpointId);
        return (await deliveryQueries.list(trx, tenantId, endpointId, query)).map(deliveryView);
      }),

    async replay(tenantId, endpointId, deliveryId, origin) {
      await withTenant(db, tenantId, async (trx) => {
        await existing(trx, tenantId, endpointId);
        if (!(await deliveryQueries.replay(trx, tenantId, endpointId, { id: deliveryId }, now(), 1))) throw new NotFoundError('no such delivery of this endpoint');
        await record(trx, tenantId, 'webhook.delivery.replay', endpointId, { deliveryId }, origin);
      });
    },

    replayDead: (tenantId, endpointId, origin) =>
      withTenant(db, tenantId, async (trx) => {
        await existing(trx, tenantId, endpointId);
        const replayed = await deliveryQueries.replay(trx, tenantId, endpointId, { status: 'dead' }, now(), MAX_REPLAY);
        if (replayed) await record(trx, tenantId, 'webhook.delivery.replay', endpointId, { status: 'dead', replayed }, origin);
        return replayed;
      }),

    async fanOut(trx: Knex.Transaction, events: EventEnvelope[]) {
      if ((await deliveryQueries.fanOut(trx, events, now())) > 0) trx.executionPromise.then(() => queued.forEach((listener) => listener()), () => {});
    },

    onQueued(listener) {
      queued.push(listener);
    },

    rewrap: (keyRing) =>
      rewrapAll(db, keyRing, {
        kind: 'webhook_secret',
        page: async (trx, after, limit) =>
          (await endpointQueries.sealedPage(trx, after, limit)).map((row) => ({
            cursor: row.id,
            values: [{ id: row.id, sealed: row.secret_sealed, context: endpointSealContext(row.id), save: (t, resealed) => endpointQueries.replaceSealed(t, row.tenant_id, row.id, resealed) }],
          })),
      }),
  };
}
