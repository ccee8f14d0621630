// Where each oidc-provider model lives (see ARCHITECTURE.md, "Storage").
export const durableModels = new Set([
  'Session',
  'Grant',
  'RefreshToken',
  'RegistrationAccessToken',
  'InitialAccessToken',
]);

// Durable models read straight from PostgreSQL, never cached in the hot store: a refresh token is
// read once per rotation and replaced, so a cached copy would cost a write and save no read.
export const uncachedModels = new Set(['RefreshToken']);

// Models whose `consume()` must be atomic and visible to every later `find()`.
export const consumableModels = new Set([
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PushedAuthorizationRequest',
  'PreAuthorizedCode',
]);

// Every model that can carry a grantId, for revoking a grant from our own code.
export const grantableModels = [
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
] as const;

// Hash tags keep a record and its consumed marker in one Redis Cluster slot.
export const hotKeys = {
  record: (model: string, id: string) => `oidc:{${model}:${id}}`,
  consumed: (model: string, id: string) => `oidc:{${model}:${id}}:consumed`,
  grant: (grantId: string) => `oidc:grant:{${grantId}}`,
  uid: (model: string, uid: string) => `oidc:uid:{${model}:${uid}}`,
  userCode: (model: string, userCode: string) => `oidc:usercode:{${model}:${userCode}}`,
};

// How long a durable record may be served from the hot-store cache before re-reading PostgreSQL.
export const DURABLE_CACHE_SECONDS = 300;

// Refresh tokens are opaque values of 384 bits (64 characters), every other opaque token of 256
// (43 characters). Introspection without a type hint looks a value up as every token type at once;
// the length rules out a refresh token without a database round trip.
export const REFRESH_TOKEN_BITS = 384;
export const REFRESH_TOKEN_LENGTH = Math.ceil(REFRESH_TOKEN_BITS / 6);

// The hot-store keys that only cache durable rows (record, consumed marker, uid index): during a
// Redis outage they are neither served nor kept by the fallback, and Redis drops them on recovery.
const durableCacheKey = new RegExp(`^oidc:(uid:)?\\{(${[...durableModels].join('|')}):`);
export function isDurableCacheKey(key: string): boolean {
  return durableCacheKey.test(key);
}
