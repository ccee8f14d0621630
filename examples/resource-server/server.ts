// A resource server that serves one API over HTTP (GET /hello) and over a WebSocket (/ws) with
// the same bearer token: a JWT access token of the provider (RFC 9068) for this API. It follows
// the provider's revocation stream and closes a WebSocket the moment its token is revoked.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';
import { WebSocketServer, type WebSocket } from 'ws';
import { followRevocationStream, type RevocationStreamEvent } from './revocation-stream.ts';
import { createRevokedList, revokes, type TokenClaims } from './revoked.ts';

export interface ResourceServerOptions {
  // The provider's issuer identifier (its discovery document says where its keys and stream are).
  issuer: string;
  // This API's resource indicator: the `aud` its tokens must carry.
  audience: string;
  // A confidential client of the provider allowed to read the revocation stream.
  clientId: string;
  clientSecret: string;
  port?: number;
  host?: string;
  // The longest access token lifetime of the provider: how long a revocation must be remembered.
  accessTokenLifetimeSeconds?: number;
  algorithms?: string[];
  log?: (message: string) => void;
}

export interface ResourceServer {
  url: string;
  // Resolves once the revocation stream is connected (the provider subscribed it).
  streamConnected: Promise<void>;
  openConnections(): number;
  close(): Promise<void>;
}

// Close code for "your token was revoked or expired": 4000-4999 are for applications (RFC 6455 §7.4.2).
export const CLOSE_TOKEN_REVOKED = 4001;
// The subprotocol a browser offers next to its token (browsers cannot set Authorization on a WebSocket).
export const TOKEN_SUBPROTOCOL = 'access_token';

interface Connection {
  socket: WebSocket;
  claims: TokenClaims;
  expiry: NodeJS.Timeout;
}

export async function startResourceServer(options: ResourceServerOptions): Promise<ResourceServer> {
  const log = options.log ?? (() => {});
  const discovery = (await (await fetch(new URL('/.well-known/openid-configuration', options.issuer))).json()) as { jwks_uri: string; issuer: string };
  const jwks = createRemoteJWKSet(new URL(discovery.jwks_uri));
  const revoked = createRevokedList(options.accessTokenLifetimeSeconds ?? 3600);
  const connections = new Set<Connection>();

  async function verify(token: string | undefined): Promise<TokenClaims | undefined> {
    if (!token) return undefined;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, jwks, {
        issuer: options.issuer,
        audience: options.audience,
        typ: 'at+jwt',
        algorithms: options.algorithms ?? ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'],
      }));
    } catch {
      return undefined;
    }
    if (typeof payload.sub !== 'string') return undefined;
    // A sender-constrained token (cnf: a DPoP key or a client certificate) is valid only with its
    // proof, which a plain bearer server cannot check (RFC 9449 §7.1, RFC 8705 §3): refuse it.
    if (payload.cnf !== undefined) return undefined;
    const claims: TokenClaims = { sub: payload.sub, jti: payload.jti, iat: payload.iat, exp: payload.exp, sid: typeof payload.sid === 'string' ? payload.sid : undefined };
    return revoked.refusing(claims) ? undefined : claims;
  }

  function onRevocation(event: RevocationStreamEvent): void {
    revoked.add(event);
    for (const connection of connections) {
      if (revokes(event, connection.claims)) connection.socket.close(CLOSE_TOKEN_REVOKED, event.type);
    }
  }

  let connected!: () => void;
  const streamConnected = new Promise<void>((resolve) => (connected = resolve));
  const stream = followRevocationStream({
    url: new URL('/events/revocations', discovery.issuer).toString(),
    clientId: options.clientId,
    clientSecret: options.clientSecret,
    onEvent: onRevocation,
    onConnected: () => connected(),
    onProblem: log,
  });

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET' || url.pathname !== '/hello') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not_found' }));
      return;
    }
    const claims = await verify(bearerToken(req.headers.authorization));
    if (!claims) {
      res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"', 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_token' }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify({ hello: claims.sub }));
  });

  const sockets = new WebSocketServer({
    noServer: true,
    maxPayload: 64 * 1024,
    // Accept the token's subprotocol without echoing the token back.
    handleProtocols: (protocols) => (protocols.has(TOKEN_SUBPROTOCOL) ? TOKEN_SUBPROTOCOL : false),
  });

  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname !== '/ws') return refuseUpgrade(socket, 404, '');
      const claims = await verify(bearerToken(req.headers.authorization) ?? tokenFromSubprotocols(req.headers['sec-websocket-protocol']));
      if (!claims) return refuseUpgrade(socket, 401, 'Bearer error="invalid_token"');
      sockets.handleUpgrade(req, socket, head, (ws) => accept(ws, claims));
    })().catch(() => socket.destroy());
  });

  function accept(socket: WebSocket, claims: TokenClaims): void {
    // (Capped at the largest delay a timer takes; a longer one would fire at once.)
    const untilExpiry = Math.min(Math.max(0, (claims.exp ?? 0) * 1000 - Date.now()), 2 ** 31 - 1);
    const connection: Connection = {
      socket,
      claims,
      // A connection lives no longer than its token.
      expiry: setTimeout(() => socket.close(CLOSE_TOKEN_REVOKED, 'token expired'), untilExpiry).unref(),
    };
    connections.add(connection);
    socket.on('close', () => {
      clearTimeout(connection.expiry);
      connections.delete(connection);
    });
    socket.on('message', (data) => socket.send(JSON.stringify({ echo: data.toString(), sub: claims.sub })));
    socket.send(JSON.stringify({ hello: claims.sub }));
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    streamConnected,
    openConnections: () => connections.size,
    async close() {
      stream.stop();
      revoked.close();
      for (const connection of connections) connection.socket.terminate();
      sockets.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(header ?? '');
  return match?.[1];
}

// Sec-WebSocket-Protocol: access_token, <token>
function tokenFromSubprotocols(header: string | undefined): string | undefined {
  const offered = (header ?? '').split(',').map((protocol) => protocol.trim());
  const index = offered.indexOf(TOKEN_SUBPROTOCOL);
  return index === -1 ? undefined : offered[index + 1];
}

function refuseUpgrade(socket: Duplex, status: 401 | 404, challenge: string): void {
  const reason = status === 401 ? 'Unauthorized' : 'Not Found';
  socket.end(`HTTP/1.1 ${status} ${reason}\r\n${challenge ? `WWW-Authenticate: ${challenge}\r\n` : ''}Connection: close\r\nContent-Length: 0\r\n\r\n`);
}
