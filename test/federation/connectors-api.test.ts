// Federation connectors through the admin API on both backends: each kind created and read back,
// Genesys regions filling the upstream hosts, validation as problem+json, secrets write-only and
// sealed at rest (also absent from the audit export), private_key_jwt keys, permissions and tenant
// isolation, e-mail domains unique across the deployment, role mappings checked against the
// tenant's roles and applied at sign-in without touching roles assigned by hand.
import { expect } from 'chai';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import { withTenant } from '../../src/store/tenant-scope.ts';
import { adminApi, type AdminApi } from '../helpers/admin-api.ts';

interface ConnectorBody {
  id: string;
  name: string;
  displayName: string;
  kind: string;
  enabled: boolean;
  clientId: string;
  clientAuth: string;
  scopes: string[];
  issuer?: string;
  authorizationEndpoint?: string;
  tokenEndpoint?: string;
  profileEndpoint?: string;
  claimMapping?: Record<string, string>;
  genesys?: { region: string; organizationId?: string; groupSource: string };
  emailDomains: string[];
  roleMappings: Array<{ group: string; roleId: string }>;
  hasClientSecret: boolean;
  publicJwk?: JWK;
  version: number;
}

interface Problem {
  type: string;
  detail: string;
  errors?: Record<string, string>;
}

const SECRET = 'upstream-client-secret-6f1d2c9a8b7e';

