// Webhooks over HTTP on both backends: endpoints through the admin API (secret shown once,
// permission and tenant checks, validation), and deliveries to a receiver on loopback: signed per
// Standard Webhooks, retried with back-off until the third try succeeds, dead-lettered after the
// configured number of failures, and replayed from the admin API. The clock of the worker is the
// test's, so back-off passes without waiting.
import { expect } from 'chai';
import { createHmac } from 'node:crypto';
import { pino } from 'pino';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { freePort, TEST_ENV, type Instance } from '../helpers/instance.ts';
import { adminApi, type AdminApi } from '../helpers/admin-api.ts';
import { loadConfig } from '../../src/config.ts';
import { createRuntime } from '../../src/runtime.ts';
import { startServer } from '../../src/server.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import type { EventEnvelope } from '../../src/outbox/events.ts';
import { startReceiver, type ReceivedRequest, type Receiver } from './receiver.ts';

interface Endpoint {
  id: string;
  url: string;
  eventTypes: string[];
  enabled: boolean;
  version: number;
  secret?: string;
}

interface Delivery {
  id: string;
  eventId: string;
  eventType: string;
  status: string;
  attempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
}

const MAX_ATTEMPTS = 3;

// Standard Webhooks verification, written from the specification rather than from our signer.
function verify(secret: string, request: ReceivedRequest): boolean {
  const id = String(request.headers['webhook-id']);
  const timestamp = String(request.headers['webhook-timestamp']);
  const expected = createHmac('sha256', Buffer.from(secret.replace(/^whsec_/, ''), 'base64')).update(`${id}.${timestamp}.${request.body}`).digest('base64');
  return String(request.headers['webhook-signature'])
    .split(' ')
    .some((signature) => signature === `v1,${expected}`);
}

