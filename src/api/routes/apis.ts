import { z } from 'zod';
import { route, type RouteDefinition } from '../route-table.ts';
import { ConflictError, NotFoundError } from '../../errors.ts';
import type { ApiServices } from '../services.ts';

const permissionName = z.string().min(1).max(200).regex(/^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.*-]+)?$/, 'resource:action');
const apiBody = z
  .object({
    identifier: z.url().max(2048),
    name: z.string().min(1).max(200),
    permissions: z.array(permissionName).max(500),
    accessTokenTtl: z.number().int().min(60).max(86_400).optional(),
    signingAlg: z.enum(['RS256', 'ES256', 'EdDSA']).optional(),
  })
  .strict();

export function apiResourceRoutes({ apis, adminApi }: ApiServices): RouteDefinition[] {
  return [
    route({
      method: 'get', path: '/apis', tag: 'apis', summary: 'List API resources and their permissions', permission: 'apis:read', tenantRule: 'tenant',
      responses: { 200: 'The APIs' },
      async handler() {
        return { body: { items: (await apis.list()).map(({ scopes, ...api }) => ({ ...api, permissions: scopes })) } };
      },
    }),
    route({
      method: 'post', path: '/apis', tag: 'apis', summary: 'Register an API resource', permission: 'apis:write', tenantRule: 'platform',
      body: apiBody, responses: { 201: 'Registered', 409: 'The identifier is taken' },
      async handler({ body, origin }) {
        if (await apis.find(body.identifier)) throw new ConflictError(`an API ${body.identifier} exists`, { identifier: 'already registered' });
        await apis.create({ identifier: body.identifier, name: body.name, scopes: body.permissions, accessTokenTtl: body.accessTokenTtl, signingAlg: body.signingAlg }, origin);
        return { status: 201, body: { ...body } };
      },
    }),
    route({
      method: 'delete', path: '/apis', tag: 'apis', summary: 'Remove an API resource (by identifier)', permission: 'apis:write', tenantRule: 'platform',
      query: z.object({ identifier: z.url().max(2048) }).strict(), responses: { 204: 'Removed', 404: 'No such API' },
      async handler({ query, origin }) {
        if (query.identifier === adminApi) throw new ConflictError('the admin API cannot be removed');
        if (!(await apis.delete(query.identifier, origin))) throw new NotFoundError(`no API ${query.identifier}`);
        return {};
      },
    }),
  ];
}
