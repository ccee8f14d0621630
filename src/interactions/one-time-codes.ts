// Sign-in with a code sent by e-mail, SMS or WhatsApp, and such a code as the second factor. The
// tenant's policy (policies.oneTimeCodes) names the channels; a channel also needs a provider
// (src/otp). The first-factor pages answer the same whether an account exists or not: the code page
// says "if an account exists, we sent a code", and the cool-down and limits count for unknown
// destinations too (nothing is sent to them). A right code proves the first factor (amr otp or
// sms) and the sign-in goes on through next-step.ts (second factor, e-mail verification, ...).
import type Router from '@koa/router';
import type { Context } from 'koa';
import { formField } from '../http/csrf.ts';
import { requestLocale } from '../http/views.ts';
import { createAttemptLimiter } from '../security/attempt-limiter.ts';
import { countLogin } from '../ops/metrics.ts';
import type { Tenant } from '../tenants/service.ts';
import type { User } from '../users/service.ts';
import type { CodeChannel, SendResult } from '../otp/service.ts';
import { maskPhone, toE164 } from '../otp/phone.ts';
import { emptyLoginState, type AwaitedStep, type LoginStateStore } from './state.ts';
import type { InteractionDependencies, Step } from './step.ts';
import type { NextStep } from './next-step.ts';
import type { SignInAudit } from './sign-in-audit.ts';

const MAX_IDENTIFIER = 320;
const MAX_CODE = 16;
// Tries per sign-in across codes (each code allows 5 itself), then the sign-in starts over.
const ATTEMPTS_PER_SIGN_IN = 10;
// The second factor shares the budgets of second-factor.ts: a code by SMS is no easier to guess
// than one from an app.
const SECOND_FACTOR_ATTEMPTS_PER_SIGN_IN = 5;
const SECOND_FACTOR_ATTEMPTS_PER_PERSON = 10;
const SECOND_FACTOR_PAUSE_SECONDS = 15 * 60;

// What the code page of this sign-in is about, kept server-side like the login state.
interface PendingCode {
  channel: CodeChannel;
  // As the code went out: an e-mail address or E.164 number.
  destination: string;
  // The account it belongs to; none when nobody has this address or number (nothing was sent).
  user?: { tenantId: string; userId: string };
  // When a new code may be asked for (milliseconds since the epoch).
  resendAt: number;
}

interface OneTimeCodeContext {
  deps: InteractionDependencies;
  states: LoginStateStore;
  begin(ctx: Context, expectedPrompt?: string): Promise<Step | undefined>;
  awaited(ctx: Context, steps: AwaitedStep[]): Promise<Step | undefined>;
  next: NextStep;
  showSignIn(step: Step, extra?: { error?: string }, status?: number): Promise<void>;
  signIns: SignInAudit;
}

const FIRST_FACTOR_AMR: Record<CodeChannel, string> = { email: 'otp', sms: 'sms', whatsapp: 'otp' };

// The channels a sign-in at this tenant may use for a code instead of a password.
export function signInChannels(deps: Pick<InteractionDependencies, 'oneTimeCodes'>, tenant: Tenant | undefined): CodeChannel[] {
  if (!tenant || tenant.status !== 'active' || !deps.oneTimeCodes) return [];
  return tenant.policies.oneTimeCodes.signIn.filter((channel) => deps.oneTimeCodes!.available(channel));
}

// The channels this person can get a second-factor code by: allowed by the tenant, deliverable,
// and to a verified number or address.
export function secondFactorChannels(deps: Pick<InteractionDependencies, 'oneTimeCodes'>, tenant: Tenant, user: User): CodeChannel[] {
  if (!deps.oneTimeCodes) return [];
  return tenant.policies.oneTimeCodes.secondFactor.filter((channel) => {
    if (!deps.oneTimeCodes!.available(channel)) return false;
    return channel === 'email' ? user.emailVerified : Boolean(user.phoneNumber && user.phoneNumberVerified);
  });
}

