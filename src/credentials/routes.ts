// Public pages of the password lifecycle: forgot password, reset by link, e-mail verification by
// link. Opening a link (GET) never uses it up, since mail scanners follow links: only the form's
// POST does. No page redirects anywhere: afterwards the person returns to the application.
import Router from '@koa/router';
import { parsedBody } from '../http/body.ts';
import type { Context } from 'koa';
import type { Views } from '../http/views.ts';
import { requestLocale } from '../http/views.ts';
import { csrfProtection, formField } from '../http/csrf.ts';
import { translator } from '../i18n/catalogues.ts';
import type { TenantService, Tenant } from '../tenants/service.ts';
import { brandingFor } from '../tenants/branding.ts';
import { DEFAULT_TENANT_ID } from '../tenants/constants.ts';
import { DomainError } from '../errors.ts';
import { PasswordPolicyError, translatePasswordProblems, MAX_PASSWORD_LENGTH } from '../security/password-policy.ts';
import { MAX_EMAIL } from '../users/validation.ts';
import { forgotPasswordPath, RESET_TOKEN_TTL_SECONDS, type CredentialService } from './service.ts';
import { requestContext } from '../audit/origin.ts';

export interface CredentialRouteDependencies {
  credentials: CredentialService;
  tenants: TenantService;
  views: Views;
  csrfKey: string;
}

const MAX_SLUG = 63;

