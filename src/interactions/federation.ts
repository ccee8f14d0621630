// Sign-in through an upstream connector, as pages: the buttons' target sends the browser upstream;
// the callback (one address per deployment, registered at every upstream) finishes the upstream
// part and hands back to the sign-in; then the person is signed in, linked after proving control
// of an existing account, created just in time, or shown a page that says what went wrong and how
// to go on. The state sent upstream is bound to this browser by a cookie, so a callback URL
// carrying someone else's sign-in is refused (login CSRF).
import Router from '@koa/router';
import type { Context } from 'koa';
import { formField } from '../http/csrf.ts';
import { requestLocale } from '../http/views.ts';
import { requestContext } from '../audit/origin.ts';
import { createAttemptLimiter } from '../security/attempt-limiter.ts';
import { MAX_PASSWORD } from '../users/validation.ts';
import { UpstreamError } from '../federation/connector.ts';
import type { FederatedIdentity, FederatedSignIn, SignInFailure } from '../federation/login/service.ts';
import { loginStateStore, type AwaitedStep, type LoginStateStore } from './state.ts';
import type { InteractionDependencies, Step } from './step.ts';
import type { NextStep } from './next-step.ts';
import { countLogin } from '../ops/metrics.ts';

const STATE_COOKIE = 'idp_federation';
const CALLBACK_PATH = '/federation/callback';
const LINK_ATTEMPTS_PER_SIGN_IN = 5;
const LINK_ATTEMPTS_PER_PERSON = 10;
const LINK_PAUSE_SECONDS = 15 * 60;
const MAX_CODE = 64;

export interface FederationPages {
  signIn: FederatedSignIn;
  // The deployment's callback address: `${issuer}/federation/callback`.
  callbackUrl: string;
}

export function federationCallbackUrl(issuer: string): string {
  return `${issuer.replace(/\/+$/, '')}${CALLBACK_PATH}`;
}

function showFailure(deps: InteractionDependencies, ctx: Context, failure: SignInFailure, details: { uid?: string; connector?: string; email?: string }) {
  const status = failure === 'unreachable' ? 502 : failure === 'state_mismatch' || failure === 'invalid_response' ? 400 : 403;
  deps.views.page(ctx, 'login-federation-error.njk', { uid: details.uid, failure, connector: details.connector, email: details.email, retry: failure === 'unreachable' || failure === 'access_denied' }, status);
}

// The tenant a sign-in is in, if it is settled: the connectors offered are that tenant's.
export function signInTenantId(step: Step): string | undefined {
  return step.tenant?.id ?? step.state.tenantId ?? (step.requested.kind === 'fixed' ? step.requested.tenantId : undefined);
}

// Starts an upstream sign-in and sends the browser there; a page when that is not possible.
export async function goUpstream(deps: InteractionDependencies, step: Step, states: LoginStateStore, tenantId: string, connectorName: string, loginHint?: string): Promise<boolean> {
  const federation = deps.federation!;
  const { ctx } = step;
  let started: { url: string; state: string } | undefined;
  try {
    started = await federation.signIn.start({ uid: step.interaction.uid, tenantId, connectorName, redirectUri: federation.callbackUrl, loginHint });
  } catch (error) {
    if (!(error instanceof UpstreamError)) throw error;
    await federation.signIn.failed(tenantId, connectorName, error.failure, requestContext(ctx));
    showFailure(deps, ctx, error.failure, { uid: step.interaction.uid, connector: connectorName });
    return true;
  }
  if (!started) return false;
  if (step.state.tenantId !== tenantId && step.requested.kind !== 'fixed') {
    step.state.tenantId = tenantId;
    await states.save(step.interaction.uid, step.state);
  }
  ctx.cookies.set(STATE_COOKIE, started.state, { signed: true, httpOnly: true, sameSite: 'lax', secure: ctx.secure, path: CALLBACK_PATH, maxAge: deps.interactionTtlSeconds * 1000, overwrite: true });
  ctx.status = 303;
  ctx.redirect(started.url);
  return true;
}

