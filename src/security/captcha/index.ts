// The challenge a suspicious sign-in must pass, from the configured provider: the built-in
// proof-of-work (default) or a hosted widget. The login page renders what challenge() returns
// (views/partials/captcha.njk); verify() reads the form's answer.
import type { Logger } from 'pino';
import type { SignInProtectionConfig } from '../../config.ts';
import type { HotStore } from '../../store/hot-store.ts';
import { createProofOfWork } from './pow.ts';
import { createSiteVerifier, HOSTED_PROVIDERS } from './siteverify.ts';

// Served from our own origin by the interaction routes.
export const POW_SCRIPT_PATH = '/interaction/challenge/pow.js';

export interface CaptchaChallenge {
  provider: SignInProtectionConfig['captcha']['provider'];
  scriptUrl: string;
  // Hosted widgets.
  siteKey?: string;
  widgetClass?: string;
  // Proof-of-work.
  powChallenge?: string;
  powDifficulty?: number;
}

export interface CaptchaVerifier {
  readonly provider: SignInProtectionConfig['captcha']['provider'];
  // `binding` ties a proof-of-work challenge to one sign-in.
  challenge(binding: string): CaptchaChallenge;
  verify(field: (name: string) => string | undefined, remoteIp: string, binding: string): Promise<boolean>;
}

export interface CspSources {
  scriptSrc: string[];
  frameSrc: string[];
  connectSrc: string[];
  styleSrc: string[];
}

// What the login page's Content-Security-Policy must allow for the configured challenge, for the
// security-headers middleware: the proof-of-work script is same-origin ('self'); hosted widgets
// load scripts and frames from their provider.
export function captchaCspSources(config: Pick<SignInProtectionConfig, 'captcha'>): CspSources {
  if (config.captcha.provider === 'pow') return { scriptSrc: ["'self'"], frameSrc: [], connectSrc: [], styleSrc: [] };
  const { csp } = HOSTED_PROVIDERS[config.captcha.provider];
  return { scriptSrc: [...csp.scriptSrc], frameSrc: [...csp.frameSrc], connectSrc: [...csp.connectSrc], styleSrc: [...csp.styleSrc] };
}

export function createCaptchaVerifier(config: SignInProtectionConfig['captcha'], options: { hot: HotStore; key: string; log?: Logger }): CaptchaVerifier {
  if (config.provider === 'pow') {
    const pow = createProofOfWork({ key: options.key, hot: options.hot, difficulty: config.powDifficulty });
    return {
      provider: 'pow',
      challenge: (binding) => ({ provider: 'pow', scriptUrl: POW_SCRIPT_PATH, powChallenge: pow.issue(binding), powDifficulty: pow.difficulty }),
      verify: (field, _remoteIp, binding) => pow.verify(field('pow_challenge'), field('pow_solution'), binding),
    };
  }
  const hosted = createSiteVerifier({ provider: config.provider, secret: config.secret!, verifyUrl: config.verifyUrl, log: options.log });
  return {
    provider: config.provider,
    challenge: () => ({ provider: config.provider, scriptUrl: hosted.spec.scriptUrl, siteKey: config.siteKey, widgetClass: hosted.spec.widgetClass }),
    verify: (field, remoteIp) => hosted.verify(field(hosted.spec.responseField), remoteIp),
  };
}
