// Tenant IP rules through the admin API: read and replace them (versions, bad ranges), and their
// enforcement on the admin API: a denied range shuts one tenant's callers out while another
// tenant's keep working, an allow list admits only its ranges, and each refusal is recorded.
import { expect } from 'chai';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { adminApi, type AdminApi } from '../helpers/admin-api.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';

forEachBackend('tenant IP rules', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let api: AdminApi;
  let platform: string;
  let tenantA: string;
  let tenantB: string;
  let adminA: string;
  let adminB: string;

  async function putRules(token: string, tenantId: string, rules: unknown) {
    const current = await api.call(token, 'GET', `/tenants/${tenantId}/ip-rules`);
    expect(current.status, await current.clone().text()).to.equal(200);
    return api.call(token, 'PUT', `/tenants/${tenantId}/ip-rules`, rules, { 'if-match': current.headers.get('etag')! });
  }

  before(async function () {
    this.timeout(120_000);
    store = await backend.create();
    instance = await startInstance(store.env);
    api = adminApi(instance);
    platform = await api.token(DEFAULT_TENANT_ID, 'root-admin');
    [tenantA, tenantB] = await Promise.all(['ip-a', 'ip-b'].map((slug) => api.createTenant(platform, slug)));
    adminA = await api.token(tenantA, 'root-admin');
    adminB = await api.token(tenantB, 'root-admin');
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  it('starts with no rules at version 0 and stores IPv4 and IPv6 ranges with If-Match', async () => {
    const empty = await api.call(adminA, 'GET', `/tenants/${tenantA}/ip-rules`);
    expect(empty.headers.get('etag')).to.equal('"0"');
    expect(await empty.json()).to.deep.include({ login: { allow: [], deny: [] }, adminApi: { allow: [], deny: [] }, apiKeys: { allow: [], deny: [] }, version: 0 });

    const rules = { login: { allow: ['2001:db8::/32', '10.0.0.0/8'], deny: ['::ffff:10.9.0.0/112'] }, apiKeys: { deny: ['fd00::/8'] } };
    const missingVersion = await api.call(adminA, 'PUT', `/tenants/${tenantA}/ip-rules`, rules);
    expect(missingVersion.status).to.equal(428);
    const saved = await putRules(adminA, tenantA, rules);
    expect(saved.status, await saved.clone().text()).to.equal(200);
    expect(saved.headers.get('etag')).to.equal('"1"');
    expect(await saved.json()).to.deep.include({ login: rules.login, apiKeys: { allow: [], deny: ['fd00::/8'] }, adminApi: { allow: [], deny: [] }, version: 1 });
    const stale = await api.call(adminA, 'PUT', `/tenants/${tenantA}/ip-rules`, rules, { 'if-match': '"0"' });
    expect(stale.status).to.equal(412);

    const { ipRules } = instance.runtime;
    expect(await ipRules.allows(tenantA, 'login', '2001:db8:5::1')).to.equal(true);
    expect(await ipRules.allows(tenantA, 'login', '10.1.1.1')).to.equal(true);
    expect(await ipRules.allows(tenantA, 'login', '10.9.3.3')).to.equal(false);
    expect(await ipRules.allows(tenantA, 'login', '192.0.2.1')).to.equal(false);
    expect(await ipRules.allows(tenantA, 'apiKeys', 'fd12::1')).to.equal(false);
    expect(await ipRules.allows(tenantA, 'apiKeys', '192.0.2.1')).to.equal(true);
    expect(await ipRules.allows(tenantB, 'login', '192.0.2.1')).to.equal(true);

    const audit = await instance.runtime.audit.list(tenantA, { type: 'tenant.ip_rules.update' }, undefined, 10);
    expect(audit.items).to.have.length(1);
    expect(JSON.stringify(audit.items[0].details)).to.include('2001:db8::/32');
  });

  it('refuses a range that is not CIDR with a problem naming the field, and changes nothing', async () => {
    for (const bad of ['10.0.0.0/33', 'not-an-ip', '2001:db8::/200', '10.0.0.0/8/1']) {
      const response = await putRules(adminB, tenantB, { adminApi: { deny: ['192.0.2.0/24', bad] } });
      expect(response.status, bad).to.equal(422);
      expect(response.headers.get('content-type')).to.match(/^application\/problem\+json/);
      const problem = (await response.json()) as { errors?: Record<string, string> };
      expect(Object.keys(problem.errors ?? {}).join(' '), bad).to.include('adminApi.deny.1');
    }
    const unknownSurface = await putRules(adminB, tenantB, { console: { deny: [] } });
    expect(unknownSurface.status).to.equal(422);
    expect(((await (await api.call(adminB, 'GET', `/tenants/${tenantB}/ip-rules`)).json()) as { version: number }).version).to.equal(0);
  });

  it('shuts a denied range out of one tenant’s admin API while another tenant works, and records it', async () => {
    const denied = await putRules(adminA, tenantA, { adminApi: { deny: ['127.0.0.0/8', '::1/128'] } });
    expect(denied.status).to.equal(200);
    const refused = await api.call(adminA, 'GET', `/tenants/${tenantA}`);
    expect(refused.status).to.equal(403);
    expect(refused.headers.get('content-type')).to.match(/^application\/problem\+json/);
    expect(await refused.json()).to.include({ type: 'urn:idp:problem:ip-blocked' });
    expect((await api.call(adminA, 'GET', `/tenants/${tenantA}/ip-rules`)).status).to.equal(403);
    expect((await api.call(adminB, 'GET', `/tenants/${tenantB}`)).status).to.equal(200);

    const blocks = await instance.runtime.audit.list(tenantA, { type: 'security.ip_blocked' }, undefined, 10);
    expect(blocks.items).to.have.length(1);
    expect(blocks.items[0].details).to.include({ surface: 'adminApi' });
    expect(await instance.runtime.metrics.getSingleMetricAsString('idp_ip_blocked_total')).to.match(/idp_ip_blocked_total\{surface="adminApi"\} [1-9]/);

    // The platform lifts the rule; the change reaches the cache at once.
    const lifted = await putRules(platform, tenantA, { adminApi: { deny: [] } });
    expect(lifted.status).to.equal(200);
    expect((await api.call(adminA, 'GET', `/tenants/${tenantA}`)).status).to.equal(200);
  });

  it('admits only the ranges of a non-empty allow list', async () => {
    expect((await putRules(adminB, tenantB, { adminApi: { allow: ['2001:db8::/32'] } })).status).to.equal(200);
    expect((await api.call(adminB, 'GET', `/tenants/${tenantB}`)).status).to.equal(403);
    expect((await putRules(platform, tenantB, { adminApi: { allow: ['2001:db8::/32', '127.0.0.1'] } })).status).to.equal(200);
    expect((await api.call(adminB, 'GET', `/tenants/${tenantB}`)).status).to.equal(200);
  });
});
