// The baseline for the benchmark: oidc-provider alone, with its default in-memory adapter, one
// signing key of the same algorithm, one static client_credentials client and the same API as a
// JWT resource server. Nothing of ours runs here (no Koa middleware, no PostgreSQL, no Redis).
//
// Started by bench/run.ts as a child process. Environment:
//   PORT (default 0), SIGNING_ALG (RS256 | ES256 | EdDSA), BENCH_CLIENT_ID, BENCH_CLIENT_SECRET,
//   BENCH_API (the resource identifier), BENCH_API_SCOPE.
// Prints one line `READY <url>` on stdout once it listens on 127.0.0.1.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { errors, type Configuration, type KoaContextWithOIDC, type ResourceServer } from 'oidc-provider';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';

const alg = process.env.SIGNING_ALG || 'RS256';
const clientId = process.env.BENCH_CLIENT_ID || 'bench';
const clientSecret = process.env.BENCH_CLIENT_SECRET || 'bench-secret-bench-secret-bench-secret';
const api = process.env.BENCH_API || 'https://api.bench.test';
const apiScope = process.env.BENCH_API_SCOPE || 'read';
const port = Number(process.env.PORT || 0);

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

const configuration: Configuration = {
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
  ],
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
server.on('request', provider.callback());

const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

console.log(`READY ${url}`);
