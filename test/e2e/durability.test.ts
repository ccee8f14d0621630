// Losing the process or the hot store must not log anyone out or lose a refresh token.
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { forEachBackend, flushRedisPrefix, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, freePort, type Instance } from '../helpers/instance.ts';
import { createFixtures, USER, type Fixtures } from '../helpers/fixtures.ts';
import { discover, loginWithCode, REDIRECT_URI } from '../helpers/rp.ts';
import type { Browser } from '../helpers/browser.ts';
import type { MemoryHotStore } from '../../src/store/memory-hot-store.ts';

// Reuse of a rotated-out refresh token is refused at once here; the grace window for parallel
// refreshes has its own tests (test/revocation).
const withoutReuseGrace = (env: Record<string, string>) => ({ ...env, REFRESH_TOKEN_REUSE_GRACE_SECONDS: '0' });

forEachBackend('durability', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let fixtures: Fixtures;
  let port: number;
  let issuer: string;

  before(async () => {
    store = await backend.create();
    port = await freePort();
    instance = await startInstance(withoutReuseGrace(store.env), { port });
    issuer = instance.url;
    fixtures = await createFixtures(instance.runtime);
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  // An authorization request that completes without the login form proves the SSO session is alive.
  async function ssoCode(config: oidc.Configuration, browser: Browser): Promise<URL> {
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT_URI,
      scope: 'openid',
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    });
    const { url: landed } = await browser.follow(url, issuer);
    return landed;
  }

  async function flushHotStore(): Promise<void> {
    if (instance.runtime.hot.kind === 'memory') (instance.runtime.hot as MemoryHotStore).clear();
    else await flushRedisPrefix(instance.runtime.config.redis.keyPrefix);
  }

  it('keeps refresh tokens and login sessions across a restart', async () => {
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const { tokens, browser } = await loginWithCode(config, issuer, { identifier: USER.email, password: USER.password });

    await instance.stop();
    instance = await startInstance(withoutReuseGrace(store.env), { port });

    const refreshed = await oidc.refreshTokenGrant(await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret), tokens.refresh_token!);
    expect(refreshed.access_token).to.be.a('string');
    const landed = await ssoCode(config, browser);
    expect(landed.origin).to.not.equal(issuer);
    expect(landed.searchParams.get('code'), 'signed in without the login form').to.be.a('string');
  });

  it('keeps refresh tokens and login sessions when the hot store is flushed', async () => {
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const { tokens, browser } = await loginWithCode(config, issuer, { identifier: USER.email, password: USER.password });

    await flushHotStore();

    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    expect(refreshed.refresh_token).to.be.a('string');
    const landed = await ssoCode(config, browser);
    expect(landed.searchParams.get('code')).to.be.a('string');

    // Rotation is still enforced after the flush: the first refresh token is spent.
    await flushHotStore();
    const reuse = await oidc.refreshTokenGrant(config, tokens.refresh_token!).then(() => 'accepted', (error: { error?: string }) => error.error);
    expect(reuse).to.equal('invalid_grant');
  });
});
