// POST /api-keys/verify: resource servers check an API key presented to them. Authenticated as a
// tenant-bound confidential client (HTTP Basic). The answer, shaped like token introspection
// (RFC 7662): { active: false } for any key that is not usable, or the key's id, tenant, owner,
// permissions (those its owner still holds) and expiry. A use of the key: rate limited (429 with
// Retry-After) and counted. The key's IP allow-list is checked against `clientIp`, the address the
// resource server received the key from.
import Router from '@koa/router';
import { parsedBody } from '../http/body.ts';
import { isIP } from 'node:net';
import { z } from 'zod';
import { problem } from '../http/errors.ts';
import type { ClientService } from '../clients/service.ts';
import type { TenantService } from '../tenants/service.ts';
import { authenticateResourceServer } from './client-auth.ts';
import type { ApiKeyVerifier } from './verifier.ts';
import type { IpRuleService } from '../security/ip-rules.ts';

export const VERIFY_PATH = '/api-keys/verify';

const body = z
  .object({
    apiKey: z.string().min(1).max(512),
    clientIp: z.string().max(64).refine((value) => isIP(value) !== 0, 'must be an IPv4 or IPv6 address').optional(),
  })
  .strict();

export function apiKeyVerificationRoutes(deps: { verifier: ApiKeyVerifier; clients: ClientService; tenants: TenantService; ipRules: Pick<IpRuleService, 'check' | 'restricts'> }): Router {
  const router = new Router();
  // Whether a tenant is the platform never changes.
  const platform = new Map<string, boolean>();
  const isPlatform = async (tenantId: string) => {
    let known = platform.get(tenantId);
    if (known === undefined) {
      known = (await deps.tenants.get(tenantId).catch(() => undefined))?.platform ?? false;
      if (platform.size > 10_000) platform.clear();
      platform.set(tenantId, known);
    }
    return known;
  };

  router.post(VERIFY_PATH, parsedBody({ enableTypes: ['json', 'form'], jsonLimit: '4kb', formLimit: '4kb', jsonStrict: true }), async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    const caller = await authenticateResourceServer(ctx, { clients: deps.clients, platformTenant: isPlatform });
    if (!caller) {
      ctx.set('WWW-Authenticate', 'Basic realm="api-keys", charset="UTF-8"');
      return problem(ctx, 401, 'unauthorized', 'authenticate as a machine client of the tenant: Authorization: Basic base64(client_id:client_secret)');
    }
    const parsed = body.safeParse((ctx.request as { body?: unknown }).body);
    if (!parsed.success) {
      return problem(ctx, 422, 'validation', 'send { "apiKey": "...", "clientIp": "..." } (clientIp optional)', { errors: Object.fromEntries(parsed.error.issues.map((issue) => [['body', ...issue.path.map(String)].join('.'), issue.message])) });
    }
    const result = await deps.verifier.verify(parsed.data.apiKey, parsed.data.clientIp);
    if (!result.ok) {
      if (result.reason === 'rate_limited') {
        ctx.set('Retry-After', String(result.retryAfterSeconds));
        return problem(ctx, 429, 'rate-limited', 'this API key made too many requests; retry later');
      }
      ctx.body = { active: false };
      return;
    }
    const { key } = result;
    // Keys of another tenant are reported exactly like unknown ones.
    if (key.tenantId !== caller.tenantId && !caller.platform) {
      ctx.body = { active: false };
      return;
    }
    // The tenant's IP rules for API keys, on the address the key was presented from; a tenant
    // with rules refuses a use whose address the resource server did not say.
    const from = parsed.data.clientIp;
    const context = { ip: from, userAgent: ctx.get('user-agent') || undefined };
    const admitted = from ? await deps.ipRules.check(key.tenantId, 'apiKeys', from, { actor: key.owner, context }) : !(await deps.ipRules.restricts(key.tenantId, 'apiKeys'));
    if (!admitted) {
      ctx.body = { active: false };
      return;
    }
    ctx.body = {
      active: true,
      keyId: key.id,
      name: key.name,
      tenantId: key.tenantId,
      owner: key.owner,
      permissions: key.permissions,
      expiresAt: key.expiresAt?.toISOString() ?? null,
    };
  });
  return router;
}
