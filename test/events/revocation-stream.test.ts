// Real-time revocation for resource servers: the SSE stream (who may read it, what each reader
// sees) and the example resource server, whose WebSocket closes within a second of a revocation.
import { expect } from 'chai';
import { decodeJwt } from 'jose';
import { WebSocket } from 'ws';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { createFixtures, basicAuth, API, USER, type Fixtures } from '../helpers/fixtures.ts';
import * as oidc from 'openid-client';
import { authorizeWithLogin, discover } from '../helpers/rp.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import { revocationEvent, type RevocationEvent } from '../../src/events/revocation-bus.ts';
import { REVOCATIONS_READ } from '../../src/events/stream-access.ts';
import { startResourceServer, CLOSE_TOKEN_REVOKED, TOKEN_SUBPROTOCOL, type ResourceServer } from '../../examples/resource-server/server.ts';

interface Credentials {
  clientId: string;
  clientSecret: string;
}

// A reader of the stream that keeps every event it received.
async function openStream(url: string, authorization: string) {
  const abort = new AbortController();
  const response = await fetch(`${url}/events/revocations`, { headers: { authorization }, signal: abort.signal });
  expect(response.status).to.equal(200);
  expect(response.headers.get('content-type')).to.match(/^text\/event-stream/);
  const events: RevocationEvent[] = [];
  const ids: string[] = [];
  const waiting: Array<() => void> = [];
  void (async () => {
    let buffer = '';
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body!) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split('\n').find((line) => line.startsWith('data: '));
          const id = block.split('\n').find((line) => line.startsWith('id: '));
          if (!data) continue;
          events.push(JSON.parse(data.slice(6)));
          ids.push(id!.slice(4));
          for (const wake of waiting.splice(0)) wake();
        }
      }
    } catch {
      // aborted
    }
  })();
  return {
    events,
    ids,
    async until(eventId: string): Promise<void> {
      while (!events.some((event) => event.id === eventId)) await new Promise<void>((resolve) => waiting.push(resolve));
    },
    close: () => abort.abort(),
  };
}

async function eventually(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 10));
}

function openSocket(url: string, options: { token: string; via: 'header' | 'subprotocol' }): Promise<{ socket: WebSocket; closed: Promise<{ code: number; reason: string; at: number }> }> {
  const socket =
    options.via === 'header'
      ? new WebSocket(url, { headers: { authorization: `Bearer ${options.token}` } })
      : new WebSocket(url, [TOKEN_SUBPROTOCOL, options.token]);
  const closed = new Promise<{ code: number; reason: string; at: number }>((resolve) => {
    socket.once('close', (code, reason) => resolve({ code, reason: reason.toString(), at: performance.now() }));
  });
  return new Promise((resolve, reject) => {
    socket.once('message', () => resolve({ socket, closed }));
    socket.once('unexpected-response', (_request, response) => reject(new Error(`upgrade refused: ${response.statusCode}`)));
    socket.once('error', reject);
  });
}

// One round trip: the connection is still served.
function echo(socket: WebSocket): Promise<unknown> {
  return new Promise((resolve) => {
    socket.once('message', (data) => resolve(JSON.parse(data.toString())));
    socket.send('ping');
  });
}

