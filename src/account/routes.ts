// The account pages under /account: profile, password, two-factor authentication, sessions and
// devices, linked identities, sign-out. Thin handlers: read the form, call the account service,
// render or redirect (post/redirect/get, with a notice named in the query).
import Router from '@koa/router';
import { parsedBody } from '../http/body.ts';
import type { Context, Next } from 'koa';
import type { ProviderHost } from '../oidc/provider-host.ts';
import type { UserService, User, UserProfileInput } from '../users/service.ts';
import type { TenantService } from '../tenants/service.ts';
import type { Views } from '../http/views.ts';
import { requestLocale } from '../http/views.ts';
import { csrfProtection, formField } from '../http/csrf.ts';
import { isLocale } from '../i18n/catalogues.ts';
import { brandingFor } from '../tenants/branding.ts';
import { DomainError, TooManyAttemptsError, ValidationError } from '../errors.ts';
import type { AccountService } from './service.ts';
import { accountSessions, type AccountSession } from './account-session.ts';
import { authorizationUrl, endSessionUrl, newVerifier, redeemCode } from './login.ts';
import type { HotStore } from '../store/hot-store.ts';
import { PasswordPolicyError, translatePasswordProblems } from '../security/password-policy.ts';
import { requestContext } from '../audit/origin.ts';
import { fieldHint, fieldHints } from '../i18n/field-hints.ts';
import { PhoneCodeWaitError } from './phone.ts';

export interface AccountRouteDependencies {
  issuer: string;
  account: AccountService;
  providerHost: ProviderHost;
  users: UserService;
  tenants: TenantService;
  hot: HotStore;
  views: Views;
  csrfKey: string;
  // How long a one-time code works, for the phone page's "expires in" (src/otp).
  codeTtlSeconds: number;
}

interface Signed {
  session: AccountSession;
  user: User;
}

// Removing or re-creating a second factor needs a sign-in at most this old.
export const REAUTH_SECONDS = 5 * 60;

const SECTIONS = ['', '/password', '/mfa', '/sessions', '/identities', '/phone'] as const;
const NOTICES = new Set(['profileSaved', 'passwordChanged', 'mfaRemoved', 'sessionEnded', 'otherSessionsEnded', 'identityRemoved', 'phoneCodeSent', 'phoneVerified', 'phoneRemoved']);
const PROFILE_FORM: ReadonlyArray<keyof UserProfileInput> = ['givenName', 'familyName', 'name', 'nickname', 'website', 'birthdate', 'zoneinfo', 'locale'];
const MAX_FIELD = 1024;

function safeReturnPath(value: unknown): string {
  return typeof value === 'string' && /^\/account(\/(password|mfa|sessions|identities|phone))?$/.test(value) ? value : '/account';
}


function epochSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

