import { z } from 'zod';
import { route, type RouteDefinition } from '../route-table.ts';
import { tenantParams } from '../schemas.ts';
import { ConflictError, NotFoundError, ValidationError } from '../../errors.ts';
import { CLIENT_AUTH_METHODS, ClientValidationError, ClientWithoutSecretError, type ClientRecord } from '../../clients/service.ts';
import type { ApiServices } from '../services.ts';

const clientBody = z
  .object({
    name: z.string().min(1).max(200),
    redirectUris: z.array(z.string().max(2048)).max(50).optional(),
    postLogoutRedirectUris: z.array(z.string().max(2048)).max(50).optional(),
    grantTypes: z.array(z.enum(['authorization_code', 'refresh_token', 'client_credentials'])).min(1).max(3).optional(),
    authMethod: z.enum(CLIENT_AUTH_METHODS).optional(),
    firstParty: z.boolean().optional(),
    backchannelLogoutUri: z.string().max(2048).optional(),
    jwksUri: z.string().max(2048).optional(),
    // Public keys for private_key_jwt, or the certificates (x5c) for self_signed_tls_client_auth.
    jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(20) }).strict().optional(),
    // tls_client_auth: the one certificate subject the client's certificate must carry (RFC 8705 §2.1.2).
    tlsClientAuth: z
      .object({
        subjectDn: z.string().min(1).max(1024).optional(),
        sanDns: z.string().min(1).max(253).optional(),
        sanIp: z.string().min(1).max(45).optional(),
        sanEmail: z.string().min(1).max(320).optional(),
        sanUri: z.string().min(1).max(2048).optional(),
      })
      .strict()
      .optional(),
    certificateBoundAccessTokens: z.boolean().optional(),
  })
  .strict();
const clientParams = tenantParams.extend({ clientId: z.string().min(1).max(255) }).strict();

function present(client: ClientRecord) {
  return { clientId: client.clientId, tenantId: client.tenantId, firstParty: client.firstParty, metadata: client.metadata, createdAt: client.createdAt };
}

export function clientRoutes({ clients }: ApiServices): RouteDefinition[] {
  async function ownClient(tenantId: string, clientId: string): Promise<ClientRecord> {
    const client = await clients.get(clientId);
    if (!client || client.tenantId !== tenantId) throw new NotFoundError(`no client ${clientId} in this tenant`);
    return client;
  }
  return [
    route({
      method: 'get', path: '/tenants/:tenantId/clients', tag: 'clients', summary: 'List the tenant’s clients', permission: 'clients:read', tenantRule: 'tenant',
      params: tenantParams, responses: { 200: 'The clients (never their secrets)' },
      async handler({ params }) {
        return { body: { items: (await clients.list(params.tenantId)).map(present) } };
      },
    }),
    route({
      method: 'post', path: '/tenants/:tenantId/clients', tag: 'clients', summary: 'Register a client; its secret is in this answer only', permission: 'clients:write', tenantRule: 'tenant',
      params: tenantParams, body: clientBody, responses: { 201: 'The client and its secret', 422: 'Invalid metadata' },
      async handler({ params, body, origin }) {
        try {
          const { client, clientSecret } = await clients.create({ ...body, tenantId: params.tenantId }, origin);
          return { status: 201, body: { ...present(client), clientSecret }, location: `/api/v1/tenants/${params.tenantId}/clients/${client.clientId}` };
        } catch (error) {
          if (error instanceof ClientValidationError) throw new ValidationError(error.message);
          throw error;
        }
      },
    }),
    route({
      method: 'get', path: '/tenants/:tenantId/clients/:clientId', tag: 'clients', summary: 'Get a client', permission: 'clients:read', tenantRule: 'tenant',
      params: clientParams, responses: { 200: 'The client', 404: 'Not in this tenant' },
      async handler({ params }) {
        return { body: present(await ownClient(params.tenantId, params.clientId)) };
      },
    }),
    route({
      method: 'post', path: '/tenants/:tenantId/clients/:clientId/secret', tag: 'clients',
      summary: 'Replace the client’s secret; the new one is in this answer only, the old one stops working at once', permission: 'clients:write', tenantRule: 'tenant',
      params: clientParams, responses: { 200: 'The new secret', 404: 'Not in this tenant', 409: 'The client authenticates without a secret' },
      async handler({ params, origin }) {
        await ownClient(params.tenantId, params.clientId);
        try {
          const clientSecret = await clients.rotateSecret(params.clientId, origin);
          if (!clientSecret) throw new NotFoundError(`no client ${params.clientId} in this tenant`);
          return { body: { clientId: params.clientId, clientSecret } };
        } catch (error) {
          if (error instanceof ClientWithoutSecretError) throw new ConflictError(error.message);
          throw error;
        }
      },
    }),
    route({
      method: 'delete', path: '/tenants/:tenantId/clients/:clientId', tag: 'clients', summary: 'Delete a client', permission: 'clients:write', tenantRule: 'tenant',
      params: clientParams, responses: { 204: 'Deleted', 404: 'Not in this tenant' },
      async handler({ params, origin }) {
        await ownClient(params.tenantId, params.clientId);
        await clients.delete(params.clientId, origin);
        return {};
      },
    }),
  ];
}
