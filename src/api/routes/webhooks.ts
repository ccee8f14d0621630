// Webhook endpoints of a tenant: create (the signing secret is shown in that answer only), read,
// change, delete, rotate the secret; their deliveries with a status filter, and replay of one
// delivery or of every dead-lettered one.
import { z } from 'zod';
import { route, type RouteDefinition } from '../route-table.ts';
import { decodeCursor, encodeCursor, tenantParams, uuid } from '../schemas.ts';
import type { ApiServices } from '../services.ts';
import { DELIVERY_STATUSES, type WebhookDelivery, type WebhookEndpoint } from '../../webhooks/service.ts';
import { MAX_URL_LENGTH } from '../../webhooks/destination.ts';

const endpointParams = tenantParams.extend({ endpointId: uuid }).strict();
const deliveryParams = endpointParams.extend({ deliveryId: uuid }).strict();
const fields = {
  url: z.string().min(1).max(MAX_URL_LENGTH).describe('https URL (plain http only to localhost, for development)'),
  description: z.string().max(500).nullable(),
  eventTypes: z.array(z.string().min(1).max(100)).min(1).max(50).describe('event types to receive, or ["*"] for all'),
  enabled: z.boolean(),
};
const createBody = z.object({ ...fields, description: fields.description.optional(), enabled: fields.enabled.optional() }).strict();
const changeBody = z.object(fields).partial().strict();
const deliveriesQuery = z
  .object({
    status: z.enum(DELIVERY_STATUSES).optional(),
    limit: z.coerce.number().int().min(1).max(200).default(50),
    cursor: z.string().max(512).optional(),
  })
  .strict();

function presentEndpoint(endpoint: WebhookEndpoint) {
  return { ...endpoint, createdAt: endpoint.createdAt.toISOString(), updatedAt: endpoint.updatedAt.toISOString() };
}

function presentDelivery(delivery: WebhookDelivery) {
  const iso = (value: Date | null) => value?.toISOString() ?? null;
  return {
    ...delivery,
    nextAttemptAt: iso(delivery.nextAttemptAt),
    lastAttemptAt: iso(delivery.lastAttemptAt),
    deliveredAt: iso(delivery.deliveredAt),
    createdAt: delivery.createdAt.toISOString(),
  };
}

