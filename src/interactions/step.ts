// What every sign-in step works with: the services it calls and the request's step context.
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { ProviderHost } from '../oidc/provider-host.ts';
import type { User, UserService } from '../users/service.ts';
import type { ClientService } from '../clients/service.ts';
import type { TenantService, Tenant } from '../tenants/service.ts';
import type { LoginTenant, LoginTenantResolver } from '../tenants/login-tenant.ts';
import type { Views } from '../http/views.ts';
import type { HotStore } from '../store/hot-store.ts';
import type { MfaService } from '../mfa/service.ts';
import type { CredentialService } from '../credentials/service.ts';
import type { LoginState } from './state.ts';
import type { SessionService } from '../sessions/service.ts';
import type { SignInAuditDependencies } from './sign-in-audit.ts';
import type { SignInProtection } from '../security/brute-force-guard.ts';

// db, audit and outbox: each sign-in's audit entries and events (sign-in-audit.ts).
import type { IpRuleService } from '../security/ip-rules.ts';
import type { OneTimeCodeService } from '../otp/service.ts';
import type { FederationPages } from './federation.ts';

export interface InteractionDependencies extends SignInAuditDependencies {
  providerHost: ProviderHost;
  users: UserService;
  clients: ClientService;
  tenants: TenantService;
  loginTenant: LoginTenantResolver;
  mfa: MfaService;
  credentials: CredentialService;
  views: Views;
  hot: HotStore;
  csrfKey: string;
  interactionTtlSeconds: number;
  // Session policy at sign-in completion (src/sessions): concurrent-session limit, remember-me.
  sessions?: Pick<SessionService, 'admitLogin'>;
  // Lockouts, spraying detection, CAPTCHA and per-identifier limits of password sign-in.
  signInProtection: SignInProtection;
  // The tenant's IP rules for sign-in (src/security/ip-rules.ts).
  ipRules?: Pick<IpRuleService, 'check'>;
  // Codes by e-mail, SMS or WhatsApp: sign-in without a password, and a second factor (src/otp).
  oneTimeCodes?: OneTimeCodeService;
  // Sign-in through the tenant's upstream connectors (src/interactions/federation.ts).
  federation?: FederationPages;
}

export type Details = Awaited<ReturnType<Provider['interactionDetails']>>;

export type { SignInAudit } from './sign-in-audit.ts';

export interface Step {
  ctx: Context;
  interaction: Details;
  state: LoginState;
  requested: LoginTenant;
  client: { name?: string; firstParty: boolean };
  tenant?: Tenant;
  // The person this very request read from the store while checking their password: advancing
  // needs no second read of them.
  user?: User;
}

// Starts a step: the interaction, its state and tenant; undefined when a page was already shown
// (expired interaction, or a step posted at the wrong prompt).
export type BeginStep = (ctx: Context, expectedPrompt?: string) => Promise<Step | undefined>;
