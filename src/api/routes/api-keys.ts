// API keys of a tenant: create (the key is in that answer only), list (keyset pages), read with
// usage per day, revoke, rotate with an overlap in which the old and the new key both work.
import { z } from 'zod';
import { route, type RouteDefinition } from '../route-table.ts';
import { decodeCursor, encodeCursor, tenantParams, uuid } from '../schemas.ts';
import type { ApiServices } from '../services.ts';
import { holds, type Principal } from '../principal.ts';
import { DEFAULT_OVERLAP_SECONDS, MAX_OVERLAP_SECONDS, type ApiKey, type KeyPermission } from '../../apikeys/service.ts';
import { MAX_ALLOWED_IPS } from '../../apikeys/ip-allow-list.ts';

const keyParams = tenantParams.extend({ keyId: uuid }).strict();
const owner = z.object({ type: z.enum(['user', 'client']), id: z.string().min(1).max(256) }).strict();
const permission = z.object({ api: z.string().min(1).max(2048), permission: z.string().min(1).max(256) }).strict();
const createBody = z
  .object({
    name: z.string().trim().min(1).max(200),
    owner: owner.optional().describe('a user or a machine client of the tenant; the caller when left out'),
    permissions: z.array(permission).min(1).max(200).describe('a subset of the owner’s (and the caller’s) permissions'),
    expiresAt: z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time, such as 2027-01-01T00:00:00Z' }).nullable().optional(),
    allowedIps: z.array(z.string().min(1).max(64)).max(MAX_ALLOWED_IPS).nullable().optional().describe('IPv4/IPv6 addresses or CIDR ranges the key may be used from'),
    rateLimit: z.number().int().min(1).max(1_000_000).nullable().optional().describe('requests per window (API_KEY_RATE_WINDOW); the default when left out'),
  })
  .strict();
const rotateBody = z.object({ overlapSeconds: z.number().int().min(0).max(MAX_OVERLAP_SECONDS).optional() }).strict();
const listQuery = z
  .object({
    ownerType: z.enum(['user', 'client']).optional(),
    ownerId: z.string().min(1).max(256).optional(),
    limit: z.coerce.number().int().min(1).max(200).default(50),
    cursor: z.string().max(512).optional(),
  })
  .strict();

function present(key: ApiKey) {
  const iso = (value: Date | null) => value?.toISOString() ?? null;
  return { ...key, expiresAt: iso(key.expiresAt), revokedAt: iso(key.revokedAt), createdAt: key.createdAt.toISOString(), lastUsedAt: iso(key.lastUsedAt) };
}

export function apiKeyRoutes({ apiKeys, rbac, adminApi }: ApiServices): RouteDefinition[] {
  const location = (tenantId: string, id: string) => `/api/v1/tenants/${tenantId}/api-keys/${id}`;
  const same = (a: KeyPermission) => (b: KeyPermission) => a.api === b.api && a.permission === b.permission;

  // What the caller may hand on: through an API key, what that key grants; on the admin API, what
  // the token both carries and the caller holds; elsewhere, what the caller holds through RBAC.
  function creatorHolds(principal: Principal) {
    return async (wanted: KeyPermission): Promise<boolean> => {
      if (principal.apiKey) return principal.apiKey.permissions.some(same(wanted));
      if (wanted.api === adminApi) return holds(principal, wanted.permission);
      const access = await rbac.effectiveAccess(principal.tenantId, principal.subjectType, principal.subjectId);
      return access.permissions[wanted.api]?.includes(wanted.permission) ?? false;
    };
  }

  return [
    route({
      method: 'post', path: '/tenants/:tenantId/api-keys', tag: 'api-keys', summary: 'Create an API key; the answer holds the key, shown this once', permission: 'apikeys:write', tenantRule: 'tenant',
      params: tenantParams, body: createBody, responses: { 201: 'The key’s record with the key itself', 422: 'Invalid fields, an owner not of this tenant, or permissions beyond the owner’s or the caller’s' },
      async handler({ params, body, principal, origin }) {
        const keyOwner = body.owner ?? { type: principal.subjectType === 'client' ? ('client' as const) : ('user' as const), id: principal.subjectId };
        const { apiKey, key } = await apiKeys.create(
          params.tenantId,
          { name: body.name, owner: keyOwner, permissions: body.permissions, expiresAt: body.expiresAt ? new Date(body.expiresAt) : null, allowedIps: body.allowedIps ?? null, rateLimit: body.rateLimit ?? null },
          creatorHolds(principal),
          origin,
        );
        return { status: 201, body: { ...present(apiKey), key }, location: location(params.tenantId, apiKey.id) };
      },
    }),
    route({
      method: 'get', path: '/tenants/:tenantId/api-keys', tag: 'api-keys', summary: 'The tenant’s API keys, newest first (keyset pages), optionally of one owner', permission: 'apikeys:read', tenantRule: 'tenant',
      params: tenantParams, query: listQuery, responses: { 200: 'A page of keys (never a secret)', 422: 'Invalid filter or cursor' },
      async handler({ params, query }) {
        const before = decodeCursor(query.cursor);
        const items = await apiKeys.list(params.tenantId, { limit: query.limit, before, ownerType: query.ownerType, ownerId: query.ownerId });
        const last = items.length === query.limit ? items[items.length - 1] : undefined;
        return { body: { items: items.map(present), nextCursor: last ? encodeCursor(last) : null } };
      },
    }),
    route({
      method: 'get', path: '/tenants/:tenantId/api-keys/:keyId', tag: 'api-keys', summary: 'An API key with its last use and requests per day (as of the last usage flush)', permission: 'apikeys:read', tenantRule: 'tenant',
      params: keyParams, responses: { 200: 'The key (never its secret)', 404: 'No such key in this tenant' },
      async handler({ params }) {
        const key = await apiKeys.get(params.tenantId, params.keyId);
        return { body: present(key) };
      },
    }),
    route({
      method: 'delete', path: '/tenants/:tenantId/api-keys/:keyId', tag: 'api-keys', summary: 'Revoke an API key: refused at once on every instance', permission: 'apikeys:write', tenantRule: 'tenant',
      params: keyParams, responses: { 204: 'Revoked', 404: 'No such key in this tenant', 409: 'Already revoked' },
      async handler({ params, origin }) {
        await apiKeys.revoke(params.tenantId, params.keyId, origin);
        return {};
      },
    }),
    route({
      method: 'post', path: '/tenants/:tenantId/api-keys/:keyId/rotate', tag: 'api-keys', summary: 'Replace an API key: the answer holds the new key, shown this once; the old one works for overlapSeconds more (default 24 h)', permission: 'apikeys:write', tenantRule: 'tenant',
      params: keyParams, body: rotateBody, responses: { 201: 'The new key with the key itself, and the old one with its new end', 404: 'No such key in this tenant', 409: 'Revoked, expired or already rotated' },
      async handler({ params, body, origin }) {
        const { apiKey, key, previous } = await apiKeys.rotate(params.tenantId, params.keyId, body?.overlapSeconds ?? DEFAULT_OVERLAP_SECONDS, origin);
        return { status: 201, body: { ...present(apiKey), key, previous: present(previous) }, location: location(params.tenantId, apiKey.id) };
      },
    }),
  ];
}
