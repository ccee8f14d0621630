// A user's second factors, for administrators: see what is set up, and reset it (a lost phone).
// Enrolment and backup codes belong to the user (account pages); an administrator only resets.
import { route, type RouteDefinition } from '../route-table.ts';
import { tenantParams, uuid } from '../schemas.ts';
import type { ApiServices } from '../services.ts';

const userParams = tenantParams.extend({ userId: uuid }).strict();

export function mfaRoutes({ users, mfa }: ApiServices): RouteDefinition[] {
  return [
    route({
      method: 'get', path: '/tenants/:tenantId/users/:userId/mfa', tag: 'users', summary: 'A user’s second factors: TOTP active since when, backup codes left', permission: 'users:read', tenantRule: 'tenant',
      params: userParams, responses: { 200: 'The MFA status', 404: 'No such user in this tenant' },
      async handler({ params }) {
        await users.get(params.tenantId, params.userId);
        const status = await mfa.status(params.tenantId, params.userId);
        return { body: { totp: status.totp, confirmedAt: status.confirmedAt?.toISOString() ?? null, backupCodesRemaining: status.backupCodesRemaining } };
      },
    }),
    route({
      method: 'delete', path: '/tenants/:tenantId/users/:userId/mfa', tag: 'users', summary: 'Reset a user’s MFA: removes TOTP and every backup code (the user enrols again)', permission: 'users:write', tenantRule: 'tenant',
      params: userParams, responses: { 204: 'Removed', 404: 'No such user in this tenant' },
      async handler({ params, origin }) {
        await users.get(params.tenantId, params.userId);
        await mfa.remove(params.tenantId, params.userId, origin);
        return {};
      },
    }),
  ];
}
