// The admin API's view of a user's MFA over HTTP: the status, and the reset an administrator does
// for someone who lost their phone; with authentication, permissions and tenant isolation.
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { adminApi, type AdminApi } from '../helpers/admin-api.ts';
import { currentTotpCode } from '../../src/mfa/totp.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';

forEachBackend('mfa admin API', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let api: AdminApi;
  let platform: string;
  let tenantA: { id: string; admin: string; agent: string };
  let tenantB: { id: string; admin: string };

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
    api = adminApi(instance);
    platform = await api.token(DEFAULT_TENANT_ID, 'root-admin');
    const a = await api.createTenant(platform, 'mfa-a');
    const b = await api.createTenant(platform, 'mfa-b');
    tenantA = { id: a, admin: await api.token(a, 'admin'), agent: await api.token(a, 'agent') };
    tenantB = { id: b, admin: await api.token(b, 'admin') };
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  it('shows a user’s MFA status to a reader of the tenant’s users', async () => {
    const { userId } = await enrolledUser(tenantA.id);
    for (const caller of [tenantA.admin, tenantA.agent, platform]) {
      const response = await api.call(caller, 'GET', `/tenants/${tenantA.id}/users/${userId}/mfa`);
      expect(response.status, await response.clone().text()).to.equal(200);
      const body = (await response.json()) as { totp: boolean; confirmedAt: string; backupCodesRemaining: number };
      expect(body).to.include({ totp: true, backupCodesRemaining: 10 });
      expect(new Date(body.confirmedAt).getTime()).to.be.closeTo(Date.now(), 60_000);
      expect(Object.keys(body).sort()).to.deep.equal(['backupCodesRemaining', 'confirmedAt', 'totp']);
    }
    const plain = (await instance.runtime.users.create(tenantA.id, { email: `${randomUUID().slice(0, 8)}@example.com` })).id;
    const none = await api.call(tenantA.agent, 'GET', `/tenants/${tenantA.id}/users/${plain}/mfa`);
    expect(await none.json()).to.deep.equal({ totp: false, confirmedAt: null, backupCodesRemaining: 0 });
  });

  it('resets a user’s MFA: TOTP and backup codes stop working and the status is empty', async () => {
    const { userId, secret, backupCodes } = await enrolledUser(tenantA.id);
    const reset = await api.call(tenantA.admin, 'DELETE', `/tenants/${tenantA.id}/users/${userId}/mfa`);
    expect(reset.status, await reset.clone().text()).to.equal(204);
    const status = await api.call(tenantA.admin, 'GET', `/tenants/${tenantA.id}/users/${userId}/mfa`);
    expect(await status.json()).to.deep.equal({ totp: false, confirmedAt: null, backupCodesRemaining: 0 });
    const { mfa } = instance.runtime;
    expect(await mfa.verifyTotp(tenantA.id, userId, currentTotpCode(secret))).to.equal(false);
    expect(await mfa.verifyBackupCode(tenantA.id, userId, backupCodes[0])).to.equal(false);
    // The user still exists and may enrol again.
    expect((await api.call(tenantA.admin, 'GET', `/tenants/${tenantA.id}/users/${userId}`)).status).to.equal(200);
  });

  it('answers 401 without a valid token and 403 without the permission, changing nothing', async () => {
    const { userId } = await enrolledUser(tenantA.id);
    const path = `/tenants/${tenantA.id}/users/${userId}/mfa`;
    for (const method of ['GET', 'DELETE']) {
      const none = await api.call(undefined, method, path);
      expect(none.status).to.equal(401);
      expect(none.headers.get('content-type')).to.match(/application\/problem\+json/);
      expect((await api.call('eyJhbGciOiJub25lIn0.e30.', method, path)).status).to.equal(401);
    }
    const denied = await api.call(tenantA.agent, 'DELETE', path);
    expect(denied.status).to.equal(403);
    expect(((await denied.json()) as { detail: string }).detail).to.match(/users:write/);
    expect((await instance.runtime.mfa.status(tenantA.id, userId)).totp).to.equal(true);
  });

  it('keeps tenants apart: 403 on another tenant’s path, 404 for another tenant’s user under one’s own', async () => {
    const { userId } = await enrolledUser(tenantB.id);
    for (const method of ['GET', 'DELETE']) {
      expect((await api.call(tenantA.admin, method, `/tenants/${tenantB.id}/users/${userId}/mfa`)).status, method).to.equal(403);
      const foreign = await api.call(tenantA.admin, method, `/tenants/${tenantA.id}/users/${userId}/mfa`);
      expect(foreign.status, method).to.equal(404);
      expect(foreign.headers.get('content-type')).to.match(/application\/problem\+json/);
      // Not even the platform administrator reaches a user through the wrong tenant.
      expect((await api.call(platform, method, `/tenants/${tenantA.id}/users/${userId}/mfa`)).status, method).to.equal(404);
      expect((await api.call(tenantA.admin, method, `/tenants/${tenantA.id}/users/${randomUUID()}/mfa`)).status, method).to.equal(404);
    }
    expect((await instance.runtime.mfa.status(tenantB.id, userId)).totp).to.equal(true);
    const own = await api.call(tenantB.admin, 'GET', `/tenants/${tenantB.id}/users/${userId}/mfa`);
    expect(own.status).to.equal(200);
  });

  it('refuses a malformed user id with 422 and lists both routes in the OpenAPI document', async () => {
    const bad = await api.call(tenantA.admin, 'GET', `/tenants/${tenantA.id}/users/not-a-uuid/mfa`);
    expect(bad.status).to.equal(422);
    const document = (await (await fetch(`${instance.url}/api/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, { 'x-permission': string }>> };
    const path = document.paths['/tenants/{tenantId}/users/{userId}/mfa'];
    expect(path.get['x-permission']).to.equal('users:read');
    expect(path.delete['x-permission']).to.equal('users:write');
  });
});
