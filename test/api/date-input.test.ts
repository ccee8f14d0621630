// Dates the database cannot hold (year 0000, years past 9999, JavaScript's extremes), in filters
// and in crafted keyset cursors, are 422 problem+json naming the field, never a 500 or a dropped
// connection; the first and last instants the database holds are answered. The audit export
// reports a failure before its first row as an error response, and one after it as a cut-off body.
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { adminApi, type AdminApi } from '../helpers/admin-api.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import { exportStream } from '../../src/audit/export.ts';
import type { AuditEntry } from '../../src/audit/service.ts';

const BAD_DATES = ['0000-01-01T00:00:00Z', '0000-12-31T23:59:59.999Z', '-271821-04-20T00:00:00Z', '+275760-09-13T00:00:00Z', '10000-01-01T00:00:00Z'];
const FIRST = '0001-01-01T00:00:00Z';
const LAST = '9999-12-31T23:59:59Z';

const cursor = (createdAt: string, id = randomUUID()) => Buffer.from(JSON.stringify([createdAt, id])).toString('base64url');
const q = encodeURIComponent;

async function expectInvalid(response: Response, field: string, what: string): Promise<void> {
  const text = await response.text();
  expect(response.status, `${what}: ${text}`).to.equal(422);
  expect(response.headers.get('content-type'), what).to.match(/^application\/problem\+json/);
  const body = JSON.parse(text) as { status: number; errors?: Record<string, string> };
  expect(body.status, what).to.equal(422);
  expect(body.errors, what).to.have.property(field).that.is.a('string');
}

async function expectOk(response: Response, what: string): Promise<void> {
  const text = await response.text();
  expect(response.status, `${what}: ${text}`).to.equal(200);
}

