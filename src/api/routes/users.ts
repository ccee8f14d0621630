// Users of a tenant. The users service validates every field (and refuses unknown ones), so the
// schemas here only shape the request; field errors come back as problem+json from the service.
import { z } from 'zod';
import { route, type RouteDefinition } from '../route-table.ts';
import { tenantParams, uuid } from '../schemas.ts';
import type { ApiServices } from '../services.ts';
import type { User } from '../../users/service.ts';

const fields = z.record(z.string(), z.unknown()).describe('user fields: email, username, password, emailVerified, phoneNumber, phoneNumberVerified, name, givenName, familyName, middleName, nickname, picture, website, gender, birthdate, zoneinfo, locale, customAttributes');
const userParams = tenantParams.extend({ userId: uuid }).strict();
const listQuery = z
  .object({
    email: z.string().max(254).optional(),
    username: z.string().max(64).optional(),
    status: z.enum(['active', 'suspended', 'deactivated']).optional(),
    role: z.string().max(100).optional(),
    createdFrom: z.string().max(40).optional(),
    createdTo: z.string().max(40).optional(),
    q: z.string().max(256).optional(),
    limit: z.coerce.number().int().min(1).max(200).optional(),
    cursor: z.string().max(512).optional(),
  })
  .strict();

function present(user: User) {
  return { ...user, createdAt: user.createdAt.toISOString(), updatedAt: user.updatedAt.toISOString() };
}

export function userRoutes({ users, credentials, lockouts }: ApiServices): RouteDefinition[] {
  return [
    route({
      method: 'get', path: '/tenants/:tenantId/users', tag: 'users', summary: 'List users (filters combine; keyset pages)', permission: 'users:read', tenantRule: 'tenant',
      params: tenantParams, query: listQuery, responses: { 200: 'A page of users' },
      async handler({ params, query }) {
        const page = await users.list(params.tenantId, query);
        return { body: { items: page.items.map(present), nextCursor: page.nextCursor } };
      },
    }),
    route({
      method: 'post', path: '/tenants/:tenantId/users', tag: 'users', summary: 'Create a user', permission: 'users:write', tenantRule: 'tenant',
      params: tenantParams, body: fields, responses: { 201: 'The user', 409: 'E-mail or username taken in this tenant', 422: 'Invalid fields' },
      async handler({ params, body, origin }) {
        const user = await users.create(params.tenantId, body as never, origin);
        return { status: 201, body: present(user), version: user.version, location: `/api/v1/tenants/${params.tenantId}/users/${user.id}` };
      },
    }),
    route({
      method: 'get', path: '/tenants/:tenantId/users/:userId', tag: 'users', summary: 'Get a user', permission: 'users:read', tenantRule: 'tenant',
      params: userParams, responses: { 200: 'The user', 404: 'No such user in this tenant' },
      async handler({ params }) {
        const user = await users.get(params.tenantId, params.userId);
        return { body: present(user), version: user.version };
      },
    }),
    route({
      method: 'patch', path: '/tenants/:tenantId/users/:userId', tag: 'users', summary: 'Change a user (If-Match required)', permission: 'users:write', tenantRule: 'tenant',
      params: userParams, body: fields, requiresVersion: true, responses: { 200: 'The changed user', 412: 'Changed since', 428: 'If-Match missing' },
      async handler({ params, body, ifMatch, origin }) {
        const user = await users.update(params.tenantId, params.userId, ifMatch!, body as never, { as: 'admin', origin });
        return { body: present(user), version: user.version };
      },
    }),
    route({
      method: 'put', path: '/tenants/:tenantId/users/:userId/status', tag: 'users', summary: 'Set active / suspended / deactivated with a reason; leaving active ends every session and token', permission: 'users:write', tenantRule: 'tenant',
      params: userParams, body: z.object({ status: z.enum(['active', 'suspended', 'deactivated']), reason: z.string().max(512).optional() }).strict(),
      responses: { 200: 'The user' },
      async handler({ params, body, origin }) {
        const user = await users.setStatus(params.tenantId, params.userId, body.status, body.reason, origin);
        return { body: present(user), version: user.version };
      },
    }),
    route({
      method: 'delete', path: '/tenants/:tenantId/users/:userId', tag: 'users', summary: 'Delete a user: soft by default (?hard=true removes the row)', permission: 'users:write', tenantRule: 'tenant',
      params: userParams, query: z.object({ hard: z.enum(['true', 'false']).optional() }).strict(), responses: { 204: 'Deleted', 404: 'No such user', 412: 'Changed since (with If-Match)' },
      async handler({ params, query, origin, ifMatch }) {
        if (query.hard === 'true') await users.hardDelete(params.tenantId, params.userId, origin, { expectedVersion: ifMatch });
        else await users.softDelete(params.tenantId, params.userId, origin, ifMatch);
        return {};
      },
    }),
    route({
      method: 'post', path: '/tenants/:tenantId/users/:userId/password-reset', tag: 'users',
      summary: 'Reset a password: mail the user a reset link (202), or set a generated one-time password the user must change at the next sign-in (200, shown once; ends every session)',
      permission: 'users:write', tenantRule: 'tenant',
      params: userParams, body: z.object({ mode: z.enum(['email', 'temporary']) }).strict(),
      responses: { 200: '{ temporaryPassword }', 202: 'The reset link is on its way', 404: 'No such user in this tenant' },
      async handler({ params, body, origin }) {
        const result = await credentials.adminReset(params.tenantId, params.userId, body.mode, undefined, origin);
        return result.temporaryPassword ? { status: 200, body: { temporaryPassword: result.temporaryPassword } } : { status: 202, body: {} };
      },
    }),
    route({
      method: 'post', path: '/tenants/:tenantId/users/:userId/unlock', tag: 'users',
      summary: 'Lift the sign-in lockout of a user: a temporary one and a permanent one (only an administrator can lift that); recorded as security.unlock',
      permission: 'users:write', tenantRule: 'tenant',
      params: userParams, responses: { 204: 'Unlocked (also when nothing was locked)', 404: 'No such user in this tenant' },
      async handler({ params, origin }) {
        await lockouts.unlock(params.tenantId, params.userId, { via: 'admin', origin });
        return {};
      },
    }),
    route({
      method: 'post', path: '/tenants/:tenantId/users/:userId/send-verification', tag: 'users',
      summary: 'Send the user a link to verify the e-mail address (nothing is sent when it is verified already)',
      permission: 'users:write', tenantRule: 'tenant',
      params: userParams, responses: { 202: 'The verification link is on its way', 404: 'No such user in this tenant' },
      async handler({ params }) {
        await credentials.sendEmailVerification(params.tenantId, params.userId);
        return { status: 202, body: {} };
      },
    }),
  ];
}
