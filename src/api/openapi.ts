// The OpenAPI 3.1 document of the admin API, generated from the route table it describes.
import { z } from 'zod';
import { openApiPath, type RouteDefinition } from './route-table.ts';
import { API_PREFIX } from './router.ts';

function jsonSchema(schema: z.ZodType, io: 'input' | 'output' = 'input'): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
}

function parameters(definition: RouteDefinition): unknown[] {
  const result: unknown[] = [];
  for (const [where, schema] of [['path', definition.params], ['query', definition.query]] as const) {
    if (!schema) continue;
    const object = jsonSchema(schema) as { properties?: Record<string, unknown>; required?: string[] };
    for (const [name, property] of Object.entries(object.properties ?? {})) {
      result.push({ name, in: where, required: where === 'path' || (object.required ?? []).includes(name), schema: property });
    }
  }
  if (definition.requiresVersion) {
    result.push({ name: 'If-Match', in: 'header', required: true, schema: { type: 'string' }, description: 'The ETag of the version you read' });
  } else if (definition.responses[412]) {
    result.push({ name: 'If-Match', in: 'header', required: false, schema: { type: 'string' }, description: 'The ETag of the version you read: only at that version (412 otherwise)' });
  }
  return result;
}

export function openApiDocument(routes: RouteDefinition[], issuer: string, adminApi: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const definition of routes) {
    const path = openApiPath(definition.path);
    paths[path] ??= {};
    paths[path][definition.method] = {
      summary: definition.summary,
      tags: [definition.tag],
      operationId: `${definition.method}${path.replace(/[{}]/g, '').replace(/[/-](\w)/g, (_m, c: string) => c.toUpperCase())}`,
      'x-permission': definition.permission,
      'x-tenant-rule': definition.tenantRule,
      security: [{ oauth2: [definition.permission] }],
      parameters: parameters(definition),
      ...(definition.body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(definition.body) } } } } : {}),
      responses: {
        ...Object.fromEntries(Object.entries(definition.responses).map(([status, description]) => [status, { description }])),
        401: { description: 'No valid access token', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } },
        403: { description: 'Missing permission or another tenant', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Identity provider admin API', version: '1' },
    servers: [{ url: `${issuer}${API_PREFIX}` }],
    paths,
    components: {
      securitySchemes: {
        oauth2: {
          type: 'oauth2',
          description: `Access tokens for the resource ${adminApi}`,
          flows: {
            clientCredentials: { tokenUrl: `${issuer}/token`, scopes: Object.fromEntries([...new Set(routes.map((r) => r.permission))].map((p) => [p, p])) },
          },
        },
      },
      schemas: {
        Problem: {
          type: 'object',
          properties: { type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' }, detail: { type: 'string' }, errors: { type: 'object', additionalProperties: { type: 'string' } } },
          required: ['type', 'title', 'status', 'detail'],
        },
      },
    },
  };
}
