// The login interaction: the pages oidc-provider sends the browser to when it needs a login or a
// consent. Each handler reads its form, calls a service, and either shows the next page or hands
// the result back to the provider. Which step comes next is decided in one place (next-step.ts).
import Router from '@koa/router';
import { parsedBody } from '../http/body.ts';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { csrfProtection, formField } from '../http/csrf.ts';
import { forgotPasswordPath } from '../credentials/service.ts';
import { brandingFor } from '../tenants/branding.ts';
import { DomainError } from '../errors.ts';
import { requestLocale } from '../http/views.ts';
import { negotiateLocale } from '../i18n/catalogues.ts';
import { emptyLoginState, loginStateStore, type AwaitedStep } from './state.ts';
import { createTenantSelection } from './tenant-selection.ts';
import { createNextStep } from './next-step.ts';
import type { InteractionDependencies, Step, Details } from './step.ts';
import { grantConsent, requestedScopes } from './consent.ts';
import { MAX_PASSWORD } from '../users/validation.ts';
import { registerSecondFactorRoutes } from './second-factor.ts';
import { registerPendingSteps } from './pending-steps.ts';
import { registerOneTimeCodeRoutes } from './one-time-codes.ts';
import { fieldMessages } from './field-messages.ts';
import { countLogin } from '../ops/metrics.ts';
import { createSignInAudit } from './sign-in-audit.ts';
import { requestContext } from '../audit/origin.ts';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createSignInGuard, type Refusal } from './sign-in-guard.ts';
import { POW_SCRIPT_PATH } from '../security/captcha/index.ts';
import { goUpstream, registerFederationSteps, signInTenantId } from './federation.ts';

export type { InteractionDependencies } from './step.ts';

const MAX_IDENTIFIER = 320;
const MAX_ORGANIZATION = 63;
// The proof-of-work solver, served from our own origin (a strict CSP allows 'self' or a nonce).
const POW_SCRIPT = readFileSync(fileURLToPath(new URL('../../views/assets/pow-challenge.js', import.meta.url)), 'utf8');

