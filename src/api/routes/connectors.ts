// Upstream identity provider connectors of a tenant (docs/federation.md): create, list, read,
// change (If-Match), delete, and replace their role mappings. Secrets are write-only: an answer
// says whether a client secret is set and, for private_key_jwt, shows the public key to register.
import { route, type RouteDefinition } from '../route-table.ts';
import { tenantParams, uuid } from '../schemas.ts';
import type { ApiServices } from '../services.ts';
import type { AdminConnector } from '../../federation/connectors/service.ts';
import { createConnectorSchema, setRoleMappingsSchema, updateConnectorSchema } from '../../federation/connectors/schemas.ts';

const connectorParams = tenantParams.extend({ connectorId: uuid }).strict();

function present(connector: AdminConnector) {
  return { ...connector, createdAt: connector.createdAt.toISOString(), updatedAt: connector.updatedAt.toISOString() };
}

export function connectorRoutes({ connectors }: ApiServices): RouteDefinition[] {
  const location = (tenantId: string, id: string) => `/api/v1/tenants/${tenantId}/connectors/${id}`;
  return [
    route({
      method: 'get', path: '/tenants/:tenantId/connectors', tag: 'connectors', summary: 'The tenant’s upstream identity provider connectors, by display name', permission: 'connectors:read', tenantRule: 'tenant',
      params: tenantParams, responses: { 200: 'The connectors (never a secret)' },
      async handler({ params }) {
        return { body: { items: (await connectors.list(params.tenantId)).map(present) } };
      },
    }),
    route({
      method: 'post', path: '/tenants/:tenantId/connectors', tag: 'connectors', summary: 'Create a connector (oidc, oauth2 or genesys); a private_key_jwt connector gets a signing key unless one is given', permission: 'connectors:write', tenantRule: 'tenant',
      params: tenantParams, body: createConnectorSchema, responses: { 201: 'The connector; for private_key_jwt with publicJwk, to register at the upstream', 409: 'The name is taken in this tenant, or an e-mail domain by another connector', 422: 'Invalid fields, or role mappings naming roles this tenant does not have' },
      async handler({ params, body, origin }) {
        const connector = await connectors.create(params.tenantId, body, origin);
        return { status: 201, body: present(connector), version: connector.version, location: location(params.tenantId, connector.id) };
      },
    }),
    route({
      method: 'get', path: '/tenants/:tenantId/connectors/:connectorId', tag: 'connectors', summary: 'A connector (never its secrets)', permission: 'connectors:read', tenantRule: 'tenant',
      params: connectorParams, responses: { 200: 'The connector', 404: 'No such connector in this tenant' },
      async handler({ params }) {
        const connector = await connectors.get(params.tenantId, params.connectorId);
        return { body: present(connector), version: connector.version };
      },
    }),
    route({
      method: 'patch', path: '/tenants/:tenantId/connectors/:connectorId', tag: 'connectors', summary: 'Change a connector (If-Match required); clientSecret and privateJwk replace the stored ones; null takes an optional setting back to its default', permission: 'connectors:write', tenantRule: 'tenant',
      params: connectorParams, body: updateConnectorSchema, requiresVersion: true, responses: { 200: 'The changed connector', 404: 'No such connector in this tenant', 409: 'An e-mail domain belongs to another connector', 412: 'Changed since', 422: 'Invalid fields', 428: 'If-Match missing' },
      async handler({ params, body, ifMatch, origin }) {
        const connector = await connectors.update(params.tenantId, params.connectorId, ifMatch!, body, origin);
        return { body: present(connector), version: connector.version };
      },
    }),
    route({
      method: 'delete', path: '/tenants/:tenantId/connectors/:connectorId', tag: 'connectors', summary: 'Delete a connector with its role mappings, e-mail domains and the identities linked through it (roles it granted stay with their users)', permission: 'connectors:write', tenantRule: 'tenant',
      params: connectorParams, responses: { 204: 'Deleted', 404: 'No such connector in this tenant', 412: 'Changed since (with If-Match)' },
      async handler({ params, origin, ifMatch }) {
        await connectors.remove(params.tenantId, params.connectorId, origin, ifMatch);
        return {};
      },
    }),
    route({
      method: 'put', path: '/tenants/:tenantId/connectors/:connectorId/role-mappings', tag: 'connectors', summary: 'Replace the role mappings: upstream group → role of this tenant, applied at each sign-in through the connector (If-Match optional)', permission: 'connectors:write', tenantRule: 'tenant',
      params: connectorParams, body: setRoleMappingsSchema, responses: { 200: 'The connector with its new mappings', 404: 'No such connector in this tenant', 412: 'Changed since (with If-Match)', 422: 'Invalid mappings, or roles this tenant does not have' },
      async handler({ params, body, ifMatch, origin }) {
        const connector = await connectors.setRoleMappings(params.tenantId, params.connectorId, body.roleMappings, origin, ifMatch);
        return { body: present(connector), version: connector.version };
      },
    }),
  ];
}
