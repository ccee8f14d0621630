// Migration 025 drops `policies.allowedIpRanges`, a key older versions stored but never enforced;
// a tenant stored with it must read back afterwards with its other policies intact.
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { TEST_ENV } from '../helpers/instance.ts';
import { loadConfig } from '../../src/config.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { up as dropAllowedIpRanges } from '../../migrations/20261124_025_drop_allowed_ip_ranges.ts';

forEachBackend('migration 025 (tenant policies)', (backend) => {
  let store: BackendEnv;
  let runtime: Runtime;

  before(async () => {
    store = await backend.create();
    runtime = await createRuntime(loadConfig({ ...TEST_ENV, ...store.env }), { log: pino({ level: 'silent' }) });
  });
  after(async () => {
    await runtime?.close();
    await store?.cleanup();
  });

  it('removes allowedIpRanges from stored policies and keeps the rest', async () => {
    const legacy = randomUUID();
    const current = randomUUID();
    await runtime.db('tenants').insert([
      { id: legacy, slug: 'legacy', display_name: 'Legacy', policies: JSON.stringify({ mfa: 'all', allowedIpRanges: ['10.0.0.0/8'] }) },
      { id: current, slug: 'current', display_name: 'Current', policies: JSON.stringify({ mfa: 'admins' }) },
    ]);
    await dropAllowedIpRanges(runtime.db);
    const rows = await runtime.db('tenants').whereIn('id', [legacy, current]).select('id', 'policies');
    const policiesOf = new Map(rows.map((row: { id: string; policies: Record<string, unknown> }) => [row.id, row.policies]));
    expect(policiesOf.get(legacy)).to.deep.equal({ mfa: 'all' });
    expect(policiesOf.get(current)).to.deep.equal({ mfa: 'admins' });
    const tenant = await runtime.tenants.get(legacy);
    expect(tenant?.policies.mfa).to.equal('all');
  });
});
