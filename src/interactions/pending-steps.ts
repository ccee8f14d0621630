// Steps between the first factor and the end of a sign-in that are about the account itself: a
// password that must be changed (expired, or a temporary one from an administrator) and an e-mail
// address the tenant requires to be verified.
import type Router from '@koa/router';
import type { Context } from 'koa';
import { formField } from '../http/csrf.ts';
import { DomainError } from '../errors.ts';
import { requestLocale } from '../http/views.ts';
import { fieldMessages } from './field-messages.ts';
import { MAX_PASSWORD } from '../users/validation.ts';
import type { AwaitedStep, LoginStateStore } from './state.ts';
import type { InteractionDependencies, Step } from './step.ts';
import type { NextStep } from './next-step.ts';
import { requestContext } from '../audit/origin.ts';

interface PendingStepsContext {
  deps: InteractionDependencies;
  states: LoginStateStore;
  awaited(ctx: Context, steps: AwaitedStep[]): Promise<Step | undefined>;
  next: NextStep;
}

export function registerPendingSteps(router: Router, context: PendingStepsContext): void {
  const { deps, states, awaited, next } = context;
  const { views } = deps;

  router.post('/:uid/password', async (ctx) => {
    const step = await awaited(ctx, ['password-change']);
    if (!step) return;
    const t = views.translator(ctx);
    const uid = step.interaction.uid;
    const { tenantId, userId } = step.state.user!;
    const password = formField(ctx, 'password') ?? '';
    const reason = (await deps.credentials.passwordState(tenantId, userId)).reason;
    let errors: Record<string, string> = {};
    if (!password || password.length > MAX_PASSWORD) errors.password = t('login.passwordRequired');
    else if (password !== formField(ctx, 'passwordConfirm')) errors.passwordConfirm = t('login.passwordsDiffer');
    else {
      try {
        await deps.credentials.setPassword(tenantId, userId, password, undefined, requestContext(ctx));
        step.state.passwordChanged = true;
        delete step.state.awaiting;
        await states.save(uid, step.state);
        return next.advance(step);
      } catch (error) {
        if (!(error instanceof DomainError) || error.status >= 500) throw error;
        errors = fieldMessages(error, t);
      }
    }
    views.page(ctx, 'login-change-password.njk', { uid, reason, errors }, 400);
  });

  router.post('/:uid/verify-email/resend', async (ctx) => {
    const step = await awaited(ctx, ['email-verification']);
    if (!step) return;
    const { tenantId, userId } = step.state.user!;
    const user = await deps.users.get(tenantId, userId);
    await deps.credentials.sendEmailVerification(tenantId, userId, requestLocale(ctx));
    views.page(ctx, 'login-verify-email.njk', { uid: step.interaction.uid, email: user.email, sent: true });
  });
}
