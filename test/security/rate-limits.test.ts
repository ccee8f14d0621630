// Rate limits through real HTTP: per client address on the token endpoint (OAuth error JSON) and a
// page (HTML), per client on the token endpoint whichever way the client authenticates, the audit
// entry of the first refusal, and on the real-server backend a count shared by two instances.
// Requests come through a trusted proxy (loopback) whose X-Forwarded-For picks the client address,
// so each test has addresses of its own.
import { expect } from 'chai';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { basicAuth } from '../helpers/fixtures.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';

const LIMITS = {
  TRUSTED_PROXIES: '127.0.0.1',
  RATE_LIMIT_TOKEN_PER_IP: '4/60',
  RATE_LIMIT_TOKEN_PER_CLIENT: '3/60',
  RATE_LIMIT_PASSWORD_RESET_PER_IP: '2/60',
};

forEachBackend('rate limits', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let other: Instance | undefined;
  let address = 0;
  const nextAddress = () => `198.51.100.${(address += 1)}`;

  function token(url: string, from: string, body: Record<string, string>, headers: Record<string, string> = {}) {
    return fetch(`${url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': from, ...headers },
      body: new URLSearchParams(body).toString(),
    });
  }

  async function machineClient(tenantId?: string, tokenEndpointAuthMethod?: string) {
    const { client, clientSecret } = await instance.runtime.clients.create({
      name: 'limited machine',
      grantTypes: ['client_credentials'],
      tenantId,
      ...(tokenEndpointAuthMethod ? { tokenEndpointAuthMethod } : {}),
    } as never);
    return { clientId: client.clientId, clientSecret: clientSecret! };
  }

  async function auditOf(tenantId: string, type: string) {
    return (await instance.runtime.audit.list(tenantId, { type }, undefined, 50)).items;
  }

  before(async function () {
    // PGlite runs every migration at start; on a busy machine that alone can take half a minute.
    this.timeout(120_000);
    store = await backend.create();
    instance = await startInstance({ ...store.env, ...LIMITS });
  });
  after(async () => {
    await other?.stop();
    await instance?.stop();
    await store?.cleanup();
  });

  it('answers the request after the limit from one address with 429, Retry-After and OAuth error JSON', async () => {
    const from = nextAddress();
    const statuses: number[] = [];
    for (let i = 0; i < 4; i += 1) statuses.push((await token(instance.url, from, { grant_type: 'client_credentials', client_id: 'nobody', client_secret: 'wrong' })).status);
    expect(statuses).to.deep.equal([401, 401, 401, 401]);
    const refused = await token(instance.url, from, { grant_type: 'client_credentials', client_id: 'nobody', client_secret: 'wrong' });
    expect(refused.status).to.equal(429);
    expect(Number(refused.headers.get('retry-after'))).to.be.within(1, 60);
    expect(refused.headers.get('content-type')).to.match(/^application\/json/);
    expect(await refused.json()).to.include({ error: 'temporarily_unavailable' });
    // Another address still gets through.
    expect((await token(instance.url, nextAddress(), { grant_type: 'client_credentials', client_id: 'nobody', client_secret: 'wrong' })).status).to.equal(401);
    // The first refusal of the window is recorded once, with the client address.
    const entries = (await auditOf(DEFAULT_TENANT_ID, 'security.rate_limited')).filter((entry) => (entry as { context?: { ip?: string } }).context?.ip === from);
    expect(entries).to.have.length(1);
    expect(entries[0].details).to.include({ limiter: 'token-per-ip', countedPer: 'ip', path: '/token' });
    expect(await instance.runtime.metrics.getSingleMetricAsString('idp_rate_limited_total')).to.match(/idp_rate_limited_total\{limiter="token-per-ip"\} [1-9]/);
  });

  it('limits a client across addresses, counting only requests it authenticated, Basic or form body alike', async () => {
    const tenantId = (await instance.runtime.tenants.create({ slug: `rl-${backend.name.length}`, displayName: 'Limited' })).id;
    for (const method of ['client_secret_basic', 'client_secret_post']) {
      const client = await machineClient(tenantId, method);
      const send = () =>
        method === 'client_secret_basic'
          ? token(instance.url, nextAddress(), { grant_type: 'client_credentials' }, { authorization: basicAuth(client) })
          : token(instance.url, nextAddress(), { grant_type: 'client_credentials', client_id: client.clientId, client_secret: client.clientSecret });
      // A wrong secret naming the client does not spend its budget.
      for (let i = 0; i < 3; i += 1) {
        expect((await token(instance.url, nextAddress(), { grant_type: 'client_credentials', client_id: client.clientId, client_secret: 'wrong' })).status).to.equal(401);
      }
      for (let i = 0; i < 3; i += 1) {
        const served = await send();
        expect(served.status, `${method}: ${await served.clone().text()}`).to.equal(200);
      }
      const refused = await send();
      expect(refused.status, method).to.equal(429);
      expect(refused.headers.get('retry-after')).to.match(/^\d+$/);
      expect(await refused.json()).to.include({ error: 'temporarily_unavailable' });
      const entries = (await auditOf(tenantId, 'security.rate_limited')).filter((entry) => entry.details?.limiter === 'token-per-client' && JSON.stringify(entry).includes(client.clientId));
      expect(entries, method).to.have.length(1);
    }
  });

  it('answers a page endpoint over its limit with a 429 page', async () => {
    const from = nextAddress();
    const post = () =>
      fetch(`${instance.url}/password/forgot`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html', 'x-forwarded-for': from },
        body: 'email=someone%40example.com',
      });
    for (let i = 0; i < 2; i += 1) expect((await post()).status).to.not.equal(429);
    const refused = await post();
    expect(refused.status).to.equal(429);
    expect(refused.headers.get('content-type')).to.match(/^text\/html/);
    expect(Number(refused.headers.get('retry-after'))).to.be.within(1, 60);
    const page = await refused.text();
    expect(page).to.include('<h1>Too many requests</h1>');
    expect(page).to.match(/Wait \d+ seconds/);
  });

  if (backend.name.startsWith('PostgreSQL')) {
    it('shares the count between two instances on the same Redis', async function () {
      this.timeout(60_000);
      other = await startInstance({ ...store.env, ...LIMITS });
      const from = nextAddress();
      const body = { grant_type: 'client_credentials', client_id: 'nobody', client_secret: 'wrong' };
      const statuses: number[] = [];
      for (let i = 0; i < 5; i += 1) statuses.push((await token(i % 2 ? other.url : instance.url, from, body)).status);
      expect(statuses).to.deep.equal([401, 401, 401, 401, 429]);
    });
  }
});
