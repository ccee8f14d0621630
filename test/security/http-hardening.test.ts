// Hardened HTTP through a real instance: the client address and HTTPS come from X-Forwarded-*
// only when the peer is a trusted proxy (here 127.0.0.2; the tests connect from 127.0.0.1 or
// 127.0.0.2), security headers with a fresh CSP nonce per page, no server banner, HSTS only behind
// TLS, body size and JSON depth limits, the origin check, and the request deadline. Nothing here
// depends on the storage backend: it runs on the embedded one.
import { expect } from 'chai';
import http from 'node:http';
import { createHash } from 'node:crypto';
import Koa from 'koa';
import { pino } from 'pino';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { requestDeadline } from '../../src/http/deadline.ts';
import { errorHandler } from '../../src/http/errors.ts';
import { createViews } from '../../src/http/views.ts';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

const TRUSTED_PROXY = '127.0.0.2';

describe('hardened HTTP', () => {
  let dataDir: string;
  let instance: Instance;

  function send(options: { from?: string; method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<Answer> {
    const url = new URL(instance.url);
    return new Promise((resolve, reject) => {
      const request = http.request(
        { host: url.hostname, port: url.port, localAddress: options.from ?? '127.0.0.1', method: options.method ?? 'GET', path: options.path, headers: options.headers, agent: false },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }));
        },
      );
      request.on('error', reject);
      request.end(options.body);
    });
  }

  const badToken = (from: string, forwardedFor: string) =>
    send({
      from,
      method: 'POST',
      path: '/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': forwardedFor },
      body: 'grant_type=client_credentials&client_id=nobody&client_secret=wrong',
    });

  before(async function () {
    this.timeout(120_000);
    dataDir = mkdtempSync(path.join(tmpdir(), 'idp-hardening-'));
    instance = await startInstance({ DATA_DIR: dataDir, TRUSTED_PROXIES: TRUSTED_PROXY, RATE_LIMIT_TOKEN_PER_IP: '2/60' });
  });
  after(async () => {
    await instance?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  describe('client address', () => {
    it('ignores X-Forwarded-For from a peer that is not a trusted proxy', async () => {
      const statuses = [];
      for (const spoofed of ['203.0.113.1', '203.0.113.2', '203.0.113.3']) statuses.push((await badToken('127.0.0.1', spoofed)).status);
      // Three different spoofed addresses, one real one: its budget of two is spent.
      expect(statuses).to.deep.equal([401, 401, 429]);
    });

    it('honours X-Forwarded-For from a trusted proxy, reading it from the right', async () => {
      const statuses = [];
      for (const client of ['192.0.2.1', '192.0.2.2', '192.0.2.3']) statuses.push((await badToken(TRUSTED_PROXY, `10.10.10.10, ${client}`)).status);
      expect(statuses).to.deep.equal([401, 401, 401]);
      // The left-most entry is the client's own claim: varying it does not buy a new budget.
      const same = [];
      for (const claim of ['1.1.1.1', '2.2.2.2', '3.3.3.3']) same.push((await badToken(TRUSTED_PROXY, `${claim}, 192.0.2.9`)).status);
      expect(same).to.deep.equal([401, 401, 429]);
      const entries = (await instance.runtime.audit.list('00000000-0000-4000-8000-000000000001', { type: 'security.rate_limited' }, undefined, 20)).items;
      expect(entries.map((entry) => (entry as { context?: { ip?: string } }).context?.ip)).to.include('192.0.2.9');
    });

    it('sends HSTS only when the request came over TLS, which only a trusted proxy can say', async () => {
      expect((await send({ path: '/healthz' })).headers['strict-transport-security']).to.equal(undefined);
      expect((await send({ path: '/healthz', headers: { 'x-forwarded-proto': 'https' } })).headers['strict-transport-security']).to.equal(undefined);
      const proxied = await send({ from: TRUSTED_PROXY, path: '/healthz', headers: { 'x-forwarded-proto': 'https' } });
      expect(proxied.headers['strict-transport-security']).to.match(/^max-age=\d+; includeSubDomains$/);
    });
  });

  describe('security headers', () => {
    it('gives every response a fresh script nonce and allows the page’s inline style by its hash', async () => {
      const first = await send({ path: '/password/forgot' });
      // The same browser (its CSRF cookie) asks again.
      const cookie = (first.headers['set-cookie'] ?? []).map((line) => line.split(';')[0]).join('; ');
      const pages = [first, await send({ path: '/password/forgot', headers: { cookie } })];
      const nonces = pages.map((page) => {
        expect(page.status).to.equal(200);
        const csp = String(page.headers['content-security-policy']);
        expect(csp).to.include("default-src 'none'");
        expect(csp).to.include("frame-ancestors 'none'");
        expect(csp).to.not.include('unsafe-inline');
        const style = /<style>([\s\S]*?)<\/style>/.exec(page.body)![1];
        expect(csp).to.include(`'sha256-${createHash('sha256').update(style, 'utf8').digest('base64')}'`);
        const nonce = /script-src 'nonce-([A-Za-z0-9+/=]+)'/.exec(csp)?.[1];
        expect(nonce).to.be.a('string').with.length.above(20);
        return nonce;
      });
      expect(nonces[0]).to.not.equal(nonces[1]);
      // Nothing random in the body: the sign-in pages stay byte-for-byte comparable.
      expect(pages[0].body).to.equal(pages[1].body);
    });

    it('sends nosniff, a referrer policy and framing refusal, and names no server, on pages and JSON alike', async () => {
      for (const answer of [await send({ path: '/password/forgot' }), await send({ path: '/.well-known/openid-configuration' }), await send({ path: '/api/v1/nothing' })]) {
        expect(answer.headers['x-content-type-options']).to.equal('nosniff');
        expect(answer.headers['referrer-policy']).to.equal('no-referrer');
        expect(answer.headers['x-frame-options']).to.equal('DENY');
        expect(answer.headers['content-security-policy']).to.include("frame-ancestors 'none'");
        expect(answer.headers).to.not.have.property('server');
        expect(answer.headers).to.not.have.property('x-powered-by');
      }
    });
  });

  describe('request limits', () => {
    it('refuses an oversized JSON body with 413 problem+json', async () => {
      const answer = await send({ method: 'POST', path: '/api/v1/tenants', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ slug: 'x', displayName: 'y'.repeat(80 * 1024) }) });
      expect(answer.status).to.equal(413);
      expect(answer.headers['content-type']).to.match(/^application\/problem\+json/);
    });

    it('refuses JSON nested too deep with 422 problem+json, before anything else reads it', async () => {
      const deep = '['.repeat(200) + ']'.repeat(200);
      const answer = await send({ method: 'POST', path: '/api/v1/tenants', headers: { 'content-type': 'application/json' }, body: `{"slug":${deep}}` });
      // 422 like the API's other bodies it cannot accept; no token was needed to be refused.
      expect(answer.status).to.equal(422);
      expect(JSON.parse(answer.body)).to.include({ type: 'urn:idp:problem:too-deep' });
    });

    it('refuses a cookie-carrying state change from another origin, and not a bearer call', async () => {
      const forged = await send({ method: 'POST', path: '/api/v1/me/sessions/end-all', headers: { cookie: 'session=abc', origin: 'https://attacker.example', 'content-type': 'application/json' }, body: '{}' });
      expect(forged.status).to.equal(403);
      expect(JSON.parse(forged.body)).to.include({ type: 'urn:idp:problem:cross-origin' });
      const fetchMetadata = await send({ method: 'POST', path: '/api/v1/me/sessions/end-all', headers: { cookie: 'session=abc', 'sec-fetch-site': 'cross-site' } });
      expect(fetchMetadata.status).to.equal(403);
      const bearer = await send({ method: 'POST', path: '/api/v1/me/sessions/end-all', headers: { cookie: 'session=abc', origin: 'https://attacker.example', authorization: 'Bearer not-a-token' } });
      expect(bearer.status).to.equal(401);
    });
  });

  it('answers 503 when a handler misses the request deadline: problem+json, or RFC 6749 JSON on the token endpoints', async function () {
    this.timeout(10_000);
    const app = new Koa();
    const log = pino({ level: 'silent' });
    app.use(errorHandler(createViews(), log));
    app.use(requestDeadline({ seconds: 1, log, oauthPaths: ['/token'] }));
    app.use(async (ctx) => {
      await new Promise((resolve) => setTimeout(resolve, ctx.path === '/fast' ? 10 : 1500));
      ctx.body = { ok: true };
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const slow = await fetch(`${base}/slow`);
      expect(slow.status).to.equal(503);
      expect(slow.headers.get('content-type')).to.match(/^application\/problem\+json/);
      expect((await fetch(`${base}/fast`)).status).to.equal(200);
      // A token endpoint's client expects RFC 6749's error object.
      const token = await fetch(`${base}/token`, { method: 'POST' });
      expect(token.status).to.equal(503);
      expect(token.headers.get('content-type')).to.match(/^application\/json/);
      expect(((await token.json()) as { error: string }).error).to.equal('temporarily_unavailable');
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