// The callback the upstream sends the browser to; not under /interaction/:uid, whose cookie the
// upstream's redirect would not carry.
export function federationCallbackRoutes(deps: InteractionDependencies): Router {
  const router = new Router();
  const states = loginStateStore(deps.hot, deps.interactionTtlSeconds);
  router.get(CALLBACK_PATH, async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    const federation = deps.federation;
    if (!federation) return ctx.throw(404);
    const bound = ctx.cookies.get(STATE_COOKIE, { signed: true });
    ctx.cookies.set(STATE_COOKIE, null, { path: CALLBACK_PATH });
    const params = new URLSearchParams(ctx.querystring);
    const result = await federation.signIn.finish(params, bound);
    if ('failure' in result) {
      await federation.signIn.failed(result.tenantId, result.connectorName, result.failure, requestContext(ctx));
      return showFailure(deps, ctx, result.failure, { uid: result.uid, connector: result.connectorDisplayName ?? result.connectorName });
    }
    const state = await states.load(result.uid);
    state.federated = result.identity;
    state.tenantId = result.tenantId;
    delete state.awaiting;
    await states.save(result.uid, state);
    ctx.status = 303;
    ctx.redirect(`/interaction/${result.uid}/federation/continue`);
  });
  return router;
}

interface FederationStepsContext {
  deps: InteractionDependencies;
  states: LoginStateStore;
  begin(ctx: Context, expectedPrompt?: string): Promise<Step | undefined>;
  next: NextStep;
  showSignIn(step: Step, extra?: { error?: string }, status?: number): Promise<void>;
}

