// After the first factor, what the sign-in still needs, in order: a second factor (when the person
// has one, the tenant's policy requires one, or the client asks for more assurance; set up on the
// spot when none exists), then a new password (expired or temporary, and only when the password was
// typed in this sign-in), then a verified e-mail address (when the tenant requires one). Then the
// provider gets the login with what was proved. The page shown is recorded as the step awaited, and
// only that step's form is accepted next.
import type { User } from '../users/service.ts';
import type { Tenant } from '../tenants/service.ts';
import { ACR_MFA, acrLevel, assuranceOf, requestedAcrLevel } from '../oidc/assurance.ts';
import type { AwaitedStep, LoginStateStore } from './state.ts';
import type { InteractionDependencies, Step } from './step.ts';
import { countLogin } from '../ops/metrics.ts';
import { requestContext } from '../audit/origin.ts';
import type { SignInAudit } from './sign-in-audit.ts';
import { secondFactorChannels } from './one-time-codes.ts';

export function createNextStep(deps: InteractionDependencies, states: LoginStateStore, signIns: SignInAudit) {
  const { views } = deps;

  function secondFactorRequired(step: Step, user: User, tenant: Tenant, enrolled: boolean): boolean {
    if (enrolled) return true;
    if (tenant.policies.mfa === 'all' || (tenant.policies.mfa === 'admins' && user.isAdmin)) return true;
    return requestedAcrLevel(step.interaction.params) >= acrLevel(ACR_MFA);
  }

  async function await_(step: Step, awaiting: AwaitedStep): Promise<void> {
    step.state.awaiting = awaiting;
    await states.save(step.interaction.uid, step.state);
  }

  return {
    async advance(step: Step): Promise<void> {
      const { ctx, interaction, state } = step;
      const uid = interaction.uid;
      // The reads the checks below may need start together with the user's; each is awaited
      // where it is needed, so a sign-in that stops earlier only leaves a read unused.
      const checkMfa = Boolean(state.user) && !state.amr.includes('mfa');
      const checkPassword = Boolean(state.user) && state.passwordEntered && !state.passwordChanged;
      const mfaStatus = checkMfa ? deps.mfa.status(state.user!.tenantId, state.user!.userId) : undefined;
      const passwordState = checkPassword ? deps.credentials.passwordState(state.user!.tenantId, state.user!.userId) : undefined;
      mfaStatus?.catch(() => {});
      passwordState?.catch(() => {});
      const user = state.user && (step.user?.id === state.user.userId ? step.user : await deps.users.findById(state.user.userId));
      const tenant = user && user.tenantId === state.user!.tenantId ? (step.tenant?.id === user.tenantId ? step.tenant : await deps.tenants.get(user.tenantId)) : undefined;
      if (!user || tenant?.status !== 'active') {
        // Suspended or deleted (the person or the tenant) while signing in: start again.
        await states.clear(uid);
        return views.page(ctx, 'error.njk', { error: 'login_required', description: views.translator(ctx)('login.startAgain') }, 400);
      }
      // The tenant's IP rules, once the tenant is certain: the person's, whichever way it was found.
      if (deps.ipRules && !(await deps.ipRules.check(tenant.id, 'login', ctx.ip, { actor: { type: 'user', id: user.id }, context: requestContext(ctx) }))) {
        await states.clear(uid);
        return views.page(ctx, 'error.njk', { error: 'access_denied', description: views.translator(ctx)('security.ipBlocked') }, 403);
      }

      if (mfaStatus) {
        const status = await mfaStatus;
        // A code by SMS, WhatsApp or e-mail to a verified number or address counts as a second
        // factor the person has (no app needs to be set up), but does not make one required.
        const codeChannels = secondFactorChannels(deps, tenant, user);
        if (secondFactorRequired(step, user, tenant, status.totp)) {
          if (status.totp || codeChannels.length) {
            await await_(step, 'second-factor');
            return views.page(ctx, 'login-mfa.njk', { uid, noTotp: !status.totp, codeChannels });
          }
          await await_(step, 'second-factor-enrolment');
          return this.showEnrolment(step, user, tenant);
        }
      }

      if (passwordState) {
        const password = await passwordState;
        if (password.mustChange) {
          await await_(step, 'password-change');
          return views.page(ctx, 'login-change-password.njk', { uid, reason: password.reason, errors: {} });
        }
      }

      if (!user.emailVerified && (await deps.credentials.emailVerificationRequired(tenant.id))) {
        await await_(step, 'email-verification');
        return views.page(ctx, 'login-verify-email.njk', { uid, email: user.email });
      }

      await states.clear(uid);
      // The tenant's session policy: concurrent-session limit, remember-me (src/sessions).
      const admission = await deps.sessions?.admitLogin({ tenantId: tenant.id, userId: user.id, priorSid: interaction.session?.uid, priorAccountId: interaction.session?.accountId });
      if (admission && !admission.allowed) return views.page(ctx, 'login-session-limit.njk', { uid, max: tenant.policies.sessions.maxConcurrent }, 403);
      // Recorded before the provider hears of it: no audit entry, no sign-in.
      await signIns.succeeded(step, user, state.amr);
      const result = { login: { accountId: user.id, ...assuranceOf(state.amr), ...(admission && { remember: admission.remember }) } };
      const redirectTo = await deps.providerHost.provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
      countLogin('success');
      ctx.status = 303;
      ctx.redirect(redirectTo);
    },

    // A second factor is required and none is set up: set one up now, before the sign-in ends.
    async showEnrolment(step: Step, user: User, tenant: Tenant): Promise<void> {
      const enrolment = await deps.mfa.beginTotpEnrolment(tenant.id, user.id, { accountName: user.email, issuer: tenant.displayName });
      views.page(step.ctx, 'login-mfa-enrol.njk', { uid: step.interaction.uid, secret: enrolment.secret, qrSvg: enrolment.qrSvg });
    },
  };
}

export type NextStep = ReturnType<typeof createNextStep>;
