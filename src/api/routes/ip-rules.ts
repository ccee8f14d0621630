// A tenant's IP rules (docs/security.md): read them, replace them whole (If-Match required).
// Changing them is tenants:write, like the tenant's other policies.
import { route, type RouteDefinition } from '../route-table.ts';
import { tenantParams } from '../schemas.ts';
import type { ApiServices } from '../services.ts';
import { ipRulesSchema, type StoredIpRules } from '../../security/ip-rules.ts';

function present(stored: StoredIpRules) {
  return { ...stored.rules, version: stored.version, updatedAt: stored.updatedAt?.toISOString() ?? null };
}

export function ipRuleRoutes({ ipRules }: ApiServices): RouteDefinition[] {
  return [
    route({
      method: 'get', path: '/tenants/:tenantId/ip-rules', tag: 'tenants', summary: 'Get the tenant’s IP rules (allow and deny CIDR lists for sign-in, admin API and API keys)', permission: 'tenants:read', tenantRule: 'tenant',
      params: tenantParams, responses: { 200: 'The IP rules (version 0: never set)' },
      async handler({ params }) {
        const stored = await ipRules.get(params.tenantId);
        return { body: present(stored), version: stored.version };
      },
    }),
    route({
      method: 'put', path: '/tenants/:tenantId/ip-rules', tag: 'tenants', summary: 'Replace the tenant’s IP rules (If-Match required; "0" before the first change)', permission: 'tenants:write', tenantRule: 'tenant',
      params: tenantParams, body: ipRulesSchema, requiresVersion: true,
      responses: { 200: 'The new IP rules', 412: 'Changed by someone else since', 422: 'A range is not a valid CIDR', 428: 'If-Match missing' },
      async handler({ params, body, ifMatch, origin }) {
        const stored = await ipRules.replace(params.tenantId, body, ifMatch!, origin);
        return { body: present(stored), version: stored.version };
      },
    }),
  ];
}
