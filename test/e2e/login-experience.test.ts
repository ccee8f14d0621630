// The sign-in pages over HTTP: identifier first, the tenant chosen by membership, e-mail domain,
// organization or the person's pick; nothing tells whether an identifier exists; second factor
// forced by policy or asked for by the client (acr_values), with amr and acr in the ID token;
// expired and temporary passwords changed before the sign-in ends.
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { createFixtures, USER, type Fixtures } from '../helpers/fixtures.ts';
import { Browser, formAction, hiddenField } from '../helpers/browser.ts';
import { authorizeWithLogin, discover, loginWithCode, REDIRECT_URI } from '../helpers/rp.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import { ACR_MFA, ACR_PASSWORD } from '../../src/oidc/assurance.ts';
import { currentTotpCode } from '../../src/mfa/totp.ts';

const PASSWORD = 'a long enough password';

// Opens the authorization endpoint and returns the first sign-in page.
async function openSignIn(instance: Instance, config: oidc.Configuration, browser: Browser, extra: Record<string, string> = {}) {
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: 'openid email profile',
    code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
    code_challenge_method: 'S256',
    ...extra,
  });
  const { response, url: page } = await browser.follow(url, instance.url);
  return { page, html: await response.text(), status: response.status };
}

async function submit(instance: Instance, browser: Browser, html: string, pathEnding: string, fields: Record<string, string>) {
  const response = await browser.submitForm(new URL(formAction(html, pathEnding), instance.url), { csrf: hiddenField(html, 'csrf'), ...fields });
  // A clone is read, so the response can still be handed on to the sign-in helper.
  return { response, html: response.status === 303 ? '' : await response.clone().text() };
}

// The page without what legitimately differs between two requests (CSRF token, interaction id,
// the identifier typed).
function normalised(html: string, identifier: string): string {
  return html
    .replace(/name="csrf" value="[^"]*"/g, 'name="csrf" value=""')
    .replace(/\/interaction\/[\w-]+/g, '/interaction/UID')
    .split(identifier)
    .join('IDENTIFIER');
}

