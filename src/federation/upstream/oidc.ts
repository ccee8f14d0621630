// OpenID Connect upstreams through openid-client: discovery from the issuer, authorization code
// with PKCE (S256), state and nonce, the ID token validated by the library (signature against the
// upstream's JWKS, iss, aud, exp, nonce), userinfo when the connector asks for it. Every request
// goes through the guarded outbound fetch.
import * as client from 'openid-client';
import { LRUCache } from 'lru-cache';
import type { ConnectorWithSecrets, UpstreamProfile } from '../connector.ts';
import { UpstreamError } from '../connector.ts';
import { mapProfile, OIDC_DEFAULT_MAPPING } from './claim-paths.ts';
import { importClientKey } from './client-key.ts';
import { checkCallback, fromClientError } from './errors.ts';
import type { OutboundFetch } from './outbound-fetch.ts';
import type { UpstreamClientOptions, UpstreamTransaction } from './types.ts';

// Discovery documents change rarely; a few minutes spares a round trip per sign-in while a
// changed upstream is seen soon. A connector's new version (new secret or key) is a new entry.
const CONFIGURATION_TTL_MS = 5 * 60 * 1000;
const CONFIGURATION_CACHE_SIZE = 500;

async function clientAuthentication(connector: ConnectorWithSecrets): Promise<client.ClientAuth> {
  switch (connector.clientAuth) {
    case 'client_secret_post':
      return client.ClientSecretPost(connector.secrets.clientSecret ?? '');
    case 'private_key_jwt': {
      const { key, kid } = await importClientKey(connector.secrets.privateJwk);
      return client.PrivateKeyJwt(kid ? { key, kid } : key);
    }
    default:
      return client.ClientSecretBasic(connector.secrets.clientSecret ?? '');
  }
}

function scopeOf(connector: ConnectorWithSecrets): string {
  const scopes = connector.scopes.length ? connector.scopes : ['openid', 'email', 'profile'];
  return (scopes.includes('openid') ? scopes : ['openid', ...scopes]).join(' ');
}

export function createOidcFlow(options: UpstreamClientOptions, outboundFetch: OutboundFetch) {
  const configurations = new LRUCache<string, client.Configuration>({ max: CONFIGURATION_CACHE_SIZE, ttl: CONFIGURATION_TTL_MS });
  const customFetch: client.CustomFetch = (url, init) => outboundFetch(url, init);
  const timeoutSeconds = Math.max(1, Math.ceil(options.timeoutMs / 1000));

  async function configurationFor(connector: ConnectorWithSecrets): Promise<client.Configuration> {
    if (!connector.issuer) throw new UpstreamError('unreachable', 'the connector has no issuer');
    const cacheKey = `${connector.id}:${connector.version}:${connector.issuer}`;
    const cached = configurations.get(cacheKey);
    if (cached) return cached;
    let issuer: URL;
    try {
      issuer = new URL(connector.issuer);
    } catch {
      throw new UpstreamError('unreachable', 'the connector issuer is not a URL');
    }
    const auth = await clientAuthentication(connector);
    // Plain http issuers only where private networks are allowed (development and tests).
    const insecure = issuer.protocol === 'http:' && options.allowPrivateNetwork;
    let configuration: client.Configuration;
    try {
      configuration = await client.discovery(issuer, connector.clientId, undefined, auth, {
        [client.customFetch]: customFetch,
        timeout: timeoutSeconds,
        execute: insecure ? [client.allowInsecureRequests] : [],
      });
    } catch (error) {
      throw fromClientError(error, 'discovery');
    }
    configuration.timeout = timeoutSeconds;
    configurations.set(cacheKey, configuration);
    return configuration;
  }

  return {
    async begin(connector: ConnectorWithSecrets, redirectUri: string, extra: { loginHint?: string } = {}): Promise<{ url: string; transaction: UpstreamTransaction }> {
      const configuration = await configurationFor(connector);
      const transaction: UpstreamTransaction = {
        state: client.randomState(),
        nonce: client.randomNonce(),
        codeVerifier: client.randomPKCECodeVerifier(),
        redirectUri,
      };
      const parameters: Record<string, string> = {
        redirect_uri: redirectUri,
        scope: scopeOf(connector),
        state: transaction.state,
        nonce: transaction.nonce!,
        code_challenge: await client.calculatePKCECodeChallenge(transaction.codeVerifier),
        code_challenge_method: 'S256',
      };
      if (extra.loginHint) parameters.login_hint = extra.loginHint;
      return { url: client.buildAuthorizationUrl(configuration, parameters).href, transaction };
    },

    async complete(connector: ConnectorWithSecrets, transaction: UpstreamTransaction, callback: URLSearchParams): Promise<UpstreamProfile> {
      checkCallback(transaction, callback);
      const configuration = await configurationFor(connector);
      const currentUrl = new URL(transaction.redirectUri);
      currentUrl.search = callback.toString();
      let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
      try {
        tokens = await client.authorizationCodeGrant(
          configuration,
          currentUrl,
          { pkceCodeVerifier: transaction.codeVerifier, expectedState: transaction.state, expectedNonce: transaction.nonce, idTokenExpected: true },
          { redirect_uri: transaction.redirectUri },
        );
      } catch (error) {
        throw fromClientError(error, 'token');
      }
      const idClaims = tokens.claims();
      if (!idClaims) throw new UpstreamError('invalid_response', 'the upstream issued no ID token');
      let claims: Record<string, unknown> = { ...idClaims };
      if (connector.useUserinfo) {
        try {
          // The library refuses a userinfo answer about another subject than the ID token's.
          const userinfo = await client.fetchUserInfo(configuration, tokens.access_token, idClaims.sub);
          claims = { ...userinfo, ...idClaims };
        } catch (error) {
          throw fromClientError(error, 'userinfo');
        }
      }
      return mapProfile(claims, connector.claimMapping ?? OIDC_DEFAULT_MAPPING, connector.trustEmail);
    },
  };
}
