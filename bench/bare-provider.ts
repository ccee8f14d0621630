// The baseline for the benchmark: oidc-provider alone, with its default in-memory adapter, one
// signing key of the same algorithm, one static client_credentials client and the same API as a
// JWT resource server. Nothing of ours runs here (no Koa middleware, no PostgreSQL, no Redis).
//
// Started by bench/run.ts and bench/sessions.ts as a child process. Environment:
//   PORT (default 0), SIGNING_ALG (RS256 | ES256 | EdDSA), BENCH_CLIENT_ID, BENCH_CLIENT_SECRET,
//   BENCH_API (the resource identifier), BENCH_API_SCOPE.
// Prints one line `READY <url>` on stdout once it listens on 127.0.0.1.
//
// For the refresh-token benchmark there is a second client, `<BENCH_CLIENT_ID>-rt` (same secret,
// authorization_code + refresh_token), and one route outside oidc-provider:
// `POST /bench/refresh-tokens?count=N` saves N grants, each with one refresh token
// (`openid offline_access`), through the provider's own models and answers their values as JSON.
// With BENCH_UNBOUNDED_STORE=1 the store is a plain Map instead of oidc-provider's in-memory adapter,
// whose LRU keeps only 1000 entries: a pool of thousands of refresh tokens would be evicted.
//
// For the full-flow benchmark the `-rt` client also logs in, in the shape of our login: the
// interaction page is a form (`action="/interaction/<uid>/login"`, a `csrf` field), and its POST
// verifies the password with argon2id at BENCH_ARGON2 (`m,t,p`, default 19456,2,1) against one hash
// of BENCH_PASSWORD made at start, then finishes the interaction with a grant of the scopes asked
// for (no consent page, as for our first-party client). Any identifier is an account of that name.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { errors, type Adapter, type AdapterPayload, type Configuration, type KoaContextWithOIDC, type ResourceServer } from 'oidc-provider';
import { randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import argon2 from 'argon2';

const alg = process.env.SIGNING_ALG || 'RS256';
const clientId = process.env.BENCH_CLIENT_ID || 'bench';
const clientSecret = process.env.BENCH_CLIENT_SECRET || 'bench-secret-bench-secret-bench-secret';
const api = process.env.BENCH_API || 'https://api.bench.test';
const apiScope = process.env.BENCH_API_SCOPE || 'read';
const port = Number(process.env.PORT || 0);
const [memoryCost, timeCost, parallelism] = (process.env.BENCH_ARGON2 || '19456,2,1').split(',').map(Number);
const argon2Options = { type: argon2.argon2id, memoryCost, timeCost, parallelism } as const;
const passwordHash = await argon2.hash(process.env.BENCH_PASSWORD || 'bench password', argon2Options);

const { privateKey } = await generateKeyPair(alg, { extractable: true, modulusLength: 2048 });
const jwk = await exportJWK(privateKey);
const kid = await calculateJwkThumbprint(jwk);

// The issuer must be known before listening; bind first, then build the provider on that port.
const server = http.createServer();
server.keepAliveTimeout = 65_000;
await new Promise<void>((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', () => resolve());
});
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

// As cheap as the library's in-memory adapter (map operations), without its size limit.
const records = new Map<string, AdapterPayload>();
const grants = new Map<string, string[]>();
class MapAdapter implements Adapter {
  model: string;
  constructor(model: string) {
    this.model = model;
  }
  async upsert(id: string, payload: AdapterPayload): Promise<void> {
    const key = `${this.model}:${id}`;
    records.set(key, payload);
    if (payload.grantId) grants.set(payload.grantId, [...(grants.get(payload.grantId) ?? []), key]);
    if (payload.uid) records.set(`uid:${this.model}:${payload.uid}`, { id });
  }
  async find(id: string): Promise<AdapterPayload | undefined> {
    const payload = records.get(`${this.model}:${id}`);
    return payload && (!payload.exp || payload.exp > Date.now() / 1000) ? payload : undefined;
  }
  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    const entry = records.get(`uid:${this.model}:${uid}`);
    return entry ? this.find(entry.id as string) : undefined;
  }
  async findByUserCode(): Promise<undefined> {
    return undefined;
  }
  async consume(id: string): Promise<void> {
    const payload = records.get(`${this.model}:${id}`);
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }
  async destroy(id: string): Promise<void> {
    records.delete(`${this.model}:${id}`);
  }
  async revokeByGrantId(grantId: string): Promise<void> {
    for (const key of grants.get(grantId) ?? []) records.delete(key);
    grants.delete(grantId);
  }
}

