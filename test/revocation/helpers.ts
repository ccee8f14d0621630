// What the revocation suites share: an instance whose warnings can be read, a back-channel logout
// receiver that verifies what it receives, and a browser that remembers every Set-Cookie header.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';
import { loadConfig } from '../../src/config.ts';
import { createRuntime } from '../../src/runtime.ts';
import { startServer } from '../../src/server.ts';
import { freePort, TEST_ENV, type Instance } from '../helpers/instance.ts';
import { Browser } from '../helpers/browser.ts';

export interface LoggedInstance extends Instance {
  // Every log line at warn and above, parsed.
  logs: Array<Record<string, unknown>>;
}

export async function startLoggedInstance(env: Record<string, string>): Promise<LoggedInstance> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) logs.push(JSON.parse(line));
      done();
    },
  });
  const config = loadConfig({ ...TEST_ENV, ...env, ISSUER: issuer, PORT: String(port), HOST: '127.0.0.1' });
  const runtime = await createRuntime(config, { serve: true, log: pino({ level: 'warn' }, sink) });
  const server = await startServer(runtime, { port, host: '127.0.0.1' });
  return {
    url: issuer,
    runtime,
    server,
    logs,
    async stop() {
      await server.close();
      await runtime.close();
    },
  };
}

export interface LogoutReceiver {
  uri: string;
  // Logout tokens whose signature (the provider's JWKS), issuer, typ and `events` claim held.
  received: JWTPayload[];
  // Anything else that arrived.
  refused: string[];
  waitFor(predicate: (payload: JWTPayload) => boolean): Promise<JWTPayload | undefined>;
  close(): Promise<void>;
}

const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

// A relying party's back-channel logout endpoint (OpenID Connect Back-Channel Logout 1.0, 2.6).
export async function startLogoutReceiver(issuer: () => string): Promise<LogoutReceiver> {
  const received: JWTPayload[] = [];
  const refused: string[] = [];
  let jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', async () => {
      const token = new URLSearchParams(body).get('logout_token') ?? '';
      try {
        jwks ??= createRemoteJWKSet(new URL(`${issuer()}/jwks`));
        const { payload } = await jwtVerify(token, jwks, { issuer: issuer(), typ: 'logout+jwt' });
        if (!payload.events || typeof payload.events !== 'object' || !(BACKCHANNEL_LOGOUT_EVENT in payload.events)) throw new Error('no logout event');
        if ('nonce' in payload) throw new Error('a logout token has no nonce');
        received.push(payload);
        res.writeHead(200).end();
      } catch (error) {
        refused.push((error as Error).message);
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    uri: `http://127.0.0.1:${port}/backchannel-logout`,
    received,
    refused,
    async waitFor(predicate) {
      for (let i = 0; i < 100; i++) {
        const found = received.find(predicate);
        if (found) return found;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return undefined;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

// Keeps every Set-Cookie header it was sent, for checking cookie attributes.
export class RecordingBrowser extends Browser {
  readonly setCookies: string[] = [];
  override async fetch(url: string | URL, init: RequestInit = {}): Promise<Response> {
    const response = await super.fetch(url, init);
    this.setCookies.push(...response.headers.getSetCookie());
    return response;
  }

  cookie(issuer: string, name: string): string | undefined {
    const pair = this.cookieHeader(new URL(issuer))
      .split('; ')
      .find((item) => item.startsWith(`${name}=`));
    return pair?.slice(name.length + 1);
  }
}

export async function eventually<T>(probe: () => T | undefined, tries = 100): Promise<T | undefined> {
  for (let i = 0; i < tries; i++) {
    const value = probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return undefined;
}