forEachBackend('webhooks', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let receiver: Receiver;
  let clock = Date.now();
  let api: AdminApi;
  const machineToken = (tenantId: string, roleName: string) => api.token(tenantId, roleName);
  const call = (token: string, method: string, path: string, body?: unknown, headers?: Record<string, string>) => api.call(token, method, path, body, headers);
  let platform: string;
  let admin: string;
  let agent: string;
  let tenantB: { id: string; admin: string };

  async function createEndpoint(input: Record<string, unknown>, tenantId = DEFAULT_TENANT_ID, token = admin): Promise<Endpoint> {
    const response = await call(token, 'POST', `/tenants/${tenantId}/webhooks`, input);
    expect(response.status, await response.clone().text()).to.equal(201);
    return (await response.json()) as Endpoint;
  }

  async function deliveries(endpointId: string, status?: string): Promise<Delivery[]> {
    const response = await call(admin, 'GET', `/tenants/${DEFAULT_TENANT_ID}/webhooks/${endpointId}/deliveries${status ? `?status=${status}` : ''}`);
    expect(response.status, await response.clone().text()).to.equal(200);
    return ((await response.json()) as { items: Delivery[] }).items;
  }

  function emit(type: EventEnvelope['type'], data: Record<string, unknown> = {}): Promise<EventEnvelope> {
    return instance.runtime.outbox.enqueue(undefined, { tenantId: DEFAULT_TENANT_ID, type, data });
  }

  // Lets the worker do everything due now, then moves the clock past any back-off.
  async function workAndWait(): Promise<void> {
    await instance.runtime.eventWorker.drain();
    clock += 24 * 3600 * 1000;
  }

  async function until(condition: () => Promise<boolean>, what: string): Promise<void> {
    for (let round = 0; round < 20; round++) {
      if (await condition()) return;
      await workAndWait();
    }
    throw new Error(`gave up waiting: ${what}`);
  }

  before(async () => {
    store = await backend.create();
    const port = await freePort();
    const config = loadConfig({ ...TEST_ENV, ...store.env, ISSUER: `http://127.0.0.1:${port}`, PORT: String(port), HOST: '127.0.0.1', WEBHOOK_MAX_ATTEMPTS: String(MAX_ATTEMPTS) });
    const runtime = await createRuntime(config, { serve: true, log: pino({ level: 'silent' }), now: () => new Date(clock) });
    const server = await startServer(runtime, { port, host: '127.0.0.1' });
    instance = { url: server.url, runtime, server, stop: async () => { await server.close(); await runtime.close(); } };
    api = adminApi(instance);
    platform = await machineToken(DEFAULT_TENANT_ID, 'root-admin');
    admin = await machineToken(DEFAULT_TENANT_ID, 'admin');
    agent = await machineToken(DEFAULT_TENANT_ID, 'agent');
    const id = await api.createTenant(platform, 'webhooks-b');
    tenantB = { id, admin: await machineToken(id, 'admin') };
  });
  beforeEach(async () => {
    receiver = await startReceiver();
  });
  afterEach(async () => {
    await receiver.close();
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  it('delivers an event to a receiver that fails twice on the third try, signed with the secret shown at creation', async () => {
    const endpoint = await createEndpoint({ url: receiver.url, eventTypes: ['user.created'], description: 'CRM sync' });
    expect(endpoint.secret).to.match(/^whsec_[A-Za-z0-9+/]{43}=$/);
    receiver.answer(500, 503, 204);

    const event = await emit('user.created', { userId: '0b7e2d36-3e0f-4c6e-8f52-3b0f5f9f6d10', email: 'new@example.com' });
    await until(async () => receiver.requests.length === 3, 'three attempts');
    const [delivery] = await deliveries(endpoint.id);
    expect(delivery).to.include({ eventId: event.id, eventType: 'user.created', status: 'delivered', attempts: 3, lastStatusCode: 204, lastError: null });

    for (const request of receiver.requests) {
      expect(request.headers['webhook-id'], 'the same id on every try').to.equal(event.id);
      expect(request.headers['content-type']).to.equal('application/json');
      expect(JSON.parse(request.body)).to.deep.equal(event);
      expect(verify(endpoint.secret!, request), 'signature').to.equal(true);
      expect(verify('whsec_' + Buffer.alloc(32).toString('base64'), request), 'another secret').to.equal(false);
    }
    const third = receiver.requests[2];
    expect(Number(third.headers['webhook-timestamp'])).to.be.closeTo(clock / 1000, 24 * 3600 + 5);
    await workAndWait();
    expect(receiver.requests, 'nothing after the success').to.have.length(3);
  });

  it('dead-letters a delivery after the configured failures and sends it again on replay', async () => {
    const endpoint = await createEndpoint({ url: receiver.url, eventTypes: ['*'] });
    receiver.answer(500);
    const event = await emit('session.revoked', { userId: '0b7e2d36-3e0f-4c6e-8f52-3b0f5f9f6d10', sessionId: 's1' });
    await until(async () => (await deliveries(endpoint.id, 'dead')).length === 1, 'dead-lettered');
    await workAndWait();
    expect(receiver.requests, 'no tries after the last').to.have.length(MAX_ATTEMPTS);
    const [dead] = await deliveries(endpoint.id, 'dead');
    expect(dead).to.include({ eventId: event.id, attempts: MAX_ATTEMPTS, lastStatusCode: 500, lastError: 'HTTP 500' });
    expect(await deliveries(endpoint.id, 'delivered')).to.deep.equal([]);

    receiver.answer(200);
    const replay = await call(admin, 'POST', `/tenants/${DEFAULT_TENANT_ID}/webhooks/${endpoint.id}/deliveries/${dead.id}/replay`);
    expect(replay.status).to.equal(202);
    await until(async () => (await deliveries(endpoint.id, 'delivered')).length === 1, 'replayed delivery');
    expect(receiver.requests).to.have.length(MAX_ATTEMPTS + 1);
    expect(receiver.requests[MAX_ATTEMPTS].headers['webhook-id']).to.equal(event.id);
    expect(verify(endpoint.secret!, receiver.requests[MAX_ATTEMPTS])).to.equal(true);
  });

  it('replays every dead-lettered delivery of an endpoint at once', async () => {
    const endpoint = await createEndpoint({ url: receiver.url, eventTypes: ['apikey.revoked'] });
    receiver.answer(410);
    await emit('apikey.revoked', { apiKeyId: 'k1' });
    await emit('apikey.revoked', { apiKeyId: 'k2' });
    await until(async () => (await deliveries(endpoint.id, 'dead')).length === 2, 'both dead-lettered');
    receiver.answer(204);
    const replay = await call(admin, 'POST', `/tenants/${DEFAULT_TENANT_ID}/webhooks/${endpoint.id}/deliveries/replay`);
    expect(replay.status).to.equal(202);
    expect(await replay.json()).to.deep.equal({ replayed: 2 });
    await until(async () => (await deliveries(endpoint.id, 'delivered')).length === 2, 'both delivered');
    expect(receiver.requests.map((request) => JSON.parse(request.body).data.apiKeyId).slice(-2).sort()).to.deep.equal(['k1', 'k2']);
  });

  it('sends only the event types an enabled endpoint asks for, and only the tenant’s own', async () => {
    const endpoint = await createEndpoint({ url: receiver.url, eventTypes: ['user.deleted'] });
    const disabled = await createEndpoint({ url: receiver.url.replace('/hooks', '/disabled'), eventTypes: ['*'], enabled: false });
    await createEndpoint({ url: receiver.url.replace('/hooks', '/other-tenant'), eventTypes: ['*'] }, tenantB.id, tenantB.admin);
    await emit('user.created', { userId: 'a' });
    const deleted = await emit('user.deleted', { userId: 'a' });
    await until(async () => (await deliveries(endpoint.id, 'delivered')).length === 1, 'the matching event');
    await workAndWait();
    expect(receiver.requests.map((request) => request.headers['webhook-id'])).to.deep.equal([deleted.id]);
    expect(await deliveries(disabled.id)).to.deep.equal([]);
  });

  it('shows the secret only when it is made, rotates it, and signs with the new one', async () => {
    const endpoint = await createEndpoint({ url: receiver.url, eventTypes: ['role.changed'] });
    const read = await call(admin, 'GET', `/tenants/${DEFAULT_TENANT_ID}/webhooks/${endpoint.id}`);
    expect(read.status).to.equal(200);
    const body = (await read.json()) as Record<string, unknown>;
    expect(body).to.not.have.property('secret');
    expect(JSON.stringify(body)).to.not.include(endpoint.secret!);
    const list = await call(admin, 'GET', `/tenants/${DEFAULT_TENANT_ID}/webhooks`);
    expect(await list.text()).to.not.include('whsec_');

    const rotated = await call(admin, 'POST', `/tenants/${DEFAULT_TENANT_ID}/webhooks/${endpoint.id}/secret`);
    expect(rotated.status).to.equal(200);
    const { secret } = (await rotated.json()) as { secret: string };
    expect(secret).to.match(/^whsec_/).and.not.equal(endpoint.secret);

    await emit('role.changed', { roleId: 'r' });
    await until(async () => receiver.requests.length === 1, 'the delivery');
    expect(verify(secret, receiver.requests[0])).to.equal(true);
    expect(verify(endpoint.secret!, receiver.requests[0])).to.equal(false);
  });

  it('changes an endpoint only with If-Match and deletes it with its deliveries', async () => {
    const endpoint = await createEndpoint({ url: receiver.url, eventTypes: ['user.created'] });
    const path = `/tenants/${DEFAULT_TENANT_ID}/webhooks/${endpoint.id}`;
    expect((await call(admin, 'PATCH', path, { enabled: false })).status).to.equal(428);
    expect((await call(admin, 'PATCH', path, { enabled: false }, { 'if-match': '"99"' })).status).to.equal(412);
    const changed = await call(admin, 'PATCH', path, { enabled: false, eventTypes: ['user.created', 'user.updated'] }, { 'if-match': `"${endpoint.version}"` });
    expect(changed.status, await changed.clone().text()).to.equal(200);
    expect(await changed.json()).to.include({ enabled: false, version: endpoint.version + 1 }).and.deep.include({ eventTypes: ['user.created', 'user.updated'] });
    expect((await call(admin, 'DELETE', path)).status).to.equal(204);
    expect((await call(admin, 'GET', path)).status).to.equal(404);
    expect((await call(admin, 'DELETE', path)).status).to.equal(404);
    expect((await call(admin, 'POST', `${path}/secret`)).status).to.equal(404);
  });

  it('refuses invalid endpoints with field errors', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ url: 'http://hooks.example.com/x', eventTypes: ['*'] }, 'body.url'],
      [{ url: 'https://u:p@hooks.example.com/x', eventTypes: ['*'] }, 'body.url'],
      [{ url: 'https://hooks.example.com/x', eventTypes: ['user.exploded'] }, 'body.eventTypes'],
      [{ url: 'https://hooks.example.com/x', eventTypes: [] }, 'body.eventTypes'],
      [{ url: 'https://hooks.example.com/x', eventTypes: ['*'], secret: 'mine' }, 'body'],
    ];
    for (const [input, field] of cases) {
      const response = await call(admin, 'POST', `/tenants/${DEFAULT_TENANT_ID}/webhooks`, input);
      expect(response.status, JSON.stringify(input)).to.equal(422);
      expect(response.headers.get('content-type')).to.match(/application\/problem\+json/);
      const problem = (await response.json()) as { errors: Record<string, string> };
      expect(Object.keys(problem.errors).some((key) => key.startsWith(field)), JSON.stringify(problem)).to.equal(true);
    }
    const badStatus = await call(admin, 'GET', `/tenants/${DEFAULT_TENANT_ID}/webhooks/${crypto.randomUUID()}/deliveries?status=lost`);
    expect(badStatus.status).to.equal(422);
  });

  it('forgets published events and their deliveries after the retention period', async () => {
    const endpoint = await createEndpoint({ url: receiver.url, eventTypes: ['user.updated'] });
    await emit('user.updated', { userId: 'a', changed: ['name'] });
    await until(async () => (await deliveries(endpoint.id, 'delivered')).length === 1, 'the delivery');
    await instance.runtime.eventWorker.purge();
    expect(await deliveries(endpoint.id), 'not old enough yet').to.have.length(1);
    clock += instance.runtime.config.events.retentionSeconds * 1000;
    expect(await instance.runtime.eventWorker.purge()).to.be.at.least(1);
    expect(await deliveries(endpoint.id)).to.deep.equal([]);
  });

  it('checks the permission and the tenant on every webhook route', async () => {
    const own = await createEndpoint({ url: receiver.url, eventTypes: ['*'] });
    const other = await createEndpoint({ url: 'https://hooks.example.com/b', eventTypes: ['*'] }, tenantB.id, tenantB.admin);
    const forbidden = await call(agent, 'GET', `/tenants/${DEFAULT_TENANT_ID}/webhooks`);
    expect(forbidden.status, 'the agent role holds no webhooks permission').to.equal(403);
    expect((await call(agent, 'POST', `/tenants/${DEFAULT_TENANT_ID}/webhooks`, { url: receiver.url, eventTypes: ['*'] })).status).to.equal(403);

    for (const [method, path] of [
      ['GET', `/tenants/${DEFAULT_TENANT_ID}/webhooks`],
      ['GET', `/tenants/${DEFAULT_TENANT_ID}/webhooks/${own.id}`],
      ['POST', `/tenants/${DEFAULT_TENANT_ID}/webhooks/${own.id}/secret`],
      ['GET', `/tenants/${DEFAULT_TENANT_ID}/webhooks/${own.id}/deliveries`],
      ['POST', `/tenants/${DEFAULT_TENANT_ID}/webhooks/${own.id}/deliveries/replay`],
    ]) {
      expect((await call(tenantB.admin, method, path)).status, `${method} ${path}`).to.equal(403);
    }
    // Another tenant's endpoint id under one's own tenant is simply not there.
    expect((await call(admin, 'GET', `/tenants/${DEFAULT_TENANT_ID}/webhooks/${other.id}`)).status).to.equal(404);
    expect((await call(admin, 'GET', `/tenants/${DEFAULT_TENANT_ID}/webhooks/${other.id}/deliveries`)).status).to.equal(404);
    const listed = (await (await call(tenantB.admin, 'GET', `/tenants/${tenantB.id}/webhooks`)).json()) as { items: Endpoint[] };
    expect(listed.items.map((item) => item.id)).to.include(other.id).and.not.include(own.id);
    // The platform administrator may look into any tenant.
    expect((await call(platform, 'GET', `/tenants/${tenantB.id}/webhooks/${other.id}`)).status).to.equal(200);
  });
});
