// The second-factor steps of a sign-in: a TOTP code, a backup code, or setting up TOTP when a
// second factor is required and none exists. Attempts are counted before a code is checked (so
// parallel requests cannot slip past the count): a few per sign-in (then start again) and a few
// more per person across sign-ins (then a pause), so codes cannot be guessed at scale.
import type Router from '@koa/router';
import type { Context } from 'koa';
import { formField } from '../http/csrf.ts';
import { createAttemptLimiter } from '../security/attempt-limiter.ts';
import { emptyLoginState, type AwaitedStep, type LoginStateStore } from './state.ts';
import type { InteractionDependencies, Step } from './step.ts';
import type { NextStep } from './next-step.ts';
import { countLogin } from '../ops/metrics.ts';
import type { SignInAudit } from './sign-in-audit.ts';
import { secondFactorPageOptions } from './one-time-codes.ts';

const ATTEMPTS_PER_SIGN_IN = 5;
const ATTEMPTS_PER_PERSON = 10;
const PERSON_PAUSE_SECONDS = 15 * 60;
const MAX_CODE = 64;

interface SecondFactorContext {
  deps: InteractionDependencies;
  states: LoginStateStore;
  // The step context when the sign-in awaits one of these steps; otherwise shows the right page.
  awaited(ctx: Context, steps: AwaitedStep[]): Promise<Step | undefined>;
  next: NextStep;
  showSignIn(step: Step, extra?: { error?: string }, status?: number): Promise<void>;
  signIns: SignInAudit;
}

export function registerSecondFactorRoutes(router: Router, context: SecondFactorContext): void {
  const { deps, states, awaited, next, showSignIn, signIns } = context;
  const { views } = deps;
  const perSignIn = createAttemptLimiter(deps.hot, { name: 'second-factor-sign-in', limit: ATTEMPTS_PER_SIGN_IN, windowSeconds: deps.interactionTtlSeconds });
  const perPerson = createAttemptLimiter(deps.hot, { name: 'second-factor-person', limit: ATTEMPTS_PER_PERSON, windowSeconds: PERSON_PAUSE_SECONDS });

  // Takes one attempt from both budgets: undefined to go on, else the page already shown.
  async function attempt(step: Step, page: string): Promise<'refused' | undefined> {
    const t = views.translator(step.ctx);
    const signInVerdict = await perSignIn.attempt(step.interaction.uid);
    if (signInVerdict !== 'allowed') {
      if (signInVerdict === 'blocked') await signIns.blocked(step, 'security.rate_limited', perSignIn.name);
      await states.clear(step.interaction.uid);
      await showSignIn({ ...step, state: emptyLoginState() }, { error: t('login.mfaTooManyFailures') }, 401);
      return 'refused';
    }
    const personVerdict = await perPerson.attempt(step.state.user!.userId);
    if (personVerdict !== 'allowed') {
      if (personVerdict === 'blocked') await signIns.blocked(step, 'security.lockout', perPerson.name);
      views.page(step.ctx, page, { uid: step.interaction.uid, retry: true, error: t('login.mfaLocked'), ...(await pageOptions(step, page)) }, 429);
      return 'refused';
    }
    return undefined;
  }

  async function succeeded(step: Step, methods: string[]): Promise<void> {
    await Promise.all([perSignIn.reset(step.interaction.uid), perPerson.reset(step.state.user!.userId)]);
    step.state.amr = [...new Set([...step.state.amr, ...methods, 'mfa'])];
    delete step.state.awaiting;
    await states.save(step.interaction.uid, step.state);
  }

  // The two-step page shown again keeps what it offered: the app's code, codes by SMS and the like.
  async function pageOptions(step: Step, page: string) {
    return page === 'login-mfa.njk' ? secondFactorPageOptions(deps, step) : {};
  }

  function codeFrom(ctx: Context): string {
    return (formField(ctx, 'code') ?? '').trim().slice(0, MAX_CODE);
  }

  async function verifyWith(ctx: Context, page: string, verify: (step: Step, code: string) => Promise<boolean>, methods: string[], wrongCode: string) {
    const step = await awaited(ctx, ['second-factor']);
    if (!step) return;
    const code = codeFrom(ctx);
    if (!code) return views.page(ctx, page, { uid: step.interaction.uid, error: views.translator(ctx)('login.mfaCodeRequired'), ...(await pageOptions(step, page)) }, 400);
    if (await attempt(step, page)) return;
    if (await verify(step, code)) {
      await succeeded(step, methods);
      return next.advance(step);
    }
    countLogin('invalid_second_factor');
    return views.page(ctx, page, { uid: step.interaction.uid, error: views.translator(ctx)(wrongCode), ...(await pageOptions(step, page)) }, 401);
  }

  router.post('/:uid/mfa', (ctx) =>
    verifyWith(ctx, 'login-mfa.njk', (step, code) => deps.mfa.verifyTotp(step.state.user!.tenantId, step.state.user!.userId, code, signIns.note(step)), ['otp'], 'login.mfaWrongCode'),
  );

  router.get('/:uid/mfa/backup', async (ctx) => {
    const step = await awaited(ctx, ['second-factor']);
    if (!step) return;
    views.page(ctx, 'login-mfa-backup.njk', { uid: step.interaction.uid });
  });

  // RFC 8176 has no method for a printed backup code; it is the second factor ("mfa") without "otp".
  router.post('/:uid/mfa/backup', (ctx) =>
    verifyWith(ctx, 'login-mfa-backup.njk', (step, code) => deps.mfa.verifyBackupCode(step.state.user!.tenantId, step.state.user!.userId, code, signIns.note(step)), [], 'login.backupWrongCode'),
  );

  // A new QR code and key (the earlier unconfirmed one stops counting).
  router.post('/:uid/mfa/enrol/restart', async (ctx) => {
    const step = await awaited(ctx, ['second-factor-enrolment']);
    if (!step) return;
    return next.advance(step);
  });

  router.post('/:uid/mfa/enrol', async (ctx) => {
    const step = await awaited(ctx, ['second-factor-enrolment']);
    if (!step) return;
    const t = views.translator(ctx);
    const { tenantId, userId } = step.state.user!;
    const uid = step.interaction.uid;
    const code = codeFrom(ctx);
    // The key is not shown again after a wrong code: the app already holds it, and a new one can
    // be asked for.
    if (!code) return views.page(ctx, 'login-mfa-enrol.njk', { uid, retry: true, error: t('login.mfaCodeRequired') }, 400);
    if (await attempt(step, 'login-mfa-enrol.njk')) return;
    const confirmed = await deps.mfa.confirmTotpEnrolment(tenantId, userId, code, signIns.note(step));
    if (!confirmed) return views.page(ctx, 'login-mfa-enrol.njk', { uid, retry: true, error: t('login.mfaWrongCode') }, 401);
    await succeeded(step, ['otp']);
    views.page(ctx, 'login-backup-codes.njk', { uid, backupCodes: confirmed.backupCodes });
  });
}
