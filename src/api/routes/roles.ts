import { z } from 'zod';
import { route, type RouteDefinition } from '../route-table.ts';
import { tenantParams, uuid } from '../schemas.ts';
import type { ApiServices } from '../services.ts';

const permission = z.object({ api: z.string().min(1).max(2048), permission: z.string().min(1).max(200) }).strict();
const roleBody = z
  .object({
    name: z.string().min(1).max(100).regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]*$/, 'letters, digits, space, . _ -'),
    description: z.string().max(1000).optional(),
    permissions: z.array(permission).max(1000).optional(),
    includes: z.array(uuid).max(100).optional(),
  })
  .strict();
const rolePatch = roleBody.omit({ includes: true }).partial().strict();
const roleParams = tenantParams.extend({ roleId: uuid }).strict();
const inclusionParams = roleParams.extend({ includedRoleId: uuid }).strict();
const subject = z.object({ subjectType: z.enum(['user', 'client']), subjectId: z.string().min(1).max(255) }).strict();

export function roleRoutes({ rbac }: ApiServices): RouteDefinition[] {
  return [
    route({
      method: 'get', path: '/tenants/:tenantId/roles', tag: 'roles', summary: 'List the tenant’s roles', permission: 'roles:read', tenantRule: 'tenant',
      params: tenantParams, responses: { 200: 'The roles' },
      async handler({ params }) {
        return { body: { items: await rbac.listRoles(params.tenantId) } };
      },
    }),
    route({
      method: 'post', path: '/tenants/:tenantId/roles', tag: 'roles', summary: 'Create a role', permission: 'roles:write', tenantRule: 'tenant',
      params: tenantParams, body: roleBody, responses: { 201: 'The role', 409: 'The name is taken', 422: 'Invalid input' },
      async handler({ params, body, origin }) {
        const role = await rbac.createRole(params.tenantId, body, { origin });
        return { status: 201, body: role, version: role.version, location: `/api/v1/tenants/${params.tenantId}/roles/${role.id}` };
      },
    }),
    route({
      method: 'get', path: '/tenants/:tenantId/roles/:roleId', tag: 'roles', summary: 'Get a role', permission: 'roles:read', tenantRule: 'tenant',
      params: roleParams, responses: { 200: 'The role', 404: 'No such role' },
      async handler({ params }) {
        const role = await rbac.getRole(params.tenantId, params.roleId);
        return { body: role, version: role.version };
      },
    }),
    route({
      method: 'patch', path: '/tenants/:tenantId/roles/:roleId', tag: 'roles', summary: 'Change a role (If-Match required)', permission: 'roles:write', tenantRule: 'tenant',
      params: roleParams, body: rolePatch, requiresVersion: true, responses: { 200: 'The changed role', 412: 'Changed since', 428: 'If-Match missing' },
      async handler({ params, body, ifMatch, origin }) {
        const role = await rbac.updateRole(params.tenantId, params.roleId, ifMatch!, body, origin);
        return { body: role, version: role.version };
      },
    }),
    route({
      method: 'delete', path: '/tenants/:tenantId/roles/:roleId', tag: 'roles', summary: 'Delete a custom role', permission: 'roles:write', tenantRule: 'tenant',
      params: roleParams, responses: { 204: 'Deleted', 404: 'No such role', 412: 'Changed since (with If-Match)', 422: 'A system role' },
      async handler({ params, origin, ifMatch }) {
        await rbac.deleteRole(params.tenantId, params.roleId, origin, ifMatch);
        return {};
      },
    }),
    route({
      method: 'put', path: '/tenants/:tenantId/roles/:roleId/includes/:includedRoleId', tag: 'roles', summary: 'Make a role include another (idempotent; cycles refused)', permission: 'roles:write', tenantRule: 'tenant',
      params: inclusionParams, responses: { 204: 'Included', 422: 'Would create a cycle' },
      async handler({ params, origin }) {
        await rbac.include(params.tenantId, params.roleId, params.includedRoleId, origin);
        return {};
      },
    }),
    route({
      method: 'delete', path: '/tenants/:tenantId/roles/:roleId/includes/:includedRoleId', tag: 'roles', summary: 'Stop a role including another', permission: 'roles:write', tenantRule: 'tenant',
      params: inclusionParams, responses: { 204: 'Removed', 404: 'Not included' },
      async handler({ params, origin }) {
        await rbac.exclude(params.tenantId, params.roleId, params.includedRoleId, origin);
        return {};
      },
    }),
    route({
      method: 'put', path: '/tenants/:tenantId/roles/:roleId/assignments', tag: 'roles', summary: 'Assign a role to a user or machine client (idempotent)', permission: 'roles:write', tenantRule: 'tenant',
      params: roleParams, body: subject, responses: { 204: 'Assigned', 404: 'No such role or subject' },
      async handler({ params, body, origin }) {
        await rbac.assign(params.tenantId, params.roleId, body.subjectType, body.subjectId, { origin });
        return {};
      },
    }),
    route({
      method: 'delete', path: '/tenants/:tenantId/roles/:roleId/assignments/:subjectType/:subjectId', tag: 'roles', summary: 'Take a role away', permission: 'roles:write', tenantRule: 'tenant',
      params: roleParams.extend(subject.shape).strict(), responses: { 204: 'Removed', 404: 'Not assigned' },
      async handler({ params, origin }) {
        await rbac.unassign(params.tenantId, params.roleId, params.subjectType, params.subjectId, origin);
        return {};
      },
    }),
    route({
      method: 'post', path: '/tenants/:tenantId/permissions/check', tag: 'roles', summary: 'Answer many (subject, permission) questions at once', permission: 'rbac:check', tenantRule: 'tenant',
      params: tenantParams,
      body: z.object({ checks: z.array(subject.extend({ api: z.string().min(1).max(2048), permission: z.string().min(1).max(200) }).strict()).min(1).max(500) }).strict(),
      responses: { 200: 'One answer per question, in order' },
      async handler({ params, body }) {
        const results = await Promise.all(
          body.checks.map(async (check) => ({ ...check, allowed: await rbac.check(params.tenantId, check.subjectType, check.subjectId, check.api, check.permission) })),
        );
        return { body: { results } };
      },
    }),
  ];
}