forEachBackend('login experience', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let fixtures: Fixtures;
  let config: oidc.Configuration;
  let acme: { id: string };
  let globex: { id: string };

  before(async () => {
    store = await backend.create();
    instance = await startInstance(store.env);
    fixtures = await createFixtures(instance.runtime);
    config = await discover(instance.url, fixtures.web.clientId, fixtures.web.clientSecret);
    acme = await instance.runtime.tenants.create({ slug: 'acme', displayName: 'Acme Corporation' });
    globex = await instance.runtime.tenants.create({ slug: 'globex', displayName: 'Globex', emailDomains: ['globex.test'] });
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  describe('tenant selection', () => {
    it('asks for the identifier first when nothing fixes the tenant, and shows the same page whether it exists or not', async () => {
      const browser = new Browser();
      const first = await openSignIn(instance, config, browser);
      expect(first.html).to.include('/identify"');
      expect(first.html).to.not.include('name="password"');
      expect(first.html).to.include('/organization"');
      const known = await submit(instance, browser, first.html, '/identify', { identifier: USER.email });
      expect(known.response.status).to.equal(200);
      expect(known.html).to.include('name="password"');

      const other = new Browser();
      const second = await openSignIn(instance, config, other);
      const unknown = await submit(instance, other, second.html, '/identify', { identifier: 'nobody@example.com' });
      expect(unknown.response.status).to.equal(200);
      expect(normalised(unknown.html, 'nobody@example.com')).to.equal(normalised(known.html, USER.email));

      const wrongKnown = await submit(instance, browser, known.html, '/login', { password: 'not the password at all' });
      const wrongUnknown = await submit(instance, other, unknown.html, '/login', { password: 'not the password at all' });
      expect(wrongKnown.response.status).to.equal(401);
      expect(wrongUnknown.response.status).to.equal(401);
      expect(normalised(wrongUnknown.html, 'nobody@example.com')).to.equal(normalised(wrongKnown.html, USER.email));
      expect(wrongKnown.html).to.include('role="alert"');
    });

    it('signs in to the only tenant where the identifier and password match', async () => {
      const { tokens } = await loginWithCode(config, instance.url, { identifier: USER.email, password: USER.password });
      expect(tokens.claims()!.tenant_id).to.equal(DEFAULT_TENANT_ID);
    });

    it('lets the person pick when the same sign-in is valid in several tenants, and only then names them', async () => {
      await instance.runtime.users.create(acme.id, { email: 'grace@example.com', password: PASSWORD, emailVerified: true });
      await instance.runtime.users.create(DEFAULT_TENANT_ID, { email: 'grace@example.com', password: PASSWORD, emailVerified: true });
      const picked: string[] = [];
      const { tokens } = await loginWithCode(config, instance.url, {
        identifier: 'grace@example.com',
        password: PASSWORD,
        onPage: async ({ html, browser }) => {
          expect(html).to.include('Acme Corporation');
          const acmeButton = html.match(/name="tenant" value="([^"]+)"[^>]*>Acme Corporation</);
          expect(acmeButton, 'a button for Acme').to.not.equal(null);
          picked.push(acmeButton![1]);
          return (await submit(instance, browser, html, '/choose', { tenant: acmeButton![1] })).response;
        },
      });
      expect(picked).to.deep.equal([acme.id]);
      expect(tokens.claims()!.tenant_id).to.equal(acme.id);
    });

    it('sends an address of a domain a tenant claims to that tenant', async () => {
      await instance.runtime.users.create(globex.id, { email: 'hank@globex.test', password: PASSWORD, emailVerified: true });
      const { tokens } = await loginWithCode(config, instance.url, { identifier: 'hank@globex.test', password: PASSWORD });
      expect(tokens.claims()!.tenant_id).to.equal(globex.id);
    });

    it('offers "your organization": the tenant is fixed before the identifier', async () => {
      await instance.runtime.users.create(acme.id, { email: 'ida@acme.test', password: PASSWORD, emailVerified: true });
      const browser = new Browser();
      const first = await openSignIn(instance, config, browser);
      const organizationPage = await browser.fetch(new URL(`${new URL(formAction(first.html, '/identify'), instance.url).pathname.replace(/\/identify$/, '')}/organization`, instance.url));
      const organizationHtml = await organizationPage.text();
      expect(organizationHtml).to.include('<label for="organization"');
      const unknown = await submit(instance, browser, organizationHtml, '/organization', { organization: 'no-such-org' });
      expect(unknown.response.status).to.equal(400);
      expect(unknown.html).to.include('role="alert"');
      const chosen = await submit(instance, browser, organizationHtml, '/organization', { organization: 'acme' });
      expect(chosen.response.status).to.equal(200);
      expect(chosen.html).to.include('Acme Corporation');
      const login = await submit(instance, browser, chosen.html, '/login', { identifier: 'ida@acme.test', password: PASSWORD });
      expect(login.response.status).to.equal(303);
    });
  });

  describe('second factor', () => {
    let mfaTenant: { id: string };

    before(async () => {
      mfaTenant = await instance.runtime.tenants.create({ slug: 'secure', displayName: 'Secure Inc', policies: { mfa: 'admins' } });
    });

    // Answers the enrolment page from the secret it shows and keeps the backup codes.
    function enrolling(saved: { secret?: string; backupCodes?: string[] }) {
      return async ({ html, browser }: { html: string; browser: Browser }) => {
        if (html.includes('/mfa/enrol"')) {
          const secret = html.match(/id="totp-secret">([A-Z2-7]+)</)![1];
          expect(html).to.include('<svg');
          saved.secret = secret;
          return (await submit(instance, browser, html, '/mfa/enrol', { code: currentTotpCode(secret) })).response;
        }
        if (html.includes('id="backup-codes"')) {
          saved.backupCodes = [...html.matchAll(/<li><code>([^<]+)<\/code><\/li>/g)].map((match) => match[1]);
          return (await submit(instance, browser, html, '/continue', {})).response;
        }
        throw new Error(`unexpected page: ${html.slice(0, 200)}`);
      };
    }

    it('forces an administrator to enrol at the next sign-in when the policy requires it for admins; others sign in with a password', async () => {
      await instance.runtime.users.create(mfaTenant.id, { email: 'admin@secure.test', password: PASSWORD, emailVerified: true, isAdmin: true });
      await instance.runtime.users.create(mfaTenant.id, { email: 'staff@secure.test', password: PASSWORD, emailVerified: true });
      const saved: { secret?: string; backupCodes?: string[] } = {};
      const admin = await loginWithCode(config, instance.url, { identifier: 'admin@secure.test', password: PASSWORD, extraParams: { tenant: 'secure' }, onPage: enrolling(saved) });
      expect(saved.secret).to.be.a('string');
      expect(saved.backupCodes).to.have.length(10);
      expect(admin.tokens.claims()!.amr).to.deep.equal(['pwd', 'otp', 'mfa']);
      expect(admin.tokens.claims()!.acr).to.equal(ACR_MFA);

      const staff = await loginWithCode(config, instance.url, { identifier: 'staff@secure.test', password: PASSWORD, extraParams: { tenant: 'secure' } });
      expect(staff.tokens.claims()!.amr).to.deep.equal(['pwd']);
      expect(staff.tokens.claims()!.acr).to.equal(ACR_PASSWORD);
    });

    it('asks an enrolled person for a code; a code works once, a backup code works once', async () => {
      const user = await instance.runtime.users.create(mfaTenant.id, { email: 'otto@secure.test', password: PASSWORD, emailVerified: true });
      const enrolment = await instance.runtime.mfa.beginTotpEnrolment(mfaTenant.id, user.id, { accountName: 'otto', issuer: 'Secure Inc' });
      // Confirm with the previous time step so that the current one is still unused.
      const confirmed = await instance.runtime.mfa.confirmTotpEnrolment(mfaTenant.id, user.id, currentTotpCode(enrolment.secret, new Date(Date.now() - 30_000)));
      expect(confirmed).to.not.equal(undefined);

      const code = currentTotpCode(enrolment.secret);
      const withCode = await loginWithCode(config, instance.url, {
        identifier: 'otto@secure.test',
        password: PASSWORD,
        extraParams: { tenant: 'secure' },
        onPage: async ({ html, browser }) => (await submit(instance, browser, html, '/mfa', { code })).response,
      });
      expect(withCode.tokens.claims()!.amr).to.deep.equal(['pwd', 'otp', 'mfa']);

      // The same code again, in a new sign-in: refused.
      const replay = await authorizeWithLogin(config, instance.url, {
        identifier: 'otto@secure.test',
        password: PASSWORD,
        extraParams: { tenant: 'secure' },
        onPage: async ({ html, browser }) => {
          if (html.includes('/mfa/backup"') && !html.includes('role="alert"')) {
            const refused = await submit(instance, browser, html, '/mfa', { code });
            expect(refused.response.status).to.equal(401);
            expect(refused.html).to.include('role="alert"');
            // Then a backup code.
            const backupPage = await browser.fetch(new URL(formAction(refused.html, '/mfa').replace(/\/mfa$/, '/mfa/backup'), instance.url));
            const backupHtml = await backupPage.text();
            return (await submit(instance, browser, backupHtml, '/mfa/backup', { code: confirmed!.backupCodes[0].toUpperCase() })).response;
          }
          throw new Error(`unexpected page: ${html.slice(0, 200)}`);
        },
      });
      expect(replay.code).to.be.a('string');

      // The backup code a second time: refused.
      const browser = new Browser();
      const first = await openSignIn(instance, config, browser, { tenant: 'secure' });
      const afterPassword = await submit(instance, browser, first.html, '/login', { identifier: 'otto@secure.test', password: PASSWORD });
      expect(afterPassword.html).to.include('/mfa"');
      const backupPage = await browser.fetch(new URL(formAction(afterPassword.html, '/mfa').replace(/\/mfa$/, '/mfa/backup'), instance.url));
      const again = await submit(instance, browser, await backupPage.text(), '/mfa/backup', { code: confirmed!.backupCodes[0] });
      expect(again.response.status).to.equal(401);
      expect(again.html).to.include('role="alert"');
    });

    it('accepts no later step while the second factor is awaited, and parallel guesses get no more than five tries', async () => {
      const user = await instance.runtime.users.create(mfaTenant.id, { email: 'vera@secure.test', password: PASSWORD, emailVerified: true });
      const enrolment = await instance.runtime.mfa.beginTotpEnrolment(mfaTenant.id, user.id, { accountName: 'vera', issuer: 'Secure Inc' });
      await instance.runtime.mfa.confirmTotpEnrolment(mfaTenant.id, user.id, currentTotpCode(enrolment.secret, new Date(Date.now() - 30_000)));
      const browser = new Browser();
      const first = await openSignIn(instance, config, browser, { tenant: 'secure' });
      const atSecondFactor = await submit(instance, browser, first.html, '/login', { identifier: 'vera@secure.test', password: PASSWORD });
      expect(atSecondFactor.html).to.include('/mfa"');
      const mfaAction = formAction(atSecondFactor.html, '/mfa');
      const uidPath = mfaAction.replace(/\/mfa$/, '');
      const csrf = hiddenField(atSecondFactor.html, 'csrf');

      // A password change, a verification resend or "continue" posted now gets the second-factor page again.
      for (const path of ['/password', '/verify-email/resend', '/continue', '/mfa/enrol']) {
        const response = await browser.submitForm(new URL(`${uidPath}${path}`, instance.url), { csrf, password: 'an attacker passphrase', passwordConfirm: 'an attacker passphrase', code: '000000' });
        expect(response.status, path).to.be.below(500);
        expect(await response.text(), path).to.include('/mfa"');
      }
      expect(await instance.runtime.users.authenticate('vera@secure.test', PASSWORD, mfaTenant.id), 'password unchanged').to.not.equal(undefined);

      // Wrong codes in parallel: the attempt is counted before the code is checked.
      const guesses = await Promise.all(
        Array.from({ length: 12 }, (_, index) => browser.submitForm(new URL(mfaAction, instance.url), { csrf, code: String(100000 + index) }).then((response) => response.text())),
      );
      expect(guesses.filter((html) => html.includes('/mfa"')).length).to.be.at.most(5);
      // The sign-in was reset: even the right code is not taken now.
      const late = await browser.submitForm(new URL(mfaAction, instance.url), { csrf, code: currentTotpCode(enrolment.secret, new Date(Date.now() + 30_000)) });
      expect(late.status).to.equal(200);
      expect(await late.text()).to.not.include('/mfa"');
    });

    it('steps up a password session when the client asks for acr_values=mfa, and honours max_age', async () => {
      await instance.runtime.users.create(DEFAULT_TENANT_ID, { email: 'pat@example.com', password: PASSWORD, emailVerified: true });
      const first = await loginWithCode(config, instance.url, { identifier: 'pat@example.com', password: PASSWORD });
      expect(first.tokens.claims()!.acr).to.equal(ACR_PASSWORD);
      const browser = first.browser;

      // Same session, no extra request: single sign-on.
      const sso = await openSignIn(instance, config, browser);
      expect(sso.page.searchParams.get('code')).to.be.a('string');

      // Step-up: the person continues as themselves and only adds the second factor.
      const saved: { secret?: string } = {};
      const stepUp = await loginWithCode(config, instance.url, {
        identifier: 'pat@example.com',
        password: PASSWORD,
        browser,
        extraParams: { acr_values: ACR_MFA },
        onPage: enrolling(saved),
      });
      expect(saved.secret).to.be.a('string');
      expect(stepUp.tokens.claims()!.acr).to.equal(ACR_MFA);
      expect(stepUp.tokens.claims()!.amr).to.include('mfa');
      expect(stepUp.tokens.claims()!.sub).to.equal(first.tokens.claims()!.sub);

      // max_age=0: a fresh sign-in, password page again.
      const fresh = await openSignIn(instance, config, browser, { max_age: '0' });
      expect(fresh.page.pathname).to.match(/^\/interaction\//);
      expect(fresh.html).to.include('name="password"');
    });
  });

  describe('password lifecycle at sign-in', () => {
    it('makes a person with an expired password choose a new one, refusing a common one with a helpful message', async () => {
      const tenant = await instance.runtime.tenants.create({ slug: 'expiring', displayName: 'Expiring', policies: { password: { minLength: 12, refuseCommon: true, historySize: 1, maxAgeDays: 30 } } });
      const user = await instance.runtime.users.create(tenant.id, { email: 'eve@expiring.test', password: PASSWORD, emailVerified: true });
      await instance.runtime.db('users').where({ id: user.id }).update({ password_changed_at: new Date(Date.now() - 31 * 86_400_000) });
      const pages: string[] = [];
      const { tokens } = await loginWithCode(config, instance.url, {
        identifier: 'eve@expiring.test',
        password: PASSWORD,
        extraParams: { tenant: 'expiring' },
        onPage: async ({ html, browser }) => {
          pages.push(html);
          expect(html).to.include('/password"');
          if (pages.length === 1) {
            expect(html).to.include('expired');
            const common = await submit(instance, browser, html, '/password', { password: 'password123456', passwordConfirm: 'password123456' });
            expect(common.response.status).to.equal(400);
            expect(common.html).to.match(/common|leaked/i);
            expect(common.html).to.include('aria-invalid="true"');
            const reused = await submit(instance, browser, common.html, '/password', { password: PASSWORD, passwordConfirm: PASSWORD });
            expect(reused.response.status).to.equal(400);
            return (await submit(instance, browser, reused.html, '/password', { password: 'a brand new passphrase', passwordConfirm: 'a brand new passphrase' })).response;
          }
          throw new Error('the password page came back');
        },
      });
      expect(tokens.claims()!.sub).to.equal(user.id);
      // The new password is the one that works now.
      await expect(loginWithCode(config, instance.url, { identifier: 'eve@expiring.test', password: 'a brand new passphrase', extraParams: { tenant: 'expiring' } })).to.be.fulfilled;
    });

    it('makes a person with a temporary password from an administrator choose their own', async () => {
      const user = await instance.runtime.users.create(acme.id, { email: 'tom@acme.test', password: PASSWORD, emailVerified: true });
      const { temporaryPassword } = await instance.runtime.credentials.adminReset(acme.id, user.id, 'temporary', 'en');
      expect(temporaryPassword).to.be.a('string');
      let changed = false;
      await loginWithCode(config, instance.url, {
        identifier: 'tom@acme.test',
        password: temporaryPassword!,
        extraParams: { tenant: 'acme' },
        onPage: async ({ html, browser }) => {
          expect(html).to.include('temporary');
          changed = true;
          return (await submit(instance, browser, html, '/password', { password: 'my own good passphrase', passwordConfirm: 'my own good passphrase' })).response;
        },
      });
      expect(changed).to.equal(true);
      // The temporary password no longer works; the new one does, without another change.
      await expect(loginWithCode(config, instance.url, { identifier: 'tom@acme.test', password: temporaryPassword!, extraParams: { tenant: 'acme' } })).to.be.rejectedWith(/401/);
      await loginWithCode(config, instance.url, { identifier: 'tom@acme.test', password: 'my own good passphrase', extraParams: { tenant: 'acme' } });
    });

    it('holds back an unverified address when the tenant requires verification', async () => {
      const tenant = await instance.runtime.tenants.create({ slug: 'verified', displayName: 'Verified', policies: { emailVerification: 'required' } });
      await instance.runtime.users.create(tenant.id, { email: 'una@verified.test', password: PASSWORD });
      const browser = new Browser();
      const first = await openSignIn(instance, config, browser, { tenant: 'verified' });
      const login = await submit(instance, browser, first.html, '/login', { identifier: 'una@verified.test', password: PASSWORD });
      expect(login.response.status).to.equal(200);
      expect(login.html).to.include('/verify-email/resend"');
      const stillNot = await submit(instance, browser, login.html, '/continue', {});
      expect(stillNot.response.status).to.equal(200);
      expect(stillNot.html).to.include('/verify-email/resend"');
    });
  });

  describe('language and branding', () => {
    it('speaks German to a German browser and wears the tenant’s colours', async () => {
      const current = await instance.runtime.tenants.get(acme.id);
      await instance.runtime.tenants.update(acme.id, current.version, { branding: { primaryColor: '#aa3300' } });
      const browser = new Browser({ 'accept-language': 'de-DE,de;q=0.9,en;q=0.5' });
      const page = await openSignIn(instance, config, browser, { tenant: 'acme' });
      expect(page.html).to.include('<html lang="de">');
      expect(page.html).to.include('Anmelden');
      expect(page.html).to.include('--accent: #aa3300');
      expect(page.html).to.include('Acme Corporation');
    });

    it('wears the tenant’s colours on the sign-out pages, also after the session is gone', async () => {
      const current = await instance.runtime.tenants.get(acme.id);
      await instance.runtime.tenants.update(acme.id, current.version, { branding: { primaryColor: '#006633' } });
      await instance.runtime.users.create(acme.id, { email: 'ivy@acme.test', password: PASSWORD, emailVerified: true });
      const { tokens, browser } = await loginWithCode(config, instance.url, { identifier: 'ivy@acme.test', password: PASSWORD, extraParams: { tenant: 'acme' } });
      expect(tokens.claims()!.tenant_id).to.equal(acme.id);

      const confirmPage = await browser.fetch(oidc.buildEndSessionUrl(config, { id_token_hint: tokens.id_token! }));
      expect(confirmPage.status).to.equal(200);
      const html = await confirmPage.text();
      expect(html).to.include('--accent: #006633');
      expect(html).to.include('Acme Corporation');
      const confirmed = await browser.submitForm(`${instance.url}/session/end/confirm`, { xsrf: hiddenField(html, 'xsrf'), logout: 'yes' });
      expect(confirmed.status).to.equal(303);
      const done = await browser.fetch(new URL(confirmed.headers.get('location')!, instance.url).toString());
      expect(done.status).to.equal(200);
      const doneHtml = await done.text();
      expect(doneHtml).to.include('--accent: #006633');
      expect(doneHtml).to.include('Acme Corporation');

      // Someone of the platform tenant signing out sees the platform's pages.
      const platform = await loginWithCode(config, instance.url, { identifier: USER.email, password: USER.password });
      const platformPage = await (await platform.browser.fetch(oidc.buildEndSessionUrl(config, { id_token_hint: platform.tokens.id_token! }))).text();
      expect(platformPage).to.not.include('Acme Corporation');
      expect(platformPage).to.not.include('#006633');
    });
  });
});
