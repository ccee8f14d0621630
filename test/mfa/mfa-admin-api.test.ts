// The admin API's view of a user's MFA over HTTP: the status, and the reset an administrator does
// for someone who lost their phone; with authentication, permissions and tenant isolation.
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { clientCredentialsToken } from '../helpers/fixtures.ts';
import { currentTotpCode } from '../../src/mfa/totp.ts';
import { ADMIN_API_PERMISSIONS } from '../../src/tenants/system-roles.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';

interface Caller {
  token: string;
}

forEachBackend('mfa admin API', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let platform: Caller;
  let tenantA: { id: string; admin: Caller; agent: Caller };
  let tenantB: { id: string; admin: Caller };

  async function machineToken(tenantId: string, roleName: string): Promise<Caller> {
    const { runtime } = instance;
    const { client, clientSecret } = await runtime.clients.create({ name: `${roleName} of ${tenantId}`, grantTypes: ['client_credentials'], tenantId });
    await runtime.rbac.assign(tenantId, (await runtime.rbac.roleIdByName(tenantId, roleName))!, 'client', client.clientId);
    const response = await clientCredentialsToken(instance.url, { clientId: client.clientId, clientSecret: clientSecret! }, {
      resource: runtime.adminApi,
      scope: ADMIN_API_PERMISSIONS.join(' '),
    });
    expect(response.status).to.equal(200);
    return { token: ((await response.json()) as { access_token: string }).access_token };
  }

  function call(caller: Caller | undefined, method: string, path: string) {
    return fetch(`${instance.url}/api/v1${path}`, { method, headers: caller ? { authorization: `Bearer ${caller.token}` } : {} });
  }

  async function createTenant(slug: string): Promise<string> {
    const created = await fetch(`${instance.url}/api/v1/tenants`, {
      method: 'POST',
      headers: { authorization: `Bearer ${platform.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ slug, displayName: slug }),
    });
    expect(created.status, await created.clone().text()).to.equal(201);
    return ((await created.json()) as { id: string }).id;
  }

  // A user of the tenant with TOTP confirmed (through the service: enrolment is the user's own).
  async function enrolledUser(tenantId: string): Promise<{ userId: string; secret: string; backupCodes: string[] }> {
    const { mfa, users } = instance.runtime;
    const userId = (await users.create(tenantId, { email: `${randomUUID().slice(0, 8)}@example.com` })).id;
    const { secret } = await mfa.beginTotpEnrolment(tenantId, userId, { accountName: 'someone', issuer: 'Test' });
    const confirmed = await mfa.confirmTotpEnrolment(tenantId, userId, currentTotpCode(secret));
    expect(confirmed).to.not.equal(undefined);
    return { userId, secret, backupCodes: confirmed!.backupCodes };
  }

  before(async () => {
    store = await backend.create();
    instance = await startInstance(store.env);
    platform = await machineToken(DEFAULT_TENANT_ID, 'root-admin');
    const a = await createTenant('mfa-a');
    const b = await createTenant('mfa-b');
    tenantA = { id: a, admin: await machineToken(a, 'admin'), agent: await machineToken(a, 'agent') };
    tenantB = { id: b, admin: await machineToken(b, 'admin') };
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  it('shows a user’s MFA status to a reader of the tenant’s users', async () => {
    const { userId } = await enrolledUser(tenantA.id);
    for (const caller of [tenantA.admin, tenantA.agent, platform]) {
      const response = await call(caller, 'GET', `/tenants/${tenantA.id}/users/${userId}/mfa`);
      expect(response.status, await response.clone().text()).to.equal(200);
      const body = (await response.json()) as { totp: boolean; confirmedAt: string; backupCodesRemaining: number };
      expect(body).to.include({ totp: true, backupCodesRemaining: 10 });
      expect(new Date(body.confirmedAt).getTime()).to.be.closeTo(Date.now(), 60_000);
      expect(Object.keys(body).sort()).to.deep.equal(['backupCodesRemaining', 'confirmedAt', 'totp']);
    }
    const plain = (await instance.runtime.users.create(tenantA.id, { email: `${randomUUID().slice(0, 8)}@example.com` })).id;
    const none = await call(tenantA.agent, 'GET', `/tenants/${tenantA.id}/users/${plain}/mfa`);
    expect(await none.json()).to.deep.equal({ totp: false, confirmedAt: null, backupCodesRemaining: 0 });
  });

  it('resets a user’s MFA: TOTP and backup codes stop working and the status is empty', async () => {
    const { userId, secret, backupCodes } = await enrolledUser(tenantA.id);
    const reset = await call(tenantA.admin, 'DELETE', `/tenants/${tenantA.id}/users/${userId}/mfa`);
    expect(reset.status, await reset.clone().text()).to.equal(204);
    const status = await call(tenantA.admin, 'GET', `/tenants/${tenantA.id}/users/${userId}/mfa`);
    expect(await status.json()).to.deep.equal({ totp: false, confirmedAt: null, backupCodesRemaining: 0 });
    const { mfa } = instance.runtime;
    expect(await mfa.verifyTotp(tenantA.id, userId, currentTotpCode(secret))).to.equal(false);
    expect(await mfa.verifyBackupCode(tenantA.id, userId, backupCodes[0])).to.equal(false);
    // The user still exists and may enrol again.
    expect((await call(tenantA.admin, 'GET', `/tenants/${tenantA.id}/users/${userId}`)).status).to.equal(200);
  });

  it('answers 401 without a valid token and 403 without the permission, changing nothing', async () => {
    const { userId } = await enrolledUser(tenantA.id);
    const path = `/tenants/${tenantA.id}/users/${userId}/mfa`;
    for (const method of ['GET', 'DELETE']) {
      const none = await call(undefined, method, path);
      expect(none.status).to.equal(401);
      expect(none.headers.get('content-type')).to.match(/application\/problem\+json/);
      expect((await call({ token: 'eyJhbGciOiJub25lIn0.e30.' }, method, path)).status).to.equal(401);
    }
    const denied = await call(tenantA.agent, 'DELETE', path);
    expect(denied.status).to.equal(403);
    expect(((await denied.json()) as { detail: string }).detail).to.match(/users:write/);
    expect((await instance.runtime.mfa.status(tenantA.id, userId)).totp).to.equal(true);
  });

  it('keeps tenants apart: 403 on another tenant’s path, 404 for another tenant’s user under one’s own', async () => {
    const { userId } = await enrolledUser(tenantB.id);
    for (const method of ['GET', 'DELETE']) {
      expect((await call(tenantA.admin, method, `/tenants/${tenantB.id}/users/${userId}/mfa`)).status, method).to.equal(403);
      const foreign = await call(tenantA.admin, method, `/tenants/${tenantA.id}/users/${userId}/mfa`);
      expect(foreign.status, method).to.equal(404);
      expect(foreign.headers.get('content-type')).to.match(/application\/problem\+json/);
      // Not even the platform administrator reaches a user through the wrong tenant.
      expect((await call(platform, method, `/tenants/${tenantA.id}/users/${userId}/mfa`)).status, method).to.equal(404);
      expect((await call(tenantA.admin, method, `/tenants/${tenantA.id}/users/${randomUUID()}/mfa`)).status, method).to.equal(404);
    }
    expect((await instance.runtime.mfa.status(tenantB.id, userId)).totp).to.equal(true);
    const own = await call(tenantB.admin, 'GET', `/tenants/${tenantB.id}/users/${userId}/mfa`);
    expect(own.status).to.equal(200);
  });

  it('refuses a malformed user id with 422 and lists both routes in the OpenAPI document', async () => {
    const bad = await call(tenantA.admin, 'GET', `/tenants/${tenantA.id}/users/not-a-uuid/mfa`);
    expect(bad.status).to.equal(422);
    const document = (await (await fetch(`${instance.url}/api/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, { 'x-permission': string }>> };
    const path = document.paths['/tenants/{tenantId}/users/{userId}/mfa'];
    expect(path.get['x-permission']).to.equal('users:read');
    expect(path.delete['x-permission']).to.equal('users:write');
  });
});