const configuration: Configuration = {
  ...(process.env.BENCH_UNBOUNDED_STORE === '1' ? { adapter: MapAdapter } : {}),
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: alg as 'RS256',
    },
    {
      client_id: `${clientId}-rt`,
      client_secret: clientSecret,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: ['https://rp.bench.test/callback'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: alg as 'RS256',
    },
  ],
  // Like ours: every account exists, refresh tokens rotate on every use.
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  rotateRefreshToken: true,
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  ttl: { RefreshToken: 14 * 24 * 3600, Grant: 14 * 24 * 3600, Session: 14 * 24 * 3600 },
  jwks: { keys: [{ ...jwk, kid, alg, use: 'sig' }] as never },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: async () => false,
      async getResourceServerInfo(_ctx: KoaContextWithOIDC, indicator: string): Promise<ResourceServer> {
        if (indicator !== api) throw new errors.InvalidTarget('the resource is not a registered API');
        return {
          scope: apiScope,
          audience: api,
          accessTokenTTL: 3600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: alg as 'RS256' } },
        };
      },
    },
  },
};

const provider = new Provider(url, configuration);
const callback = provider.callback();
server.on('request', (req, res) => {
  const interaction = req.url?.match(/^\/interaction\/([^/?]+)(\/login)?$/);
  if (interaction) {
    (interaction[2] ? finishLogin(req, res) : loginPage(req, res)).catch((error: Error) => {
      if (!res.headersSent) res.writeHead(500).end(error.message);
    });
    return;
  }
  if (req.method === 'POST' && req.url?.startsWith('/bench/refresh-tokens?')) {
    seedRefreshTokens(Number(new URL(req.url, url).searchParams.get('count'))).then(
      (tokens) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(tokens)),
      (error: Error) => res.writeHead(500).end(error.message),
    );
    return;
  }
  callback(req, res);
});

async function loginPage(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const { uid } = await provider.interactionDetails(req, res);
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<form method="post" action="/interaction/${uid}/login"><input type="hidden" name="csrf" value="${randomBytes(16).toString('base64url')}">` +
    '<input name="identifier"><input name="password" type="password"><button>Sign in</button></form>');
}

async function finishLogin(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  let body = '';
  for await (const chunk of req) body += chunk;
  const form = new URLSearchParams(body);
  const accountId = form.get('identifier') ?? '';
  if (req.method !== 'POST' || !accountId || !(await argon2.verify(passwordHash, form.get('password') ?? ''))) {
    res.writeHead(401).end('wrong password');
    return;
  }
  const grant = new provider.Grant({ accountId, clientId: String(details.params.client_id) });
  grant.addOIDCScope(String(details.params.scope));
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { login: { accountId }, consent: { grantId } }, { mergeWithLastSubmission: false });
}

async function seedRefreshTokens(count: number): Promise<string[]> {
  if (!Number.isInteger(count) || count < 1 || count > 1_000_000) throw new Error('count must be in [1, 1000000]');
  const client = await provider.Client.find(`${clientId}-rt`);
  const scope = 'openid offline_access';
  const authTime = Math.floor(Date.now() / 1000);
  const tokens: string[] = [];
  for (let i = 0; i < count; i++) {
    const accountId = `bench-user-${i}`;
    const grant = new provider.Grant({ accountId, clientId: client!.clientId });
    grant.addOIDCScope(scope);
    const grantId = await grant.save();
    const token = new provider.RefreshToken({ accountId, client: client!, grantId, scope, gty: 'authorization_code', authTime, expiresWithSession: false });
    tokens.push(await token.save());
  }
  return tokens;
}

const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

console.log(`READY ${url}`);
