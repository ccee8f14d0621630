// One-time codes by e-mail, SMS or WhatsApp: for passwordless sign-in, as a second factor, and for
// the flows that must prove an address or number belongs to someone (linking, phone
// verification). A send honours a per-destination cool-down and rate limits per destination and
// per client address; delivery happens after the answer, so its timing says nothing. verify()
// consumes a right code once (code-store.ts).
import type { Logger } from 'pino';
import type { HotStore } from '../store/hot-store.ts';
import type { RateLimiter } from '../security/rate-limiter.ts';
import { DEFAULT_LOCALE, isLocale, type Locale } from '../i18n/catalogues.ts';
import { codeKey, createCodeStore, newCode } from './code-store.ts';
import type { Channel } from './channels/channel.ts';

export type CodeChannel = 'email' | 'sms' | 'whatsapp';
export type CodePurpose = 'sign-in' | 'second-factor' | 'link' | 'phone-verification';
export type SendResult = { status: 'sent'; resendAfterSeconds: number } | { status: 'cooldown' | 'rate_limited' | 'unavailable'; retryAfterSeconds?: number };

export const CODE_CHANNELS: readonly CodeChannel[] = ['email', 'sms', 'whatsapp'];
export const MAX_TRIES_PER_CODE = 5;

export interface SendRequest {
  tenantId: string;
  purpose: CodePurpose;
  channel: CodeChannel;
  // An e-mail address, or a phone number in E.164.
  destination: string;
  ip: string;
  locale?: string;
}

export interface VerifyRequest {
  tenantId: string;
  purpose: CodePurpose;
  channel: CodeChannel;
  destination: string;
  code: string;
}

export interface OneTimeCodeDependencies {
  hot: HotStore;
  // The instance's key-encryption key: the codes' HMAC key is derived from it.
  instanceSecret: Buffer;
  // The channels this deployment can deliver through; a missing one is unavailable.
  channels: Partial<Record<CodeChannel, Channel>>;
  codeTtlSeconds: number;
  resendCooldownSeconds: number;
  perDestination?: RateLimiter;
  perIp?: RateLimiter;
  log: Logger;
  // Runs a delivery after the request is answered (the mailer's background work, tracked for shutdown).
  inBackground(kind: string, work: () => Promise<void>): void;
}

export interface OneTimeCodeService {
  send(request: SendRequest): Promise<SendResult>;
  // The same cool-down and limits as send() for a destination nobody owns, and nothing sent: the
  // caller's answer cannot tell the two apart.
  pace(request: SendRequest): Promise<SendResult>;
  verify(request: VerifyRequest): Promise<boolean>;
  available(channel: CodeChannel): boolean;
  readonly codeTtlSeconds: number;
}

export function normaliseDestination(channel: CodeChannel, destination: string): string {
  return channel === 'email' ? destination.trim().toLowerCase() : destination.trim();
}

export function createOneTimeCodeService(deps: OneTimeCodeDependencies): OneTimeCodeService {
  const codes = createCodeStore(deps.hot, codeKey(deps.instanceSecret), { ttlSeconds: deps.codeTtlSeconds, maxTries: MAX_TRIES_PER_CODE });
  const cooldownSeconds = deps.resendCooldownSeconds;

  function available(channel: CodeChannel): boolean {
    return Boolean(deps.channels[channel]);
  }

  // Starts the cool-down of this slot, or says how long the running one still lasts.
  async function startCooldown(slot: string): Promise<number | undefined> {
    if (cooldownSeconds <= 0) return undefined;
    const key = `otp:cooldown:${slot}`;
    const until = Date.now() + cooldownSeconds * 1000;
    if (await deps.hot.setIfAbsent(key, String(until), cooldownSeconds)) return undefined;
    const running = Number(await deps.hot.get(key));
    return Math.max(1, Math.ceil(((Number.isFinite(running) ? running : until) - Date.now()) / 1000));
  }

  async function admit(request: SendRequest): Promise<{ result: SendResult; slot: string; destination: string }> {
    const destination = normaliseDestination(request.channel, request.destination);
    const slot = codes.slot(request.tenantId, request.purpose, request.channel, destination);
    if (!available(request.channel)) return { result: { status: 'unavailable' }, slot, destination };
    const wait = await startCooldown(slot);
    if (wait !== undefined) return { result: { status: 'cooldown', retryAfterSeconds: wait }, slot, destination };
    // The number or address is counted as a digest, across tenants: nobody can flood one phone.
    for (const [limiter, key] of [[deps.perIp, request.ip], [deps.perDestination, codes.hmac('destination', request.channel, destination)]] as const) {
      if (!limiter) continue;
      const decision = await limiter.consume(key);
      if (!decision.allowed) return { result: { status: 'rate_limited', retryAfterSeconds: decision.retryAfterSeconds }, slot, destination };
    }
    return { result: { status: 'sent', resendAfterSeconds: cooldownSeconds }, slot, destination };
  }

  return {
    codeTtlSeconds: deps.codeTtlSeconds,
    available,

    async send(request) {
      const { result, slot, destination } = await admit(request);
      if (result.status !== 'sent') return result;
      const code = newCode();
      await codes.issue(slot, code);
      const channel = deps.channels[request.channel]!;
      const locale: Locale = isLocale(request.locale) ? request.locale : DEFAULT_LOCALE;
      deps.inBackground(`one-time-code-${request.channel}`, async () => {
        try {
          await channel.deliver({ tenantId: request.tenantId, purpose: request.purpose, destination, code, ttlSeconds: deps.codeTtlSeconds, locale });
        } catch (error) {
          // Never the code, the number or the address: the channel and why.
          deps.log.warn({ channel: request.channel, purpose: request.purpose, reason: (error as Error).message }, 'a one-time code could not be delivered');
        }
      });
      return result;
    },

    async pace(request) {
      return (await admit(request)).result;
    },

    async verify(request) {
      if (typeof request.code !== 'string') return false;
      const destination = normaliseDestination(request.channel, request.destination);
      const code = request.code.replace(/[\s-]/g, '');
      return codes.consume(codes.slot(request.tenantId, request.purpose, request.channel, destination), code);
    },
  };
}