// What the two-step page offers this person: the app's code (when set up) and the code channels.
export async function secondFactorPageOptions(deps: InteractionDependencies, step: Step): Promise<{ noTotp: boolean; codeChannels: CodeChannel[] }> {
  const { tenantId, userId } = step.state.user!;
  const [user, status] = await Promise.all([deps.users.findById(userId), deps.mfa.status(tenantId, userId)]);
  const tenant = step.tenant?.id === tenantId ? step.tenant : await deps.tenants.get(tenantId);
  return { noTotp: !status.totp, codeChannels: user ? secondFactorChannels(deps, tenant, user) : [] };
}

function pendingStore(deps: InteractionDependencies, prefix: string) {
  return {
    async load(uid: string): Promise<PendingCode | undefined> {
      const stored = await deps.hot.get(prefix + uid);
      return stored ? (JSON.parse(stored) as PendingCode) : undefined;
    },
    save(uid: string, pending: PendingCode): Promise<void> {
      return deps.hot.set(prefix + uid, JSON.stringify(pending), deps.interactionTtlSeconds);
    },
    clear(uid: string): Promise<void> {
      return deps.hot.delete(prefix + uid);
    },
  };
}

function secondsUntil(at: number): number {
  return Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

export function registerOneTimeCodeRoutes(router: Router, context: OneTimeCodeContext) {
  const { deps, states, begin, awaited, next, showSignIn, signIns } = context;
  const { views } = deps;
  const signInCodes = pendingStore(deps, 'login-code:');
  const secondFactorCodes = pendingStore(deps, 'login-mfa-code:');
  const perSignIn = createAttemptLimiter(deps.hot, { name: 'one-time-code-sign-in', limit: ATTEMPTS_PER_SIGN_IN, windowSeconds: deps.interactionTtlSeconds });
  const mfaPerSignIn = createAttemptLimiter(deps.hot, { name: 'second-factor-sign-in', limit: SECOND_FACTOR_ATTEMPTS_PER_SIGN_IN, windowSeconds: deps.interactionTtlSeconds });
  const mfaPerPerson = createAttemptLimiter(deps.hot, { name: 'second-factor-person', limit: SECOND_FACTOR_ATTEMPTS_PER_PERSON, windowSeconds: SECOND_FACTOR_PAUSE_SECONDS });

  function channelLabel(ctx: Context, channel: CodeChannel): string {
    const t = views.translator(ctx);
    return channel === 'email' ? t('otp.channelEmail') : channel === 'sms' ? t('otp.channelSms') : t('otp.channelWhatsapp');
  }

  function minutes(): number {
    return Math.max(1, Math.round((deps.oneTimeCodes?.codeTtlSeconds ?? 300) / 60));
  }

  // A sign-in that may use codes: the tenant is known and allows at least one deliverable channel.
  async function codeStep(ctx: Context): Promise<{ step: Step; channels: CodeChannel[] } | undefined> {
    const step = await begin(ctx, 'login');
    if (!step) return undefined;
    const channels = step.state.user ? [] : signInChannels(deps, step.tenant);
    if (!channels.length) {
      await showSignIn(step);
      return undefined;
    }
    return { step, channels };
  }

  function showRequest(step: Step, channels: CodeChannel[], extra: { identifier?: string; channel?: CodeChannel; error?: string } = {}, status?: number) {
    const { ctx } = step;
    views.page(
      ctx,
      'login-code-request.njk',
      {
        uid: step.interaction.uid,
        identifier: extra.identifier ?? '',
        phoneChannels: channels
          .filter((channel) => channel !== 'email')
          .map((channel, index) => ({ value: channel, label: channelLabel(ctx, channel), checked: extra.channel ? channel === extra.channel : index === 0 })),
        acceptsEmail: channels.includes('email'),
        acceptsPhone: channels.some((channel) => channel !== 'email'),
        error: extra.error,
      },
      status,
    );
  }

  // What both code pages (first factor and second factor) show about the code on its way.
  function codePage(step: Step, pending: PendingCode, extra: { error?: string; notice?: string }) {
    return {
      uid: step.interaction.uid,
      channelName: channelLabel(step.ctx, pending.channel),
      minutes: minutes(),
      resendAfter: secondsUntil(pending.resendAt),
      error: extra.error,
      notice: extra.notice,
    };
  }

  function showCode(step: Step, pending: PendingCode, extra: { error?: string; notice?: string } = {}, status?: number) {
    views.page(step.ctx, 'login-code.njk', { ...codePage(step, pending, extra), destination: pending.destination }, status);
  }

  // Why nothing new went out, for the page; undefined when it did (or seemed to).
  function sendProblem(ctx: Context, result: SendResult): string | undefined {
    const t = views.translator(ctx);
    if (result.status === 'sent') return undefined;
    if (result.status === 'cooldown') return t('otp.resendWait', { seconds: result.retryAfterSeconds ?? 1 });
    if (result.status === 'rate_limited') return t('otp.rateLimited', { minutes: Math.max(1, Math.ceil((result.retryAfterSeconds ?? 60) / 60)) });
    return t('otp.unavailable');
  }

  // Sends a code to the account with this address or verified number in the tenant, or, when
  // there is none, counts the same cool-down and limits without sending anything.
  async function sendFor(step: Step, channel: CodeChannel, destination: string): Promise<{ pending: PendingCode; result: SendResult }> {
    const tenantId = step.tenant!.id;
    const user = await deps.users.findSignInCandidate(tenantId, channel === 'email' ? { email: destination } : { phoneNumber: destination });
    const request = { tenantId, purpose: 'sign-in' as const, channel, destination, ip: step.ctx.ip, locale: requestLocale(step.ctx) };
    const result = user ? await deps.oneTimeCodes!.send(request) : await deps.oneTimeCodes!.pace(request);
    const wait = result.status === 'sent' ? result.resendAfterSeconds : result.status === 'cooldown' ? (result.retryAfterSeconds ?? 0) : 0;
    const pending: PendingCode = { channel, destination, user: user ? { tenantId, userId: user.id } : undefined, resendAt: Date.now() + wait * 1000 };
    return { pending, result };
  }

  router.get('/:uid/code', async (ctx) => {
    const found = await codeStep(ctx);
    if (!found) return;
    showRequest(found.step, found.channels);
  });

  router.post('/:uid/code', async (ctx) => {
    const found = await codeStep(ctx);
    if (!found) return;
    const { step, channels } = found;
    const t = views.translator(ctx);
    const identifier = (formField(ctx, 'identifier') ?? '').trim();
    const chosen = formField(ctx, 'channel');
    if (!identifier || identifier.length > MAX_IDENTIFIER) return showRequest(step, channels, { error: t('otp.identifierRequired') }, 400);
    let channel: CodeChannel;
    let destination: string;
    if (identifier.includes('@')) {
      if (!channels.includes('email')) return showRequest(step, channels, { identifier, error: t('otp.phoneRequired') }, 400);
      channel = 'email';
      destination = identifier.toLowerCase();
    } else {
      const phoneChannels = channels.filter((c) => c !== 'email');
      if (!phoneChannels.length) return showRequest(step, channels, { identifier, error: t('otp.emailRequired') }, 400);
      channel = phoneChannels.find((c) => c === chosen) ?? phoneChannels[0];
      const e164 = toE164(identifier);
      if (!e164) return showRequest(step, channels, { identifier, channel, error: t('otp.phoneInvalid') }, 400);
      destination = e164;
    }
    const { pending, result } = await sendFor(step, channel, destination);
    if (result.status === 'rate_limited' || result.status === 'unavailable') {
      if (result.retryAfterSeconds) ctx.set('Retry-After', String(result.retryAfterSeconds));
      return showRequest(step, channels, { identifier, channel, error: sendProblem(ctx, result) }, result.status === 'rate_limited' ? 429 : 503);
    }
    await signInCodes.save(step.interaction.uid, pending);
    showCode(step, pending, { notice: sendProblem(ctx, result) });
  });

  router.post('/:uid/code/resend', async (ctx) => {
    const found = await codeStep(ctx);
    if (!found) return;
    const { step, channels } = found;
    const pending = await signInCodes.load(step.interaction.uid);
    if (!pending || !channels.includes(pending.channel)) return showRequest(step, channels);
    const sent = await sendFor(step, pending.channel, pending.destination);
    if (sent.result.status === 'sent' || sent.result.status === 'cooldown') await signInCodes.save(step.interaction.uid, sent.pending);
    const shown = sent.result.status === 'sent' || sent.result.status === 'cooldown' ? sent.pending : pending;
    if (sent.result.status === 'rate_limited' && sent.result.retryAfterSeconds) ctx.set('Retry-After', String(sent.result.retryAfterSeconds));
    showCode(step, shown, { notice: sendProblem(ctx, sent.result) }, sent.result.status === 'rate_limited' ? 429 : undefined);
  });

  router.post('/:uid/code/verify', async (ctx) => {
    const found = await codeStep(ctx);
    if (!found) return;
    const { step, channels } = found;
    const t = views.translator(ctx);
    const uid = step.interaction.uid;
    const pending = await signInCodes.load(uid);
    if (!pending || !channels.includes(pending.channel)) return showRequest(step, channels);
    const code = (formField(ctx, 'code') ?? '').trim().slice(0, MAX_CODE);
    if (!code) return showCode(step, pending, { error: t('otp.codeRequired') }, 400);
    // Counted before the code is checked, so parallel guesses cannot slip past.
    if ((await perSignIn.attempt(uid)) !== 'allowed') {
      await Promise.all([signInCodes.clear(uid), states.clear(uid)]);
      return showSignIn({ ...step, state: emptyLoginState() }, { error: t('otp.tooManyFailures') }, 401);
    }
    const valid = await deps.oneTimeCodes!.verify({ tenantId: step.tenant!.id, purpose: 'sign-in', channel: pending.channel, destination: pending.destination, code });
    if (!valid || !pending.user) {
      countLogin('invalid_credentials');
      await signIns.failed(step, pending.destination);
      return showCode(step, pending, { error: t('otp.wrongCode') }, 401);
    }
    await Promise.all([perSignIn.reset(uid), signInCodes.clear(uid)]);
    step.state.user = pending.user;
    step.state.amr = [FIRST_FACTOR_AMR[pending.channel]];
    await states.save(uid, step.state);
    return next.advance(step);
  });

  // The second factor: a code to the person's verified number or address, besides an app's code.
  async function secondFactorStep(ctx: Context): Promise<{ step: Step; user: User; channels: CodeChannel[] } | undefined> {
    const step = await awaited(ctx, ['second-factor']);
    if (!step) return undefined;
    const user = await deps.users.findById(step.state.user!.userId);
    const tenant = step.tenant ?? (user ? await deps.tenants.get(user.tenantId) : undefined);
    const channels = user && tenant ? secondFactorChannels(deps, tenant, user) : [];
    if (!user || !channels.length) {
      views.page(ctx, 'error.njk', { error: 'invalid_request', description: views.translator(ctx)('otp.unavailable') }, 400);
      return undefined;
    }
    return { step, user, channels };
  }

  function showSecondFactorCode(step: Step, pending: PendingCode, extra: { error?: string; notice?: string } = {}, status?: number) {
    const destination = pending.channel === 'email' ? pending.destination : maskPhone(pending.destination);
    views.page(step.ctx, 'login-mfa-code.njk', { ...codePage(step, pending, extra), channel: pending.channel, destination }, status);
  }

  router.post('/:uid/mfa/code', async (ctx) => {
    const found = await secondFactorStep(ctx);
    if (!found) return;
    const { step, user, channels } = found;
    const channel = channels.find((c) => c === formField(ctx, 'channel')) ?? channels[0];
    const destination = channel === 'email' ? user.email.toLowerCase() : user.phoneNumber!;
    const result = await deps.oneTimeCodes!.send({ tenantId: user.tenantId, purpose: 'second-factor', channel, destination, ip: ctx.ip, locale: requestLocale(ctx) });
    const previous = await secondFactorCodes.load(step.interaction.uid);
    const wait = result.status === 'sent' ? result.resendAfterSeconds : result.status === 'cooldown' ? (result.retryAfterSeconds ?? 0) : 0;
    const pending: PendingCode = { channel, destination, user: { tenantId: user.tenantId, userId: user.id }, resendAt: Date.now() + wait * 1000 };
    if (result.status === 'sent' || result.status === 'cooldown' || !previous) await secondFactorCodes.save(step.interaction.uid, pending);
    if (result.status === 'rate_limited' && result.retryAfterSeconds) ctx.set('Retry-After', String(result.retryAfterSeconds));
    const status = result.status === 'rate_limited' ? 429 : result.status === 'unavailable' ? 503 : undefined;
    showSecondFactorCode(step, pending, { notice: sendProblem(ctx, result) }, status);
  });

  router.post('/:uid/mfa/code/verify', async (ctx) => {
    const found = await secondFactorStep(ctx);
    if (!found) return;
    const { step, user, channels } = found;
    const t = views.translator(ctx);
    const uid = step.interaction.uid;
    const pending = await secondFactorCodes.load(uid);
    if (!pending || !channels.includes(pending.channel) || pending.user?.userId !== user.id) {
      return views.page(ctx, 'login-mfa.njk', { uid, ...(await secondFactorPageOptions(deps, step)) });
    }
    const code = (formField(ctx, 'code') ?? '').trim().slice(0, MAX_CODE);
    if (!code) return showSecondFactorCode(step, pending, { error: t('otp.codeRequired') }, 400);
    const signInVerdict = await mfaPerSignIn.attempt(uid);
    if (signInVerdict !== 'allowed') {
      if (signInVerdict === 'blocked') await signIns.blocked(step, 'security.rate_limited', mfaPerSignIn.name);
      await Promise.all([secondFactorCodes.clear(uid), states.clear(uid)]);
      return showSignIn({ ...step, state: emptyLoginState() }, { error: t('login.mfaTooManyFailures') }, 401);
    }
    const personVerdict = await mfaPerPerson.attempt(user.id);
    if (personVerdict !== 'allowed') {
      if (personVerdict === 'blocked') await signIns.blocked(step, 'security.lockout', mfaPerPerson.name);
      return showSecondFactorCode(step, pending, { error: t('login.mfaLocked') }, 429);
    }
    const valid = await deps.oneTimeCodes!.verify({ tenantId: user.tenantId, purpose: 'second-factor', channel: pending.channel, destination: pending.destination, code });
    if (!valid) {
      countLogin('invalid_second_factor');
      return showSecondFactorCode(step, pending, { error: t('otp.wrongCode') }, 401);
    }
    await Promise.all([mfaPerSignIn.reset(uid), mfaPerPerson.reset(user.id), secondFactorCodes.clear(uid)]);
    step.state.amr = [...new Set([...step.state.amr, FIRST_FACTOR_AMR[pending.channel], 'mfa'])];
    delete step.state.awaiting;
    await states.save(uid, step.state);
    return next.advance(step);
  });

  return {
    // Whether the sign-in page offers "Sign in with a code".
    offered(step: Step): boolean {
      return !step.state.user && signInChannels(deps, step.tenant).length > 0;
    },
  };
}