export function accountRoutes(deps: AccountRouteDependencies): Router {
  const { account, providerHost, users, tenants, views, issuer } = deps;
  const sessions = accountSessions(deps.hot);
  const router = new Router({ prefix: '/account' });
  router.use(parsedBody({ enableTypes: ['form'], formLimit: '16kb' }));
  router.use(csrfProtection(deps.csrfKey));
  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  });

  const t = (ctx: Context) => views.translator(ctx);

  function errorPage(ctx: Context, status: number, key: string): void {
    views.page(ctx, 'error.njk', { error: key, description: t(ctx)(`account.${key}`) }, status);
  }

  // Sends the browser through the provider's authorization endpoint, to come back to `returnTo`.
  async function signIn(ctx: Context, returnTo: string, options: { tenant?: string; loginHint?: string; reauthenticate?: boolean } = {}): Promise<void> {
    const verifier = newVerifier();
    const state = await sessions.beginLogin(ctx, { verifier, returnTo });
    ctx.status = 303;
    ctx.redirect(authorizationUrl(providerHost.provider, { issuer, state, verifier, ...options }));
  }

  // The signed-in person, or a sign-in first. The account session lasts only as long as the
  // provider session it came from (within the tenant's idle and absolute limits) and the user's
  // access (a suspended user is out at once).
  async function signedIn(ctx: Context, next: Next): Promise<void> {
    const session = await sessions.current(ctx);
    const owner = session ? await providerHost.sessionAccount(session.sid) : undefined;
    const found = session && owner === session.userId ? await users.findById(session.userId) : undefined;
    const user = found && found.tenantId === session!.tenantId && !(await account.sessionExpired(found.tenantId, session!.sid)) ? found : undefined;
    if (!session || !user) {
      if (session) await sessions.end(ctx);
      const tenant = typeof ctx.query.tenant === 'string' && ctx.query.tenant.length <= 64 ? ctx.query.tenant : undefined;
      return signIn(ctx, ctx.method === 'GET' ? safeReturnPath(ctx.path) : '/account', { tenant });
    }
    const tenant = await tenants.get(user.tenantId);
    ctx.state.branding = brandingFor(tenant);
    const preferred = user.locale?.split('-')[0].toLowerCase();
    if (isLocale(preferred)) ctx.state.locale = preferred;
    ctx.state.account = { session, user } satisfies Signed;
    await next();
  }

  function signed(ctx: Context): Signed {
    return ctx.state.account as Signed;
  }

  // Sensitive changes need a recent sign-in; otherwise a fresh one, back to the section's page.
  async function recentlySignedIn(ctx: Context, returnTo: string): Promise<boolean> {
    const { session, user } = signed(ctx);
    if (epochSeconds() - session.authTime <= REAUTH_SECONDS) return true;
    const tenant = await tenants.get(user.tenantId);
    await signIn(ctx, returnTo, { tenant: tenant.slug, loginHint: user.email, reauthenticate: true });
    return false;
  }

  function page(ctx: Context, name: string, section: (typeof SECTIONS)[number], context: Record<string, unknown> = {}, status?: number): void {
    const notice = typeof ctx.query.notice === 'string' && NOTICES.has(ctx.query.notice) ? ctx.query.notice : undefined;
    views.page(ctx, name, { section, notice, user: signed(ctx).user, ...context }, status);
  }

  function done(ctx: Context, path: string, notice: string): void {
    ctx.status = 303;
    ctx.redirect(`${path}?notice=${notice}`);
  }

  function formatTime(ctx: Context, date: Date): string {
    return new Intl.DateTimeFormat(requestLocale(ctx), { dateStyle: 'medium', timeStyle: 'short' }).format(date);
  }

  // ---- sign-in and sign-out ------------------------------------------------------------------

  router.get('/callback', async (ctx) => {
    const pending = await sessions.finishLogin(ctx, ctx.query.state);
    if (!pending) return errorPage(ctx, 400, 'loginExpired');
    if (ctx.query.error) return errorPage(ctx, 400, 'signInFailed');
    const login = await redeemCode(providerHost.provider, issuer, ctx.query.code, pending.verifier);
    const user = login ? await users.findById(login.accountId) : undefined;
    if (!login || !user) return errorPage(ctx, 400, 'loginExpired');
    await sessions.start(ctx, { tenantId: user.tenantId, userId: user.id, sid: login.sessionUid, authTime: login.authTime, amr: login.amr });
    ctx.status = 303;
    ctx.redirect(safeReturnPath(pending.returnTo));
  });

  router.get('/signed-out', (ctx) => {
    views.page(ctx, 'account-signed-out.njk');
  });

  router.post('/logout', async (ctx) => {
    await sessions.end(ctx);
    ctx.status = 303;
    ctx.redirect(endSessionUrl(providerHost.provider, issuer));
  });

  // ---- profile -------------------------------------------------------------------------------

  function profileValues(user: User): Record<string, string> {
    return Object.fromEntries(PROFILE_FORM.map((field) => [field, (user[field as keyof User] as string | null) ?? '']));
  }

  router.get('/', signedIn, (ctx) => {
    const { user } = signed(ctx);
    page(ctx, 'account-profile.njk', '', { values: profileValues(user), version: user.version });
  });

  router.post('/profile', signedIn, async (ctx) => {
    const { session, user } = signed(ctx);
    const patch: Record<string, string | null> = {};
    const values: Record<string, string> = {};
    for (const field of PROFILE_FORM) {
      const value = (formField(ctx, field) ?? '').slice(0, MAX_FIELD);
      values[field] = value;
      patch[field] = value.trim() === '' ? null : value.trim();
    }
    const version = Number(formField(ctx, 'version'));
    try {
      await account.updateProfile(session.tenantId, session.userId, version, patch as UserProfileInput);
    } catch (error) {
      if (!(error instanceof DomainError) || error.status >= 500) throw error;
      const stale = error.status === 412;
      return page(ctx, 'account-profile.njk', '', { values, version: stale ? user.version : version, errors: fieldHints(error.fields, t(ctx)), error: stale ? 'profileStale' : 'formInvalid' }, error.status === 412 ? 409 : 422);
    }
    done(ctx, '/account', 'profileSaved');
  });

  // ---- password ------------------------------------------------------------------------------

  router.get('/password', signedIn, (ctx) => {
    page(ctx, 'account-password.njk', '/password');
  });

  router.post('/password', signedIn, async (ctx) => {
    const { session } = signed(ctx);
    const currentPassword = formField(ctx, 'currentPassword') ?? '';
    const newPassword = formField(ctx, 'newPassword') ?? '';
    const confirmation = formField(ctx, 'confirmPassword') ?? '';
    try {
      if (newPassword !== confirmation) throw new ValidationError('the passwords differ', { confirmPassword: 'mismatch' });
      await account.changePassword(session.tenantId, session.userId, currentPassword, newPassword, { locale: requestLocale(ctx), currentSid: session.sid, context: requestContext(ctx) });
    } catch (error) {
      if (error instanceof TooManyAttemptsError) {
        ctx.set('Retry-After', String(error.retryAfterSeconds));
        return page(ctx, 'account-password.njk', '/password', { errors: { currentPassword: t(ctx)('account.tooManyAttempts') }, error: 'tooManyAttempts' }, 429);
      }
      if (!(error instanceof DomainError) || error.status >= 500) throw error;
      return page(ctx, 'account-password.njk', '/password', { errors: passwordErrors(ctx, error), error: 'formInvalid' }, 422);
    }
    done(ctx, '/account/password', 'passwordChanged');
  });

  // The credentials service words its problems for the API; the page says them in the reader's
  // language (policy problems by their codes).
  function passwordErrors(ctx: Context, error: DomainError): Record<string, string> {
    const translate = t(ctx);
    if (error instanceof PasswordPolicyError) return { newPassword: translatePasswordProblems(error.problems, translate) };
    const errors: Record<string, string> = {};
    for (const [field, message] of Object.entries(error.fields ?? { newPassword: error.message })) {
      const name = field === 'password' ? 'newPassword' : field;
      if (name === 'confirmPassword') errors.confirmPassword = translate('account.passwordMismatch');
      else if (message === 'required') errors[name] = translate('account.fieldRequired');
      else if (name === 'currentPassword') errors.currentPassword = translate('password.problem.currentWrong');
      else errors[name] = fieldHint(field, message, translate);
    }
    return errors;
  }

  // ---- two-factor authentication --------------------------------------------------------------

  async function mfaPage(ctx: Context, context: Record<string, unknown> = {}, status?: number): Promise<void> {
    const { session } = signed(ctx);
    const status_ = await account.mfaStatus(session.tenantId, session.userId);
    page(ctx, 'account-mfa.njk', '/mfa', { mfa: { ...status_, confirmedAt: status_.confirmedAt && formatTime(ctx, status_.confirmedAt) }, ...context }, status);
  }

  router.get('/mfa', signedIn, (ctx) => mfaPage(ctx));

  router.post('/mfa/enrol', signedIn, async (ctx) => {
    if (!(await recentlySignedIn(ctx, '/account/mfa'))) return;
    const { session } = signed(ctx);
    const enrolment = await account.beginTotpEnrolment(session.tenantId, session.userId);
    await mfaPage(ctx, { enrolment: { secret: enrolment.secret, qrSvg: enrolment.qrSvg } });
  });

  router.post('/mfa/confirm', signedIn, async (ctx) => {
    const { session } = signed(ctx);
    let confirmed;
    try {
      confirmed = await account.confirmTotpEnrolment(session.tenantId, session.userId, formField(ctx, 'code') ?? '', requestContext(ctx));
    } catch (error) {
      if (!(error instanceof TooManyAttemptsError)) throw error;
      ctx.set('Retry-After', String(error.retryAfterSeconds));
      return mfaPage(ctx, { confirming: true, error: 'tooManyAttempts' }, 429);
    }
    if (!confirmed) return mfaPage(ctx, { confirming: true, codeError: true }, 422);
    await mfaPage(ctx, { backupCodes: confirmed.backupCodes });
  });

  router.post('/mfa/backup-codes', signedIn, async (ctx) => {
    if (!(await recentlySignedIn(ctx, '/account/mfa'))) return;
    const { session } = signed(ctx);
    try {
      const backupCodes = await account.regenerateBackupCodes(session.tenantId, session.userId, requestContext(ctx));
      await mfaPage(ctx, { backupCodes });
    } catch (error) {
      if (!(error instanceof DomainError) || error.status >= 500) throw error;
      await mfaPage(ctx, { error: 'backupCodesNeedTotp' }, 409);
    }
  });

  router.post('/mfa/remove', signedIn, async (ctx) => {
    if (!(await recentlySignedIn(ctx, '/account/mfa'))) return;
    const { session } = signed(ctx);
    await account.removeMfa(session.tenantId, session.userId, requestContext(ctx));
    done(ctx, '/account/mfa', 'mfaRemoved');
  });

  // ---- sessions and devices ------------------------------------------------------------------

  router.get('/sessions', signedIn, async (ctx) => {
    const { session } = signed(ctx);
    const list = await account.sessions(session.tenantId, session.userId, session.sid);
    page(ctx, 'account-sessions.njk', '/sessions', {
      sessions: list.map((item) => ({
        id: item.id,
        browser: item.browser,
        os: item.os,
        device: item.device,
        ip: item.ip,
        current: item.current,
        lastActive: formatTime(ctx, item.lastActiveAt),
        signedIn: formatTime(ctx, item.createdAt),
      })),
      others: list.some((item) => !item.current),
    });
  });

  router.post('/sessions/end-others', signedIn, async (ctx) => {
    const { session } = signed(ctx);
    await account.endOtherSessions(session.tenantId, session.userId, session.sid, requestContext(ctx));
    done(ctx, '/account/sessions', 'otherSessionsEnded');
  });

  router.post('/sessions/end-all', signedIn, async (ctx) => {
    const { session } = signed(ctx);
    await account.endAllSessions(session.tenantId, session.userId, session.sid, requestContext(ctx));
    await sessions.end(ctx);
    ctx.status = 303;
    ctx.redirect('/account/signed-out');
  });

  router.post('/sessions/:id/end', signedIn, async (ctx) => {
    const { session } = signed(ctx);
    const list = await account.sessions(session.tenantId, session.userId, session.sid);
    const target = list.find((item) => item.id === ctx.params.id);
    if (!target) return errorPage(ctx, 404, 'sessionNotFound');
    await account.endSession(session.tenantId, session.userId, target.id, requestContext(ctx));
    if (target.current) {
      await sessions.end(ctx);
      ctx.status = 303;
      ctx.redirect('/account/signed-out');
      return;
    }
    done(ctx, '/account/sessions', 'sessionEnded');
  });

  // ---- linked identities ---------------------------------------------------------------------

  async function identitiesPage(ctx: Context, context: Record<string, unknown> = {}, status?: number): Promise<void> {
    const { session } = signed(ctx);
    const identities = await account.identities(session.tenantId, session.userId);
    page(ctx, 'account-identities.njk', '/identities', {
      identities: identities.map((identity) => ({ ...identity, linkedAt: formatTime(ctx, identity.linkedAt) })),
      ...context,
    }, status);
  }

  router.get('/identities', signedIn, (ctx) => identitiesPage(ctx));

  router.post('/identities/:id/remove', signedIn, async (ctx) => {
    const { session } = signed(ctx);
    try {
      await account.removeIdentity(session.tenantId, session.userId, ctx.params.id);
    } catch (error) {
      if (!(error instanceof DomainError) || error.status >= 500) throw error;
      return identitiesPage(ctx, { error: error.status === 409 ? 'identityLastSignIn' : 'identityNotFound' }, error.status);
    }
    done(ctx, '/account/identities', 'identityRemoved');
  });

  // ---- phone number --------------------------------------------------------------------------

  async function phonePage(ctx: Context, context: Record<string, unknown> = {}, status?: number): Promise<void> {
    const { session } = signed(ctx);
    const phone = await account.phoneStatus(session.tenantId, session.userId);
    const minutes = Math.max(1, Math.round(deps.codeTtlSeconds / 60));
    page(ctx, 'account-phone.njk', '/phone', { phone, minutes, values: {}, errors: {}, ...context }, status);
  }

  // A refused send or resend: the field to fix, the cool-down or limit (Retry-After), or phone
  // codes being off for the tenant.
  async function phoneSendRefused(ctx: Context, error: unknown, values: Record<string, string>): Promise<void> {
    const translate = t(ctx);
    if (error instanceof PhoneCodeWaitError) {
      ctx.set('Retry-After', String(error.retryAfterSeconds));
      const wait = error.reason === 'cooldown' ? translate('account.phoneCodeWait', { seconds: error.retryAfterSeconds }) : translate('account.phoneCodeRateLimited', { minutes: Math.max(1, Math.ceil(error.retryAfterSeconds / 60)) });
      return phonePage(ctx, { values, wait }, 429);
    }
    if (!(error instanceof DomainError) || error.status >= 500) throw error;
    if (error.status === 403) return phonePage(ctx, {}, 403);
    if (error.status === 409) return phonePage(ctx, { error: 'phoneCodeExpired' }, 409);
    const errors: Record<string, string> = {};
    if (error.fields?.phoneNumber) errors.phoneNumber = translate(error.fields.phoneNumber === 'required' ? 'account.fieldRequired' : 'account.phoneInvalid');
    if (error.fields?.channel) errors.channel = translate('account.phoneChannelInvalid');
    return phonePage(ctx, { values, errors, error: 'formInvalid' }, 422);
  }

  router.get('/phone', signedIn, (ctx) => phonePage(ctx));

  // A verified number can be a second factor: setting one is as sensitive as an authenticator app.
  router.post('/phone/send', signedIn, async (ctx) => {
    if (!(await recentlySignedIn(ctx, '/account/phone'))) return;
    const { session } = signed(ctx);
    const values = { phoneNumber: (formField(ctx, 'phoneNumber') ?? '').slice(0, 64), channel: formField(ctx, 'channel') ?? '' };
    try {
      await account.requestPhoneCode(session.tenantId, session.userId, values, { ip: ctx.ip, locale: requestLocale(ctx) });
    } catch (error) {
      return phoneSendRefused(ctx, error, values);
    }
    done(ctx, '/account/phone', 'phoneCodeSent');
  });

  router.post('/phone/resend', signedIn, async (ctx) => {
    const { session } = signed(ctx);
    try {
      await account.resendPhoneCode(session.tenantId, session.userId, { ip: ctx.ip, locale: requestLocale(ctx) });
    } catch (error) {
      return phoneSendRefused(ctx, error, {});
    }
    done(ctx, '/account/phone', 'phoneCodeSent');
  });

  router.post('/phone/verify', signedIn, async (ctx) => {
    const { session } = signed(ctx);
    try {
      await account.confirmPhone(session.tenantId, session.userId, { code: formField(ctx, 'code') ?? '' }, requestContext(ctx));
    } catch (error) {
      if (!(error instanceof DomainError) || error.status >= 500) throw error;
      if (error.status === 403) return phonePage(ctx, {}, 403);
      if (error.status === 409) return phonePage(ctx, { error: 'phoneCodeExpired' }, 409);
      const required = error.fields?.code === 'required';
      return phonePage(ctx, { codeError: t(ctx)(required ? 'account.fieldRequired' : 'account.phoneCodeWrong') }, required ? 422 : 401);
    }
    done(ctx, '/account/phone', 'phoneVerified');
  });

  // "Use another number": forgets the code waiting.
  router.post('/phone/cancel', signedIn, async (ctx) => {
    const { session } = signed(ctx);
    await account.cancelPhoneVerification(session.tenantId, session.userId);
    ctx.status = 303;
    ctx.redirect('/account/phone');
  });

  router.post('/phone/remove', signedIn, async (ctx) => {
    const { session } = signed(ctx);
    try {
      await account.removePhone(session.tenantId, session.userId, requestContext(ctx));
    } catch (error) {
      if (!(error instanceof DomainError) || error.status >= 500) throw error;
      return phonePage(ctx, { error: 'phoneOnlySecondFactor' }, error.status);
    }
    done(ctx, '/account/phone', 'phoneRemoved');
  });

  return router;
}
