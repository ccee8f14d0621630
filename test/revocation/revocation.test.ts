// Revocation reaches everything at once (issue 5, items 3-5): a password change or a suspension
// ends the sessions, their refresh tokens and grants, the outstanding JWT access tokens (the deny
// list introspection honours) and tells the clients over back-channel logout; refresh token
// rotation tolerates a parallel refresh within the grace window and revokes the grant after it;
// the session cookie changes with every sign-in.
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { createFixtures, introspect as introspectToken, API, type Fixtures } from '../helpers/fixtures.ts';
import { Browser, formAction, hiddenField } from '../helpers/browser.ts';
import { discover, loginWithCode } from '../helpers/rp.ts';
import { expectOAuthError } from '../helpers/oauth-errors.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import { hotKeys } from '../../src/oidc/model-storage.ts';
import type { RevocationEvent } from '../../src/events/revocation-bus.ts';
import { RecordingBrowser, eventually, startLoggedInstance, startLogoutReceiver, type LoggedInstance, type LogoutReceiver } from './helpers.ts';

const PASSWORD = 'a long and unusual passphrase 42';
const NEW_PASSWORD = 'a different long passphrase 43';

interface Person {
  id: string;
  email: string;
  password: string;
}

forEachBackend('revocation reaches everything at once', (backend) => {
  let store: BackendEnv;
  let instance: LoggedInstance;
  let fixtures: Fixtures;
  let issuer: string;
  let receiver: LogoutReceiver;
  let apiRoleId: string;
  let counter = 0;
  const events: RevocationEvent[] = [];

  before(async function () {
    this.timeout(60_000);
    store = await backend.create();
    receiver = await startLogoutReceiver(() => issuer);
    instance = await startLoggedInstance(store.env);
    issuer = instance.url;
    fixtures = await createFixtures(instance.runtime, { backchannelLogoutUri: receiver.uri });
    const role = await instance.runtime.rbac.createRole(DEFAULT_TENANT_ID, {
      name: 'revocation-test-api-user',
      permissions: API.scopes.map((permission) => ({ api: API.identifier, permission })),
    });
    apiRoleId = role.id;
    instance.runtime.revocations.subscribe((event) => events.push(event));
    await instance.runtime.revocations.ready();
  });
  after(async () => {
    await instance?.stop();
    await receiver?.close();
    await store?.cleanup();
  });

  async function newPerson(): Promise<Person> {
    const email = `revoked${++counter}@example.com`;
    const user = await instance.runtime.users.create(DEFAULT_TENANT_ID, { email, password: PASSWORD, emailVerified: true, name: `Person ${counter}` });
    await instance.runtime.rbac.assign(DEFAULT_TENANT_ID, apiRoleId, 'user', user.id);
    return { id: user.id, email, password: PASSWORD };
  }

  // A sign-in to the first-party web app (back-channel logout registered) asking for the API:
  // a JWT access token for the API (RFC 9068, not stored) and a refresh token.
  async function signIn(person: Person, browser?: Browser) {
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const login = await loginWithCode(config, issuer, {
      identifier: person.email,
      password: person.password,
      browser,
      scope: 'openid read',
      extraParams: { resource: API.identifier },
    });
    const sid = login.tokens.claims()!.sid as string;
    expect(sid).to.be.a('string');
    // The code gave a token for userinfo; the refresh token gets one for the API.
    const tokens = await oidc.refreshTokenGrant(config, login.tokens.refresh_token!, { resource: API.identifier });
    expect(tokens.access_token.split('.'), 'a JWT access token for the API').to.have.length(3);
    expect(tokens.refresh_token).to.be.a('string');
    return { config, tokens, sid };
  }

  const introspect = (token: string) => introspectToken(issuer, fixtures.machine, token);
  const jtiOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString()).jti as string;

  it('introspects an outstanding JWT access token as active', async function () {
    this.timeout(30_000);
    const person = await newPerson();
    const { tokens } = await signIn(person);
    const answer = await introspect(tokens.access_token);
    expect(answer).to.include({ active: true, sub: person.id, client_id: fixtures.web.clientId, token_type: 'Bearer', jti: jtiOf(tokens.access_token) });
    expect(answer.aud).to.equal(API.identifier);
    expect(answer.scope).to.equal('read');
  });

  it('a password change ends the other sessions: refresh tokens fail, the JWT is inactive, the client hears of it', async function () {
    this.timeout(60_000);
    const person = await newPerson();
    const phone = await signIn(person);
    expect((await introspect(phone.tokens.access_token)).active).to.equal(true);

    // The person changes the password on the account pages, from another browser.
    const desktop = new Browser();
    let { response, url } = await desktop.follow(`${issuer}/account/password`, issuer);
    let html = await response.text();
    const login = await desktop.submitForm(new URL(`${url.pathname}/login`, issuer), { csrf: hiddenField(html, 'csrf'), identifier: person.email, password: PASSWORD });
    expect(login.status).to.equal(303);
    ({ response, url } = await desktop.follow(new URL(login.headers.get('location')!, issuer), issuer));
    html = await response.text();
    const changed = await desktop.submitForm(new URL(formAction(html, '/account/password'), issuer), {
      csrf: hiddenField(html, 'csrf'),
      currentPassword: PASSWORD,
      newPassword: NEW_PASSWORD,
      confirmPassword: NEW_PASSWORD,
    });
    expect(changed.status, 'the change is accepted').to.be.within(200, 399);

    await expectOAuthError(oidc.refreshTokenGrant(phone.config, phone.tokens.refresh_token!), 'invalid_grant');
    expect((await introspect(phone.tokens.access_token)).active, 'the JWT access token is on the deny list').to.equal(false);
    const logout = await receiver.waitFor((payload) => payload.sid === phone.sid);
    expect(logout, 'a back-channel logout token for the phone session').to.not.equal(undefined);
    expect(logout!.sub).to.equal(person.id);
    expect(logout!.aud).to.equal(fixtures.web.clientId);
    expect(receiver.refused).to.deep.equal([]);

    const jti = jtiOf(phone.tokens.access_token);
    expect(await eventually(() => events.find((event) => event.type === 'token.revoked' && event.jti === jti)), 'token.revoked published').to.include({ userId: person.id, tenantId: DEFAULT_TENANT_ID });
    expect(await eventually(() => events.find((event) => event.type === 'session.revoked' && event.sessionId === phone.sid))).to.include({ userId: person.id });

    // The new password works.
    const again = await signIn({ ...person, password: NEW_PASSWORD });
    expect((await introspect(again.tokens.access_token)).active).to.equal(true);
  });

  it('a suspension ends every session the same way and announces the user as suspended', async function () {
    this.timeout(60_000);
    const person = await newPerson();
    const first = await signIn(person);
    const second = await signIn(person);
    await instance.runtime.users.setStatus(DEFAULT_TENANT_ID, person.id, 'suspended', 'suspicious activity');

    for (const login of [first, second]) {
      await expectOAuthError(oidc.refreshTokenGrant(login.config, login.tokens.refresh_token!), 'invalid_grant');
      expect((await introspect(login.tokens.access_token)).active).to.equal(false);
      expect(await receiver.waitFor((payload) => payload.sid === login.sid), `back-channel logout for ${login.sid}`).to.not.equal(undefined);
    }
    expect(await eventually(() => events.find((event) => event.type === 'user.suspended' && event.userId === person.id))).to.include({ tenantId: DEFAULT_TENANT_ID });
  });

  it('a password reset by an administrator ends the sessions too', async function () {
    this.timeout(60_000);
    const person = await newPerson();
    const login = await signIn(person);
    await instance.runtime.credentials.adminReset(DEFAULT_TENANT_ID, person.id, 'temporary');
    await expectOAuthError(oidc.refreshTokenGrant(login.config, login.tokens.refresh_token!), 'invalid_grant');
    expect((await introspect(login.tokens.access_token)).active).to.equal(false);
    expect(await receiver.waitFor((payload) => payload.sid === login.sid)).to.not.equal(undefined);
  });

  describe('refresh token rotation', () => {
    it('serves a rotated-out refresh token presented again within the grace window', async function () {
      this.timeout(30_000);
      const person = await newPerson();
      const { config, tokens } = await signIn(person);
      const [first, second] = await Promise.all([
        oidc.refreshTokenGrant(config, tokens.refresh_token!),
        oidc.refreshTokenGrant(config, tokens.refresh_token!),
      ]);
      expect(first.refresh_token).to.not.equal(tokens.refresh_token);
      expect(second.refresh_token).to.not.equal(tokens.refresh_token);
      // The old token once more, still within the window, then both successors: nothing was revoked.
      const third = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
      const next = await oidc.refreshTokenGrant(config, first.refresh_token!);
      await oidc.refreshTokenGrant(config, second.refresh_token!);
      expect((await introspect(third.access_token)).active).to.equal(true);
      expect((await introspect(next.access_token)).active).to.equal(true);
      expect(instance.logs.filter((line) => line.event === 'refresh_token.reuse')).to.deep.equal([]);
    });

    it('refuses the grace window to another client', async function () {
      this.timeout(30_000);
      const person = await newPerson();
      const { config, tokens } = await signIn(person);
      await oidc.refreshTokenGrant(config, tokens.refresh_token!);
      const partner = await discover(issuer, fixtures.thirdParty.clientId, fixtures.thirdParty.clientSecret);
      await expectOAuthError(oidc.refreshTokenGrant(partner, tokens.refresh_token!), 'invalid_grant');
    });

    it('revokes the grant when a rotated-out refresh token comes back after the grace window', async function () {
      this.timeout(30_000);
      const person = await newPerson();
      const { config, tokens } = await signIn(person);
      const rotated = await oidc.refreshTokenGrant(config, tokens.refresh_token!, { resource: API.identifier });
      expect((await introspect(rotated.access_token)).active).to.equal(true);

      // A minute passes: the consumption is dated back in both stores.
      const { db, hot } = instance.runtime;
      const minuteAgo = Math.floor(Date.now() / 1000) - 60;
      await db('oidc_payloads').where({ model: 'RefreshToken', id: tokens.refresh_token }).update({ consumed_at: new Date(minuteAgo * 1000) });
      await hot.set(hotKeys.consumed('RefreshToken', tokens.refresh_token!), String(minuteAgo), 600);

      await expectOAuthError(oidc.refreshTokenGrant(config, tokens.refresh_token!), 'invalid_grant');
      await expectOAuthError(oidc.refreshTokenGrant(config, rotated.refresh_token!), 'invalid_grant');
      expect((await introspect(rotated.access_token)).active, 'the JWT issued under the grant is denied').to.equal(false);
      expect((await introspect(tokens.access_token)).active).to.equal(false);

      const warning = instance.logs.find((line) => line.event === 'refresh_token.reuse' && line.userId === person.id);
      expect(warning, 'a security event in the log').to.include({ level: 40, clientId: fixtures.web.clientId });
      expect(JSON.stringify(warning)).to.not.include(tokens.refresh_token!);
      const jti = jtiOf(rotated.access_token);
      expect(await eventually(() => events.find((event) => event.type === 'token.revoked' && event.jti === jti))).to.include({ userId: person.id });
    });
  });

  describe('session cookie', () => {
    it('is HttpOnly and SameSite=Lax, changes on every sign-in, and the old value no longer signs anyone in', async function () {
      this.timeout(30_000);
      const person = await newPerson();
      const browser = new RecordingBrowser();
      await signIn(person, browser);
      const first = browser.cookie(issuer, '_session');
      const firstSignature = browser.cookie(issuer, '_session.sig');
      expect(first).to.be.a('string');
      const header = browser.setCookies.find((cookie) => cookie.startsWith(`_session=${first}`));
      expect(header).to.match(/;\s*httponly/i);
      expect(header).to.match(/;\s*samesite=lax/i);

      // Signing in again in the same browser (re-authentication) gets a new session id.
      const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
      await loginWithCode(config, issuer, { identifier: person.email, password: PASSWORD, browser, extraParams: { prompt: 'login' } });
      const second = browser.cookie(issuer, '_session');
      expect(second).to.be.a('string').and.not.equal(first);

      // Someone holding the old cookie value (fixed before, or stolen) has no session.
      const attacker = new Browser();
      const request = oidc.buildAuthorizationUrl(config, {
        redirect_uri: 'http://127.0.0.1:1/callback',
        scope: 'openid',
        code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
        code_challenge_method: 'S256',
      });
      const { url } = await attacker.follow(request, issuer, { headers: { cookie: `_session=${first}${firstSignature ? `; _session.sig=${firstSignature}` : ''}` } });
      expect(url.pathname, 'asked to sign in').to.match(/^\/interaction\//);
    });
  });
});
