// A person's own phone number (self-service, like Logto's account center and Zitadel): enter a
// number, receive a one-time code there by SMS or WhatsApp, enter the code; the number is then
// stored in E.164 and verified in one change. The channels are those the deployment can deliver
// and the tenant lists for sign-in or as a second factor (policies.oneTimeCodes); with none, phone
// numbers cannot be verified here. The number a code went to is remembered per person (hot
// store, as long as the code lives), so a code confirms only the number its person asked for.
import type { Tenant } from '../tenants/service.ts';
import type { User, UserService } from '../users/service.ts';
import type { HotStore } from '../store/hot-store.ts';
import type { OneTimeCodeService } from '../otp/service.ts';
import type { RequestContext } from '../audit/origin.ts';
import { maskPhone, toE164 } from '../otp/phone.ts';
import { ConflictError, ForbiddenError, TooManyAttemptsError, ValidationError } from '../errors.ts';

export type PhoneChannel = 'sms' | 'whatsapp';
export const PHONE_CHANNELS: readonly PhoneChannel[] = ['sms', 'whatsapp'];

const MAX_CODE = 16;

export interface PhoneStatus {
  // E.164, or null when the person has none.
  phoneNumber: string | null;
  masked: string | null;
  verified: boolean;
  // The channels a code can go by; empty: phone codes are not enabled for the tenant.
  channels: PhoneChannel[];
  // A code sent and not yet confirmed.
  pending?: { masked: string; channel: PhoneChannel; resendAfterSeconds: number };
  // False when the tenant requires a second factor and this number is the person's only one.
  removable: boolean;
}

// Inside the cool-down, or over a rate limit: nothing was sent.
export class PhoneCodeWaitError extends TooManyAttemptsError {
  readonly reason: 'cooldown' | 'rate_limited';

  constructor(reason: 'cooldown' | 'rate_limited', retryAfterSeconds: number) {
    super(reason === 'cooldown' ? `a code was sent to this number a moment ago; ask again in ${retryAfterSeconds} seconds` : 'too many codes were asked for; try again later', retryAfterSeconds);
    this.reason = reason;
  }
}

export interface AccountPhoneDependencies {
  users: Pick<UserService, 'get' | 'setVerifiedPhone' | 'removePhone'>;
  tenants: { get(tenantId: string): Promise<Tenant> };
  mfa: { status(tenantId: string, userId: string): Promise<{ totp: boolean }> };
  oneTimeCodes?: Pick<OneTimeCodeService, 'send' | 'verify' | 'available' | 'codeTtlSeconds'>;
  hot: HotStore;
}

interface PendingPhone {
  phoneNumber: string;
  channel: PhoneChannel;
  // When another code may be asked for (milliseconds since the epoch).
  resendAt: number;
}

function isPhoneChannel(value: unknown): value is PhoneChannel {
  return value === 'sms' || value === 'whatsapp';
}

