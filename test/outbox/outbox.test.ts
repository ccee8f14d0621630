// The transactional outbox end to end on both backends: events commit and roll back with the
// change, reach the Redis stream once per consumer group even when the worker dies between the
// append and its record of it, are shared by concurrent workers without duplicates, and feed the
// in-process consumer of auth.login.success.
import { expect } from 'chai';
import { pino } from 'pino';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { TEST_ENV } from '../helpers/instance.ts';
import { loadConfig } from '../../src/config.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { createEventPipeline, type EventPipeline } from '../../src/outbox/pipeline.ts';
import { EVENTS_STREAM, eventOfEntry, hotStoreEventStream, type EventStream } from '../../src/outbox/stream.ts';
import { withTenant } from '../../src/store/tenant-scope.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import type { EventEnvelope } from '../../src/outbox/events.ts';
import { startReceiver } from '../webhooks/receiver.ts';

const log = pino({ level: 'silent' });

forEachBackend('outbox', (backend) => {
  let store: BackendEnv;
  let runtime: Runtime;
  let groups = 0;

  // A worker as another instance would run it; `stream` replaces where it publishes.
  function worker(stream?: EventStream): EventPipeline {
    return createEventPipeline({ config: runtime.config, db: runtime.db, hot: runtime.hot, log, keyEncryptionKey: runtime.secrets.keyEncryptionKey, users: runtime.users, audit: runtime.audit, stream });
  }

  // A consumer group that has read nothing yet, as a newly deployed service would create it.
  function consumerGroup(): { read(): Promise<EventEnvelope[]> } {
    const group = `service-${++groups}`;
    return {
      async read() {
        const events: EventEnvelope[] = [];
        for (;;) {
          const entries = await runtime.hot.readStreamGroup(EVENTS_STREAM, group, 'consumer-1', 100);
          if (!entries.length) return events;
          await runtime.hot.acknowledgeStream(EVENTS_STREAM, group, entries.map((entry) => entry.id));
          events.push(...entries.map(eventOfEntry));
        }
      },
    };
  }

  function enqueue(type: EventEnvelope['type'], data: Record<string, unknown>): Promise<EventEnvelope> {
    return runtime.outbox.enqueue(undefined, { tenantId: DEFAULT_TENANT_ID, type, data });
  }

  before(async () => {
    store = await backend.create();
    const config = loadConfig({ ...TEST_ENV, ...store.env, ISSUER: 'http://127.0.0.1:1' });
    // Not serving: no background worker, the tests run workers themselves.
    runtime = await createRuntime(config, { log });
  });
  after(async () => {
    await runtime?.close();
    await store?.cleanup();
  });

  it('delivers an event to the stream exactly once per consumer group when the worker dies between the append and its record', async () => {
    const billing = consumerGroup();
    await billing.read();
    const event = await enqueue('user.created', { userId: '6a8d4f0e-1c1b-4f59-9a1e-0d3c1f6a2b11', email: 'grace@example.com' });

    const real = hotStoreEventStream(runtime.hot, runtime.config.events.streamMaxLength);
    const dying = worker({
      async append(appended) {
        await real.append(appended);
        throw new Error('worker killed after appending, before recording the publication');
      },
    });
    await expect(dying.worker.drain()).to.be.rejectedWith('worker killed');
    await dying.worker.stop();

    const seenBeforeRestart = await billing.read();
    expect(seenBeforeRestart.map((item) => item.id)).to.deep.equal([event.id]);

    const restarted = worker();
    await restarted.worker.drain();
    await restarted.worker.drain();

    expect(await billing.read(), 'no second copy for the group that read it').to.deep.equal([]);
    const audit = consumerGroup();
    const everything = await audit.read();
    expect(everything.filter((item) => item.id === event.id)).to.have.length(1);
    expect(everything.find((item) => item.id === event.id)).to.deep.equal(event);

    const next = await enqueue('user.deleted', { userId: '6a8d4f0e-1c1b-4f59-9a1e-0d3c1f6a2b11' });
    await restarted.worker.drain();
    expect((await billing.read()).map((item) => item.id)).to.deep.equal([next.id]);
    expect((await audit.read()).map((item) => item.id)).to.deep.equal([next.id]);
  });

  it('commits the event with the change and drops it with a rolled-back one', async () => {
    const group = consumerGroup();
    await group.read();
    const kept = await withTenant(runtime.db, DEFAULT_TENANT_ID, (trx) => runtime.outbox.enqueue(trx, { tenantId: DEFAULT_TENANT_ID, type: 'role.changed', data: { roleId: 'r1' } }));
    await expect(
      withTenant(runtime.db, DEFAULT_TENANT_ID, async (trx) => {
        await runtime.outbox.enqueue(trx, { tenantId: DEFAULT_TENANT_ID, type: 'role.changed', data: { roleId: 'r2' } });
        throw new Error('the change failed');
      }),
    ).to.be.rejectedWith('the change failed');
    await worker().worker.drain();
    expect((await group.read()).map((item) => item.data)).to.deep.equal([kept.data]);
  });

  it('refuses an event of another tenant inside a tenant-scoped transaction', async () => {
    const other = await runtime.tenants.create({ slug: 'outbox-other', displayName: 'Other' });
    await expect(
      withTenant(runtime.db, DEFAULT_TENANT_ID, (trx) => runtime.outbox.enqueue(trx, { tenantId: other.id, type: 'user.created', data: {} })),
    ).to.be.rejectedWith(/row-level security/);
  });

  it('shares the work between concurrent workers without publishing an event twice', async () => {
    const group = consumerGroup();
    await group.read();
    const enqueued = [];
    for (let index = 0; index < 250; index++) enqueued.push(await enqueue('auth.login.failed', { identifier: `person${index}@example.com`, reason: 'invalid_credentials' }));
    await Promise.all([worker().worker.drain(), worker().worker.drain(), worker().worker.drain()]);
    const read = await group.read();
    expect(read).to.have.length(250);
    expect(read.map((item) => item.id).sort()).to.deep.equal(enqueued.map((item) => item.id).sort());
  });

  it('keeps the user’s last sign-in time from auth.login.success, never moving it back', async () => {
    const user = await runtime.users.create(DEFAULT_TENANT_ID, { email: 'last-login@example.com' });
    const lastLogin = async () => (await runtime.db('users').where({ id: user.id }).first('last_login_at')).last_login_at as Date | null;
    expect(await lastLogin()).to.equal(null);

    const later = new Date('2026-11-23T12:00:00.000Z');
    const earlier = new Date('2026-11-23T08:00:00.000Z');
    const at = (date: Date) => createEventPipeline({ config: runtime.config, db: runtime.db, hot: runtime.hot, log, keyEncryptionKey: runtime.secrets.keyEncryptionKey, users: runtime.users, audit: runtime.audit, now: () => date });
    await at(later).outbox.enqueue(undefined, { tenantId: DEFAULT_TENANT_ID, type: 'auth.login.success', data: { userId: user.id, clientId: 'web', amr: ['pwd'] } });
    await worker().worker.drain();
    expect((await lastLogin())?.toISOString()).to.equal(later.toISOString());

    await at(earlier).outbox.enqueue(undefined, { tenantId: DEFAULT_TENANT_ID, type: 'auth.login.success', data: { userId: user.id } });
    await worker().worker.drain();
    expect((await lastLogin())?.toISOString(), 'an older sign-in published late').to.equal(later.toISOString());
  });

  it('records the sign-ins of one round for several users and tenants, each user’s latest', async () => {
    const otherTenant = (await runtime.tenants.create({ slug: 'last-login-other', displayName: 'Other' })).id;
    const first = await runtime.users.create(DEFAULT_TENANT_ID, { email: 'round-1@example.com' });
    const second = await runtime.users.create(DEFAULT_TENANT_ID, { email: 'round-2@example.com' });
    const third = await runtime.users.create(otherTenant, { email: 'round-3@example.com' });
    const at = (date: string) => createEventPipeline({ config: runtime.config, db: runtime.db, hot: runtime.hot, log, keyEncryptionKey: runtime.secrets.keyEncryptionKey, users: runtime.users, audit: runtime.audit, now: () => new Date(date) });
    const signIn = (date: string, tenantId: string, userId: string) => at(date).outbox.enqueue(undefined, { tenantId, type: 'auth.login.success', data: { userId } });
    await signIn('2026-11-24T09:00:00.000Z', DEFAULT_TENANT_ID, first.id);
    await signIn('2026-11-24T10:00:00.000Z', DEFAULT_TENANT_ID, first.id);
    await signIn('2026-11-24T09:30:00.000Z', DEFAULT_TENANT_ID, second.id);
    await signIn('2026-11-24T11:00:00.000Z', otherTenant, third.id);
    await signIn('2026-11-24T08:00:00.000Z', DEFAULT_TENANT_ID, first.id);
    // The five go out in one round (a batch holds up to 100).
    await worker().worker.drain();
    const lastLogins = await runtime.db('users').whereIn('id', [first.id, second.id, third.id]).select('id', 'last_login_at');
    const byId = Object.fromEntries(lastLogins.map((row: { id: string; last_login_at: Date }) => [row.id, row.last_login_at.toISOString()]));
    expect(byId).to.deep.equal({ [first.id]: '2026-11-24T10:00:00.000Z', [second.id]: '2026-11-24T09:30:00.000Z', [third.id]: '2026-11-24T11:00:00.000Z' });
  });

  it('wakes the publisher on a commit and the webhook dispatcher on the deliveries it queues, without waiting for the interval', async () => {
    const receiver = await startReceiver();
    // An interval far longer than the test: only the wakes can move the events.
    const pipeline = createEventPipeline({ config: runtime.config, db: runtime.db, hot: runtime.hot, log, keyEncryptionKey: runtime.secrets.keyEncryptionKey, users: runtime.users, audit: runtime.audit, intervalMs: 600_000 });
    const { endpoint } = await pipeline.webhooks.create(DEFAULT_TENANT_ID, { url: receiver.url, eventTypes: ['apikey.revoked'] });
    try {
      // Earlier tests' events, published first so the worker starts with nothing due.
      await pipeline.worker.drain();
      pipeline.worker.start();
      const event = await pipeline.outbox.enqueue(undefined, { tenantId: DEFAULT_TENANT_ID, type: 'apikey.revoked', data: { apiKeyId: 'woken' } });
      for (let waited = 0; waited < 5000 && !receiver.requests.length; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(receiver.requests.map((request) => request.headers['webhook-id'])).to.deep.equal([event.id]);
    } finally {
      await pipeline.worker.stop();
      await pipeline.webhooks.remove(DEFAULT_TENANT_ID, endpoint.id);
      await receiver.close();
    }
  });

  it('publishes what is pending when a running worker stops, and nothing when one never started', async () => {
    const group = consumerGroup();
    await group.read();
    const idle = createEventPipeline({ config: runtime.config, db: runtime.db, hot: runtime.hot, log, keyEncryptionKey: runtime.secrets.keyEncryptionKey, users: runtime.users, audit: runtime.audit, intervalMs: 3_600_000 });
    idle.worker.start();
    await idle.worker.drain();
    // Written by another instance: this worker is not woken and its next tick is an hour away.
    const pending = await enqueue('user.updated', { userId: '6a8d4f0e-1c1b-4f59-9a1e-0d3c1f6a2b11', changed: ['name'] });
    const neverStarted = worker();
    await neverStarted.worker.stop({ flushMs: 5000 });
    expect(await group.read(), 'a worker that never ran does not flush').to.deep.equal([]);
    await idle.worker.stop({ flushMs: 5000 });
    expect((await group.read()).map((item) => item.id)).to.deep.equal([pending.id]);
  });

  it('refuses unknown event types, events without a tenant and data that carries credentials', async () => {
    await expect(runtime.outbox.enqueue(undefined, { tenantId: DEFAULT_TENANT_ID, type: 'user.exploded' as never, data: {} })).to.be.rejectedWith('unknown event type');
    await expect(enqueue('user.created', { userId: 'u', password_hash: '$argon2id$...' })).to.be.rejectedWith('data.password_hash');
    await expect(enqueue('user.updated', { userId: 'u', before: { profile: { clientSecret: 'x' } } })).to.be.rejectedWith('data.before.profile.clientSecret');
    await expect(runtime.outbox.enqueue(undefined, { tenantId: 'nobody', type: 'user.created', data: {} })).to.be.rejectedWith('tenant id');
  });
});