export function credentialRoutes(deps: CredentialRouteDependencies): Router {
  const { credentials, tenants, views } = deps;
  const router = new Router();
  const form = parsedBody({ enableTypes: ['form'], formLimit: '16kb' });
  const csrf = csrfProtection(deps.csrfKey);
  const noStore = async (ctx: Context, next: () => Promise<unknown>) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  };
  for (const path of ['/password/forgot', '/password/reset', '/email/verify', '/unlock']) router.use(path, noStore, form, csrf);

  const t = (ctx: Context) => translator(requestLocale(ctx));

  async function useTenant(ctx: Context, tenant: Tenant | undefined): Promise<void> {
    ctx.state.branding = brandingFor(tenant ?? (await tenants.get(DEFAULT_TENANT_ID)));
  }

  // The tenant named by ?tenant=<slug> (or the form field), else the platform tenant.
  async function forgotTenant(ctx: Context): Promise<Tenant | undefined> {
    const slug = (ctx.method === 'POST' ? formField(ctx, 'tenant') : undefined) ?? (typeof ctx.query.tenant === 'string' ? ctx.query.tenant : undefined);
    if (!slug) return tenants.get(DEFAULT_TENANT_ID);
    const tenant = slug.length <= MAX_SLUG ? await tenants.findBySlug(slug) : undefined;
    return tenant?.status === 'active' ? tenant : undefined;
  }

  async function unknownTenant(ctx: Context): Promise<void> {
    await useTenant(ctx, undefined);
    views.page(ctx, 'error.njk', { error: 'unknown_tenant', description: t(ctx)('common.errorDefault') }, 404);
  }

  router.get('/password/forgot', async (ctx) => {
    const tenant = await forgotTenant(ctx);
    if (!tenant) return unknownTenant(ctx);
    await useTenant(ctx, tenant);
    views.page(ctx, 'password-forgot.njk', { tenantSlug: tenant.platform ? '' : tenant.slug, email: '', errors: {} });
  });

  router.post('/password/forgot', async (ctx) => {
    const tenant = await forgotTenant(ctx);
    if (!tenant) return unknownTenant(ctx);
    await useTenant(ctx, tenant);
    const email = (formField(ctx, 'email') ?? '').trim();
    if (!email || email.length > MAX_EMAIL || !email.includes('@')) {
      return views.page(ctx, 'password-forgot.njk', { tenantSlug: tenant.platform ? '' : tenant.slug, email: email.slice(0, MAX_EMAIL), errors: { email: t(ctx)('password.forgot.emailRequired') } }, 400);
    }
    const limited = await credentials.requestPasswordReset(tenant.id, email, requestLocale(ctx), requestContext(ctx));
    if (limited) {
      // Too many requests for this address lately, whether it has an account or not.
      ctx.set('Retry-After', String(limited.retryAfterSeconds));
      return views.page(ctx, 'password-forgot.njk', { tenantSlug: tenant.platform ? '' : tenant.slug, email: email.slice(0, MAX_EMAIL), errors: { email: t(ctx)('password.forgot.tooMany') } }, 429);
    }
    views.page(ctx, 'password-forgot-sent.njk', { email, minutes: RESET_TOKEN_TTL_SECONDS / 60 });
  });

  async function showResetForm(ctx: Context, token: string, tenantId: string, errors: Record<string, string> = {}, status?: number) {
    const tenant = await tenants.get(tenantId);
    await useTenant(ctx, tenant);
    views.page(ctx, 'password-reset.njk', { token, minLength: tenant.policies.password.minLength, errors }, status);
  }

  async function showResetInvalid(ctx: Context, tenantId?: string) {
    const tenant = await tenants.get(tenantId ?? DEFAULT_TENANT_ID);
    await useTenant(ctx, tenant);
    views.page(ctx, 'password-reset-invalid.njk', { forgotUrl: forgotPasswordPath(tenant) }, 400);
  }

  router.get('/password/reset', async (ctx) => {
    const token = typeof ctx.query.token === 'string' ? ctx.query.token : '';
    const found = await credentials.inspectResetToken(token);
    if (!found) return showResetInvalid(ctx);
    await showResetForm(ctx, token, found.tenantId);
  });

  router.post('/password/reset', async (ctx) => {
    const token = formField(ctx, 'token') ?? '';
    const found = await credentials.inspectResetToken(token);
    if (!found) return showResetInvalid(ctx);
    const password = formField(ctx, 'password') ?? '';
    const messages = t(ctx);
    if (!password) return showResetForm(ctx, token, found.tenantId, { password: messages('password.reset.required') }, 400);
    if (password.length > MAX_PASSWORD_LENGTH) {
      return showResetForm(ctx, token, found.tenantId, { password: messages('password.problem.tooLong', { max: MAX_PASSWORD_LENGTH }) }, 422);
    }
    if (password !== formField(ctx, 'passwordConfirm')) return showResetForm(ctx, token, found.tenantId, { passwordConfirm: messages('password.reset.mismatch') }, 400);
    let result: 'ok' | 'invalid';
    try {
      result = await credentials.resetPassword(token, password, requestLocale(ctx), requestContext(ctx));
    } catch (error) {
      if (error instanceof PasswordPolicyError) {
        return showResetForm(ctx, token, found.tenantId, { password: translatePasswordProblems(error.problems, messages) }, 422);
      }
      // A shape problem the service found (too short for any policy, and so on).
      if (error instanceof DomainError && error.status < 500 && error.fields?.password) {
        return showResetForm(ctx, token, found.tenantId, { password: error.fields.password }, error.status);
      }
      throw error;
    }
    if (result === 'invalid') return showResetInvalid(ctx, found.tenantId);
    await useTenant(ctx, await tenants.get(found.tenantId));
    views.page(ctx, 'password-reset-done.njk');
  });

  async function showVerifyInvalid(ctx: Context) {
    await useTenant(ctx, undefined);
    views.page(ctx, 'email-verify-invalid.njk', {}, 400);
  }

  router.get('/email/verify', async (ctx) => {
    const token = typeof ctx.query.token === 'string' ? ctx.query.token : '';
    const found = await credentials.inspectVerificationToken(token);
    if (!found) return showVerifyInvalid(ctx);
    await useTenant(ctx, await tenants.get(found.tenantId));
    views.page(ctx, 'email-verify.njk', { token });
  });

  router.post('/email/verify', async (ctx) => {
    const token = formField(ctx, 'token') ?? '';
    const found = await credentials.inspectVerificationToken(token);
    if (!found || (await credentials.verifyEmail(token)) !== 'ok') return showVerifyInvalid(ctx);
    await useTenant(ctx, await tenants.get(found.tenantId));
    views.page(ctx, 'email-verified.njk');
  });

  // Unlock links from the sign-in lockout page's mail: the form confirms, the POST unlocks.
  router.get('/unlock', async (ctx) => {
    const token = typeof ctx.query.token === 'string' ? ctx.query.token : '';
    const found = await credentials.inspectUnlockToken(token);
    await useTenant(ctx, found ? await tenants.get(found.tenantId) : undefined);
    if (!found) return views.page(ctx, 'account-unlock-invalid.njk', {}, 400);
    views.page(ctx, 'account-unlock.njk', { token });
  });

  router.post('/unlock', async (ctx) => {
    const token = formField(ctx, 'token') ?? '';
    const found = await credentials.inspectUnlockToken(token);
    await useTenant(ctx, found ? await tenants.get(found.tenantId) : undefined);
    if (!found || (await credentials.unlockAccount(token, requestContext(ctx))) !== 'ok') return views.page(ctx, 'account-unlock-invalid.njk', {}, 400);
    views.page(ctx, 'account-unlock-done.njk');
  });

  return router;
}
