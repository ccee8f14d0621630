// Account self-service: what a signed-in person may see and change about themselves. The pages
// (routes.ts) and the JSON API (api.ts) both call this, so the rules live in one place.
import type { UserService, User, UserProfileInput } from '../users/service.ts';
import type { SessionService, DeviceSession, SessionRevocation } from '../sessions/service.ts';
import type { IdentityLinkService, LinkedIdentity } from './identities/service.ts';
import type { TenantService } from '../tenants/service.ts';
import type { HotStore } from '../store/hot-store.ts';
import type { AccountCredentials, AccountMfa } from './ports.ts';
import type { AccountAudit, SignOutReason, SignOutScope } from './account-audit.ts';
import type { RequestContext } from '../audit/origin.ts';
import { TooManyAttemptsError, ValidationError } from '../errors.ts';
import { createAttemptLimiter, type AttemptLimiter } from '../security/attempt-limiter.ts';
import { MAX_PASSWORD } from '../users/validation.ts';
import type { OneTimeCodeService } from '../otp/service.ts';
import { createAccountPhone } from './phone.ts';

export interface AccountServiceDependencies {
  users: UserService;
  tenants: TenantService;
  sessions: SessionService;
  identities: IdentityLinkService;
  mfa: AccountMfa;
  credentials: AccountCredentials;
  // Sign-outs and lockouts in the audit trail (and session.revoked events).
  records: AccountAudit;
  // Counts guesses at the current password and at enrolment codes, per user.
  hot: HotStore;
  // The TOTP issuer label when the tenant has no display name of its own.
  issuerLabel: string;
  // The one revocation path (ProviderHost.revokeAccount): every session but `keepSessionUid`, every
  // grant and refresh token (offline ones too), outstanding JWT access tokens, back-channel logout.
  revokeUserAccess?(tenantId: string, userId: string, keepSessionUid?: string): Promise<void>;
  // The tenant's upstream connectors by id, for the names the account pages show.
  connectorNames?(tenantId: string): Promise<Map<string, string>>;
  // Codes by SMS or WhatsApp for verifying the person's own phone number (phone.ts).
  oneTimeCodes?: Pick<OneTimeCodeService, 'send' | 'verify' | 'available' | 'codeTtlSeconds'>;
}

export interface CurrentSession extends DeviceSession {
  current: boolean;
}

// A token or an account session alone must not be a way to guess the password: a few wrong
// current passwords (or enrolment codes) per user and window, then 429 until the window ends.
export const CURRENT_PASSWORD_ATTEMPTS = { name: 'account-current-password', limit: 5, windowSeconds: 15 * 60 };
export const TOTP_CONFIRM_ATTEMPTS = { name: 'account-totp-confirm', limit: 5, windowSeconds: 15 * 60 };

