// Signing in to a tenant: the same e-mail in two tenants is two people; the tenant comes from a
// tenant-bound client or the `tenant` parameter, and is in the tokens.
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { createFixtures, USER, type Fixtures } from '../helpers/fixtures.ts';
import { discover, loginWithCode, REDIRECT_URI } from '../helpers/rp.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';

forEachBackend('sign-in to a tenant', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let fixtures: Fixtures;
  let acme: { id: string };
  const acmePassword = 'acme has its own password';

  before(async () => {
    store = await backend.create();
    instance = await startInstance(store.env);
    fixtures = await createFixtures(instance.runtime);
    acme = await instance.runtime.tenants.create({ slug: 'acme', displayName: 'Acme' });
    await instance.runtime.users.create(acme.id, { email: USER.email, password: acmePassword, emailVerified: true });
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  it('signs in to the tenant named by the tenant parameter, with that tenant’s account', async () => {
    const config = await discover(instance.url, fixtures.web.clientId, fixtures.web.clientSecret);
    const inAcme = await loginWithCode(config, instance.url, { identifier: USER.email, password: acmePassword, extraParams: { tenant: 'acme' } });
    expect(inAcme.tokens.claims()!.tenant_id).to.equal(acme.id);
    expect(inAcme.tokens.claims()!.sub).to.not.equal(fixtures.userId);
    // The platform tenant's account keeps its own password.
    const wrongTenant = loginWithCode(config, instance.url, { identifier: USER.email, password: acmePassword, extraParams: { tenant: 'default' } });
    await expect(wrongTenant).to.be.rejectedWith(/401/);
    const inDefault = await loginWithCode(config, instance.url, { identifier: USER.email, password: USER.password });
    expect(inDefault.tokens.claims()!.tenant_id).to.equal(DEFAULT_TENANT_ID);
    // With no tenant named, each password leads to the one tenant where it is right.
    const byPassword = await loginWithCode(config, instance.url, { identifier: USER.email, password: acmePassword });
    expect(byPassword.tokens.claims()!.tenant_id).to.equal(acme.id);
  });

  it('fixes the tenant for a tenant-bound client, whatever the parameter says', async () => {
    const { client, clientSecret } = await instance.runtime.clients.create({
      name: 'Acme portal',
      redirectUris: [REDIRECT_URI],
      grantTypes: ['authorization_code', 'refresh_token'],
      firstParty: true,
      tenantId: acme.id,
    });
    const config = await discover(instance.url, client.clientId, clientSecret);
    const { tokens } = await loginWithCode(config, instance.url, { identifier: USER.email, password: acmePassword, extraParams: { tenant: 'default' } });
    expect(tokens.claims()!.tenant_id).to.equal(acme.id);
  });

  it('does not reuse a session of one tenant for another: it asks for a sign-in', async () => {
    const config = await discover(instance.url, fixtures.web.clientId, fixtures.web.clientSecret);
    const { browser } = await loginWithCode(config, instance.url, { identifier: USER.email, password: USER.password });
    const authorize = async (extra: Record<string, string>) => {
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: REDIRECT_URI,
        scope: 'openid',
        code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
        code_challenge_method: 'S256',
        ...extra,
      });
      return browser.follow(url, instance.url);
    };
    const sameTenant = await authorize({});
    expect(sameTenant.url.searchParams.get('code'), 'SSO within the tenant').to.be.a('string');
    const otherTenant = await authorize({ tenant: 'acme' });
    expect(otherTenant.url.pathname).to.match(/^\/interaction\//);
    expect(await otherTenant.response.text()).to.include('name="password"');
  });

  it('refuses sign-in to an unknown or disabled tenant with the usual neutral answer', async () => {
    const config = await discover(instance.url, fixtures.web.clientId, fixtures.web.clientSecret);
    await expect(loginWithCode(config, instance.url, { identifier: USER.email, password: acmePassword, extraParams: { tenant: 'nowhere' } })).to.be.rejectedWith(/401/);
    const current = await instance.runtime.tenants.get(acme.id);
    await instance.runtime.tenants.update(acme.id, current.version, { status: 'disabled' });
    await expect(loginWithCode(config, instance.url, { identifier: USER.email, password: acmePassword, extraParams: { tenant: 'acme' } })).to.be.rejectedWith(/401/);
  });
});
