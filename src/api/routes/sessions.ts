// Device sessions for administrators: a user's sessions (list, end one, end all) and every active
// session of a tenant, filtered, in keyset pages with a total. Ending a session ends the provider
// session with every grant made in it, so the apps signed in through it lose their tokens.
import { z } from 'zod';
import { route, type RouteDefinition } from '../route-table.ts';
import { decodeCursor, encodeCursor, tenantParams, timestamp, uuid } from '../schemas.ts';
import type { ApiServices } from '../services.ts';
import { revokedByAdmin, type DeviceSession } from '../../sessions/service.ts';
import { sessionView } from '../../sessions/view.ts';

const userParams = tenantParams.extend({ userId: uuid }).strict();
const sessionParams = userParams.extend({ sessionId: uuid }).strict();
const filters = {
  userId: uuid.optional(),
  clientId: z.string().min(1).max(256).optional(),
  ip: z.string().min(1).max(64).optional(),
  createdAfter: timestamp.optional(),
  lastActiveAfter: timestamp.optional(),
};
const listQuery = z.object({ ...filters, limit: z.coerce.number().int().min(1).max(200).default(50), cursor: z.string().max(512).optional() }).strict();
const countQuery = z.object(filters).strict();

function present(session: DeviceSession & { userId?: string }) {
  return { ...sessionView(session), ...(session.userId ? { userId: session.userId } : {}) };
}

function tenantQuery(query: z.infer<typeof countQuery>) {
  return {
    userId: query.userId,
    clientId: query.clientId,
    ip: query.ip,
    createdAfter: query.createdAfter ? new Date(query.createdAfter) : undefined,
    lastActiveAfter: query.lastActiveAfter ? new Date(query.lastActiveAfter) : undefined,
  };
}

export function sessionRoutes({ users, sessions }: ApiServices): RouteDefinition[] {
  return [
    route({
      method: 'get', path: '/tenants/:tenantId/users/:userId/sessions', tag: 'sessions', summary: 'A user’s active sessions (device, address, sign-in and last activity), most recently active first', permission: 'sessions:read', tenantRule: 'tenant',
      params: userParams, responses: { 200: 'The sessions', 404: 'No such user in this tenant' },
      async handler({ params }) {
        await users.get(params.tenantId, params.userId);
        const list = await sessions.listActive(params.tenantId, params.userId);
        return { body: { items: list.map((session) => present(session)) } };
      },
    }),
    route({
      method: 'delete', path: '/tenants/:tenantId/users/:userId/sessions/:sessionId', tag: 'sessions', summary: 'End one session of a user, with the tokens issued in it', permission: 'sessions:write', tenantRule: 'tenant',
      params: sessionParams, responses: { 204: 'Ended', 404: 'No such user, or no such active session of the user' },
      async handler({ params, origin }) {
        await users.get(params.tenantId, params.userId);
        await sessions.end(params.tenantId, params.userId, params.sessionId, revokedByAdmin(origin));
        return {};
      },
    }),
    route({
      method: 'delete', path: '/tenants/:tenantId/users/:userId/sessions', tag: 'sessions', summary: 'End every session of a user, with the tokens issued in them', permission: 'sessions:write', tenantRule: 'tenant',
      params: userParams, responses: { 200: 'How many sessions ended', 404: 'No such user in this tenant' },
      async handler({ params, origin }) {
        await users.get(params.tenantId, params.userId);
        return { body: { ended: await sessions.endAll(params.tenantId, params.userId, {}, revokedByAdmin(origin)) } };
      },
    }),
    route({
      method: 'get', path: '/tenants/:tenantId/sessions', tag: 'sessions', summary: 'Active sessions of a tenant (filters combine; keyset pages, oldest sign-in first; total counts every page)', permission: 'sessions:read', tenantRule: 'tenant',
      params: tenantParams, query: listQuery, responses: { 200: 'A page of sessions with the total', 422: 'Invalid filter or cursor' },
      async handler({ params, query }) {
        const after = decodeCursor(query.cursor);
        const page = await sessions.listTenant(params.tenantId, { ...tenantQuery(query), limit: query.limit, after });
        return { body: { items: page.items.map(present), total: page.total, nextCursor: page.nextCursor ? encodeCursor(page.nextCursor) : null } };
      },
    }),
    route({
      method: 'get', path: '/tenants/:tenantId/sessions/count', tag: 'sessions', summary: 'How many active sessions of a tenant match the filters', permission: 'sessions:read', tenantRule: 'tenant',
      params: tenantParams, query: countQuery, responses: { 200: 'The count', 422: 'Invalid filter' },
      async handler({ params, query }) {
        return { body: { count: await sessions.countTenant(params.tenantId, tenantQuery(query)) } };
      },
    }),
  ];
}