export function interactionRoutes(deps: InteractionDependencies): Router {
  const { providerHost, views } = deps;
  const router = new Router({ prefix: '/interaction' });
  const states = loginStateStore(deps.hot, deps.interactionTtlSeconds);
  const selection = createTenantSelection(deps);
  const signIns = createSignInAudit(deps);
  const next = createNextStep(deps, states, signIns);
  const guard = createSignInGuard(deps.signInProtection, signIns);

  router.use(parsedBody({ enableTypes: ['form'], formLimit: '16kb' }));
  router.use(csrfProtection(deps.csrfKey));
  router.use(async (ctx, nextMiddleware) => {
    ctx.set('Cache-Control', 'no-store');
    await nextMiddleware();
  });

  router.get(POW_SCRIPT_PATH.slice('/interaction'.length), (ctx) => {
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.type = 'application/javascript';
    ctx.body = POW_SCRIPT;
  });

  async function details(ctx: Context): Promise<Details | undefined> {
    try {
      const found = await providerHost.provider.interactionDetails(ctx.req, ctx.res);
      if (found.uid !== ctx.params.uid) throw new Error('interaction mismatch');
      return found;
    } catch {
      const t = views.translator(ctx);
      views.page(ctx, 'error.njk', { error: 'interaction_expired', description: t('login.expired') }, 400);
      return undefined;
    }
  }

  async function clientView(clientId: unknown) {
    const client = typeof clientId === 'string' ? await deps.clients.get(clientId) : undefined;
    return { name: client?.metadata.client_name as string | undefined, firstParty: client?.firstParty ?? false };
  }

  // Loads what this sign-in knows so far and shows the pages in the tenant's colours once the
  // tenant is known.
  async function begin(ctx: Context, expectedPrompt?: string): Promise<Step | undefined> {
    // Read beside the interaction; used only once the interaction proves to be this one.
    const loading = states.load(ctx.params.uid);
    loading.catch(() => {});
    const interaction = await details(ctx);
    if (!interaction) return undefined;
    if (expectedPrompt && interaction.prompt.name !== expectedPrompt) {
      views.page(ctx, 'error.njk', { error: 'invalid_request', description: views.translator(ctx)('login.stepDone') }, 400);
      return undefined;
    }
    if (typeof interaction.params.ui_locales === 'string') ctx.state.locale = negotiateLocale(ctx.get('accept-language'), interaction.params.ui_locales);
    const [state, requested, client] = await Promise.all([loading, deps.loginTenant(interaction.params.client_id, interaction.params.tenant), clientView(interaction.params.client_id)]);
    return withTenant({ ctx, interaction, state, requested, client });
  }

  // The tenant's name and colours, once the sign-in knows the tenant.
  async function withTenant(step: Step): Promise<Step> {
    const tenant = await selection.knownTenant(step);
    if (tenant) {
      step.tenant = tenant;
      step.ctx.state.branding = brandingFor(tenant);
    }
    return step;
  }

  // A form of a step after the first factor is accepted only while the sign-in awaits that step;
  // anything else gets the page the sign-in is really at.
  async function awaited(ctx: Context, steps: AwaitedStep[]): Promise<Step | undefined> {
    const step = await begin(ctx, 'login');
    if (!step) return undefined;
    if (!step.state.user) await showSignIn(step);
    else if (!step.state.awaiting || !steps.includes(step.state.awaiting)) await next.advance(step);
    else return step;
    return undefined;
  }

  async function finish(ctx: Context, result: Parameters<Provider['interactionResult']>[2], merge = true): Promise<void> {
    const redirectTo = await providerHost.provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: merge });
    ctx.status = 303;
    ctx.redirect(redirectTo);
  }

  // The sign-in page: the identifier alone while the tenant is still open, identifier and
  // password once the tenant is known or an identifier was given.
  async function showSignIn(step: Step, extra: { identifier?: string; error?: string; invalid?: boolean } = {}, status?: number) {
    const { interaction, state } = step;
    const hint = typeof interaction.params.login_hint === 'string' ? interaction.params.login_hint.slice(0, MAX_IDENTIFIER) : '';
    const identifier = extra.identifier ?? state.identifier ?? hint;
    const tenantOpen = step.requested.kind === 'open' && !state.tenantId;
    const identifierFirst = tenantOpen && !state.identifier && extra.identifier === undefined;
    const registrationTenant = await selection.registrationTenant(step);
    // A CAPTCHA once the address (or the address at this identifier) looks suspicious.
    const captcha = identifierFirst ? undefined : await guard.challengeFor(step, identifier || undefined);
    const tenantId = identifierFirst ? undefined : signInTenantId(step);
    const connectors = tenantId && deps.federation ? await deps.federation.signIn.listForLogin(tenantId) : [];
    views.page(
      step.ctx,
      identifierFirst ? 'login-identifier.njk' : 'login.njk',
      {
        uid: interaction.uid,
        clientName: step.client.name,
        identifier,
        identifierLocked: Boolean(state.identifier),
        error: extra.error,
        invalid: extra.invalid ?? Boolean(extra.error),
        organizationLink: tenantOpen && !identifier,
        organizationName: state.tenantId ? step.tenant?.displayName : undefined,
        canRegister: Boolean(registrationTenant),
        forgotPasswordUrl: forgotPasswordPath(step.tenant),
        captcha,
        codeSignIn: oneTimeCodes.offered(step),
        connectors,
      },
      status,
    );
  }

  // Home-realm discovery: an identifier at an e-mail domain that belongs to a connector (of this
  // sign-in's tenant, or of any tenant while none is chosen) goes straight to that connector.
  async function sentUpstream(step: Step, identifier: string): Promise<boolean> {
    if (!deps.federation) return false;
    const found = await deps.federation.signIn.discover(identifier);
    if (!found) return false;
    const tenantId = signInTenantId(step);
    if (tenantId ? tenantId !== found.tenantId : step.requested.kind !== 'open') return false;
    return goUpstream(deps, step, states, found.tenantId, found.connectorName, identifier);
  }

  // Too many attempts, a locked identifier, an address caught spraying: one neutral page for
  // all of them, whether the identifier exists or not.
  function showRefusal(step: Step, identifier: string, refusal: Exclude<Refusal, { reason: 'captcha' }>) {
    if (refusal.retryAfterSeconds) step.ctx.set('Retry-After', String(refusal.retryAfterSeconds));
    views.page(step.ctx, 'login-locked.njk', { uid: step.interaction.uid, identifier, identifierLocked: Boolean(step.state.identifier) }, 429);
  }

  router.get('/:uid', async (ctx) => {
    const step = await begin(ctx);
    if (!step) return;
    const { interaction } = step;
    if (interaction.prompt.name === 'login') {
      if (!step.state.user && (await selection.resumeForStepUp(step))) await states.save(interaction.uid, step.state);
      if (step.state.user) return next.advance(await withTenant(step));
      if (await selection.offerReauthentication(step)) {
        await states.save(interaction.uid, step.state);
        await withTenant(step);
      }
      return showSignIn(step);
    }
    if (interaction.prompt.name === 'consent') {
      if (step.client.firstParty) return finish(ctx, { consent: { grantId: await grantConsent(providerHost.provider, interaction) } });
      return views.page(ctx, 'consent.njk', { uid: interaction.uid, clientName: step.client.name ?? views.translator(ctx)('login.theApplication'), scopes: requestedScopes(interaction) });
    }
    ctx.throw(400, `unsupported prompt: ${interaction.prompt.name}`);
  });

  router.post('/:uid/identify', async (ctx) => {
    const step = await begin(ctx, 'login');
    if (!step) return;
    const t = views.translator(ctx);
    const identifier = (formField(ctx, 'identifier') ?? '').trim();
    if (!identifier || identifier.length > MAX_IDENTIFIER) {
      return showSignIn(step, { identifier: '', error: t('login.identifierRequired') }, 400);
    }
    if (await sentUpstream(step, identifier)) return;
    // Nothing is looked up here: the next page is the same whether the identifier exists or not.
    step.state.identifier = identifier;
    await states.save(step.interaction.uid, step.state);
    return showSignIn(step);
  });

  router.post('/:uid/login', async (ctx) => {
    const step = await begin(ctx, 'login');
    if (!step) return;
    const t = views.translator(ctx);
    const identifier = (step.state.identifier ?? formField(ctx, 'identifier') ?? '').trim();
    const password = formField(ctx, 'password') ?? '';
    if (!identifier || !password || identifier.length > MAX_IDENTIFIER || password.length > MAX_PASSWORD) {
      return showSignIn(step, { identifier: identifier.slice(0, MAX_IDENTIFIER), error: t('login.credentialsRequired') }, 400);
    }
    if (await sentUpstream(step, identifier)) return;
    const verdict = await guard.before(step, identifier);
    if ('refused' in verdict) {
      if (verdict.refused.reason === 'captcha') return showSignIn(step, { identifier, error: t('login.captchaRequired') }, 400);
      return showRefusal(step, identifier, verdict.refused);
    }
    const authenticated = await selection.authenticate(step, identifier, password);
    if (authenticated.length === 0) {
      countLogin('invalid_credentials');
      await signIns.failed(step, identifier);
      const lockout = await guard.failed(step, verdict.subject, verdict.attempt);
      if (lockout) return showRefusal(step, identifier, { reason: 'locked', retryAfterSeconds: lockout.retryAfterSeconds });
      // The same words whether the account exists or not.
      return showSignIn(step, { identifier, error: t('login.credentialsWrong') }, 401);
    }
    const matches = await guard.succeeded(verdict.subject, authenticated);
    if (matches.length === 0) return showRefusal(step, identifier, { reason: 'locked' });
    step.state.identifier = identifier;
    if (matches.length > 1) {
      step.state.candidates = matches.map((user) => ({ tenantId: user.tenantId, userId: user.id }));
      await states.save(step.interaction.uid, step.state);
      return showTenantChoice(step);
    }
    step.state.user = { tenantId: matches[0].tenantId, userId: matches[0].id };
    step.state.amr = ['pwd'];
    step.state.passwordEntered = true;
    step.user = matches[0];
    await states.save(step.interaction.uid, step.state);
    return next.advance(step);
  });

  async function showTenantChoice(step: Step) {
    const tenants = await Promise.all((step.state.candidates ?? []).map((candidate) => deps.tenants.get(candidate.tenantId)));
    views.page(step.ctx, 'login-choose-tenant.njk', {
      uid: step.interaction.uid,
      tenants: tenants.map((tenant) => ({ id: tenant.id, name: tenant.displayName, slug: tenant.slug })),
    });
  }

  // "Unlock by e-mail" from the lockout page: a link goes to a locked account's address; the
  // answer is the same whether anything was sent or not (also over the per-identifier limit).
  router.post('/:uid/unlock', async (ctx) => {
    const step = await begin(ctx, 'login');
    if (!step) return;
    const identifier = (step.state.identifier ?? formField(ctx, 'identifier') ?? '').trim();
    if (identifier && identifier.length <= MAX_IDENTIFIER) {
      await deps.credentials.requestAccountUnlock(guard.subjectOf(step, identifier).scope, identifier, requestLocale(ctx), requestContext(ctx));
    }
    views.page(ctx, 'login-unlock-sent.njk', { uid: step.interaction.uid });
  });

  router.post('/:uid/choose', async (ctx) => {
    const step = await begin(ctx, 'login');
    if (!step) return;
    const chosen = step.state.candidates?.find((candidate) => candidate.tenantId === formField(ctx, 'tenant'));
    if (!chosen) return showSignIn(step, { error: views.translator(ctx)('login.chooseAgain') }, 400);
    step.state.user = chosen;
    step.state.amr = ['pwd'];
    step.state.passwordEntered = true;
    delete step.state.candidates;
    await states.save(step.interaction.uid, step.state);
    return next.advance(await withTenant(step));
  });

  router.get('/:uid/organization', async (ctx) => {
    const step = await begin(ctx, 'login');
    if (!step) return;
    views.page(ctx, 'login-organization.njk', { uid: step.interaction.uid, organization: '' });
  });

  router.post('/:uid/organization', async (ctx) => {
    const step = await begin(ctx, 'login');
    if (!step) return;
    const t = views.translator(ctx);
    const organization = (formField(ctx, 'organization') ?? '').trim().toLowerCase();
    const tenant = organization && organization.length <= MAX_ORGANIZATION && step.requested.kind === 'open' ? await deps.tenants.findBySlug(organization) : undefined;
    if (!tenant || tenant.status !== 'active') {
      return views.page(ctx, 'login-organization.njk', { uid: step.interaction.uid, organization: organization.slice(0, MAX_ORGANIZATION), error: t('login.organizationUnknown') }, 400);
    }
    step.state = { ...emptyLoginState(), tenantId: tenant.id };
    await states.save(step.interaction.uid, step.state);
    return showSignIn(await withTenant(step));
  });

  // "Not you?": start over with another identifier or organization.
  router.post('/:uid/restart', async (ctx) => {
    const step = await begin(ctx, 'login');
    if (!step) return;
    await states.save(step.interaction.uid, { ...emptyLoginState(), reauthenticationOffered: true });
    ctx.status = 303;
    ctx.redirect(`/interaction/${step.interaction.uid}`);
  });

  router.get('/:uid/register', async (ctx) => {
    const step = await begin(ctx, 'login');
    if (!step) return;
    const tenant = await selection.registrationTenant(step);
    if (!tenant) return views.page(ctx, 'error.njk', { error: 'registration_closed', description: views.translator(ctx)('login.registrationClosed') }, 404);
    views.page(ctx, 'register.njk', { uid: step.interaction.uid, values: {}, errors: {}, passwordMinLength: tenant.policies.password.minLength });
  });

  router.post('/:uid/register', async (ctx) => {
    const step = await begin(ctx, 'login');
    if (!step) return;
    const t = views.translator(ctx);
    const tenant = await selection.registrationTenant(step);
    if (!tenant) return views.page(ctx, 'error.njk', { error: 'registration_closed', description: t('login.registrationClosed') }, 404);
    const values = { email: (formField(ctx, 'email') ?? '').trim(), name: (formField(ctx, 'name') ?? '').trim() };
    const password = formField(ctx, 'password') ?? '';
    const errors: Record<string, string> = {};
    if (!values.email || values.email.length > MAX_IDENTIFIER) errors.email = t('login.emailRequired');
    if (!password || password.length > MAX_PASSWORD) errors.password = t('login.passwordRequired');
    else if (password !== formField(ctx, 'passwordConfirm')) errors.passwordConfirm = t('login.passwordsDiffer');
    if (!Object.keys(errors).length) {
      try {
        await deps.credentials.register(tenant.id, { email: values.email, password, ...(values.name ? { name: values.name } : {}) }, requestLocale(ctx), requestContext(ctx));
        const verificationRequired = await deps.credentials.emailVerificationRequired(tenant.id);
        return views.page(ctx, 'register-done.njk', { uid: step.interaction.uid, email: values.email, verificationRequired });
      } catch (error) {
        if (!(error instanceof DomainError) || error.status >= 500) throw error;
        Object.assign(errors, fieldMessages(error, t));
      }
    }
    views.page(ctx, 'register.njk', { uid: step.interaction.uid, values, errors, passwordMinLength: tenant.policies.password.minLength }, 400);
  });

  router.post('/:uid/continue', async (ctx) => {
    const step = await begin(ctx, 'login');
    if (!step) return;
    if (!step.state.user) return showSignIn(step);
    return next.advance(step);
  });

  registerSecondFactorRoutes(router, { deps, states, awaited, next, showSignIn, signIns });
  registerPendingSteps(router, { deps, states, awaited, next });
  const oneTimeCodes = registerOneTimeCodeRoutes(router, { deps, states, begin, awaited, next, showSignIn, signIns });
  registerFederationSteps(router, { deps, states, begin, next, showSignIn });

  router.post('/:uid/confirm', async (ctx) => {
    const interaction = await details(ctx);
    if (!interaction) return;
    if (interaction.prompt.name !== 'consent') ctx.throw(400, 'there is no consent to give at this step');
    await finish(ctx, { consent: { grantId: await grantConsent(providerHost.provider, interaction) } });
  });

  router.post('/:uid/abort', async (ctx) => {
    const interaction = await details(ctx);
    if (!interaction) return;
    await states.clear(interaction.uid);
    await finish(ctx, { error: 'access_denied', error_description: 'The user cancelled the sign-in.' }, false);
  });

  return router;
}

