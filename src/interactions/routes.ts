// The login interaction: the pages oidc-provider sends the browser to when it needs a login or a
// consent. Thin handlers: read the form, call the user service, hand the result back to the provider.
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { InteractionResults } from 'oidc-provider';
import type { ProviderHost } from '../oidc/provider-host.ts';
import type { UserService } from '../users/service.ts';
import type { ClientService } from '../clients/service.ts';
import type { Views } from '../http/views.ts';
import { csrfProtection, formField } from '../http/csrf.ts';
import type { LoginTenantResolver } from '../tenants/login-tenant.ts';

export interface InteractionDependencies {
  providerHost: ProviderHost;
  users: UserService;
  clients: ClientService;
  loginTenant: LoginTenantResolver;
  views: Views;
  csrfKey: string;
}

// A tenant id no tenant has: an unknown or disabled tenant still costs one password verification.
const NO_TENANT = '00000000-0000-4000-8000-000000000000';

const MAX_IDENTIFIER = 320;
const MAX_PASSWORD = 1024;

type Details = Awaited<ReturnType<Provider['interactionDetails']>>;

export function interactionRoutes(deps: InteractionDependencies): Router {
  const { providerHost, users, clients, views } = deps;
  const router = new Router({ prefix: '/interaction' });
  router.use(bodyParser({ enableTypes: ['form'], formLimit: '16kb' }));
  router.use(csrfProtection(deps.csrfKey));
  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  });

  async function details(ctx: Context): Promise<Details | undefined> {
    try {
      const found = await providerHost.provider.interactionDetails(ctx.req, ctx.res);
      if (found.uid !== ctx.params.uid) throw new Error('interaction mismatch');
      return found;
    } catch {
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = views.render('error.njk', {
        error: 'interaction_expired',
        description: 'This sign-in page has expired or was opened in another browser. Return to the application and sign in again.',
      });
      return undefined;
    }
  }

  async function finish(ctx: Context, result: InteractionResults, merge = true): Promise<void> {
    const redirectTo = await providerHost.provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: merge });
    ctx.status = 303;
    ctx.redirect(redirectTo);
  }

  async function clientView(clientId: unknown) {
    const client = typeof clientId === 'string' ? await clients.get(clientId) : undefined;
    return { name: (client?.metadata.client_name as string | undefined) ?? 'the application', firstParty: client?.firstParty ?? false };
  }

  function renderLogin(ctx: Context, interaction: Details, client: { name: string }, extra: Record<string, unknown> = {}) {
    ctx.type = 'html';
    ctx.body = views.render('login.njk', {
      uid: interaction.uid,
      csrf: ctx.state.csrfToken,
      clientName: client.name,
      identifier: typeof interaction.params.login_hint === 'string' ? interaction.params.login_hint : '',
      ...extra,
    });
  }

  router.get('/:uid', async (ctx) => {
    const interaction = await details(ctx);
    if (!interaction) return;
    const client = await clientView(interaction.params.client_id);
    if (interaction.prompt.name === 'login') return renderLogin(ctx, interaction, client);
    if (interaction.prompt.name === 'consent') {
      if (client.firstParty) return finish(ctx, { consent: { grantId: await grantConsent(providerHost.provider, interaction) } });
      ctx.type = 'html';
      ctx.body = views.render('consent.njk', {
        uid: interaction.uid,
        csrf: ctx.state.csrfToken,
        clientName: client.name,
        scopes: requestedScopes(interaction),
      });
      return;
    }
    ctx.throw(400, `unsupported prompt: ${interaction.prompt.name}`);
  });

  async function loginTenant(interaction: Details): Promise<string> {
    return (await deps.loginTenant(interaction.params.client_id, interaction.params.tenant)) ?? NO_TENANT;
  }

  router.post('/:uid/login', async (ctx) => {
    const interaction = await details(ctx);
    if (!interaction) return;
    if (interaction.prompt.name !== 'login') ctx.throw(400, 'this sign-in step is already complete');
    const identifier = (formField(ctx, 'identifier') ?? '').trim();
    const password = formField(ctx, 'password') ?? '';
    const client = await clientView(interaction.params.client_id);
    if (!identifier || !password || identifier.length > MAX_IDENTIFIER || password.length > MAX_PASSWORD) {
      ctx.status = 400;
      return renderLogin(ctx, interaction, client, { identifier: identifier.slice(0, MAX_IDENTIFIER), error: 'Enter your e-mail or username and your password.' });
    }
    const user = await users.authenticate(identifier, password, await loginTenant(interaction));
    if (!user) {
      ctx.status = 401;
      // The same words whether the account exists or not.
      return renderLogin(ctx, interaction, client, { identifier, error: 'The e-mail, username or password is not correct.' });
    }
    await finish(ctx, { login: { accountId: user.id, amr: ['pwd'] } }, false);
  });

  router.post('/:uid/confirm', async (ctx) => {
    const interaction = await details(ctx);
    if (!interaction) return;
    if (interaction.prompt.name !== 'consent') ctx.throw(400, 'there is no consent to give at this step');
    await finish(ctx, { consent: { grantId: await grantConsent(providerHost.provider, interaction) } });
  });

  router.post('/:uid/abort', async (ctx) => {
    const interaction = await details(ctx);
    if (!interaction) return;
    await finish(ctx, { error: 'access_denied', error_description: 'The user cancelled the sign-in.' }, false);
  });

  return router;
}

function requestedScopes(interaction: Details): string[] {
  const details = interaction.prompt.details as {
    missingOIDCScope?: string[];
    missingResourceScopes?: Record<string, string[]>;
  };
  return [...(details.missingOIDCScope ?? []), ...Object.values(details.missingResourceScopes ?? {}).flat()];
}

async function grantConsent(provider: Provider, interaction: Details): Promise<string> {
  const details = interaction.prompt.details as {
    missingOIDCScope?: string[];
    missingOIDCClaims?: string[];
    missingResourceScopes?: Record<string, string[]>;
  };
  const accountId = interaction.session?.accountId;
  const existing = interaction.grantId ? await provider.Grant.find(interaction.grantId) : undefined;
  const grant = existing ?? new provider.Grant({ accountId, clientId: interaction.params.client_id as string });
  if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
  if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  return grant.save();
}