forEachBackend('federation connectors admin API', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let api: AdminApi;
  let tenantA: string;
  let tenantB: string;
  let adminA: string;
  let adminB: string;
  let agentA: string;
  let counter = 0;
  const unique = (prefix: string) => `${prefix}-${++counter}`;

  const base = (tenantId = tenantA) => `/tenants/${tenantId}/connectors`;

  async function create(body: Record<string, unknown>, tenantId = tenantA, token = adminA): Promise<ConnectorBody> {
    const response = await api.call(token, 'POST', base(tenantId), body);
    expect(response.status, await response.clone().text()).to.equal(201);
    expect(response.headers.get('content-type')).to.match(/json/);
    return (await response.json()) as ConnectorBody;
  }

  async function refused(response: Response, status: number): Promise<Problem> {
    expect(response.status, await response.clone().text()).to.equal(status);
    expect(response.headers.get('content-type')).to.match(/problem\+json/);
    return (await response.json()) as Problem;
  }

  const oidc = (overrides: Record<string, unknown> = {}) => ({ name: unique('corp'), kind: 'oidc', displayName: 'Corporate SSO', clientId: 'idp-client', clientSecret: SECRET, issuer: 'https://login.example.com', ...overrides });

  before(async () => {
    store = await backend.create();
    instance = await startInstance(store.env);
    api = adminApi(instance);
    const platform = await api.token(DEFAULT_TENANT_ID, 'root-admin');
    tenantA = await api.createTenant(platform, 'connectors-a');
    tenantB = await api.createTenant(platform, 'connectors-b');
    adminA = await api.token(tenantA, 'admin');
    adminB = await api.token(tenantB, 'admin');
    agentA = await api.token(tenantA, 'agent');
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  it('creates an OIDC connector: the secret is write-only, openid is always asked for, the ETag is its version', async () => {
    const response = await api.call(adminA, 'POST', base(), oidc({ scopes: ['profile', 'email', 'groups'], trustEmail: true, jitProvisioning: true }));
    expect(response.status).to.equal(201);
    const connector = (await response.json()) as ConnectorBody;
    expect(response.headers.get('etag')).to.equal(`"${connector.version}"`);
    expect(response.headers.get('location')).to.equal(`/api/v1${base()}/${connector.id}`);
    expect(connector).to.include({ kind: 'oidc', clientAuth: 'client_secret_basic', issuer: 'https://login.example.com', hasClientSecret: true, enabled: true });
    expect(connector.scopes).to.deep.equal(['openid', 'profile', 'email', 'groups']);
    expect(connector).not.to.have.property('clientSecret');
    expect(connector).not.to.have.property('publicJwk');

    const read = await api.call(adminA, 'GET', `${base()}/${connector.id}`);
    expect(read.status).to.equal(200);
    expect(read.headers.get('etag')).to.equal(`"${connector.version}"`);
    expect(await read.json()).to.deep.equal(connector);
  });

  it('creates a plain OAuth 2 connector with its endpoints and claim mapping', async () => {
    const connector = await create({
      name: unique('github'),
      kind: 'oauth2',
      displayName: 'GitHub',
      clientId: 'gh-client',
      clientSecret: SECRET,
      clientAuth: 'client_secret_post',
      authorizationEndpoint: 'https://github.com/login/oauth/authorize',
      tokenEndpoint: 'https://github.com/login/oauth/access_token',
      profileEndpoint: 'https://api.github.com/user',
      claimMapping: { subject: 'id', email: 'email', name: 'name' },
      scopes: ['read:user', 'user:email'],
    });
    expect(connector).to.include({ kind: 'oauth2', clientAuth: 'client_secret_post', profileEndpoint: 'https://api.github.com/user', hasClientSecret: true });
    expect(connector.scopes).to.deep.equal(['read:user', 'user:email']);
    expect(connector.claimMapping).to.deep.equal({ subject: 'id', email: 'email', name: 'name' });
  });

  it('fills a Genesys connector’s endpoints and claim mapping from its region; explicit endpoints win; null goes back to the region', async () => {
    const connector = await create({ name: unique('genesys'), kind: 'genesys', displayName: 'Genesys Cloud', clientId: 'gc-client', clientSecret: SECRET, genesys: { region: 'mypurecloud.de' } });
    expect(connector).to.include({
      authorizationEndpoint: 'https://login.mypurecloud.de/oauth/authorize',
      tokenEndpoint: 'https://login.mypurecloud.de/oauth/token',
      profileEndpoint: 'https://api.mypurecloud.de/api/v2/users/me?expand=organization,authorization',
    });
    expect(connector.genesys).to.deep.equal({ region: 'mypurecloud.de', groupSource: 'roles' });
    expect(connector.claimMapping).to.deep.equal({ subject: 'id', email: 'email', name: 'name' });
    expect(connector.scopes).to.deep.equal([]);

    const fake = 'http://127.0.0.1:9';
    const pointed = await create({
      name: unique('genesys'),
      kind: 'genesys',
      displayName: 'Genesys (fake)',
      clientId: 'gc-client',
      clientSecret: SECRET,
      genesys: { region: 'usw2.pure.cloud', organizationId: 'org-1', groupSource: 'divisions' },
      authorizationEndpoint: `${fake}/oauth/authorize`,
      tokenEndpoint: `${fake}/oauth/token`,
      profileEndpoint: `${fake}/api/v2/users/me`,
    });
    expect(pointed).to.include({ authorizationEndpoint: `${fake}/oauth/authorize`, tokenEndpoint: `${fake}/oauth/token`, profileEndpoint: `${fake}/api/v2/users/me` });
    expect(pointed.genesys).to.deep.equal({ region: 'usw2.pure.cloud', organizationId: 'org-1', groupSource: 'divisions' });

    const changed = await api.call(adminA, 'PATCH', `${base()}/${pointed.id}`, { profileEndpoint: null, genesys: { region: 'mypurecloud.ie' } }, { 'if-match': `"${pointed.version}"` });
    expect(changed.status, await changed.clone().text()).to.equal(200);
    const after = (await changed.json()) as ConnectorBody;
    expect(after.profileEndpoint).to.equal('https://api.mypurecloud.ie/api/v2/users/me?expand=organization,authorization');
    expect(after.tokenEndpoint).to.equal(`${fake}/oauth/token`);
    expect(after.version).to.equal(pointed.version + 1);
  });

  it('refuses invalid connectors with 422 and the offending fields', async () => {
    const cases: Array<[Record<string, unknown>, string[]]> = [
      [oidc({ name: 'Not_A_Name' }), ['body.name']],
      [oidc({ name: '-leading' }), ['body.name']],
      [oidc({ issuer: undefined }), ['body.issuer']],
      [oidc({ issuer: 'http://login.example.com' }), ['body.issuer']],
      [oidc({ issuer: 'not a url' }), ['body.issuer']],
      [oidc({ tokenEndpoint: 'https://login.example.com/token' }), ['body.tokenEndpoint']],
      [oidc({ clientSecret: undefined }), ['body.clientSecret']],
      [oidc({ kind: 'saml' }), ['body.kind']],
      [oidc({ unexpected: true }), ['body']],
      [oidc({ emailDomains: ['example.com', 'not a domain'] }), ['body.emailDomains']],
      [oidc({ clientAuth: 'private_key_jwt', privateJwk: { kty: 'oct', k: 'c2VjcmV0' } }), ['body.clientSecret', 'body.privateJwk']],
      [{ name: unique('oauth'), kind: 'oauth2', displayName: 'X', clientId: 'c', clientSecret: SECRET }, ['body.authorizationEndpoint', 'body.tokenEndpoint', 'body.profileEndpoint', 'body.claimMapping.subject']],
      [{ name: unique('gc'), kind: 'genesys', displayName: 'X', clientId: 'c', clientSecret: SECRET }, ['body.genesys.region']],
      [{ name: unique('gc'), kind: 'genesys', displayName: 'X', clientId: 'c', clientSecret: SECRET, genesys: { region: 'mypurecloud.example' } }, ['body.genesys.region']],
    ];
    for (const [body, fields] of cases) {
      const problem = await refused(await api.call(adminA, 'POST', base(), body), 422);
      expect(problem.type, JSON.stringify(body)).to.match(/validation/);
      for (const field of fields) expect(Object.keys(problem.errors ?? {}).some((key) => key === field || key.startsWith(`${field}.`)), `${field} in ${JSON.stringify(problem.errors)}`).to.equal(true);
    }
    const list = (await (await api.call(adminA, 'GET', base())).json()) as { items: ConnectorBody[] };
    expect(list.items.map((item) => item.name)).not.to.include('Not_A_Name');
  });

  it('never shows a secret, not in an answer, not in the audit export, and keeps it sealed at rest', async () => {
    const connector = await create(oidc({ emailDomains: ['Secretive.Example'] }));
    const rotated = 'replaced-secret-0a9b8c7d6e5f';
    const patched = await api.call(adminA, 'PATCH', `${base()}/${connector.id}`, { clientSecret: rotated, displayName: 'Renamed' }, { 'if-match': `"${connector.version}"` });
    expect(patched.status).to.equal(200);
    const answers = [JSON.stringify(connector), await patched.text(), await (await api.call(adminA, 'GET', base())).text(), await (await api.call(adminA, 'GET', `${base()}/${connector.id}`)).text()];
    for (const answer of answers) {
      expect(answer).not.to.include(SECRET);
      expect(answer).not.to.include(rotated);
    }

    const exported = await api.call(adminA, 'GET', `/tenants/${tenantA}/audit/export`);
    expect(exported.status).to.equal(200);
    const trail = await exported.text();
    expect(trail).to.include('connector.create').and.to.include('connector.update');
    expect(trail).not.to.include(SECRET);
    expect(trail).not.to.include(rotated);
    const update = trail
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { type: string; targetRef: string; details: { changes: Array<{ field: string }> } })
      .find((entry) => entry.type === 'connector.update' && entry.targetRef === connector.id)!;
    expect(update.details.changes.map((change) => change.field)).to.include.members(['clientSecret', 'displayName']);

    const row = await instance.runtime.db('connectors').where({ id: connector.id }).first();
    expect(JSON.stringify(row)).not.to.include(rotated);
    expect(JSON.stringify(row)).not.to.include(SECRET);
    expect(row.secrets_sealed).to.match(/^v1\./);

    const forLogin = await instance.runtime.connectors.findForLogin(tenantA, connector.name);
    expect(forLogin?.secrets.clientSecret).to.equal(rotated);
    expect(forLogin?.emailDomains).to.deep.equal(['secretive.example']);
  });

  it('generates an ES256 key for private_key_jwt and shows only its public half; a supplied key is used as given', async () => {
    const connector = await create(oidc({ clientAuth: 'private_key_jwt', clientSecret: undefined }));
    expect(connector.hasClientSecret).to.equal(false);
    expect(connector.publicJwk).to.include({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(connector.publicJwk!.kid).to.be.a('string').and.not.empty;
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) expect(connector.publicJwk).not.to.have.property(member);
    const stored = await instance.runtime.connectors.findForLogin(tenantA, connector.name);
    expect(stored?.secrets.privateJwk).to.include({ x: connector.publicJwk!.x, y: connector.publicJwk!.y, kid: connector.publicJwk!.kid });
    expect(stored?.secrets.privateJwk?.d).to.be.a('string');
    expect(stored?.secrets.clientSecret).to.equal(undefined);

    const { privateKey } = await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
    const own = await exportJWK(privateKey);
    const supplied = await create(oidc({ clientAuth: 'private_key_jwt', clientSecret: undefined, privateJwk: { ...own, kid: 'my-key-1' } }));
    expect(supplied.publicJwk).to.deep.equal({ kty: 'RSA', n: own.n, e: own.e, kid: 'my-key-1', alg: 'RS256', use: 'sig' });
    expect(JSON.stringify(supplied)).not.to.include(String(own.d));

    // Back to a client secret: one is required, and the key is gone.
    const switched = await api.call(adminA, 'PATCH', `${base()}/${supplied.id}`, { clientAuth: 'client_secret_basic' }, { 'if-match': `"${supplied.version}"` });
    expect((await refused(switched, 422)).errors).to.have.property('body.clientSecret');
    const done = await api.call(adminA, 'PATCH', `${base()}/${supplied.id}`, { clientAuth: 'client_secret_basic', clientSecret: SECRET }, { 'if-match': `"${supplied.version}"` });
    expect(done.status).to.equal(200);
    const body = (await done.json()) as ConnectorBody;
    expect(body.hasClientSecret).to.equal(true);
    expect(body).not.to.have.property('publicJwk');
    expect((await instance.runtime.connectors.findForLogin(tenantA, supplied.name))?.secrets).to.deep.equal({ clientSecret: SECRET });
  });

  it('checks permissions, the tenant, and versions', async () => {
    const connector = await create(oidc());
    await refused(await api.call(agentA, 'GET', base()), 403);
    await refused(await api.call(agentA, 'POST', base(), oidc()), 403);
    await refused(await api.call(adminB, 'GET', base()), 403);
    await refused(await api.call(adminB, 'GET', `${base()}/${connector.id}`), 403);
    await refused(await api.call(adminB, 'DELETE', `${base()}/${connector.id}`), 403);
    // The id of another tenant's connector does not exist in one's own tenant.
    await refused(await api.call(adminB, 'GET', `${base(tenantB)}/${connector.id}`), 404);
    await refused(await api.call(adminB, 'PATCH', `${base(tenantB)}/${connector.id}`, { enabled: false }, { 'if-match': `"${connector.version}"` }), 404);
    await refused(await api.call(adminB, 'DELETE', `${base(tenantB)}/${connector.id}`), 404);
    await refused(await api.call(adminB, 'PUT', `${base(tenantB)}/${connector.id}/role-mappings`, { roleMappings: [] }), 404);
    expect(await instance.runtime.connectors.findForLogin(tenantB, connector.name)).to.equal(undefined);

    await refused(await api.call(adminA, 'PATCH', `${base()}/${connector.id}`, { enabled: false }), 428);
    await refused(await api.call(adminA, 'PATCH', `${base()}/${connector.id}`, { enabled: false }, { 'if-match': `"${connector.version + 5}"` }), 412);
    await refused(await api.call(adminA, 'PATCH', `${base()}/${connector.id}`, { name: 'renamed' }, { 'if-match': `"${connector.version}"` }), 422);
    await refused(await api.call(adminA, 'POST', base(), oidc({ name: connector.name })), 409);
    expect((await (await api.call(adminA, 'GET', `${base()}/${connector.id}`)).json()) as ConnectorBody).to.include({ enabled: true, version: connector.version });
  });

  it('lists enabled connectors for the sign-in page and finds one by e-mail domain; a domain belongs to one connector in the deployment', async () => {
    const domain = `${unique('acme')}.example`;
    const connector = await create(oidc({ displayName: 'Acme login', emailDomains: [domain.toUpperCase(), domain] }));
    expect(connector.emailDomains).to.deep.equal([domain]);

    const taken = await refused(await api.call(adminB, 'POST', base(tenantB), oidc({ emailDomains: [domain] })), 409);
    expect(taken.errors).to.have.property('body.emailDomains');
    const other = await create(oidc({ displayName: 'Acme other' }), tenantB, adminB);
    await refused(await api.call(adminB, 'PATCH', `${base(tenantB)}/${other.id}`, { emailDomains: [domain] }, { 'if-match': `"${other.version}"` }), 409);

    expect(await instance.runtime.connectors.findByEmailDomain(domain.toUpperCase())).to.deep.equal({ tenantId: tenantA, connectorName: connector.name });
    const names = (await instance.runtime.connectors.listForLogin(tenantA)).map((entry) => entry.displayName);
    expect(names).to.include('Acme login');
    expect(names).to.deep.equal([...names].sort(new Intl.Collator('en', { sensitivity: 'base', numeric: true }).compare));

    const disabled = await api.call(adminA, 'PATCH', `${base()}/${connector.id}`, { enabled: false }, { 'if-match': `"${connector.version}"` });
    expect(disabled.status).to.equal(200);
    expect((await instance.runtime.connectors.listForLogin(tenantA)).map((entry) => entry.id)).not.to.include(connector.id);
    expect(await instance.runtime.connectors.findByEmailDomain(domain)).to.equal(undefined);
    expect(await instance.runtime.connectors.findForLogin(tenantA, connector.name)).to.equal(undefined);
  });

  it('keeps each tenant’s connector rows to itself under row-level security', async () => {
    await create(oidc({ emailDomains: [`${unique('rls')}.example`] }), tenantB, adminB);
    const theirs = await create(oidc({ emailDomains: [`${unique('rls')}.example`] }));
    for (const table of ['connectors', 'connector_email_domains']) {
      const seen: Array<{ tenant_id: string }> = await withTenant(instance.runtime.db, tenantB, (trx) => trx(table).select('tenant_id'));
      expect(seen.length, table).to.be.greaterThan(0);
      expect(seen.every((row) => row.tenant_id === tenantB), table).to.equal(true);
    }
    // Claiming a domain for another tenant's connector breaks the policy, not a foreign key.
    const error = await withTenant(instance.runtime.db, tenantB, (trx) => trx('connector_email_domains').insert({ domain: `${unique('rls')}.example`, tenant_id: tenantA, connector_id: theirs.id })).then(
      () => undefined,
      (failure: Error) => failure,
    );
    expect(error?.message).to.match(/row-level security/);
  });

  it('refuses role mappings to unknown roles or roles of another tenant', async () => {
    const connector = await create(oidc());
    const foreign = await instance.runtime.rbac.createRole(tenantB, { name: unique('foreign') });
    const own = await instance.runtime.rbac.createRole(tenantA, { name: unique('own') });
    const problem = await refused(
      await api.call(adminA, 'PUT', `${base()}/${connector.id}/role-mappings`, { roleMappings: [{ group: 'ok', roleId: own.id }, { group: 'x', roleId: foreign.id }, { group: 'y', roleId: '0b7e2d36-3e0f-4c6e-8f52-3b0f5f9f6d10' }] }),
      422,
    );
    expect(problem.errors).to.have.keys('body.roleMappings.1.roleId', 'body.roleMappings.2.roleId');
    const atCreation = await refused(await api.call(adminA, 'POST', base(), oidc({ roleMappings: [{ group: 'x', roleId: foreign.id }] })), 422);
    expect(atCreation.errors).to.have.keys('body.roleMappings.0.roleId');
    await refused(await api.call(adminA, 'PUT', `${base()}/${connector.id}/role-mappings`, { roleMappings: [{ group: '', roleId: own.id }] }), 422);
    expect(((await (await api.call(adminA, 'GET', `${base()}/${connector.id}`)).json()) as ConnectorBody).roleMappings).to.deep.equal([]);
  });

  it('grants the mapped roles at sign-in and takes back only those it granted; deleting the connector removes its mappings', async () => {
    const { runtime } = instance;
    const [agents, supervisors, auditors] = [await runtime.rbac.createRole(tenantA, { name: unique('agents') }), await runtime.rbac.createRole(tenantA, { name: unique('supervisors') }), await runtime.rbac.createRole(tenantA, { name: unique('auditors') })];
    const connector = await create(oidc());
    const put = await api.call(adminA, 'PUT', `${base()}/${connector.id}/role-mappings`, {
      roleMappings: [
        { group: 'Agent', roleId: agents.id },
        { group: 'Supervisor', roleId: supervisors.id },
        { group: 'Supervisor', roleId: agents.id },
        { group: 'Quality', roleId: auditors.id },
      ],
    });
    expect(put.status, await put.clone().text()).to.equal(200);
    const mapped = (await put.json()) as ConnectorBody;
    expect(mapped.roleMappings).to.have.length(4);
    expect(mapped.version).to.equal(connector.version + 1);

    const user = await runtime.users.create(tenantA, { email: `${unique('agent')}@example.com`, emailVerified: true });
    // Assigned by an administrator: never taken away by the connector.
    await runtime.rbac.assign(tenantA, auditors.id, 'user', user.id);
    const held = async () => (await runtime.rbac.rolesOf(tenantA, 'user', user.id)).map((role) => role.id).sort();

    const first = await runtime.connectors.applyRoleMappings(tenantA, user.id, connector.id, ['Supervisor', 'Quality', 'Unmapped']);
    expect(first.granted.sort()).to.deep.equal([agents.id, supervisors.id].sort());
    expect(first.revoked).to.deep.equal([]);
    expect(await held()).to.deep.equal([agents.id, supervisors.id, auditors.id].sort());

    const again = await runtime.connectors.applyRoleMappings(tenantA, user.id, connector.id, ['Supervisor', 'Quality']);
    expect(again).to.deep.equal({ granted: [], revoked: [] });

    const demoted = await runtime.connectors.applyRoleMappings(tenantA, user.id, connector.id, ['Agent']);
    expect(demoted).to.deep.equal({ granted: [], revoked: [supervisors.id] });
    expect(await held()).to.deep.equal([agents.id, auditors.id].sort());

    const gone = await runtime.connectors.applyRoleMappings(tenantA, user.id, connector.id, []);
    expect(gone).to.deep.equal({ granted: [], revoked: [agents.id] });
    expect(await held()).to.deep.equal([auditors.id]);

    const trail = await (await api.call(adminA, 'GET', `/tenants/${tenantA}/audit/export`)).text();
    expect(trail).to.include('connector.role_mappings').and.to.include('role.unassign');

    await runtime.connectors.applyRoleMappings(tenantA, user.id, connector.id, ['Agent']);
    const removed = await api.call(adminA, 'DELETE', `${base()}/${connector.id}`);
    expect(removed.status).to.equal(204);
    await refused(await api.call(adminA, 'GET', `${base()}/${connector.id}`), 404);
    await refused(await api.call(adminA, 'DELETE', `${base()}/${connector.id}`), 404);
    expect(await runtime.db('connector_role_mappings').where({ connector_id: connector.id })).to.deep.equal([]);
    expect(await runtime.db('connector_role_grants').where({ connector_id: connector.id })).to.deep.equal([]);
    expect(await runtime.db('connector_email_domains').where({ connector_id: connector.id })).to.deep.equal([]);
    expect(await held()).to.include(agents.id);
  });
});