export function createAccountService(deps: AccountServiceDependencies) {
  const { users, sessions, identities, mfa, credentials } = deps;
  const passwordAttempts = createAttemptLimiter(deps.hot, CURRENT_PASSWORD_ATTEMPTS);
  const totpAttempts = createAttemptLimiter(deps.hot, TOTP_CONFIRM_ATTEMPTS);
  const phone = createAccountPhone({ users, tenants: deps.tenants, mfa, oneTimeCodes: deps.oneTimeCodes, hot: deps.hot });

  const limiterKey = (tenantId: string, userId: string) => `${tenantId}:${userId}`;

  // Counts the attempt before it is checked, so parallel requests cannot race past the limit.
  // The first refusal of a window is recorded (security.lockout); later ones only refused.
  async function limited<T>(limiter: AttemptLimiter, tenantId: string, userId: string, what: string, attempt: () => Promise<T>, succeeded: (result: T) => boolean, context?: RequestContext): Promise<T> {
    const key = limiterKey(tenantId, userId);
    const verdict = await limiter.attempt(key);
    if (verdict === 'blocked') await deps.records.lockedOut(tenantId, userId, limiter.name, context);
    if (verdict !== 'allowed') throw new TooManyAttemptsError(`too many wrong ${what}; try again later`, limiter.windowSeconds);
    const result = await attempt();
    if (succeeded(result)) await limiter.reset(key);
    return result;
  }

  function checkCurrentPassword(tenantId: string, userId: string, password: string, context?: RequestContext): Promise<boolean> {
    return limited(passwordAttempts, tenantId, userId, 'current passwords', () => users.verifyPassword(tenantId, userId, password), (valid) => valid, context);
  }

  // The person's own sign-out, recorded by the sessions service with the rows' end.
  function signOut(userId: string, scope: SignOutScope, reason: SignOutReason, context?: RequestContext): SessionRevocation {
    return { origin: { actor: { type: 'user', id: userId }, context }, reason, details: { scope, reason, via: 'account' } };
  }

  async function keeping(tenantId: string, userId: string, currentSid?: string): Promise<{ sessionId?: string; sid?: string }> {
    const current = currentSid ? await sessions.findBySid(tenantId, userId, currentSid) : undefined;
    return { sessionId: current?.id, sid: currentSid };
  }

  // Signs out every other session; the one with provider session uid `currentSid` stays.
  async function endOtherSessions(tenantId: string, userId: string, currentSid?: string, context?: RequestContext): Promise<number> {
    const keep = await keeping(tenantId, userId, currentSid);
    return sessions.endAllExcept(tenantId, userId, keep, signOut(userId, 'others', 'signed_out', context));
  }

  return {
    profile(tenantId: string, userId: string): Promise<User> {
      return users.get(tenantId, userId);
    },

    // Only what a person may change about themselves (users service, as 'self').
    updateProfile(tenantId: string, userId: string, version: number, patch: UserProfileInput): Promise<User> {
      return users.update(tenantId, userId, version, patch, { as: 'self' });
    },

    // After a change every other session ends (a thief signed in with the old password is out);
    // the one the change came from (`currentSid`) stays. Without a known current session, all end.
    async changePassword(tenantId: string, userId: string, currentPassword: unknown, newPassword: unknown, options: { locale?: string; currentSid?: string; context?: RequestContext } = {}): Promise<void> {
      const fields: Record<string, string> = {};
      if (typeof currentPassword !== 'string' || !currentPassword) fields.currentPassword = 'required';
      else if (currentPassword.length > MAX_PASSWORD) fields.currentPassword = 'not correct';
      if (typeof newPassword !== 'string' || !newPassword) fields.newPassword = 'required';
      else if (newPassword.length > MAX_PASSWORD) fields.newPassword = `at most ${MAX_PASSWORD} characters`;
      if (Object.keys(fields).length) throw new ValidationError('invalid password change', fields);
      // The credentials service checks the current password (one argon2 verification, counted).
      const wrongCurrent = (error: unknown) => error instanceof ValidationError && Boolean(error.fields?.currentPassword);
      await limited(passwordAttempts, tenantId, userId, 'current passwords', async () => {
        try {
          await credentials.changePassword(tenantId, userId, currentPassword as string, newPassword as string, options.locale, options.context);
          return true;
        } catch (error) {
          if (wrongCurrent(error)) throw error;
          // The current password was right (the new one was refused): that guess was no failure.
          await passwordAttempts.reset(limiterKey(tenantId, userId));
          throw error;
        }
      }, () => true, options.context);
      const keep = await keeping(tenantId, userId, options.currentSid);
      // The sessions first, so each is recorded as ended by this change; then everything else.
      await sessions.endAllExcept(tenantId, userId, keep, signOut(userId, 'others', 'password_changed', options.context));
      await deps.revokeUserAccess?.(tenantId, userId, options.currentSid);
    },

    // Re-authentication by password for the API (the pages re-authenticate through a new sign-in).
    async verifyPassword(tenantId: string, userId: string, password: unknown, context?: RequestContext): Promise<void> {
      if (typeof password !== 'string' || !password || password.length > MAX_PASSWORD) {
        throw new ValidationError('confirm with your current password', { currentPassword: 'required' });
      }
      if (!(await checkCurrentPassword(tenantId, userId, password, context))) throw new ValidationError('the current password is not correct', { currentPassword: 'not correct' });
    },

    mfaStatus(tenantId: string, userId: string) {
      return mfa.status(tenantId, userId);
    },

    async beginTotpEnrolment(tenantId: string, userId: string) {
      const [user, tenant] = await Promise.all([users.get(tenantId, userId), deps.tenants.get(tenantId)]);
      const issuer = tenant.platform ? deps.issuerLabel : tenant.displayName;
      return mfa.beginTotpEnrolment(tenantId, userId, { accountName: user.email, issuer });
    },

    // undefined for a wrong code or when no enrolment is pending.
    confirmTotpEnrolment(tenantId: string, userId: string, code: unknown, context?: RequestContext) {
      const candidate = typeof code === 'string' ? code.slice(0, 64) : '';
      const note = { actor: { type: 'user' as const, id: userId }, context };
      return limited(totpAttempts, tenantId, userId, 'codes', () => mfa.confirmTotpEnrolment(tenantId, userId, candidate, note), (confirmed) => confirmed !== undefined, context);
    },

    regenerateBackupCodes(tenantId: string, userId: string, context?: RequestContext) {
      return mfa.regenerateBackupCodes(tenantId, userId, { actor: { type: 'user', id: userId }, context });
    },

    removeMfa(tenantId: string, userId: string, context?: RequestContext) {
      return mfa.remove(tenantId, userId, { actor: { type: 'user', id: userId }, context });
    },

    // Whether the provider session passed the tenant's idle or absolute limit (it ends then).
    async sessionExpired(tenantId: string, sid: string): Promise<boolean> {
      return (await sessions.endIfExpired(tenantId, sid)) !== undefined;
    },

    async sessions(tenantId: string, userId: string, currentSid?: string): Promise<CurrentSession[]> {
      const active = await sessions.listActive(tenantId, userId);
      return active.map((session) => ({ ...session, current: session.sid === currentSid }));
    },

    async endSession(tenantId: string, userId: string, sessionId: string, context?: RequestContext): Promise<void> {
      await sessions.end(tenantId, userId, sessionId, signOut(userId, 'one', 'signed_out', context));
    },

    // Signs out everywhere, the session acting included.
    endAllSessions(tenantId: string, userId: string, currentSid?: string, context?: RequestContext): Promise<number> {
      return sessions.endAll(tenantId, userId, { sid: currentSid }, signOut(userId, 'all', 'signed_out', context));
    },

    endOtherSessions,

    // Each with the name of the connector it came through (the id when the connector is gone).
    async identities(tenantId: string, userId: string): Promise<Array<LinkedIdentity & { connectorName: string }>> {
      const [linked, names] = await Promise.all([identities.list(tenantId, userId), deps.connectorNames?.(tenantId)]);
      return linked.map((identity) => ({ ...identity, connectorName: names?.get(identity.connector) ?? identity.connector }));
    },

    // The last way to sign in stays: without a password, the only linked identity cannot go.
    removeIdentity(tenantId: string, userId: string, identityId: string): Promise<void> {
      return identities.removeUnlessLastSignIn(tenantId, userId, identityId);
    },

    // The person's own phone number, verified by a code sent to it (phone.ts).
    phoneStatus: phone.status,
    requestPhoneCode: phone.requestCode,
    resendPhoneCode: phone.resend,
    confirmPhone: phone.confirm,
    removePhone: phone.remove,
    cancelPhoneVerification: phone.cancel,
  };
}

export type AccountService = ReturnType<typeof createAccountService>;
