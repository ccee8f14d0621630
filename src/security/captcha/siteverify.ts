// Hosted CAPTCHA widgets (Cloudflare Turnstile, hCaptcha, Google reCAPTCHA v2): the page shows the
// provider's widget with our site key, the widget puts a response token into the form, and the
// server asks the provider's siteverify endpoint (secret + response + remoteip) whether it is good.
// Any failure to get a clear "success" (network, timeout, malformed answer) counts as not solved.
import type { Logger } from 'pino';

export type HostedProvider = 'turnstile' | 'hcaptcha' | 'recaptcha';

export interface HostedProviderSpec {
  scriptUrl: string;
  widgetClass: string;
  responseField: string;
  verifyUrl: string;
  // What the Content-Security-Policy of a page with the widget must allow.
  csp: { scriptSrc: string[]; frameSrc: string[]; connectSrc: string[]; styleSrc: string[] };
}

export const HOSTED_PROVIDERS: Record<HostedProvider, HostedProviderSpec> = {
  turnstile: {
    scriptUrl: 'https://challenges.cloudflare.com/turnstile/v0/api.js',
    widgetClass: 'cf-turnstile',
    responseField: 'cf-turnstile-response',
    verifyUrl: 'https://challenges.cloudflare.com/turnstile/v0/siteverify',
    csp: { scriptSrc: ['https://challenges.cloudflare.com'], frameSrc: ['https://challenges.cloudflare.com'], connectSrc: [], styleSrc: [] },
  },
  hcaptcha: {
    scriptUrl: 'https://js.hcaptcha.com/1/api.js',
    widgetClass: 'h-captcha',
    responseField: 'h-captcha-response',
    verifyUrl: 'https://api.hcaptcha.com/siteverify',
    csp: {
      scriptSrc: ['https://hcaptcha.com', 'https://*.hcaptcha.com'],
      frameSrc: ['https://hcaptcha.com', 'https://*.hcaptcha.com'],
      connectSrc: ['https://hcaptcha.com', 'https://*.hcaptcha.com'],
      styleSrc: ['https://hcaptcha.com', 'https://*.hcaptcha.com'],
    },
  },
  recaptcha: {
    scriptUrl: 'https://www.google.com/recaptcha/api.js',
    widgetClass: 'g-recaptcha',
    responseField: 'g-recaptcha-response',
    verifyUrl: 'https://www.google.com/recaptcha/api/siteverify',
    csp: {
      scriptSrc: ['https://www.google.com/recaptcha/', 'https://www.gstatic.com/recaptcha/'],
      frameSrc: ['https://www.google.com/recaptcha/', 'https://recaptcha.google.com/recaptcha/'],
      connectSrc: [],
      styleSrc: [],
    },
  },
};

const VERIFY_TIMEOUT_MS = 5000;
const MAX_RESPONSE = 4096;

export function createSiteVerifier(options: { provider: HostedProvider; secret: string; verifyUrl?: string; log?: Logger }) {
  const spec = HOSTED_PROVIDERS[options.provider];
  const verifyUrl = options.verifyUrl ?? spec.verifyUrl;
  return {
    spec,
    async verify(response: string | undefined, remoteIp: string): Promise<boolean> {
      if (!response || response.length > MAX_RESPONSE) return false;
      try {
        const answer = await fetch(verifyUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
          body: new URLSearchParams({ secret: options.secret, response, remoteip: remoteIp }).toString(),
          signal: AbortSignal.timeout(VERIFY_TIMEOUT_MS),
          redirect: 'error',
        });
        if (!answer.ok) {
          options.log?.warn({ provider: options.provider, status: answer.status }, 'CAPTCHA siteverify answered with an error');
          return false;
        }
        const body = (await answer.json()) as { success?: unknown };
        return body?.success === true;
      } catch (error) {
        options.log?.warn({ provider: options.provider, err: { message: (error as Error).message } }, 'CAPTCHA siteverify could not be reached');
        return false;
      }
    },
  };
}
