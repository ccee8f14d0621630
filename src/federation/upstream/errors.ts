// What went wrong with an upstream, as an UpstreamError whose message is safe for audit entries
// and logs: OAuth error codes, HTTP statuses and library error names, never codes, tokens,
// secrets or free text the upstream (or whoever crafted the callback) chose.
import { createHash, timingSafeEqual } from 'node:crypto';
import * as client from 'openid-client';
import { UpstreamError } from '../connector.ts';
import type { UpstreamTransaction } from './types.ts';

// What a person (or the upstream on their behalf) declining looks like (RFC 6749 4.1.2.1, OIDC
// Core 3.1.2.6).
const DECLINED = new Set(['access_denied', 'consent_required', 'interaction_required', 'login_required']);

// An OAuth error code as RFC 6749 allows it (%x20-21 / %x23-5B / %x5D-7E), bounded, or a marker.
export function safeCode(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) return 'unknown';
  return value.slice(0, 64).replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '?');
}

// Equal-length digests, so the comparison takes the same time whatever the input's length.
function sameSecret(a: string, b: string): boolean {
  const left = createHash('sha256').update(a).digest();
  const right = createHash('sha256').update(b).digest();
  return timingSafeEqual(left, right);
}

// Checks the front-channel answer in this order: state (nothing else is trusted before it), an
// error the upstream reported, then the code. Returns the code.
export function checkCallback(transaction: UpstreamTransaction, callback: URLSearchParams): string {
  const state = callback.get('state');
  if (state === null || !sameSecret(state, transaction.state)) {
    throw new UpstreamError('state_mismatch', state === null ? 'the upstream callback carries no state' : 'the upstream callback carries another state than this sign-in');
  }
  const error = callback.get('error');
  if (error !== null) {
    const code = safeCode(error);
    if (DECLINED.has(error)) throw new UpstreamError('access_denied', `the upstream answered ${code}`);
    throw new UpstreamError('upstream_error', `the upstream answered ${code}`);
  }
  const code = callback.get('code');
  if (!code) throw new UpstreamError('invalid_response', 'the upstream callback carries no code');
  return code;
}

function findUpstreamError(error: unknown): UpstreamError | undefined {
  for (let current = error, depth = 0; current && depth < 5; current = (current as { cause?: unknown }).cause, depth++) {
    if (current instanceof UpstreamError) return current;
  }
  return undefined;
}

// The step the failure happened in: discovery failures mean the upstream cannot be used at all;
// at the token endpoint a refusal of our credentials is told apart.
export type Stage = 'discovery' | 'token' | 'userinfo';

// An error thrown by openid-client (or by the outbound fetch under it), as an UpstreamError.
export function fromClientError(error: unknown, stage: Stage): UpstreamError {
  const upstream = findUpstreamError(error);
  if (upstream) return upstream;
  const where = stage === 'discovery' ? 'discovery' : stage === 'token' ? 'the token endpoint' : 'the userinfo endpoint';
  if (stage === 'discovery') {
    return new UpstreamError('unreachable', `${where} failed: ${(error as Error).message?.slice(0, 120) ?? 'unknown error'}`);
  }
  if (error instanceof client.ResponseBodyError) {
    if (error.status >= 500) return new UpstreamError('unreachable', `${where} answered HTTP ${error.status}`);
    if (stage === 'token' && error.error === 'invalid_client') return new UpstreamError('invalid_client', `${where} answered invalid_client (HTTP ${error.status})`);
    return new UpstreamError('upstream_error', `${where} answered ${safeCode(error.error)} (HTTP ${error.status})`);
  }
  if (error instanceof client.WWWAuthenticateChallengeError) {
    if (error.status >= 500) return new UpstreamError('unreachable', `${where} answered HTTP ${error.status}`);
    if (stage === 'token' && error.status === 401) return new UpstreamError('invalid_client', `${where} refused the client credentials (HTTP 401)`);
    return new UpstreamError('invalid_response', `${where} refused the request (HTTP ${error.status})`);
  }
  if (error instanceof client.ClientError) {
    if (error.code === 'OAUTH_TIMEOUT' || error.code === 'OAUTH_ABORT') return new UpstreamError('unreachable', `${where} timed out`);
    const cause = error.cause;
    if (error.code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' && cause instanceof Response) {
      if (cause.status >= 500) return new UpstreamError('unreachable', `${where} answered HTTP ${cause.status}`);
      if (stage === 'token' && cause.status === 401) return new UpstreamError('invalid_client', `${where} refused the client credentials (HTTP 401)`);
      return new UpstreamError('invalid_response', `${where} answered HTTP ${cause.status}`);
    }
    return new UpstreamError('invalid_response', `${where}: ${error.message.slice(0, 120)}${error.code ? ` (${error.code})` : ''}`);
  }
  if (error instanceof TypeError) return new UpstreamError('unreachable', `${where} could not be reached`);
  return new UpstreamError('invalid_response', `${where}: unexpected failure`);
}
