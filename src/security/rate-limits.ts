// Which requests count against which rate limit, and the limiters themselves (per client address,
// and per client on the token endpoint), built from configuration (docs/security.md). A limit set
// to "off" has no limiter. The first refusal of a window becomes a security.rate_limited entry in
// the audit trail of the tenant it concerns (the client's tenant, else the platform tenant).
import type { Logger } from 'pino';
import type { RateLimitSettings } from '../config.ts';
import type { HotStore } from '../store/hot-store.ts';
import type { AuditService } from '../audit/service.ts';
import type { RequestContext } from '../audit/origin.ts';
import { DEFAULT_TENANT_ID } from '../tenants/constants.ts';
import { createRateLimiter, type RateLimiter } from './rate-limiter.ts';
import { createLeasedRateLimiter } from './leased-rate-limiter.ts';

export type RateLimitName = keyof RateLimitSettings;

// How a refusal is answered: OAuth error JSON, problem+json, or a page.
export type Surface = 'protocol' | 'api' | 'page';

export interface RateLimitRule {
  limit: RateLimitName;
  method: string;
  path: RegExp;
  surface: Surface;
}

// Only state-changing requests count: reading a page costs the client nothing worth limiting.
export const RATE_LIMIT_RULES: readonly RateLimitRule[] = [
  // Every step of a sign-in: identifier, password, second factor, consent, registration...
  { limit: 'loginPerIp', method: 'POST', path: /^\/interaction\/[^/]+\/.+$/, surface: 'page' },
  { limit: 'otpPerIp', method: 'POST', path: /^\/interaction\/[^/]+\/mfa(?:\/backup|\/enrol)?$/, surface: 'page' },
  { limit: 'otpPerIp', method: 'POST', path: /^\/account\/mfa\/confirm$/, surface: 'page' },
  { limit: 'otpPerIp', method: 'POST', path: /^\/api\/v1\/me\/mfa\/totp\/confirm$/, surface: 'api' },
  // Typing a one-time code sent by e-mail, SMS or WhatsApp (src/interactions/one-time-codes.ts).
  { limit: 'otpPerIp', method: 'POST', path: /^\/interaction\/[^/]+\/(?:code|mfa\/code)\/verify$/, surface: 'page' },
  { limit: 'registrationPerIp', method: 'POST', path: /^\/interaction\/[^/]+\/register$/, surface: 'page' },
  { limit: 'passwordResetPerIp', method: 'POST', path: /^\/password\/(?:forgot|reset)$/, surface: 'page' },
  { limit: 'tokenPerIp', method: 'POST', path: /^\/token$/, surface: 'protocol' },
  { limit: 'introspectionPerIp', method: 'POST', path: /^\/token\/introspection$/, surface: 'protocol' },
  { limit: 'revocationPerIp', method: 'POST', path: /^\/token\/revocation$/, surface: 'protocol' },
];

export const TOKEN_PATH = '/token';

// The limits of machine traffic, counted in leases from the shared count instead of a Redis round
// trip per request (src/security/leased-rate-limiter.ts): a few points of slack across instances
// against a round trip on every token, introspection and revocation request. Sign-in, one-time
// code and registration limits stay exact per request.
const LEASED_LIMITS = new Set<RateLimitName>(['tokenPerIp', 'tokenPerClient', 'introspectionPerIp', 'revocationPerIp']);

// The limiter names in keys, metrics (idp_rate_limited_total{limiter}) and audit entries.
const LIMITER_NAMES: Record<RateLimitName, string> = {
  loginPerIp: 'login-per-ip',
  otpPerIp: 'otp-per-ip',
  registrationPerIp: 'registration-per-ip',
  passwordResetPerIp: 'password-reset-per-ip',
  tokenPerIp: 'token-per-ip',
  tokenPerClient: 'token-per-client',
  introspectionPerIp: 'introspection-per-ip',
  revocationPerIp: 'revocation-per-ip',
  otpSendPerDestination: 'otp-send-per-destination',
  otpSendPerIp: 'otp-send-per-ip',
};

export interface MatchedLimit {
  rule: RateLimitRule;
  limiter: RateLimiter;
}

export interface RateLimitBlock {
  limiter: RateLimiter;
  // The tenant it concerns, when known (a client's tenant); else the platform tenant's trail.
  tenantId?: string;
  clientId?: string;
  path: string;
  retryAfterSeconds: number;
  context: RequestContext;
}

export interface RateLimitsDependencies {
  hot: HotStore;
  settings: RateLimitSettings;
  audit: Pick<AuditService, 'record'>;
  log: Logger;
}

export interface RateLimits {
  // The per-address limits this request counts against, in rule order.
  match(method: string, path: string): MatchedLimit[];
  // The per-client limit of the token endpoint, when it is on.
  readonly tokenPerClient?: RateLimiter;
  // Limits counted by the code that knows the key rather than by path (one-time-code sends per
  // destination and per address); undefined when off.
  limiter(name: RateLimitName): RateLimiter | undefined;
  // Records the first refusal of a window; never fails the request it is called from.
  recordBlock(block: RateLimitBlock): Promise<void>;
}

export function createRateLimits(deps: RateLimitsDependencies): RateLimits {
  const limiters = new Map<RateLimitName, RateLimiter>();
  for (const [limit, setting] of Object.entries(deps.settings) as [RateLimitName, RateLimitsDependencies['settings'][RateLimitName]][]) {
    if (!setting) continue;
    const limiter = createRateLimiter(deps.hot, { name: LIMITER_NAMES[limit], points: setting.points, durationSeconds: setting.durationSeconds, log: deps.log });
    limiters.set(limit, LEASED_LIMITS.has(limit) ? createLeasedRateLimiter(limiter) : limiter);
  }
  return {
    match(method, path) {
      const matched: MatchedLimit[] = [];
      for (const rule of RATE_LIMIT_RULES) {
        const limiter = limiters.get(rule.limit);
        if (limiter && rule.method === method && rule.path.test(path)) matched.push({ rule, limiter });
      }
      return matched;
    },
    tokenPerClient: limiters.get('tokenPerClient'),
    limiter: (name) => limiters.get(name),
    async recordBlock(block) {
      try {
        await deps.audit.record(undefined, {
          tenantId: block.tenantId ?? DEFAULT_TENANT_ID,
          type: 'security.rate_limited',
          outcome: 'failure',
          target: block.clientId ? { ref: block.clientId } : undefined,
          details: {
            limiter: block.limiter.name,
            countedPer: block.clientId ? 'client' : 'ip',
            path: block.path,
            limit: block.limiter.points,
            windowSeconds: block.limiter.durationSeconds,
            retryAfterSeconds: block.retryAfterSeconds,
          },
          context: block.context,
        });
      } catch (error) {
        deps.log.warn({ err: error, limiter: block.limiter.name }, 'could not record a rate-limit block');
      }
    },
  };
}