forEachBackend('dates the database cannot hold', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let api: AdminApi;
  let platform: string;
  let tenantId: string;
  let admin: string;
  let endpointId: string;

  before(async () => {
    store = await backend.create();
    instance = await startInstance(store.env);
    api = adminApi(instance);
    platform = await api.token(DEFAULT_TENANT_ID, 'root-admin');
    tenantId = await api.createTenant(platform, 'date-input');
    admin = await api.token(tenantId, 'root-admin');
    const endpoint = await api.call(admin, 'POST', `/tenants/${tenantId}/webhooks`, { url: 'https://hooks.example.com/date-input', eventTypes: ['user.created'] });
    expect(endpoint.status, await endpoint.clone().text()).to.equal(201);
    endpointId = ((await endpoint.json()) as { id: string }).id;
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  const get = (path: string, token = admin) => api.call(token, 'GET', path);

  it('refuses out-of-range date filters with 422 naming the field', async () => {
    const filters: Array<[string, string, string]> = [
      [`/tenants/${tenantId}/users`, 'createdFrom', 'createdFrom'],
      [`/tenants/${tenantId}/users`, 'createdTo', 'createdTo'],
      [`/tenants/${tenantId}/sessions`, 'createdAfter', 'query.createdAfter'],
      [`/tenants/${tenantId}/sessions`, 'lastActiveAfter', 'query.lastActiveAfter'],
      [`/tenants/${tenantId}/sessions/count`, 'createdAfter', 'query.createdAfter'],
      [`/tenants/${tenantId}/audit`, 'from', 'query.from'],
      [`/tenants/${tenantId}/audit`, 'to', 'query.to'],
      ...['failed-logins', 'lockouts', 'privileged-actions'].flatMap((report): Array<[string, string, string]> => [
        [`/tenants/${tenantId}/reports/${report}`, 'from', 'query.from'],
        [`/tenants/${tenantId}/reports/${report}`, 'to', 'query.to'],
      ]),
    ];
    for (const [path, name, field] of filters) {
      for (const date of BAD_DATES) {
        await expectInvalid(await get(`${path}?${name}=${q(date)}`), field, `${path}?${name}=${date}`);
      }
    }
  });

  it('answers the first and last instants the database holds', async () => {
    const paths = [
      `/tenants/${tenantId}/users?createdFrom=${q(FIRST)}&createdTo=${q(LAST)}`,
      `/tenants/${tenantId}/sessions?createdAfter=${q(FIRST)}&lastActiveAfter=${q(FIRST)}`,
      `/tenants/${tenantId}/sessions/count?lastActiveAfter=${q(LAST)}`,
      `/tenants/${tenantId}/audit?from=${q(FIRST)}&to=${q(LAST)}`,
      `/tenants/${tenantId}/audit/export?from=${q(FIRST)}&to=${q(LAST)}`,
      `/tenants/${tenantId}/audit/export?format=csv&to=${q(LAST)}`,
      ...['failed-logins', 'lockouts', 'privileged-actions'].flatMap((report) => [
        `/tenants/${tenantId}/reports/${report}?to=${q(LAST)}`,
        `/tenants/${tenantId}/reports/${report}?from=${q('9999-01-01T00:00:00Z')}&to=${q(LAST)}`,
        `/tenants/${tenantId}/reports/${report}?from=${q(FIRST)}&to=${q('0001-01-02T00:00:00Z')}`,
      ]),
    ];
    for (const path of paths) await expectOk(await get(path), path);
  });

  it('starts a report’s default range no earlier than the first instant the database holds', async () => {
    for (const report of ['failed-logins', 'lockouts', 'privileged-actions']) {
      const response = await get(`/tenants/${tenantId}/reports/${report}?to=${q('0001-01-03T00:00:00Z')}`);
      const text = await response.text();
      expect(response.status, text).to.equal(200);
      expect(JSON.parse(text)).to.include({ from: '0001-01-01T00:00:00.000Z', to: '0001-01-03T00:00:00.000Z' });
      // A day per row, in year 1 too (not read as 1901).
      if (report === 'failed-logins') expect((JSON.parse(text) as { rows: Array<{ day: string }> }).rows.map((row) => row.day)).to.deep.equal(['0001-01-01', '0001-01-02']);
    }
    // A `to` at the very first instant leaves an empty range: refused as any empty range is.
    await expectInvalid(await get(`/tenants/${tenantId}/reports/lockouts?to=${q(FIRST)}`), 'query.to', 'to at the first instant');
  });

  it('refuses crafted keyset cursors with out-of-range dates with 422 naming the cursor', async () => {
    const lists: Array<[string, string, string]> = [
      ['/tenants', 'query.cursor', platform],
      [`/tenants/${tenantId}/sessions`, 'query.cursor', admin],
      [`/tenants/${tenantId}/api-keys`, 'query.cursor', admin],
      [`/tenants/${tenantId}/webhooks/${endpointId}/deliveries`, 'query.cursor', admin],
    ];
    for (const [path, field, token] of lists) {
      for (const date of ['+275760-09-13T00:00:00.000Z', '-271821-04-20T00:00:00.000Z', '0000-01-01T00:00:00.000Z', '10000-01-01T00:00:00.000Z']) {
        await expectInvalid(await get(`${path}?cursor=${cursor(date)}`, token), field, `${path} cursor at ${date}`);
      }
      await expectInvalid(await get(`${path}?cursor=not-a-cursor`, token), field, `${path} cursor not-a-cursor`);
      for (const date of ['0001-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z']) await expectOk(await get(`${path}?cursor=${cursor(date)}`, token), `${path} cursor at ${date}`);
    }
    // The users list keeps the database's microseconds in its cursor.
    for (const date of ['0000-01-01T00:00:00.000000Z', '0000-12-31T23:59:59.999999Z']) {
      await expectInvalid(await get(`/tenants/${tenantId}/users?cursor=${cursor(date)}`), 'cursor', `users cursor at ${date}`);
    }
    for (const date of ['0001-01-01T00:00:00.000000Z', '9999-12-31T23:59:59.999999Z']) await expectOk(await get(`/tenants/${tenantId}/users?cursor=${cursor(date)}`), `users cursor at ${date}`);
  });

  it('answers an audit export with an out-of-range date with 422 before anything is sent', async () => {
    for (const query of [`from=${q('0000-01-01T00:00:00Z')}`, `format=csv&to=${q('0000-01-01T00:00:00Z')}`, `format=jsonl&from=${q('+275760-09-13T00:00:00Z')}`]) {
      const response = await get(`/tenants/${tenantId}/audit/export?${query}`);
      expect(response.headers.get('content-disposition'), query).to.equal(null);
      await expectInvalid(response, query.includes('from=') ? 'query.from' : 'query.to', `export ?${query}`);
    }
  });
});

describe('audit export stream', () => {
  const entry = (seq: number) => ({ id: randomUUID(), seq, occurredAt: new Date().toISOString(), type: 'user.create', outcome: 'success' }) as unknown as AuditEntry;

  async function* failingAfter(count: number): AsyncGenerator<AuditEntry> {
    for (let seq = count; seq > 0; seq--) yield entry(seq);
    throw new Error('the query failed');
  }

  it('rejects when the first entry cannot be read, before a stream exists', async () => {
    let error: unknown;
    await exportStream(failingAfter(0), 'csv').catch((caught: unknown) => (error = caught));
    expect((error as Error | undefined)?.message).to.equal('the query failed');
  });

  it('cuts off the response, detectably, when reading fails after the first entry', async () => {
    const app = new Koa();
    app.on('error', () => {});
    app.use(async (ctx) => {
      ctx.type = 'application/x-ndjson';
      ctx.body = await exportStream(failingAfter(2), 'jsonl');
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      expect(response.status).to.equal(200);
      let error: unknown;
      await response.text().catch((caught: unknown) => (error = caught));
      expect(error, 'the body must not end cleanly').to.be.instanceOf(Error);
    } finally {
      server.close();
    }
  });
});
