// Replacing a client's secret through the admin API (and the command line's counterpart in the
// same service): the new secret is shown once, the old one is refused at once on this instance and
// as soon as the change notice arrives on the others; tokens already issued stay valid; the audit
// trail records the change and never the secret.
import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { adminApi, type AdminApi } from '../helpers/admin-api.ts';
import { clientCredentialsToken, introspect } from '../helpers/fixtures.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';

let counter = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++counter}`;

forEachBackend('client secret rotation', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let api: AdminApi;
  let tenantA: string;
  let tenantB: string;
  let adminA: string;
  let adminB: string;
  let agentA: string;
  const others: Instance[] = [];

  before(async () => {
    store = await backend.create();
    instance = await startInstance(store.env);
    api = adminApi(instance);
    const platform = await api.token(DEFAULT_TENANT_ID, 'root-admin');
    tenantA = await api.createTenant(platform, unique('rotation-a'));
    tenantB = await api.createTenant(platform, unique('rotation-b'));
    adminA = await api.token(tenantA, 'admin');
    adminB = await api.token(tenantB, 'admin');
    agentA = await api.token(tenantA, 'agent');
  });
  after(async () => {
    for (const other of others) await other.stop();
    await instance?.stop();
    await store?.cleanup();
  });

  async function machineClient(tenantId: string, token: string, body: Record<string, unknown> = {}): Promise<{ clientId: string; clientSecret: string }> {
    const response = await api.call(token, 'POST', `/tenants/${tenantId}/clients`, { name: unique('billing'), grantTypes: ['client_credentials'], ...body });
    expect(response.status, await response.clone().text()).to.equal(201);
    return (await response.json()) as { clientId: string; clientSecret: string };
  }

  const tokenStatus = async (url: string, client: { clientId: string; clientSecret: string }) => (await clientCredentialsToken(url, client, {})).status;

  it('answers a new secret once; the old one is refused at once, tokens already issued stay valid', async () => {
    const client = await machineClient(tenantA, adminA);
    const before = await clientCredentialsToken(instance.url, client, {});
    expect(before.status).to.equal(200);
    const { access_token: issued } = (await before.json()) as { access_token: string };

    const response = await api.call(adminA, 'POST', `/tenants/${tenantA}/clients/${client.clientId}/secret`);
    expect(response.status, await response.clone().text()).to.equal(200);
    const rotated = (await response.json()) as { clientId: string; clientSecret: string };
    expect(rotated.clientId).to.equal(client.clientId);
    expect(rotated.clientSecret).to.be.a('string').with.length.of.at.least(43);
    expect(rotated.clientSecret).to.not.equal(client.clientSecret);

    const refused = await clientCredentialsToken(instance.url, client, {});
    expect(refused.status).to.equal(401);
    expect(((await refused.json()) as { error: string }).error).to.equal('invalid_client');
    expect(await tokenStatus(instance.url, rotated)).to.equal(200);
    expect((await introspect(instance.url, rotated, issued)).active, 'a token issued before the rotation').to.equal(true);

    const listed = await api.call(adminA, 'GET', `/tenants/${tenantA}/clients/${client.clientId}`);
    const text = await listed.text();
    expect(text).to.not.include(rotated.clientSecret);
  });

  it('records the rotation in the tenant’s audit trail, never the secret or its digest', async () => {
    const client = await machineClient(tenantA, adminA);
    const rotated = (await (await api.call(adminA, 'POST', `/tenants/${tenantA}/clients/${client.clientId}/secret`)).json()) as { clientSecret: string };
    const response = await api.call(adminA, 'GET', `/tenants/${tenantA}/audit?type=client.secret_rotate&limit=50`);
    expect(response.status).to.equal(200);
    const text = await response.text();
    const entries = (JSON.parse(text) as { items: Array<{ type: string; target: { id?: string }; outcome: string }> }).items;
    expect(entries.filter((entry) => entry.target?.id === client.clientId).map((entry) => [entry.type, entry.outcome])).to.deep.equal([['client.secret_rotate', 'success']]);
    for (const secret of [rotated.clientSecret, client.clientSecret]) {
      expect(text).to.not.include(secret);
      expect(text).to.not.include(createHash('sha256').update(secret).digest('hex'));
    }
  });

  it('refuses a client without a secret (409), another tenant’s client and an unknown one (404), and a caller without clients:write (403)', async () => {
    const keyed = await api.call(adminA, 'POST', `/tenants/${tenantA}/clients`, {
      name: unique('keyed'),
      grantTypes: ['client_credentials'],
      authMethod: 'private_key_jwt',
      jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0', kid: 'k1' }] },
    });
    expect(keyed.status, await keyed.clone().text()).to.equal(201);
    const keyedId = ((await keyed.json()) as { clientId: string }).clientId;
    const conflict = await api.call(adminA, 'POST', `/tenants/${tenantA}/clients/${keyedId}/secret`);
    expect(conflict.status).to.equal(409);
    expect(conflict.headers.get('content-type')).to.match(/problem\+json/);
    expect(((await conflict.json()) as { detail: string }).detail).to.include('private_key_jwt');

    const client = await machineClient(tenantA, adminA);
    const foreign = await api.call(adminB, 'POST', `/tenants/${tenantB}/clients/${client.clientId}/secret`);
    expect(foreign.status).to.equal(404);
    expect((await api.call(adminA, 'POST', `/tenants/${tenantA}/clients/no-such-client/secret`)).status).to.equal(404);
    expect((await api.call(agentA, 'POST', `/tenants/${tenantA}/clients/${client.clientId}/secret`)).status).to.equal(403);
    expect(await tokenStatus(instance.url, client), 'refused attempts changed nothing').to.equal(200);
  });

  if (backend.name.startsWith('PostgreSQL')) {
    it('is refused within a second on another instance that had the client cached', async function () {
      this.timeout(60_000);
      const other = await startInstance(store.env);
      others.push(other);
      const client = await machineClient(tenantA, adminA);
      expect(await tokenStatus(other.url, client), 'cached on the other instance').to.equal(200);
      const rotated = (await (await api.call(adminA, 'POST', `/tenants/${tenantA}/clients/${client.clientId}/secret`)).json()) as { clientId: string; clientSecret: string };
      const started = Date.now();
      // The change notice travels over Redis pub/sub: asked until it has arrived, a second at most.
      let status = await tokenStatus(other.url, client);
      while (status === 200 && Date.now() - started < 1000) status = await tokenStatus(other.url, client);
      expect(status, `still accepted after ${Date.now() - started} ms`).to.equal(401);
      expect(await tokenStatus(other.url, { clientId: client.clientId, clientSecret: rotated.clientSecret })).to.equal(200);
    });
  }
});
