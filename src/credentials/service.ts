// The password lifecycle around the users service: policy state at sign-in (expired, temporary),
// changing a password, reset by mail with a single-use token, an administrator's reset (a link, or
// a one-time password to be changed at the next sign-in), e-mail verification and registration.
//
// Tokens are 32 random bytes, stored only as their SHA-256 digest, single use and short-lived.
// Whether an address is known never shows: the answers and their timing are the same, and mail
// goes out in the background.
import type { Database } from '../store/database.ts';
import type { HotStore } from '../store/hot-store.ts';
import type { UserService, User } from '../users/service.ts';
import type { TenantService, Tenant } from '../tenants/service.ts';
import type { Views } from '../http/views.ts';
import type { Mailer } from '../mail/mailer.ts';
import { renderMail, type MailTemplate } from '../mail/templates.ts';
import { brandingFor } from '../tenants/branding.ts';
import { DEFAULT_LOCALE, isLocale, type Locale } from '../i18n/catalogues.ts';
import { randomToken, sha256Hex } from '../security/crypto.ts';
import { createAttemptLimiter } from '../security/attempt-limiter.ts';
import { withTenant } from '../store/tenant-scope.ts';
import { ConflictError, NotFoundError, ValidationError } from '../errors.ts';
import { isUuid } from '../ids.ts';
import { tokenQueries, type TokenPurpose } from './queries.ts';
import { generateTemporaryPassword, PasswordPolicyError, MAX_PASSWORD_LENGTH } from '../security/password-policy.ts';
import { MAX_EMAIL } from '../users/validation.ts';
import type { AuditEvent, AuditPerson, AuditService } from '../audit/service.ts';
import type { OutboxService } from '../outbox/service.ts';
import type { RequestContext } from '../audit/origin.ts';
import type { Knex } from 'knex';
import { identifierDigest, type BruteForceProtection } from '../security/brute-force.ts';
import { createRateLimiter } from '../security/rate-limiter.ts';

export const RESET_TOKEN_TTL_SECONDS = 30 * 60;
export const VERIFICATION_TOKEN_TTL_SECONDS = 24 * 3600;
export const UNLOCK_TOKEN_TTL_SECONDS = 30 * 60;
// More usable reset links than this at once and no further one is sent (mail flooding).
const MAX_USABLE_LINKS = 3;
// At most one "already registered" mail per address in this window, however often it registers.
const ALREADY_REGISTERED_WINDOW_SECONDS = 15 * 60;
// randomToken(32): 43 base64url characters.
const TOKEN = /^[A-Za-z0-9_-]{43}$/;

export interface CredentialServiceDependencies {
  db: Database;
  users: UserService;
  tenants: TenantService;
  mailer: Mailer;
  views: Views;
  // Remembers recently sent notices (mail flooding).
  hot: HotStore;
  // Base URL of the links in mails.
  issuer: string;
  // Password changes, resets and registrations are recorded in the transaction that makes them.
  audit: Pick<AuditService, 'record'>;
  outbox: Pick<OutboxService, 'enqueue'>;
  // Ends every session, grant and token of the user (after a reset: the old password may be known).
  onAccessRevoked(userId: string, context?: { tenantId: string; reason: 'password_reset' }): Promise<void>;
  // Sign-in lockouts (src/security/brute-force.ts): unlock links go only to locked accounts.
  lockouts?: Pick<BruteForceProtection, 'lockStatus' | 'accountsOf' | 'unlock'>;
  // Reset and unlock requests per address typed (whoever asks), per window; unset: 5 per 15 minutes.
  identifierLimit?: { points: number; windowSeconds: number };
}

// A request refused because its address was asked for too often lately.
export interface RequestLimited {
  limited: true;
  retryAfterSeconds: number;
}

// Who made an administrator's change, and from where.
export interface AdminActor {
  actor: AuditPerson;
  context?: RequestContext;
}

export interface PasswordState {
  mustChange: boolean;
  reason?: 'expired' | 'temporary';
}

// Where a person asks for a reset link: the tenant's own page, or the platform's.
export function forgotPasswordPath(tenant: Pick<Tenant, 'platform' | 'slug'> | undefined): string {
  return tenant && !tenant.platform ? `/password/forgot?tenant=${encodeURIComponent(tenant.slug)}` : '/password/forgot';
}

function localeOf(value: unknown): Locale {
  const primary = typeof value === 'string' ? value.split(/[-_]/)[0].toLowerCase() : undefined;
  return isLocale(primary) ? primary : DEFAULT_LOCALE;
}

