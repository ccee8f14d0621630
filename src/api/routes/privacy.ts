// GDPR for administrators: a user's data as one JSON document (a privileged read, recorded as
// user.export), and the erasure that pseudonymises the person across the product (docs/privacy.md).
import { route, type RouteDefinition } from '../route-table.ts';
import { tenantParams, uuid } from '../schemas.ts';
import type { ApiServices } from '../services.ts';

const userParams = tenantParams.extend({ userId: uuid }).strict();

export function privacyRoutes({ privacy }: ApiServices): RouteDefinition[] {
  return [
    route({
      method: 'get', path: '/tenants/:tenantId/users/:userId/export', tag: 'privacy',
      summary: 'GDPR export: everything held about a user (profile, credentials set and when, MFA, roles, sessions, consents, linked identities, audit entries about them); recorded as user.export',
      permission: 'users:export', tenantRule: 'tenant',
      params: userParams, responses: { 200: 'The export document', 404: 'No such user in this tenant' },
      async handler({ params, origin, ctx }) {
        const document = await privacy.exportUser(params.tenantId, params.userId, origin);
        ctx.set('Cache-Control', 'no-store');
        ctx.set('Content-Disposition', `attachment; filename="user-${params.userId}.json"`);
        return { body: document };
      },
    }),
    route({
      method: 'post', path: '/tenants/:tenantId/users/:userId/erasure', tag: 'privacy',
      summary: 'GDPR erasure: deletes the user with credentials, MFA, sessions, consents and identities, revokes every token, pseudonymises the audit trail and stored events (a repeat answers 404)',
      permission: 'users:erase', tenantRule: 'tenant',
      params: userParams, responses: { 200: 'What was erased', 404: 'No such user in this tenant (or erased already)' },
      async handler({ params, origin }) {
        return { body: await privacy.eraseUser(params.tenantId, params.userId, origin) };
      },
    }),
  ];
}
