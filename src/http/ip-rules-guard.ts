// The admin API's side of the tenant IP rules: once the caller is known, its tenant's rules for
// the admin API (and, for a call made with an API key, for API keys) must admit the address.
import type { Context } from 'koa';
import { DomainError } from '../errors.ts';
import { requestContext } from '../audit/origin.ts';
import type { Principal } from '../api/principal.ts';
import type { IpRuleService } from '../security/ip-rules.ts';

export class IpBlockedError extends DomainError {
  override readonly status = 403;
  override readonly type = 'ip-blocked';
}

export function adminApiAddressCheck(ipRules: Pick<IpRuleService, 'check'>) {
  return async (ctx: Context, principal: Principal): Promise<void> => {
    const note = { actor: { type: principal.subjectType, id: principal.subjectId }, context: requestContext(ctx) };
    const admitted = (await ipRules.check(principal.tenantId, 'adminApi', ctx.ip, note)) && (!principal.apiKey || (await ipRules.check(principal.tenantId, 'apiKeys', ctx.ip, note)));
    if (!admitted) throw new IpBlockedError('your organisation’s IP rules do not allow this address to use the admin API');
  };
}