function wrongCurrentPassword(): ValidationError {
  return new ValidationError('the current password is not correct', { currentPassword: 'is not correct' });
}

export function createCredentialService(deps: CredentialServiceDependencies) {
  const { db, users, tenants, mailer, views, issuer, audit } = deps;
  const alreadyRegisteredNotices = createAttemptLimiter(deps.hot, { name: 'already-registered-mail', limit: 1, windowSeconds: ALREADY_REGISTERED_WINDOW_SECONDS });
  const identifierLimit = deps.identifierLimit ?? { points: 5, windowSeconds: 900 };
  const resetRequests = createRateLimiter(deps.hot, { name: 'password-reset-identifier', points: identifierLimit.points, durationSeconds: identifierLimit.windowSeconds });
  const unlockRequests = createRateLimiter(deps.hot, { name: 'unlock-identifier', points: identifierLimit.points, durationSeconds: identifierLimit.windowSeconds });

  // Counts a request for this address (digest only); the refusal when over the limit.
  async function overLimit(limiter: typeof resetRequests, scope: string, address: string): Promise<RequestLimited | undefined> {
    const decision = await limiter.consume(identifierDigest(scope, address));
    return decision.allowed ? undefined : { limited: true, retryAfterSeconds: decision.retryAfterSeconds };
  }

  function self(user: Pick<User, 'id' | 'email'>): AuditPerson {
    return { type: 'user', id: user.id, email: user.email };
  }

  // A password change's audit entry, written inside the transaction that sets the password.
  function recordingIn(event: Omit<AuditEvent, 'outcome'>): (trx: Knex.Transaction) => Promise<boolean> {
    return async (trx) => {
      await audit.record(trx, { ...event, outcome: 'success' });
      return true;
    };
  }

  function link(path: string, token?: string): string {
    return token ? `${issuer}${path}?token=${encodeURIComponent(token)}` : `${issuer}${path}`;
  }

  function forgotLink(tenant: Tenant): string {
    return `${issuer}${forgotPasswordPath(tenant)}`;
  }

  // True for the first notice to this address in the window; the address is kept only as a digest.
  function firstNoticeInWindow(tenantId: string, email: string): Promise<boolean> {
    return alreadyRegisteredNotices.take(`${tenantId}:${sha256Hex(email.toLowerCase())}`);
  }

  function mail(tenant: Tenant, template: MailTemplate, to: string, context: Record<string, unknown>, locale: unknown): void {
    const message = renderMail(views, template, to, { email: to, ...context }, { locale: localeOf(locale), branding: brandingFor(tenant) });
    mailer.sendInBackground(message, template);
  }

  // A new token for the user: only its digest is stored; the token itself goes into the mail.
  // With `recorded`, the audit entry is written in the token's transaction.
  async function issueToken(user: User, purpose: TokenPurpose, ttlSeconds: number, options: { limit?: number; recorded?: Omit<AuditEvent, 'outcome'> } = {}): Promise<string | undefined> {
    const token = randomToken(32);
    const issued = await withTenant(db, user.tenantId, async (trx) => {
      await tokenQueries.discard(trx, user.tenantId, user.id, purpose, 'spent');
      if (options.limit !== undefined && (await tokenQueries.countUsable(trx, user.tenantId, user.id, purpose)) >= options.limit) return false;
      await tokenQueries.insert(trx, { tenantId: user.tenantId, userId: user.id, purpose, tokenHash: sha256Hex(token), email: user.email, ttlSeconds });
      if (options.recorded) await audit.record(trx, { ...options.recorded, outcome: 'success' });
      return true;
    });
    return issued ? token : undefined;
  }

  async function sendResetLink(tenant: Tenant, user: User, locale: unknown, recorded: Omit<AuditEvent, 'outcome'>, limit?: number): Promise<void> {
    const token = await issueToken(user, 'password_reset', RESET_TOKEN_TTL_SECONDS, { limit, recorded });
    if (!token) return;
    mail(tenant, 'password-reset', user.email, { link: link('/password/reset', token), minutes: RESET_TOKEN_TTL_SECONDS / 60 }, locale);
  }

  function notifyPasswordChanged(tenant: Tenant, user: User, locale: unknown): void {
    mail(tenant, 'password-changed', user.email, { link: forgotLink(tenant) }, locale ?? user.locale);
  }

  // The new password must differ from the one it replaces, also where the policy keeps no history.
  async function refuseCurrent(tenantId: string, userId: string, newPassword: string): Promise<void> {
    if (typeof newPassword === 'string' && newPassword.length <= MAX_PASSWORD_LENGTH && (await users.verifyPassword(tenantId, userId, newPassword))) {
      throw new PasswordPolicyError([{ code: 'reused', params: { count: 1 } }]);
    }
  }

  function usableToken(token: unknown): token is string {
    return typeof token === 'string' && TOKEN.test(token);
  }

  const service = {
    // What the sign-in must ask for after the password was verified.
    async passwordState(tenantId: string, userId: string): Promise<PasswordState> {
      const status = await users.passwordStatus(tenantId, userId);
      if (!status.hasPassword) return { mustChange: false };
      if (status.mustChange) return { mustChange: true, reason: 'temporary' };
      const { maxAgeDays } = (await tenants.get(tenantId)).policies.password;
      if (maxAgeDays > 0) {
        const changed = status.changedAt?.getTime() ?? 0;
        if (changed < Date.now() - maxAgeDays * 86_400_000) return { mustChange: true, reason: 'expired' };
      }
      return { mustChange: false };
    },

    // The person changes their password, proving the current one.
    async changePassword(tenantId: string, userId: string, currentPassword: string, newPassword: string, locale?: string, context?: RequestContext): Promise<void> {
      const user = await users.get(tenantId, userId);
      const event = { tenantId, type: 'password.change', actor: self(user), target: self(user), context };
      if (typeof currentPassword !== 'string' || !currentPassword || !(await users.verifyPassword(tenantId, userId, currentPassword))) {
        await audit.record(undefined, { ...event, outcome: 'failure', details: { via: 'account', reason: 'invalid_current_password' } });
        throw wrongCurrentPassword();
      }
      if (currentPassword === newPassword) throw new PasswordPolicyError([{ code: 'reused', params: { count: 1 } }]);
      await users.setPassword(tenantId, userId, newPassword, { precondition: recordingIn({ ...event, details: { via: 'account' } }) });
      notifyPasswordChanged(await tenants.get(tenantId), user, locale);
    },

    // A forced change during sign-in (expired or temporary password): the first factor was just
    // verified, so no current password is asked again. Clears the temporary flag.
    async setPassword(tenantId: string, userId: string, newPassword: string, locale?: string, context?: RequestContext): Promise<void> {
      await refuseCurrent(tenantId, userId, newPassword);
      const user = await users.get(tenantId, userId);
      const recorded = recordingIn({ tenantId, type: 'password.change', actor: self(user), target: self(user), details: { via: 'sign_in' }, context });
      await users.setPassword(tenantId, userId, newPassword, { mustChange: false, precondition: recorded });
      notifyPasswordChanged(await tenants.get(tenantId), user, locale);
    },

    // Sends a reset link if an active user of the tenant has this address. The same answer either
    // way, in the same time: the look-up, the token and the mail all happen after the answer
    // (mailer.idle() waits for them). At most MAX_USABLE_LINKS usable links at once.
    // Refused (whether the address exists or not) when it was asked for too often lately.
    async requestPasswordReset(tenantId: string, email: string, locale?: string, context?: RequestContext): Promise<RequestLimited | undefined> {
      if (typeof email !== 'string' || !email.trim() || email.length > MAX_EMAIL || !isUuid(tenantId)) return;
      const tenant = await tenants.get(tenantId);
      if (tenant.status !== 'active') return;
      const address = email.trim();
      const limited = await overLimit(resetRequests, tenantId, address);
      if (limited) return limited;
      mailer.inBackground('password-reset', async () => {
        const { items } = await users.list(tenantId, { email: address, limit: 1 });
        const user = items.find((candidate) => candidate.status === 'active');
        if (!user) return;
        // Recorded only when a link is issued: an unknown address leaves nothing to tell apart.
        const recorded = { tenantId, type: 'password.reset.request', actor: self(user), target: self(user), details: { via: 'email' }, context };
        await sendResetLink(tenant, user, locale ?? user.locale, recorded, MAX_USABLE_LINKS);
      });
    },

    // Sends an unlock link to each account this identifier names in the scope (a tenant id, or
    // "open") whose sign-in is locked for a while. A permanent lockout gets no link (an
    // administrator lifts it); an unknown or unlocked identifier gets nothing. The same answer
    // either way, in the same time: the look-up and the mail happen after it.
    async requestAccountUnlock(scope: string, identifier: string, locale?: string, context?: RequestContext): Promise<RequestLimited | undefined> {
      const lockouts = deps.lockouts;
      if (!lockouts || typeof identifier !== 'string' || !identifier.trim() || identifier.length > MAX_EMAIL) return;
      const limited = await overLimit(unlockRequests, scope, identifier);
      if (limited) return limited;
      mailer.inBackground('account-unlock', async () => {
        const lock = await lockouts.lockStatus(scope, identifier);
        if (!lock || lock.permanent) return;
        for (const user of await lockouts.accountsOf(scope, identifier)) {
          if (user.status !== 'active') continue;
          const tenant = await tenants.get(user.tenantId);
          const recorded = { tenantId: user.tenantId, type: 'security.unlock.request', actor: self(user), target: self(user), details: { via: 'email' }, context };
          const token = await issueToken(user, 'account_unlock', UNLOCK_TOKEN_TTL_SECONDS, { limit: MAX_USABLE_LINKS, recorded });
          if (token) mail(tenant, 'account-unlock', user.email, { link: link('/unlock', token), minutes: UNLOCK_TOKEN_TTL_SECONDS / 60 }, locale ?? user.locale);
        }
      });
    },

    async inspectUnlockToken(token: unknown): Promise<{ tenantId: string } | undefined> {
      if (!usableToken(token)) return undefined;
      const row = await tokenQueries.findUsable(db, sha256Hex(token), 'account_unlock');
      return row ? { tenantId: row.tenant_id } : undefined;
    },

    // Uses the unlock link up and lifts the account's temporary lockout; 'invalid' for a used,
    // expired or unknown link, or an account an administrator must unlock.
    async unlockAccount(token: string, context?: RequestContext): Promise<'ok' | 'invalid'> {
      if (!usableToken(token) || !deps.lockouts) return 'invalid';
      const digest = sha256Hex(token);
      const found = await tokenQueries.findUsable(db, digest, 'account_unlock');
      if (!found) return 'invalid';
      const consumed = await withTenant(db, found.tenant_id, (trx) => tokenQueries.consume(trx, digest, 'account_unlock'));
      if (!consumed) return 'invalid';
      try {
        const person: AuditPerson = { type: 'user', id: consumed.user_id };
        return (await deps.lockouts.unlock(consumed.tenant_id, consumed.user_id, { via: 'email', origin: { actor: person, context } })) === 'unlocked' ? 'ok' : 'invalid';
      } catch (error) {
        // The user was deleted since the link was sent.
        if (error instanceof NotFoundError) return 'invalid';
        throw error;
      }
    },

    // Whether a reset link can still be used (the form shows, nothing is consumed), and whose
    // tenant it belongs to (for the branding).
    async inspectResetToken(token: unknown): Promise<{ tenantId: string } | undefined> {
      if (!usableToken(token)) return undefined;
      const row = await tokenQueries.findUsable(db, sha256Hex(token), 'password_reset');
      return row ? { tenantId: row.tenant_id } : undefined;
    },

    // Sets the new password and uses the token up, in one transaction: a refused password leaves
    // the link usable. Afterwards every session of the user ends and the user's other links die.
    async resetPassword(token: string, newPassword: string, locale?: string, context?: RequestContext): Promise<'ok' | 'invalid'> {
      if (!usableToken(token)) return 'invalid';
      const digest = sha256Hex(token);
      const found = await tokenQueries.findUsable(db, digest, 'password_reset');
      if (!found) return 'invalid';
      let done: boolean;
      try {
        done = await users.setPassword(found.tenant_id, found.user_id, newPassword, {
          mustChange: false,
          precondition: async (trx) => {
            const consumed = await tokenQueries.consume(trx, digest, 'password_reset');
            if (!consumed) return false;
            await tokenQueries.discard(trx, found.tenant_id, found.user_id, 'password_reset', 'all');
            const person: AuditPerson = { type: 'user', id: found.user_id };
            await audit.record(trx, { tenantId: found.tenant_id, type: 'password.reset.complete', outcome: 'success', actor: person, target: person, details: { via: 'email' }, context });
            return true;
          },
        });
      } catch (error) {
        // The user was deleted since the link was sent.
        if (error instanceof NotFoundError) return 'invalid';
        throw error;
      }
      if (!done) return 'invalid';
      // The mail reached its owner: the address is proven, if it is still the user's.
      if (found.email) await users.markEmailVerified(found.tenant_id, found.user_id, found.email);
      await deps.onAccessRevoked(found.user_id, { tenantId: found.tenant_id, reason: 'password_reset' });
      const user = await users.get(found.tenant_id, found.user_id);
      notifyPasswordChanged(await tenants.get(found.tenant_id), user, locale ?? user.locale);
      return 'ok';
    },

    // An administrator resets a user's password: by mail (a reset link), or by a generated one-time
    // password the user must replace at the next sign-in (the old password and sessions end).
    // `by` names the administrator for the audit entry (password.admin_reset, same transaction).
    async adminReset(tenantId: string, userId: string, mode: 'email' | 'temporary', locale?: string, by?: AdminActor): Promise<{ temporaryPassword?: string }> {
      const user = await users.get(tenantId, userId);
      const tenant = await tenants.get(tenantId);
      const recorded = (details: Record<string, unknown>) => ({ tenantId, type: 'password.admin_reset', actor: by?.actor, target: self(user), details, context: by?.context });
      if (mode === 'email') {
        await sendResetLink(tenant, user, locale ?? user.locale, recorded({ mode: 'email' }));
        return {};
      }
      if (mode !== 'temporary') throw new ValidationError("mode must be 'email' or 'temporary'", { mode: "one of 'email', 'temporary'" });
      const temporaryPassword = generateTemporaryPassword(tenant.policies.password);
      await users.setPassword(tenantId, userId, temporaryPassword, { mustChange: true, precondition: recordingIn(recorded({ mode: 'temporary' })) });
      await deps.onAccessRevoked(userId, { tenantId, reason: 'password_reset' });
      return { temporaryPassword };
    },

    async sendEmailVerification(tenantId: string, userId: string, locale?: string): Promise<void> {
      const user = await users.get(tenantId, userId);
      if (user.emailVerified) return;
      const tenant = await tenants.get(tenantId);
      const token = await issueToken(user, 'email_verification', VERIFICATION_TOKEN_TTL_SECONDS, { limit: MAX_USABLE_LINKS });
      if (!token) return;
      mail(tenant, 'email-verification', user.email, { link: link('/email/verify', token), hours: VERIFICATION_TOKEN_TTL_SECONDS / 3600 }, locale ?? user.locale);
    },

    // Whose tenant a verification link belongs to, without using it up.
    async inspectVerificationToken(token: unknown): Promise<{ tenantId: string } | undefined> {
      if (!usableToken(token)) return undefined;
      const row = await tokenQueries.findUsable(db, sha256Hex(token), 'email_verification');
      return row ? { tenantId: row.tenant_id } : undefined;
    },

    async verifyEmail(token: string): Promise<'ok' | 'invalid'> {
      if (!usableToken(token)) return 'invalid';
      const digest = sha256Hex(token);
      const found = await tokenQueries.findUsable(db, digest, 'email_verification');
      if (!found) return 'invalid';
      const consumed = await withTenant(db, found.tenant_id, (trx) => tokenQueries.consume(trx, digest, 'email_verification'));
      if (!consumed?.email) return 'invalid';
      return (await users.markEmailVerified(consumed.tenant_id, consumed.user_id, consumed.email)) ? 'ok' : 'invalid';
    },

    // Self-registration. An address already registered is not an error the visitor sees: its
    // owner gets a mail ("sign in or reset your password"), at most one per window, and the answer
    // is the same as for a new account. Password policy problems are reported: they reveal nothing
    // about other accounts.
    async register(tenantId: string, input: { email: string; password: string; name?: string }, locale?: string, context?: RequestContext): Promise<void> {
      const registration = { email: input?.email, password: input?.password, ...(input?.name ? { name: input.name } : {}) };
      let user: User;
      try {
        // The entry and the event commit with the new account (the users service's transaction).
        user = await users.selfRegister(tenantId, registration, {
          inserted: async (trx, created) => {
            await audit.record(trx, { tenantId, type: 'user.register', outcome: 'success', actor: self(created), target: self(created), details: { via: 'self_registration' }, context });
            await deps.outbox.enqueue(trx, { tenantId, type: 'user.registered', data: { userId: created.id, email: created.email } });
          },
        });
      } catch (error) {
        if (!(error instanceof ConflictError) || !error.fields?.email) throw error;
        const address = input.email.trim();
        if (await firstNoticeInWindow(tenantId, address)) {
          const tenant = await tenants.get(tenantId);
          mail(tenant, 'already-registered', address, { link: forgotLink(tenant) }, locale);
        }
        return;
      }
      // Always: the address is confirmed either way (email_verified), and a new account and a
      // taken address both get exactly one mail.
      await service.sendEmailVerification(tenantId, user.id, locale);
    },

    async emailVerificationRequired(tenantId: string): Promise<boolean> {
      return (await tenants.get(tenantId)).policies.emailVerification === 'required';
    },
  };
  return service;
}

export type CredentialService = ReturnType<typeof createCredentialService>;