export function webhookRoutes({ webhooks }: ApiServices): RouteDefinition[] {
  const location = (tenantId: string, id: string) => `/api/v1/tenants/${tenantId}/webhooks/${id}`;
  return [
    route({
      method: 'get', path: '/tenants/:tenantId/webhooks', tag: 'webhooks', summary: 'The tenant’s webhook endpoints', permission: 'webhooks:read', tenantRule: 'tenant',
      params: tenantParams, responses: { 200: 'The endpoints' },
      async handler({ params }) {
        return { body: { items: (await webhooks.list(params.tenantId)).map(presentEndpoint) } };
      },
    }),
    route({
      method: 'post', path: '/tenants/:tenantId/webhooks', tag: 'webhooks', summary: 'Create a webhook endpoint; the answer holds its signing secret, shown this once', permission: 'webhooks:write', tenantRule: 'tenant',
      params: tenantParams, body: createBody, responses: { 201: 'The endpoint with its secret', 409: 'The tenant has the most endpoints it may have', 422: 'Invalid fields' },
      async handler({ params, body, origin }) {
        const { endpoint, secret } = await webhooks.create(params.tenantId, body, origin);
        return { status: 201, body: { ...presentEndpoint(endpoint), secret }, version: endpoint.version, location: location(params.tenantId, endpoint.id) };
      },
    }),
    route({
      method: 'get', path: '/tenants/:tenantId/webhooks/:endpointId', tag: 'webhooks', summary: 'A webhook endpoint (never its secret)', permission: 'webhooks:read', tenantRule: 'tenant',
      params: endpointParams, responses: { 200: 'The endpoint', 404: 'No such endpoint in this tenant' },
      async handler({ params }) {
        const endpoint = await webhooks.get(params.tenantId, params.endpointId);
        return { body: presentEndpoint(endpoint), version: endpoint.version };
      },
    }),
    route({
      method: 'patch', path: '/tenants/:tenantId/webhooks/:endpointId', tag: 'webhooks', summary: 'Change a webhook endpoint (If-Match required)', permission: 'webhooks:write', tenantRule: 'tenant',
      params: endpointParams, body: changeBody, requiresVersion: true, responses: { 200: 'The changed endpoint', 404: 'No such endpoint in this tenant', 412: 'Changed since', 422: 'Invalid fields', 428: 'If-Match missing' },
      async handler({ params, body, ifMatch, origin }) {
        const endpoint = await webhooks.update(params.tenantId, params.endpointId, ifMatch!, body, origin);
        return { body: presentEndpoint(endpoint), version: endpoint.version };
      },
    }),
    route({
      method: 'delete', path: '/tenants/:tenantId/webhooks/:endpointId', tag: 'webhooks', summary: 'Delete a webhook endpoint with its deliveries', permission: 'webhooks:write', tenantRule: 'tenant',
      params: endpointParams, responses: { 204: 'Deleted', 404: 'No such endpoint in this tenant', 412: 'Changed since (with If-Match)' },
      async handler({ params, origin, ifMatch }) {
        await webhooks.remove(params.tenantId, params.endpointId, origin, ifMatch);
        return {};
      },
    }),
    route({
      method: 'post', path: '/tenants/:tenantId/webhooks/:endpointId/secret', tag: 'webhooks', summary: 'Replace the signing secret; the answer holds the new one, shown this once', permission: 'webhooks:write', tenantRule: 'tenant',
      params: endpointParams, responses: { 200: 'The endpoint with its new secret', 404: 'No such endpoint in this tenant' },
      async handler({ params, origin }) {
        const { endpoint, secret } = await webhooks.rotateSecret(params.tenantId, params.endpointId, origin);
        return { body: { ...presentEndpoint(endpoint), secret }, version: endpoint.version };
      },
    }),
    route({
      method: 'get', path: '/tenants/:tenantId/webhooks/:endpointId/deliveries', tag: 'webhooks', summary: 'Deliveries of an endpoint, newest first (keyset pages), optionally by status', permission: 'webhooks:read', tenantRule: 'tenant',
      params: endpointParams, query: deliveriesQuery, responses: { 200: 'A page of deliveries', 404: 'No such endpoint in this tenant', 422: 'Invalid filter or cursor' },
      async handler({ params, query }) {
        const before = decodeCursor(query.cursor);
        const items = await webhooks.deliveries(params.tenantId, params.endpointId, { status: query.status, limit: query.limit, before });
        const last = items.length === query.limit ? items[items.length - 1] : undefined;
        return { body: { items: items.map(presentDelivery), nextCursor: last ? encodeCursor(last) : null } };
      },
    }),
    route({
      method: 'post', path: '/tenants/:tenantId/webhooks/:endpointId/deliveries/replay', tag: 'webhooks', summary: 'Send every dead-lettered delivery of the endpoint again (up to 1000 per call)', permission: 'webhooks:write', tenantRule: 'tenant',
      params: endpointParams, responses: { 202: 'How many deliveries will be sent again', 404: 'No such endpoint in this tenant' },
      async handler({ params, origin }) {
        return { status: 202, body: { replayed: await webhooks.replayDead(params.tenantId, params.endpointId, origin) } };
      },
    }),
    route({
      method: 'post', path: '/tenants/:tenantId/webhooks/:endpointId/deliveries/:deliveryId/replay', tag: 'webhooks', summary: 'Send one delivery again, with a fresh attempt budget', permission: 'webhooks:write', tenantRule: 'tenant',
      params: deliveryParams, responses: { 202: 'It will be sent again', 404: 'No such endpoint, or no such delivery of it' },
      async handler({ params, origin }) {
        await webhooks.replay(params.tenantId, params.endpointId, params.deliveryId, origin);
        return { status: 202, body: { replayed: 1 } };
      },
    }),
  ];
}