export function createAccountPhone(deps: AccountPhoneDependencies) {
  const codes = deps.oneTimeCodes;
  const pendingKey = (tenantId: string, userId: string) => `account-phone:${tenantId}:${userId}`;

  function channelsOf(tenant: Tenant): PhoneChannel[] {
    if (!codes || tenant.status !== 'active') return [];
    const { signIn, secondFactor } = tenant.policies.oneTimeCodes;
    return PHONE_CHANNELS.filter((channel) => codes.available(channel) && (signIn.includes(channel) || secondFactor.includes(channel)));
  }

  // The tenant requires a second factor of this person, who has no authenticator app, and the
  // verified number is the only way a second-factor code reaches them.
  function onlySecondFactor(tenant: Tenant, user: User, totp: boolean): boolean {
    const required = tenant.policies.mfa === 'all' || (tenant.policies.mfa === 'admins' && user.isAdmin);
    if (!required || totp || !user.phoneNumber || !user.phoneNumberVerified || !codes) return false;
    const channels = tenant.policies.oneTimeCodes.secondFactor.filter((channel) => codes.available(channel));
    const byPhone = channels.some((channel) => channel !== 'email');
    const byEmail = channels.includes('email') && user.emailVerified;
    return byPhone && !byEmail;
  }

  async function loadPending(tenantId: string, userId: string): Promise<PendingPhone | undefined> {
    const stored = await deps.hot.get(pendingKey(tenantId, userId));
    return stored ? (JSON.parse(stored) as PendingPhone) : undefined;
  }

  async function offered(tenantId: string): Promise<PhoneChannel[]> {
    const channels = channelsOf(await deps.tenants.get(tenantId));
    if (!channels.length) throw new ForbiddenError('phone codes are not enabled for this organization');
    return channels;
  }

  function checkNumber(phoneNumber: unknown): string {
    const e164 = typeof phoneNumber === 'string' && phoneNumber.trim() ? toE164(phoneNumber) : undefined;
    if (!e164) throw new ValidationError('enter a mobile number with its country code, such as +49 151 23456789', { phoneNumber: typeof phoneNumber === 'string' && phoneNumber.trim() ? 'not a valid phone number with its country code' : 'required' });
    return e164;
  }

  function checkChannel(channel: unknown, channels: PhoneChannel[]): PhoneChannel {
    // With one channel offered, it need not be named.
    const chosen = channel === undefined || channel === '' ? (channels.length === 1 ? channels[0] : undefined) : channel;
    if (!isPhoneChannel(chosen) || !channels.includes(chosen)) throw new ValidationError(`choose how the code is sent: ${channels.join(' or ')}`, { channel: `must be one of ${channels.join(', ')}` });
    return chosen;
  }

  // Sends a code to the new number (the cool-down and limits of src/otp apply).
  async function requestCode(tenantId: string, userId: string, input: { phoneNumber: unknown; channel: unknown }, request: { ip: string; locale?: string }): Promise<{ phoneNumber: string; channel: PhoneChannel; resendAfterSeconds: number }> {
    const channels = await offered(tenantId);
    const phoneNumber = checkNumber(input.phoneNumber);
    const channel = checkChannel(input.channel, channels);
    const result = await codes!.send({ tenantId, purpose: 'phone-verification', channel, destination: phoneNumber, ip: request.ip, locale: request.locale });
    if (result.status === 'cooldown' || result.status === 'rate_limited') throw new PhoneCodeWaitError(result.status, result.retryAfterSeconds ?? 60);
    if (result.status !== 'sent') throw new ValidationError(`codes cannot be sent by ${channel} right now`, { channel: 'unavailable' });
    const pending: PendingPhone = { phoneNumber, channel, resendAt: Date.now() + result.resendAfterSeconds * 1000 };
    await deps.hot.set(pendingKey(tenantId, userId), JSON.stringify(pending), codes!.codeTtlSeconds);
    return { phoneNumber, channel, resendAfterSeconds: result.resendAfterSeconds };
  }

  return {
    async status(tenantId: string, userId: string): Promise<PhoneStatus> {
      const [user, tenant, mfa, pending] = await Promise.all([deps.users.get(tenantId, userId), deps.tenants.get(tenantId), deps.mfa.status(tenantId, userId), loadPending(tenantId, userId)]);
      return {
        phoneNumber: user.phoneNumber,
        masked: user.phoneNumber ? maskPhone(user.phoneNumber) : null,
        verified: Boolean(user.phoneNumber && user.phoneNumberVerified),
        channels: channelsOf(tenant),
        pending: pending && { masked: maskPhone(pending.phoneNumber), channel: pending.channel, resendAfterSeconds: Math.max(0, Math.ceil((pending.resendAt - Date.now()) / 1000)) },
        removable: !onlySecondFactor(tenant, user, mfa.totp),
      };
    },

    requestCode,

    // Another code to the number of the code waiting (its cool-down holds).
    async resend(tenantId: string, userId: string, request: { ip: string; locale?: string }) {
      const pending = await loadPending(tenantId, userId);
      if (!pending) throw new ConflictError('no code is waiting to be confirmed (or it expired); enter the number again');
      return requestCode(tenantId, userId, pending, request);
    },

    // The right code stores the number the code went to, verified. The API names the number and
    // channel again; they must be the ones the code was sent for.
    async confirm(tenantId: string, userId: string, input: { phoneNumber?: unknown; channel?: unknown; code: unknown }, context?: RequestContext): Promise<User> {
      const channels = await offered(tenantId);
      if (typeof input.code !== 'string' || !input.code.trim()) throw new ValidationError('enter the code that was sent to your phone', { code: 'required' });
      const pending = await loadPending(tenantId, userId);
      if (!pending) throw new ConflictError('no code is waiting to be confirmed (or it expired); ask for a new one');
      const sameNumber = input.phoneNumber === undefined || toE164(String(input.phoneNumber)) === pending.phoneNumber;
      const sameChannel = input.channel === undefined || input.channel === pending.channel;
      const code = input.code.slice(0, MAX_CODE);
      // The code is tried (and counted) only for the number it was sent to.
      const right = sameNumber && sameChannel && channels.includes(pending.channel) &&
        (await codes!.verify({ tenantId, purpose: 'phone-verification', channel: pending.channel, destination: pending.phoneNumber, code }));
      if (!right) throw new ValidationError('the code is not correct or has expired', { code: 'not correct' });
      const user = await deps.users.setVerifiedPhone(tenantId, userId, pending.phoneNumber, { actor: { type: 'user', id: userId }, context });
      await deps.hot.delete(pendingKey(tenantId, userId));
      return user;
    },

    // No re-authentication, but the only second factor a required MFA relies on stays.
    async remove(tenantId: string, userId: string, context?: RequestContext): Promise<User> {
      const [user, tenant, mfa] = await Promise.all([deps.users.get(tenantId, userId), deps.tenants.get(tenantId), deps.mfa.status(tenantId, userId)]);
      if (onlySecondFactor(tenant, user, mfa.totp)) {
        throw new ConflictError('this number is your only second factor and your organization requires one; set up an authenticator app before you remove it');
      }
      await deps.hot.delete(pendingKey(tenantId, userId));
      return deps.users.removePhone(tenantId, userId, { actor: { type: 'user', id: userId }, context });
    },

    async cancel(tenantId: string, userId: string): Promise<void> {
      await deps.hot.delete(pendingKey(tenantId, userId));
    },
  };
}

export type AccountPhone = ReturnType<typeof createAccountPhone>;
