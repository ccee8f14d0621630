// Plain OAuth 2 upstreams (no OpenID Connect): the authorization code flow with PKCE (S256) and
// state, the code exchanged at the token endpoint, and the profile fetched with the access token
// and mapped by the connector's claim paths. There is no ID token: what the upstream says about
// the person is trusted because it came over TLS from its profile endpoint for our token.
import { randomUUID } from 'node:crypto';
import * as client from 'openid-client';
import { SignJWT } from 'jose';
import type { ConnectorWithSecrets, UpstreamProfile } from '../connector.ts';
import { UpstreamError } from '../connector.ts';
import { mapProfile } from './claim-paths.ts';
import { importClientKey } from './client-key.ts';
import { checkCallback, safeCode } from './errors.ts';
import type { OutboundFetch } from './outbound-fetch.ts';
import type { UpstreamTransaction } from './types.ts';

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export interface OAuth2Endpoints {
  authorizationEndpoint: string;
  tokenEndpoint: string;
  profileEndpoint: string;
}

export function endpointsOf(connector: ConnectorWithSecrets): OAuth2Endpoints {
  const { authorizationEndpoint, tokenEndpoint, profileEndpoint } = connector;
  if (!authorizationEndpoint || !tokenEndpoint || !profileEndpoint) {
    throw new UpstreamError('unreachable', 'the connector lacks its authorization, token or profile endpoint');
  }
  return { authorizationEndpoint, tokenEndpoint, profileEndpoint };
}

function endpointUrl(value: string, which: string): URL {
  try {
    return new URL(value);
  } catch {
    throw new UpstreamError('unreachable', `the connector ${which} endpoint is not a URL`);
  }
}

// RFC 6749 2.3.1: client_id and secret form-encoded before Basic.
function basic(clientId: string, secret: string): string {
  const encode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${encode(clientId)}:${encode(secret)}`).toString('base64')}`;
}

async function clientAssertion(connector: ConnectorWithSecrets, audience: string): Promise<string> {
  const { key, alg, kid } = await importClientKey(connector.secrets.privateJwk);
  return new SignJWT({})
    .setProtectedHeader({ alg, ...(kid && { kid }) })
    .setIssuer(connector.clientId)
    .setSubject(connector.clientId)
    .setAudience(audience)
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime('60s')
    .sign(key);
}

async function readJson(response: Response): Promise<unknown> {
  try {
    return JSON.parse(await response.text());
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function createOAuth2Flow(outboundFetch: OutboundFetch) {
  async function begin(connector: ConnectorWithSecrets, endpoints: OAuth2Endpoints, redirectUri: string, extra: { loginHint?: string } = {}) {
    const transaction: UpstreamTransaction = { state: client.randomState(), codeVerifier: client.randomPKCECodeVerifier(), redirectUri };
    const url = endpointUrl(endpoints.authorizationEndpoint, 'authorization');
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('client_id', connector.clientId);
    url.searchParams.set('redirect_uri', redirectUri);
    if (connector.scopes.length) url.searchParams.set('scope', connector.scopes.join(' '));
    url.searchParams.set('state', transaction.state);
    url.searchParams.set('code_challenge', await client.calculatePKCECodeChallenge(transaction.codeVerifier));
    url.searchParams.set('code_challenge_method', 'S256');
    if (extra.loginHint) url.searchParams.set('login_hint', extra.loginHint);
    return { url: url.href, transaction };
  }

  async function exchangeCode(connector: ConnectorWithSecrets, endpoints: OAuth2Endpoints, transaction: UpstreamTransaction, code: string): Promise<string> {
    const tokenUrl = endpointUrl(endpoints.tokenEndpoint, 'token');
    const body = new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: transaction.redirectUri, code_verifier: transaction.codeVerifier });
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (connector.clientAuth === 'private_key_jwt') {
      body.set('client_id', connector.clientId);
      body.set('client_assertion_type', ASSERTION_TYPE);
      body.set('client_assertion', await clientAssertion(connector, tokenUrl.href));
    } else if (connector.clientAuth === 'client_secret_post') {
      body.set('client_id', connector.clientId);
      body.set('client_secret', connector.secrets.clientSecret ?? '');
    } else {
      headers.authorization = basic(connector.clientId, connector.secrets.clientSecret ?? '');
    }
    const response = await outboundFetch(tokenUrl, { method: 'POST', headers, body });
    if (response.status >= 500) throw new UpstreamError('unreachable', `the token endpoint answered HTTP ${response.status}`);
    const answer = await readJson(response);
    const error = isObject(answer) ? answer.error : undefined;
    if (response.status !== 200) {
      if ((response.status === 400 || response.status === 401) && error === 'invalid_client') {
        throw new UpstreamError('invalid_client', `the token endpoint answered invalid_client (HTTP ${response.status})`);
      }
      if (response.status === 401 && error === undefined) throw new UpstreamError('invalid_client', 'the token endpoint refused the client credentials (HTTP 401)');
      if (error !== undefined) throw new UpstreamError('upstream_error', `the token endpoint answered ${safeCode(error)} (HTTP ${response.status})`);
      throw new UpstreamError('invalid_response', `the token endpoint answered HTTP ${response.status}`);
    }
    if (!isObject(answer) || typeof answer.access_token !== 'string' || !answer.access_token) {
      throw new UpstreamError('invalid_response', 'the token endpoint answered without an access token');
    }
    if (answer.token_type !== undefined && String(answer.token_type).toLowerCase() !== 'bearer') {
      throw new UpstreamError('invalid_response', `the token endpoint issued a ${safeCode(answer.token_type)} token, not a bearer token`);
    }
    return answer.access_token;
  }

  async function fetchProfile(endpoint: URL, accessToken: string): Promise<Record<string, unknown>> {
    const response = await outboundFetch(endpoint, { headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json' } });
    if (response.status >= 500) throw new UpstreamError('unreachable', `the profile endpoint answered HTTP ${response.status}`);
    if (response.status !== 200) throw new UpstreamError('invalid_response', `the profile endpoint answered HTTP ${response.status}`);
    const profile = await readJson(response);
    if (!isObject(profile)) throw new UpstreamError('invalid_response', 'the profile endpoint answered no JSON object');
    return profile;
  }

  // The code exchanged and the profile document fetched, unmapped.
  async function profileDocument(connector: ConnectorWithSecrets, endpoints: OAuth2Endpoints, transaction: UpstreamTransaction, callback: URLSearchParams, profileUrl?: URL): Promise<Record<string, unknown>> {
    const code = checkCallback(transaction, callback);
    const accessToken = await exchangeCode(connector, endpoints, transaction, code);
    return fetchProfile(profileUrl ?? endpointUrl(endpoints.profileEndpoint, 'profile'), accessToken);
  }

  return {
    begin,
    profileDocument,

    async beginConnector(connector: ConnectorWithSecrets, redirectUri: string, extra?: { loginHint?: string }) {
      return begin(connector, endpointsOf(connector), redirectUri, extra);
    },

    async complete(connector: ConnectorWithSecrets, transaction: UpstreamTransaction, callback: URLSearchParams): Promise<UpstreamProfile> {
      checkCallback(transaction, callback);
      if (!connector.claimMapping?.subject) throw new UpstreamError('invalid_response', 'the connector has no claim mapping for the subject');
      const document = await profileDocument(connector, endpointsOf(connector), transaction, callback);
      return mapProfile(document, connector.claimMapping, connector.trustEmail);
    },
  };
}
