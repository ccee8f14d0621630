import { z } from 'zod';
import { route, type RouteDefinition } from '../route-table.ts';
import { decodeCursor, encodeCursor, listQuery, tenantParams } from '../schemas.ts';
import { ValidationError } from '../../errors.ts';
import type { ApiServices } from '../services.ts';
import type { Tenant } from '../../tenants/service.ts';

const tenantBody = z
  .object({
    slug: z.string().min(1).max(63),
    displayName: z.string().min(1).max(200),
    emailDomains: z.array(z.string().max(253)).max(100).optional(),
    policies: z.record(z.string(), z.unknown()).optional(),
    userAttributeSchema: z.record(z.string(), z.unknown()).optional(),
    selfRegistration: z.boolean().optional(),
    branding: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

const tenantPatch = tenantBody.omit({ slug: true }).partial().extend({ status: z.enum(['active', 'disabled']).optional() }).strict();

function present(tenant: Tenant) {
  return { ...tenant, createdAt: tenant.createdAt.toISOString(), updatedAt: tenant.updatedAt.toISOString() };
}

export function tenantRoutes({ tenants }: ApiServices): RouteDefinition[] {
  return [
    route({
      method: 'get', path: '/tenants', tag: 'tenants', summary: 'List tenants', permission: 'tenants:read', tenantRule: 'platform',
      query: listQuery, responses: { 200: 'A page of tenants' },
      async handler({ query }) {
        const page = await tenants.list(query.limit + 1, decodeCursor(query.cursor));
        const items = page.slice(0, query.limit);
        return { body: { items: items.map(present), nextCursor: page.length > query.limit ? encodeCursor(items.at(-1)!) : undefined } };
      },
    }),
    route({
      method: 'post', path: '/tenants', tag: 'tenants', summary: 'Create a tenant with its system roles', permission: 'tenants:write', tenantRule: 'platform',
      body: tenantBody, responses: { 201: 'The tenant', 409: 'The slug is taken', 422: 'Invalid input' },
      async handler({ body, origin }) {
        const tenant = await tenants.create(body, origin);
        return { status: 201, body: present(tenant), version: tenant.version, location: `/api/v1/tenants/${tenant.id}` };
      },
    }),
    route({
      method: 'get', path: '/tenants/:tenantId', tag: 'tenants', summary: 'Get a tenant', permission: 'tenants:read', tenantRule: 'tenant',
      params: tenantParams, responses: { 200: 'The tenant', 404: 'No such tenant' },
      async handler({ params }) {
        const tenant = await tenants.get(params.tenantId);
        return { body: present(tenant), version: tenant.version };
      },
    }),
    route({
      method: 'patch', path: '/tenants/:tenantId', tag: 'tenants', summary: 'Change a tenant (If-Match required)', permission: 'tenants:write', tenantRule: 'tenant',
      params: tenantParams, body: tenantPatch, requiresVersion: true,
      responses: { 200: 'The changed tenant', 412: 'Changed by someone else since', 428: 'If-Match missing' },
      async handler({ params, body, ifMatch, principal, origin }) {
        if (body.status && !principal.platform) throw new ValidationError('only platform administrators enable or disable tenants', { status: 'platform only' });
        const tenant = await tenants.update(params.tenantId, ifMatch!, body, origin);
        return { body: present(tenant), version: tenant.version };
      },
    }),
    route({
      method: 'delete', path: '/tenants/:tenantId', tag: 'tenants', summary: 'Delete a tenant and everything it owns', permission: 'tenants:write', tenantRule: 'platform',
      params: tenantParams, responses: { 204: 'Deleted', 404: 'No such tenant', 412: 'Changed since (with If-Match)' },
      async handler({ params, origin, ifMatch }) {
        await tenants.delete(params.tenantId, origin, ifMatch);
        return {};
      },
    }),
  ];
}
