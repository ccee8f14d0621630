// What the upstream client keeps between sending the browser away and the callback, and how it
// is configured. The login glue stores the transaction server-side, never in the browser.
export interface UpstreamTransaction {
  state: string;
  // oidc only: bound into the ID token.
  nonce?: string;
  // PKCE (S256): the challenge went out with the authorization request.
  codeVerifier: string;
  redirectUri: string;
}

export interface UpstreamClientOptions {
  // Loopback and private addresses (and plain http) allowed: development and tests only.
  allowPrivateNetwork: boolean;
  // For each request to the upstream (discovery, JWKS, token, userinfo or profile).
  timeoutMs: number;
}