forEachBackend('revocation stream and the example resource server', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let fixtures: Fixtures;
  let platformReader: Credentials;
  let acmeReader: Credentials;
  let acmeId: string;

  async function readerClient(tenantId: string, name: string): Promise<Credentials> {
    const { runtime } = instance;
    const created = await runtime.clients.create({ name, grantTypes: ['client_credentials'], tenantId });
    const role = await runtime.rbac.createRole(tenantId, { name: `${name}-role`, permissions: [{ api: runtime.adminApi, permission: REVOCATIONS_READ }] });
    await runtime.rbac.assign(tenantId, role.id, 'client', created.client.clientId);
    return { clientId: created.client.clientId, clientSecret: created.clientSecret! };
  }

  before(async () => {
    store = await backend.create();
    instance = await startInstance(store.env);
    fixtures = await createFixtures(instance.runtime);
    acmeId = (await instance.runtime.tenants.create({ slug: 'acme', displayName: 'Acme' })).id;
    platformReader = await readerClient(DEFAULT_TENANT_ID, 'platform-revocation-reader');
    acmeReader = await readerClient(acmeId, 'acme-revocation-reader');
  });

  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  describe('GET /events/revocations', () => {
    async function refused(authorization: string | undefined, status: number): Promise<Record<string, unknown>> {
      const response = await fetch(`${instance.url}/events/revocations`, { headers: authorization ? { authorization } : {} });
      expect(response.status).to.equal(status);
      expect(response.headers.get('content-type')).to.match(/^application\/problem\+json/);
      if (status === 401) expect(response.headers.get('www-authenticate')).to.match(/^Basic /);
      return (await response.json()) as Record<string, unknown>;
    }

    it('answers 401 without valid client credentials', async () => {
      expect((await refused(undefined, 401)).type).to.equal('urn:idp:problem:unauthorized');
      await refused(`Bearer ${platformReader.clientSecret}`, 401);
      await refused(basicAuth({ clientId: platformReader.clientId, clientSecret: 'wrong' }), 401);
      await refused(basicAuth({ clientId: 'no-such-client', clientSecret: platformReader.clientSecret }), 401);
      await refused('Basic !!!', 401);
    });

    it('answers 403 to a client without the permission or without a tenant', async () => {
      const withoutPermission = await refused(basicAuth(fixtures.machine), 403);
      expect(withoutPermission.type).to.equal('urn:idp:problem:forbidden');
      expect(withoutPermission.detail).to.include(REVOCATIONS_READ);
      // A shared interactive client belongs to no tenant.
      await refused(basicAuth(fixtures.web), 403);
    });

    it('shows a tenant’s reader only that tenant’s events and a platform reader all, each with its id', async () => {
      const { revocations } = instance.runtime;
      const acme = await openStream(instance.url, basicAuth(acmeReader));
      const platform = await openStream(instance.url, basicAuth(platformReader));
      const first = revocationEvent({ type: 'user.suspended', tenantId: acmeId, userId: '7d1f5f4c-5a52-4c43-8f43-111111111111' });
      const other = revocationEvent({ type: 'token.revoked', tenantId: DEFAULT_TENANT_ID, jti: 'default-tenant-jti' });
      const untenanted = revocationEvent({ type: 'token.revoked', jti: 'no-tenant-jti' });
      const last = revocationEvent({ type: 'session.revoked', tenantId: acmeId, sessionId: 'acme-sid', clientIds: ['c'] });
      for (const event of [first, other, untenanted, last]) await revocations.publish(event);

      await acme.until(last.id);
      await platform.until(last.id);
      expect(acme.events).to.deep.equal([first, last]);
      expect(acme.ids).to.deep.equal([first.id, last.id]);
      expect(platform.events.map((event) => event.id)).to.deep.equal([first.id, other.id, untenanted.id, last.id]);
      acme.close();
      platform.close();
    });

    it('drops its subscription when the reader disconnects', async () => {
      const { revocations } = instance.runtime;
      await eventually(() => revocations.subscribers() === 0);
      const reader = await openStream(instance.url, basicAuth(platformReader));
      expect(revocations.subscribers()).to.equal(1);
      reader.close();
      await eventually(() => revocations.subscribers() === 0);
    });
  });

  describe('the example resource server', () => {
    let resourceServer: ResourceServer;
    let wsUrl: string;

    before(async () => {
      resourceServer = await startResourceServer({ issuer: instance.url, audience: API.identifier, ...platformReader });
      await resourceServer.streamConnected;
      wsUrl = `${resourceServer.url.replace('http', 'ws')}/ws`;
    });

    after(async () => {
      await resourceServer?.close();
    });

    // A JWT access token for the API (RFC 8707: the token request names it), from a new login.
    async function apiToken(): Promise<string> {
      const config = await discover(instance.url, fixtures.web.clientId, fixtures.web.clientSecret);
      const login = await authorizeWithLogin(config, instance.url, { identifier: USER.email, password: USER.password, extraParams: { resource: API.identifier, scope: 'openid read' } });
      const tokens = await oidc.authorizationCodeGrant(config, login.callback, { pkceCodeVerifier: login.verifier, expectedState: login.state, expectedNonce: login.nonce }, { resource: API.identifier });
      return tokens.access_token;
    }

    const hello = (token?: string) => fetch(`${resourceServer.url}/hello`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

    it('serves HTTP and the WebSocket with the same access token, and nothing without one', async () => {
      const token = await apiToken();
      const claims = decodeJwt(token);
      expect(claims.aud).to.equal(API.identifier);
      expect(claims.jti).to.be.a('string');
      expect(await (await hello(token)).json()).to.deep.equal({ hello: fixtures.userId });
      expect((await hello()).status).to.equal(401);
      expect((await hello(`${token}x`)).status).to.equal(401);

      const viaHeader = await openSocket(wsUrl, { token, via: 'header' });
      expect(await echo(viaHeader.socket)).to.deep.equal({ echo: 'ping', sub: fixtures.userId });
      const viaSubprotocol = await openSocket(wsUrl, { token, via: 'subprotocol' });
      expect(viaSubprotocol.socket.protocol).to.equal(TOKEN_SUBPROTOCOL);
      await expect(openSocket(wsUrl, { token: `${token}x`, via: 'header' })).to.be.rejectedWith(/401/);
      viaHeader.socket.close();
      viaSubprotocol.socket.close();
    });

    it('refuses a DPoP-bound token as a bearer token, on HTTP and the WebSocket', async () => {
      const config = await discover(instance.url, fixtures.web.clientId, fixtures.web.clientSecret);
      const login = await authorizeWithLogin(config, instance.url, { identifier: USER.email, password: USER.password, extraParams: { resource: API.identifier, scope: 'openid read' } });
      const DPoP = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'));
      const tokens = await oidc.authorizationCodeGrant(config, login.callback, { pkceCodeVerifier: login.verifier, expectedState: login.state, expectedNonce: login.nonce }, { resource: API.identifier }, { DPoP });
      expect(decodeJwt(tokens.access_token).cnf).to.have.property('jkt');
      const refused = await hello(tokens.access_token);
      expect(refused.status).to.equal(401);
      expect(refused.headers.get('www-authenticate')).to.match(/invalid_token/);
      await expect(openSocket(wsUrl, { token: tokens.access_token, via: 'header' })).to.be.rejectedWith(/401/);
    });

    it('closes the WebSocket of a revoked token at once and refuses the token on HTTP', async () => {
      const token = await apiToken();
      const { socket, closed } = await openSocket(wsUrl, { token, via: 'header' });
      const started = performance.now();
      await instance.runtime.revocations.publish(revocationEvent({ type: 'token.revoked', tenantId: DEFAULT_TENANT_ID, jti: decodeJwt(token).jti! }));
      const { code, reason, at } = await closed;
      expect(code).to.equal(CLOSE_TOKEN_REVOKED);
      expect(reason).to.equal('token.revoked');
      expect(at - started).to.be.below(1000);
      expect(socket.readyState).to.equal(WebSocket.CLOSED);
      expect((await hello(token)).status).to.equal(401);
    });

    it('closes the WebSocket within one second of the user’s session being ended, and only that session’s', async () => {
      const { runtime } = instance;
      const sessionIds = async () => (await runtime.sessions.listActive(DEFAULT_TENANT_ID, fixtures.userId)).map((session) => session.id);
      const before = await sessionIds();
      const ended = await apiToken();
      const [sessionId] = (await sessionIds()).filter((id) => !before.includes(id));
      const kept = await apiToken();
      const endedSocket = await openSocket(wsUrl, { token: ended, via: 'header' });
      const keptSocket = await openSocket(wsUrl, { token: kept, via: 'subprotocol' });

      const started = performance.now();
      await runtime.sessions.end(DEFAULT_TENANT_ID, fixtures.userId, sessionId);
      const { code, at } = await endedSocket.closed;
      expect(code).to.equal(CLOSE_TOKEN_REVOKED);
      expect(at - started).to.be.below(1000);
      expect((await hello(ended)).status).to.equal(401);

      expect(await echo(keptSocket.socket)).to.deep.equal({ echo: 'ping', sub: fixtures.userId });
      expect((await hello(kept)).status).to.equal(200);
      keptSocket.socket.close();
    });

    it('closes every WebSocket of a suspended user within one second, and HTTP refuses their tokens', async () => {
      const { runtime } = instance;
      const token = await apiToken();
      const first = await openSocket(wsUrl, { token, via: 'header' });
      const second = await openSocket(wsUrl, { token, via: 'subprotocol' });
      const started = performance.now();
      await runtime.users.setStatus(DEFAULT_TENANT_ID, fixtures.userId, 'suspended');
      const closes = await Promise.all([first.closed, second.closed]);
      for (const { code, at } of closes) {
        expect(code).to.equal(CLOSE_TOKEN_REVOKED);
        expect(at - started).to.be.below(1000);
      }
      expect((await hello(token)).status).to.equal(401);
      expect(resourceServer.openConnections()).to.equal(0);
      await runtime.users.setStatus(DEFAULT_TENANT_ID, fixtures.userId, 'active');
    });
  });
});
