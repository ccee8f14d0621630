// A relying party built on openid-client, logging in through the real login form over HTTP.
import * as oidc from 'openid-client';
import { Browser, formAction, hiddenField } from './browser.ts';

export const REDIRECT_URI = 'http://127.0.0.1:1/callback';
export const POST_LOGOUT_REDIRECT_URI = 'http://127.0.0.1:1/logged-out';

export async function discover(issuer: string, clientId: string, clientSecret?: string): Promise<oidc.Configuration> {
  return oidc.discovery(new URL(issuer), clientId, clientSecret ? { client_secret: clientSecret } : undefined, clientSecret ? oidc.ClientSecretBasic(clientSecret) : oidc.None(), {
    execute: [oidc.allowInsecureRequests],
  });
}

export interface LoginResult {
  tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;
  browser: Browser;
}

export interface LoginOptions {
  identifier: string;
  password: string;
  scope?: string;
  browser?: Browser;
  extraParams?: Record<string, string>;
  // Called on the consent page, when one is shown; the default allows.
  consent?: 'allow' | 'deny';
  // Push the request first (PAR, RFC 9126) and send the browser with only a request_uri.
  par?: boolean;
  // Answers any other sign-in page (a second factor, a password change...): returns the response
  // of the form it submitted.
  onPage?: (page: { url: URL; html: string; browser: Browser }) => Promise<Response>;
}

// Authorization code + PKCE through the login form. Returns the tokens from the token endpoint.
export async function loginWithCode(config: oidc.Configuration, issuer: string, options: LoginOptions): Promise<LoginResult> {
  const { callback, verifier, state, nonce, browser } = await authorizeWithLogin(config, issuer, options);
  const tokens = await oidc.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: (options.scope ?? 'openid').includes('openid'),
  });
  return { tokens, browser };
}

export interface AuthorizationResult {
  // The redirect back to the client, carrying either a code or an error.
  callback: URL;
  code: string | null;
  verifier: string;
  state: string;
  nonce: string;
  browser: Browser;
}

// The front-channel half of loginWithCode: the authorization request (S256 PKCE by default;
// extraParams override any default, e.g. code_challenge_method) and the login form, stopping at
// the redirect back to the client. The code is returned unexchanged.
export async function authorizeWithLogin(config: oidc.Configuration, issuer: string, options: LoginOptions): Promise<AuthorizationResult> {
  const browser = options.browser ?? new Browser();
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const parameters = {
    redirect_uri: REDIRECT_URI,
    scope: options.scope ?? 'openid email profile',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...options.extraParams,
  };
  const authorizationUrl = options.par
    ? await oidc.buildAuthorizationUrlWithPAR(config, parameters)
    : oidc.buildAuthorizationUrl(config, parameters);
  let { response, url } = await browser.follow(authorizationUrl, issuer);
  for (let step = 0; step < 8 && url.origin === issuer; step++) {
    let html = await response.text();
    if (url.pathname.startsWith('/interaction/') && html.includes('/identify"')) {
      // Identifier first: the password page follows whatever the identifier.
      const identified = await browser.submitForm(new URL(formAction(html, '/identify'), issuer), { csrf: hiddenField(html, 'csrf'), identifier: options.identifier });
      if (identified.status !== 200) throw new Error(`identifier step failed with ${identified.status}`);
      html = await identified.text();
    }
    if (url.pathname.startsWith('/interaction/') && html.includes('name="password"') && html.includes('/login"')) {
      const login = await browser.submitForm(new URL(formAction(html, '/login'), issuer), {
        csrf: hiddenField(html, 'csrf'),
        identifier: options.identifier,
        password: options.password,
      });
      if (login.status === 200 && options.onPage) {
        // A further sign-in step (second factor, new password...) follows on the same page.
        response = login;
        continue;
      }
      if (login.status !== 303) throw new Error(`login failed with ${login.status}`);
      ({ response, url } = await browser.follow(new URL(login.headers.get('location')!, issuer), issuer));
    } else if (url.pathname.startsWith('/interaction/') && html.includes('/confirm')) {
      const path = options.consent === 'deny' ? '/abort' : '/confirm';
      const consent = await browser.submitForm(new URL(formAction(html, path), issuer), { csrf: hiddenField(html, 'csrf') });
      ({ response, url } = await browser.follow(new URL(consent.headers.get('location')!, issuer), issuer));
    } else if (options.onPage && url.pathname.startsWith('/interaction/')) {
      const answer = await options.onPage({ url, html, browser });
      if (answer.status !== 303) {
        response = answer;
        continue;
      }
      ({ response, url } = await browser.follow(new URL(answer.headers.get('location')!, issuer), issuer));
    } else {
      throw new Error(`unexpected page ${url.pathname} (${response.status}): ${html.slice(0, 300)}`);
    }
  }
  if (url.origin === issuer) throw new Error(`the flow did not return to the client: ${url}`);
  return { callback: url, code: url.searchParams.get('code'), verifier, state, nonce, browser };
}

export interface AuthorizationRequest {
  url: URL;
  verifier: string;
  state: string;
  nonce: string;
}

// An authorization code request with S256 PKCE, state and nonce, for a browser to open.
export async function authorizationRequest(config: oidc.Configuration, redirectUri: string, extra: Record<string, string> = {}): Promise<AuthorizationRequest> {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid email profile',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...extra,
  });
  return { url, verifier, state, nonce };
}