export function registerFederationSteps(router: Router, context: FederationStepsContext): void {
  const { deps, states, begin, next, showSignIn } = context;
  const { views } = deps;
  const perSignIn = createAttemptLimiter(deps.hot, { name: 'federation-link-sign-in', limit: LINK_ATTEMPTS_PER_SIGN_IN, windowSeconds: deps.interactionTtlSeconds });
  const perPerson = createAttemptLimiter(deps.hot, { name: 'federation-link-person', limit: LINK_ATTEMPTS_PER_PERSON, windowSeconds: LINK_PAUSE_SECONDS });
  const LINK_STEP: AwaitedStep = 'federation-link';

  async function signedIn(step: Step, tenantId: string, userId: string, identity: FederatedIdentity, methods: string[]): Promise<void> {
    await deps.federation!.signIn.applyRoles(tenantId, userId, identity, requestContext(step.ctx));
    step.state.user = { tenantId, userId };
    step.state.amr = [...new Set([...step.state.amr, ...methods])];
    delete step.state.federated;
    delete step.state.federationLink;
    delete step.state.awaiting;
    await states.save(step.interaction.uid, step.state);
    return next.advance(step);
  }

  function showLink(step: Step, extra: { error?: string; codeSent?: boolean; retryAfter?: number } = {}, status?: number) {
    const link = step.state.federationLink!;
    views.page(
      step.ctx,
      'login-federation-link.njk',
      {
        uid: step.interaction.uid,
        connector: step.state.federated!.connectorDisplayName,
        email: link.email,
        hasPassword: link.hasPassword,
        canUseCode: Boolean(deps.oneTimeCodes?.available('email')),
        ...extra,
      },
      status,
    );
  }

  // A step of linking is accepted only while the sign-in waits for it.
  async function linking(ctx: Context): Promise<Step | undefined> {
    const step = await begin(ctx, 'login');
    if (!step) return undefined;
    if (step.state.awaiting !== LINK_STEP || !step.state.federated || !step.state.federationLink) {
      await showSignIn(step);
      return undefined;
    }
    return step;
  }

  router.post('/:uid/federation/start/:connector', async (ctx) => {
    const step = await begin(ctx, 'login');
    if (!step) return;
    const tenantId = signInTenantId(step);
    const name = String(ctx.params.connector).slice(0, 63);
    if (!deps.federation || !tenantId || !(await goUpstream(deps, step, states, tenantId, name))) {
      return showSignIn(step, { error: views.translator(ctx)('federation.unknownConnector') }, 404);
    }
  });

  router.get('/:uid/federation/continue', async (ctx) => {
    const step = await begin(ctx, 'login');
    if (!step) return;
    const identity = step.state.federated;
    const tenantId = step.state.tenantId;
    if (!identity || !tenantId || !deps.federation) return showSignIn(step);
    if (step.state.awaiting === LINK_STEP && step.state.federationLink) return showLink(step);
    const resolution = await deps.federation.signIn.resolve(tenantId, identity, requestContext(ctx));
    if (resolution.kind === 'user') return signedIn(step, tenantId, resolution.userId, identity, ['fed']);
    if (resolution.kind === 'link') {
      step.state.federationLink = { userId: resolution.userId, email: resolution.email, hasPassword: resolution.hasPassword };
      step.state.awaiting = LINK_STEP;
      await states.save(step.interaction.uid, step.state);
      return showLink(step);
    }
    await deps.federation.signIn.failed(tenantId, identity.connectorName, resolution.reason, requestContext(ctx));
    delete step.state.federated;
    await states.save(step.interaction.uid, step.state);
    return showFailure(deps, ctx, resolution.reason, { uid: step.interaction.uid, connector: identity.connectorDisplayName, email: identity.profile.email });
  });

  // Proof by e-mail code: a code to the local account's address.
  router.post('/:uid/federation/link/code', async (ctx) => {
    const step = await linking(ctx);
    if (!step) return;
    const codes = deps.oneTimeCodes;
    if (!codes?.available('email')) return showLink(step, { error: views.translator(ctx)('federation.codeUnavailable') }, 400);
    const sent = await codes.send({ tenantId: step.state.tenantId!, purpose: 'link', channel: 'email', destination: step.state.federationLink!.email, ip: ctx.ip, locale: requestLocale(ctx) });
    if (sent.status === 'sent') return showLink(step, { codeSent: true });
    if (sent.retryAfterSeconds) ctx.set('Retry-After', String(sent.retryAfterSeconds));
    return showLink(step, { codeSent: sent.status === 'cooldown', retryAfter: sent.retryAfterSeconds, error: views.translator(ctx)(sent.status === 'cooldown' ? 'federation.codeCooldown' : 'federation.codeLimited', { seconds: sent.retryAfterSeconds ?? 60 }) }, 429);
  });

  router.post('/:uid/federation/link', async (ctx) => {
    const step = await linking(ctx);
    if (!step) return;
    const t = views.translator(ctx);
    const tenantId = step.state.tenantId!;
    const link = step.state.federationLink!;
    const password = formField(ctx, 'password') ?? '';
    const code = (formField(ctx, 'code') ?? '').trim().slice(0, MAX_CODE);
    if ((!password && !code) || password.length > MAX_PASSWORD) return showLink(step, { error: t('federation.proofRequired') }, 400);
    // Counted before checking, per sign-in and per person: the proof cannot be guessed at scale.
    if (!(await perSignIn.take(step.interaction.uid))) {
      await states.clear(step.interaction.uid);
      return showFailure(deps, ctx, 'access_denied', { uid: step.interaction.uid, connector: step.state.federated!.connectorDisplayName });
    }
    if (!(await perPerson.take(link.userId))) return showLink(step, { error: t('federation.tooManyAttempts') }, 429);
    const proof = password ? 'password' : 'email_code';
    const proved = password
      ? await deps.users.verifyPassword(tenantId, link.userId, password)
      : Boolean(await deps.oneTimeCodes?.verify({ tenantId, purpose: 'link', channel: 'email', destination: link.email, code }));
    if (!proved) {
      countLogin(password ? 'invalid_credentials' : 'invalid_second_factor');
      return showLink(step, { error: t(password ? 'federation.wrongPassword' : 'federation.wrongCode'), codeSent: !password }, 401);
    }
    await Promise.all([perSignIn.reset(step.interaction.uid), perPerson.reset(link.userId)]);
    const identity = step.state.federated!;
    await deps.federation!.signIn.link(tenantId, link.userId, identity, proof, requestContext(ctx));
    return signedIn(step, tenantId, link.userId, identity, password ? ['fed', 'pwd'] : ['fed', 'otp']);
  });
}
