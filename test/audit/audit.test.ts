// The audit trail through its public interfaces: the service other domains record through, the
// admin API (list, filters, keyset pages, JSON Lines and CSV export, permissions and tenants), the
// database's refusal to change an entry, `idp audit verify` catching a payload altered behind the
// trigger's back, concurrent appends and a GDPR erasure that leaves the chain verifiable.
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, TEST_ENV, type Instance } from '../helpers/instance.ts';
import { clientCredentialsToken } from '../helpers/fixtures.ts';
import { idp } from '../helpers/cli.ts';
import { loadConfig } from '../../src/config.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { withTenant } from '../../src/store/tenant-scope.ts';
import { changeDetails } from '../../src/audit/mask.ts';
import { ADMIN_API_PERMISSIONS } from '../../src/tenants/system-roles.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import type { AuditEntry } from '../../src/audit/service.ts';
import { parseCsv } from '../helpers/csv.ts';

const SLOW = 120_000;

let counter = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++counter}`;

forEachBackend('audit trail over the admin API', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let runtime: Runtime;
  let platformAdmin: string;

  async function tokenFor(tenantId: string, roleName: string): Promise<string> {
    const { client, clientSecret } = await runtime.clients.create({ name: unique(roleName), grantTypes: ['client_credentials'], tenantId });
    await runtime.rbac.assign(tenantId, (await runtime.rbac.roleIdByName(tenantId, roleName))!, 'client', client.clientId);
    const response = await clientCredentialsToken(instance.url, { clientId: client.clientId, clientSecret: clientSecret! }, { resource: runtime.adminApi, scope: ADMIN_API_PERMISSIONS.join(' ') });
    expect(response.status).to.equal(200);
    return ((await response.json()) as { access_token: string }).access_token;
  }

  function api(path: string, token = platformAdmin): Promise<Response> {
    return fetch(`${instance.url}/api/v1${path}`, { headers: { authorization: `Bearer ${token}` } });
  }

  async function page(tenantId: string, query = ''): Promise<{ items: AuditEntry[]; nextCursor: string | null }> {
    const response = await api(`/tenants/${tenantId}/audit${query}`);
    expect(response.status, await response.clone().text()).to.equal(200);
    return (await response.json()) as { items: AuditEntry[]; nextCursor: string | null };
  }

  async function newTenant(): Promise<string> {
    return (await runtime.tenants.create({ slug: unique('audit'), displayName: 'Audit test' })).id;
  }

  before(async function () {
    this.timeout(SLOW);
    store = await backend.create();
    instance = await startInstance(store.env);
    runtime = instance.runtime;
    platformAdmin = await tokenFor(DEFAULT_TENANT_ID, 'admin');
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  describe('a tenant with five recorded events', () => {
    let tenantId: string;
    const alice = randomUUID();
    const bob = randomUUID();

    before(async () => {
      tenantId = await newTenant();
      const { audit } = runtime;
      const aliceActor = { type: 'user' as const, id: alice, email: 'alice@example.com', name: 'Alice Admin' };
      await audit.record(undefined, { tenantId, type: 'auth.login', outcome: 'success', actor: aliceActor, context: { ip: '203.0.113.7', userAgent: 'Firefox' } });
      await audit.record(undefined, { tenantId, type: 'auth.login', outcome: 'failure', actor: { type: 'user', id: bob }, details: { reason: 'bad password', password: 'hunter2' } });
      // Recorded inside the caller's transaction.
      await runtime.db.transaction((trx) =>
        audit.record(trx, { tenantId, type: 'admin.user.update', outcome: 'success', actor: aliceActor, target: { type: 'user', id: bob, email: 'bob@example.com' }, details: changeDetails({ email: 'bob@old.example', role: 'staff', apiKey: 'k1', accessTokenTtl: 300 }, { email: 'bob@example.com', role: 'admin', apiKey: 'k2', accessTokenTtl: 600 }) }),
      );
      await audit.record(undefined, { tenantId, type: 'auth.logout', outcome: 'success', actor: aliceActor });
      await audit.record(undefined, { tenantId, type: 'apikey.create', outcome: 'success', actor: aliceActor, target: { ref: 'key-123' }, details: { note: 'call me on +44 20 7946 0958 maybe', contact: '+44 20 7946 0958' } });
    });

    it('lists newest first with actors, targets, context and masked details', async () => {
      const { items, nextCursor } = await page(tenantId);
      expect(items.map((item) => item.type)).to.deep.equal(['apikey.create', 'auth.logout', 'admin.user.update', 'auth.login', 'auth.login']);
      expect(items.map((item) => item.seq)).to.deep.equal([5, 4, 3, 2, 1]);
      expect(nextCursor).to.equal(null);
      const [created, , update, failure, login] = items;
      expect(login.actor).to.deep.equal({ type: 'user', id: alice, email: 'alice@example.com', name: 'Alice Admin', erased: false });
      expect(login.context).to.deep.equal({ ip: '203.0.113.7', userAgent: 'Firefox' });
      expect(failure.outcome).to.equal('failure');
      expect(failure.details).to.deep.equal({ reason: 'bad password', password: '[masked]' });
      expect(update.target).to.include({ type: 'user', id: bob, email: 'bob@example.com' });
      // A name that says what a field measures (…Ttl) is no secret, though it contains "token".
      expect(update.details).to.deep.equal({ changes: [
        { field: 'accessTokenTtl', before: 300, after: 600 },
        { field: 'apiKey', before: '[masked]', after: '[masked]' },
        { field: 'email', before: '[personal]', after: '[personal]' },
        { field: 'role', before: 'staff', after: 'admin' },
      ] });
      expect(created.targetRef).to.equal('key-123');
      expect(created.details).to.deep.equal({ note: 'call me on +44 20 7946 0958 maybe', contact: '[personal]' });
      const raw = await (await api(`/tenants/${tenantId}/audit`)).text();
      expect(raw).to.not.include('hunter2');
      expect(raw).to.not.include('bob@old.example');
    });

    it('filters by type (exact and prefix), actor, target, outcome and time', async () => {
      const types = async (query: string) => (await page(tenantId, query)).items.map((item) => item.seq);
      expect(await types('?type=auth.')).to.deep.equal([4, 2, 1]);
      expect(await types('?type=auth.*')).to.deep.equal([4, 2, 1]);
      expect(await types('?type=auth.login')).to.deep.equal([2, 1]);
      expect(await types(`?actor=${alice}`)).to.deep.equal([5, 4, 3, 1]);
      expect(await types(`?target=${bob}`)).to.deep.equal([3]);
      expect(await types('?target=key-123')).to.deep.equal([5]);
      expect(await types('?outcome=failure')).to.deep.equal([2]);
      expect(await types(`?outcome=success&type=auth.&actor=${alice}`)).to.deep.equal([4, 1]);
      expect(await types(`?from=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)).to.deep.equal([]);
      expect(await types(`?to=${encodeURIComponent(new Date(Date.now() - 3_600_000).toISOString())}`)).to.deep.equal([]);
      expect(await types(`?from=${encodeURIComponent(new Date(Date.now() - 3_600_000).toISOString())}&to=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)).to.deep.equal([5, 4, 3, 2, 1]);
    });

    it('walks keyset pages without repeats or gaps', async () => {
      const seen: number[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const result = await page(tenantId, `?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        seen.push(...result.items.map((item) => item.seq));
        cursor = result.nextCursor;
        pages++;
      } while (cursor);
      expect(pages).to.equal(3);
      expect(seen).to.deep.equal([5, 4, 3, 2, 1]);
    });

    it('answers bad filters and cursors with 422 problem+json', async () => {
      for (const query of ['?cursor=nonsense', '?outcome=maybe', '?from=yesterday', '?limit=0', '?colour=red', '?type=AUTH%20LOGIN', `?from=${encodeURIComponent(new Date().toISOString())}&to=${encodeURIComponent(new Date(Date.now() - 1000).toISOString())}`]) {
        const response = await api(`/tenants/${tenantId}/audit${query}`);
        expect(response.status, query).to.equal(422);
        expect(response.headers.get('content-type')).to.match(/application\/problem\+json/);
      }
      expect((await api(`/tenants/${tenantId}/audit/export?format=xml`)).status).to.equal(422);
    });

    it('exports JSON Lines and CSV that parse back to the listed entries', async () => {
      const listed = (await page(tenantId)).items;
      const jsonl = await api(`/tenants/${tenantId}/audit/export?format=jsonl`);
      expect(jsonl.status).to.equal(200);
      expect(jsonl.headers.get('content-type')).to.match(/application\/x-ndjson/);
      const lines = (await jsonl.text()).trimEnd().split('\n').map((line) => JSON.parse(line) as AuditEntry);
      expect(lines).to.deep.equal(listed);

      const csv = await api(`/tenants/${tenantId}/audit/export?format=csv&type=auth.`);
      expect(csv.status).to.equal(200);
      expect(csv.headers.get('content-type')).to.match(/text\/csv/);
      const [header, ...rows] = parseCsv(await csv.text());
      expect(header).to.include.members(['id', 'seq', 'type', 'outcome', 'actorEmail', 'details', 'ip', 'hash']);
      const records = rows.map((row) => Object.fromEntries(header.map((column, i) => [column, row[i]])));
      const expected = listed.filter((entry) => entry.type.startsWith('auth.'));
      expect(records.map((record) => record.id)).to.deep.equal(expected.map((entry) => entry.id));
      for (const [i, record] of records.entries()) {
        const entry = expected[i];
        expect(record.seq).to.equal(String(entry.seq));
        expect(record.occurredAt).to.equal(entry.occurredAt);
        expect(record.outcome).to.equal(entry.outcome);
        expect(record.actorId).to.equal(entry.actor?.id ?? '');
        expect(record.actorEmail).to.equal(entry.actor?.email ?? '');
        expect(record.ip).to.equal(entry.context?.ip ?? '');
        expect(JSON.parse(record.details)).to.deep.equal(entry.details);
        expect(record.hash).to.equal(entry.hash);
      }
    });
  });

  it('quotes CSV cells with commas, quotes and line breaks, and defuses formulas', async () => {
    const tenantId = await newTenant();
    await runtime.audit.record(undefined, { tenantId, type: 'admin.role.update', outcome: 'success', actor: { type: 'client', id: 'ops-bot', name: '=HYPERLINK("x"), "quoted"\nname' }, details: { label: 'a, "b"\r\nc' } });
    const [header, row] = parseCsv(await (await api(`/tenants/${tenantId}/audit/export?format=csv`)).text());
    const record = Object.fromEntries(header.map((column, i) => [column, row[i]]));
    expect(record.actorName).to.equal('\'=HYPERLINK("x"), "quoted"\nname');
    expect(JSON.parse(record.details)).to.deep.equal({ label: 'a, "b"\r\nc' });
  });

  it('refuses a token without audit:read (403) and another tenant’s administrator (403); an unknown tenant is 404', async () => {
    const tenantId = await newTenant();
    await runtime.audit.record(undefined, { tenantId, type: 'auth.login', outcome: 'success' });
    const agent = await tokenFor(DEFAULT_TENANT_ID, 'agent');
    for (const path of [`/tenants/${tenantId}/audit`, `/tenants/${tenantId}/audit/export`]) {
      const response = await api(path, agent);
      expect(response.status).to.equal(403);
      expect(response.headers.get('content-type')).to.match(/application\/problem\+json/);
    }
    const otherTenant = await newTenant();
    const otherAdmin = await tokenFor(otherTenant, 'admin');
    expect((await api(`/tenants/${tenantId}/audit`, otherAdmin)).status).to.equal(403);
    expect((await api(`/tenants/${tenantId}/audit/export?format=csv`, otherAdmin)).status).to.equal(403);
    // Its own trail it may read (only its administrator's client and role being set up), and
    // nothing of the other tenant leaks into it.
    const own = await api(`/tenants/${otherTenant}/audit`, otherAdmin);
    expect(own.status).to.equal(200);
    expect(((await own.json()) as { items: AuditEntry[] }).items.map((item) => item.type)).to.deep.equal(['role.assign', 'client.create']);
    expect((await api(`/tenants/${randomUUID()}/audit`)).status).to.equal(404);
  });

  it('refuses UPDATE, DELETE and TRUNCATE of audit entries, as the app’s connection and as the tenant role', async () => {
    const tenantId = await newTenant();
    await runtime.audit.record(undefined, { tenantId, type: 'auth.login', outcome: 'success', details: { reason: 'ok' } });
    const { db } = runtime;
    const refused = async (work: () => Promise<unknown>, message: RegExp) => {
      let error: Error | undefined;
      try { await work(); } catch (caught) { error = caught as Error; }
      expect(error, 'refused').to.be.instanceOf(Error);
      expect(error!.message).to.match(message);
    };
    await refused(() => db('audit_entries').where({ tenant_id: tenantId }).update({ details: JSON.stringify({ reason: 'forged' }) }), /append-only: UPDATE/);
    await refused(() => db('audit_entries').where({ tenant_id: tenantId }).delete(), /append-only: DELETE/);
    await refused(() => db.raw('TRUNCATE audit_entries CASCADE'), /append-only: TRUNCATE/);
    await refused(() => withTenant(db, tenantId, (trx) => trx('audit_entries').update({ type: 'forged' })), /permission denied/);
    await refused(() => withTenant(db, tenantId, (trx) => trx('audit_entries').delete()), /permission denied/);
    await refused(() => withTenant(db, tenantId, (trx) => trx.raw('TRUNCATE audit_entries')), /permission denied/);
    const { items } = await page(tenantId);
    expect(items).to.have.length(1);
    expect(items[0].details).to.deep.equal({ reason: 'ok' });
    expect((await runtime.audit.verify(tenantId)).ok).to.equal(true);
  });

  it('names a removed entry (gap), a removed tail and a forged link when the trigger is bypassed', async () => {
    const { db, audit } = runtime;
    const chain = async () => {
      const tenantId = await newTenant();
      const ids = [];
      for (let i = 0; i < 4; i++) ids.push((await audit.record(undefined, { tenantId, type: 'admin.role.update', outcome: 'success', details: { i } })).id);
      return { tenantId, ids };
    };
    const behindTheTrigger = async (work: () => Promise<unknown>) => {
      await db.raw('ALTER TABLE audit_entries DISABLE TRIGGER USER');
      try { await work(); } finally { await db.raw('ALTER TABLE audit_entries ENABLE TRIGGER USER'); }
    };
    const gap = await chain();
    await behindTheTrigger(() => db('audit_entries').where({ tenant_id: gap.tenantId, seq: 2 }).delete());
    expect((await audit.verify(gap.tenantId)).firstBroken).to.deep.equal({ tenantId: gap.tenantId, seq: 3, id: gap.ids[2], reason: 'gap' });
    const tail = await chain();
    await behindTheTrigger(() => db('audit_entries').where({ tenant_id: tail.tenantId, seq: 4 }).delete());
    expect((await audit.verify(tail.tenantId)).firstBroken).to.deep.equal({ tenantId: tail.tenantId, seq: 4, id: null, reason: 'missing tail' });
    const link = await chain();
    await behindTheTrigger(() => db('audit_entries').where({ tenant_id: link.tenantId, seq: 2 }).update({ prev_hash: 'f'.repeat(64) }));
    expect((await audit.verify(link.tenantId)).firstBroken).to.deep.equal({ tenantId: link.tenantId, seq: 2, id: link.ids[1], reason: 'broken link' });
    const report = await audit.verify();
    expect(report.ok).to.equal(false);
    expect(report.chains.filter((item) => !item.ok).map((item) => item.tenantId)).to.have.members([gap.tenantId, tail.tenantId, link.tenantId]);
  });

  it('keeps one unbroken chain under 50 concurrent appends', async function () {
    this.timeout(SLOW);
    const tenantId = await newTenant();
    const actor = { type: 'user' as const, id: randomUUID(), email: 'busy@example.com' };
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => runtime.audit.record(undefined, { tenantId, type: 'auth.login', outcome: i % 2 ? 'success' : 'failure', actor, details: { attempt: i } })));
    expect(results.map((result) => result.seq).sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 50 }, (_, i) => i + 1));
    const report = await runtime.audit.verify(tenantId);
    expect(report).to.deep.include({ ok: true, checked: 50 });
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const result = await page(tenantId, `?limit=200${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...result.items.map((item) => item.seq));
      cursor = result.nextCursor;
    } while (cursor);
    expect(seen).to.have.length(50);
  });

  it('erases a person: their e-mail, name and request context vanish from list and export; entries and chain stay', async () => {
    const tenantId = await newTenant();
    const erin = randomUUID();
    const person = { type: 'user' as const, id: erin, email: 'erin.erasable@example.com', name: 'Erin Erasable' };
    await runtime.audit.record(undefined, { tenantId, type: 'auth.login', outcome: 'success', actor: person, context: { ip: '198.51.100.23', userAgent: 'ErinBrowser/1.0' } });
    await runtime.audit.record(undefined, { tenantId, type: 'admin.user.update', outcome: 'success', actor: { type: 'client', id: 'ops-bot' }, target: person, details: { field: 'name' } });
    await runtime.audit.record(undefined, { tenantId, type: 'auth.login', outcome: 'success', actor: { type: 'user', id: randomUUID(), email: 'other@example.com' }, context: { ip: '192.0.2.1' } });
    expect(await runtime.audit.erase(tenantId, 'user', erin)).to.deep.equal({ people: 1, contexts: 1 });
    expect(await runtime.audit.verify(tenantId)).to.deep.include({ ok: true, checked: 3 });
    const listed = await (await api(`/tenants/${tenantId}/audit`)).text();
    const jsonl = await (await api(`/tenants/${tenantId}/audit/export?format=jsonl`)).text();
    const csv = await (await api(`/tenants/${tenantId}/audit/export?format=csv`)).text();
    for (const output of [listed, jsonl, csv]) {
      for (const personal of ['erin.erasable@example.com', 'Erin Erasable', erin, '198.51.100.23', 'ErinBrowser']) expect(output).to.not.include(personal);
      expect(output).to.include('other@example.com');
    }
    const items = (JSON.parse(listed) as { items: AuditEntry[] }).items;
    expect(items.map((item) => item.seq)).to.deep.equal([3, 2, 1]);
    expect(items[2].actor).to.deep.equal({ type: 'user', id: null, email: null, name: null, erased: true });
    expect(items[1].target).to.deep.equal({ type: 'user', id: null, email: null, name: null, erased: true });
    expect(items[2].context).to.equal(null);
    expect(items[0].context).to.deep.equal({ ip: '192.0.2.1', userAgent: null });
    // The same subject acting again after erasure gets a new pseudonym, not the erased one.
    await runtime.audit.record(undefined, { tenantId, type: 'auth.login', outcome: 'success', actor: { type: 'user', id: erin } });
    expect((await page(tenantId, `?actor=${erin}`)).items.map((item) => item.seq)).to.deep.equal([4]);
  });
});

forEachBackend('idp audit verify', (backend) => {
  let store: BackendEnv;
  before(async () => {
    store = await backend.create();
  });
  after(async () => {
    await store?.cleanup();
  });

  // The embedded database is one process's at a time: each step opens and closes the runtime.
  async function withRuntime<T>(work: (runtime: Runtime) => Promise<T>): Promise<T> {
    const runtime = await createRuntime(loadConfig({ ...TEST_ENV, ...store.env }), { log: pino({ level: 'silent' }) });
    try {
      return await work(runtime);
    } finally {
      await runtime.close();
    }
  }

  const cli = (args: string[]) => idp(args, { ...TEST_ENV, ...store.env }, SLOW);

  it('exits 0 on intact chains and 1 naming the entry whose payload was altered behind the trigger', async function () {
    this.timeout(SLOW * 3);
    const { tenantId, slug, ids } = await withRuntime(async (runtime) => {
      const tenant = await runtime.tenants.create({ slug: unique('verify'), displayName: 'Verify' });
      const recorded = [];
      for (let i = 0; i < 5; i++) recorded.push(await runtime.audit.record(undefined, { tenantId: tenant.id, type: 'admin.client.update', outcome: 'success', target: { ref: `client-${i}` }, details: { i } }));
      await runtime.audit.record(undefined, { tenantId: DEFAULT_TENANT_ID, type: 'auth.login', outcome: 'success' });
      return { tenantId: tenant.id, slug: tenant.slug, ids: recorded.map((entry) => entry.id) };
    });

    const intact = await cli(['audit', 'verify']);
    expect(intact.code, intact.stderr).to.equal(0);
    expect(intact.stderr).to.equal('');
    expect(intact.stdout).to.include(`tenant ${tenantId}: ok, 5 entries`);
    // The platform's trail also holds the tenant's creation.
    expect(intact.stdout).to.match(new RegExp(`tenant ${DEFAULT_TENANT_ID}: ok, \\d+ entries`));

    // A superuser path around the trigger: the chain still gives the change away.
    await withRuntime(async ({ db }) => {
      await db.raw('ALTER TABLE audit_entries DISABLE TRIGGER USER');
      try {
        await db('audit_entries').where({ tenant_id: tenantId, seq: 3 }).update({ details: JSON.stringify({ i: 99 }) });
      } finally {
        await db.raw('ALTER TABLE audit_entries ENABLE TRIGGER USER');
      }
    });
    for (const args of [['audit', 'verify'], ['audit', 'verify', '--tenant', slug], ['audit', 'verify', '--tenant', tenantId]]) {
      const broken = await cli(args);
      expect(broken.code, args.join(' ')).to.equal(1);
      expect(broken.stderr.trimEnd()).to.equal(`idp: audit chain broken: tenant ${tenantId}, seq 3, entry ${ids[2]}: hash mismatch`);
      expect(broken.stdout).to.include(`tenant ${tenantId}: BROKEN at seq 3`);
    }
    const other = await cli(['audit', 'verify', '--tenant', DEFAULT_TENANT_ID]);
    expect(other.code).to.equal(0);
    expect(other.stdout.trim()).to.match(new RegExp(`^tenant ${DEFAULT_TENANT_ID}: ok, \\d+ entries$`));
    const unknown = await cli(['audit', 'verify', '--tenant', 'no-such-tenant']);
    expect(unknown.code).to.equal(1);
    expect(unknown.stderr.trimEnd()).to.equal('idp: no tenant with slug no-such-tenant');
  });
});
