// The whole journey of a new person in a real Chromium: register, confirm the address from the
// outbox, sign in, set up TOTP in the account pages (codes computed from the key the page shows),
// sign out, sign in with a code, then with a backup code, and see that backup code refused the
// second time. Screenshots of every page land in artifacts/screenshots/journey-*.png.
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { backends, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { authorizationRequest, discover } from '../helpers/rp.ts';
import { screenshot, startRedirectTarget, useChromium, visit, type Page, type RedirectTarget } from '../helpers/chromium.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import { ACR_MFA } from '../../src/oidc/assurance.ts';
import { currentTotpCode } from '../../src/mfa/totp.ts';

const embedded = backends[0];
const PERSON = { email: 'new.person@example.com', name: 'New Person', password: 'my journey passphrase' };

describe('a new person’s journey in Chromium', function () {
  this.timeout(120_000);
  let store: BackendEnv;
  let instance: Instance;
  let config: oidc.Configuration;
  let rp: RedirectTarget;
  const chrome = useChromium();
  let shot = 0;
  const snap = (page: Page, name: string) => screenshot(page, `journey-${String(++shot).padStart(2, '0')}-${name}`);

  before(async () => {
    store = await embedded.create();
    instance = await startInstance(store.env);
    const platform = await instance.runtime.tenants.get(DEFAULT_TENANT_ID);
    await instance.runtime.tenants.update(DEFAULT_TENANT_ID, platform.version, { selfRegistration: true, policies: { ...platform.policies, emailVerification: 'required' } });
    rp = await startRedirectTarget();
    const { client, clientSecret } = await instance.runtime.clients.create({
      name: 'Journey app',
      redirectUris: [rp.redirectUri],
      grantTypes: ['authorization_code'],
      firstParty: true,
    });
    config = await discover(instance.url, client.clientId, clientSecret);
  });
  after(async () => {
    await rp?.close();
    await instance?.stop();
    await store?.cleanup();
  });

  // Starts an authorization request in the page; `finish` exchanges the code the browser brings
  // back to the relying party.
  async function authorize(page: Page) {
    const { url, verifier, state, nonce } = await authorizationRequest(config, rp.redirectUri);
    await visit(page, url.href);
    return {
      async finish() {
        const callback = await rp.next();
        const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
        return tokens;
      },
    };
  }

  async function enterPassword(page: Page) {
    await page.getByLabel('E-mail or username').fill(PERSON.email);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByLabel('Password').fill(PERSON.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }

  async function signOut(page: Page, idToken: string) {
    await visit(page, oidc.buildEndSessionUrl(config, { id_token_hint: idToken }).href);
    await page.getByRole('button', { name: 'Yes, sign me out' }).click();
    await page.getByRole('heading', { name: 'You are signed out' }).waitFor();
  }

  it('registers, verifies, signs in, enrols TOTP, and signs in with a code and with a backup code once', async () => {
    const page = await chrome.page();

    // Register from the sign-in page.
    const first = await authorize(page);
    await snap(page, 'identifier');
    await page.getByRole('link', { name: 'Create an account' }).click();
    await page.getByLabel('E-mail address').fill(PERSON.email);
    await page.getByLabel('Name (optional)').fill(PERSON.name);
    await page.getByLabel('Password', { exact: true }).fill(PERSON.password);
    await page.getByLabel('Repeat the password').fill(PERSON.password);
    await snap(page, 'register');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('heading', { name: 'Check your inbox' }).waitFor();
    await snap(page, 'registered');

    // Not verified yet: signing in stops at the verification page.
    await page.getByRole('link', { name: 'Back to sign in' }).click();
    await enterPassword(page);
    await page.getByRole('heading', { name: 'Verify your e-mail address' }).waitFor();
    await snap(page, 'verify-first');

    // The mail, from the outbox page, in another tab.
    const mailbox = await page.context().newPage();
    await visit(mailbox, `${instance.url}/outbox`);
    await snap(mailbox, 'outbox');
    await mailbox.getByRole('link', { name: 'Confirm your e-mail address' }).first().click();
    const link = mailbox.getByRole('link', { name: /\/email\/verify\?token=/ });
    await mailbox.goto((await link.getAttribute('href'))!);
    await snap(mailbox, 'verify-link');
    await mailbox.getByRole('button', { name: 'Confirm e-mail address' }).click();
    await mailbox.getByRole('heading', { name: 'E-mail address confirmed' }).waitFor();
    await mailbox.close();

    // Back in the sign-in tab: now it goes through.
    await page.getByRole('button', { name: 'I have verified my address' }).click();
    const signedIn = await first.finish();
    const userinfo = await oidc.fetchUserInfo(config, signedIn.access_token, signedIn.claims()!.sub);
    expect(userinfo.email).to.equal(PERSON.email);
    expect(userinfo.email_verified).to.equal(true);
    expect(signedIn.claims()!.amr).to.deep.equal(['pwd']);

    // Set up TOTP in the account pages (the provider's session carries over: single sign-on).
    await visit(page, `${instance.url}/account`);
    await snap(page, 'account');
    await page.getByRole('link', { name: 'Two-factor authentication' }).first().click();
    await page.getByRole('button', { name: 'Set up an authenticator app' }).click();
    const secret = (await page.locator('code.secret').textContent())!.replace(/\s+/g, '');
    expect(secret).to.match(/^[A-Z2-7]{16,}$/);
    await snap(page, 'enrol');
    await page.getByLabel('Code from the app').fill(currentTotpCode(secret));
    await page.getByRole('button', { name: 'Confirm and turn on' }).click();
    const backupCodes = await page.locator('ol.codes code').allTextContents();
    expect(backupCodes).to.have.length(10);
    await snap(page, 'backup-codes');

    await signOut(page, signedIn.id_token!);

    // Signing in again asks for a code. The code of the next time step is inside the drift window
    // and later than the one used to confirm, so it is accepted without waiting.
    const second = await authorize(page);
    await enterPassword(page);
    await page.getByRole('heading', { name: 'Two-step verification' }).waitFor();
    await snap(page, 'mfa');
    await page.getByLabel('Authentication code').fill(currentTotpCode(secret, new Date(Date.now() + 30_000)));
    await page.getByRole('button', { name: 'Verify' }).click();
    const withCode = await second.finish();
    expect(withCode.claims()!.amr).to.deep.equal(['pwd', 'otp', 'mfa']);
    expect(withCode.claims()!.acr).to.equal(ACR_MFA);

    await signOut(page, withCode.id_token!);

    // Then with a backup code.
    const third = await authorize(page);
    await enterPassword(page);
    await page.getByRole('link', { name: 'Use a backup code instead' }).click();
    await page.getByLabel('Backup code').fill(backupCodes[0]);
    await snap(page, 'backup-code');
    await page.getByRole('button', { name: 'Verify' }).click();
    const withBackupCode = await third.finish();
    expect(withBackupCode.claims()!.amr).to.deep.equal(['pwd', 'mfa']);

    await signOut(page, withBackupCode.id_token!);

    // The same backup code a second time: refused, and said so.
    await authorize(page);
    await enterPassword(page);
    await page.getByRole('link', { name: 'Use a backup code instead' }).click();
    await page.getByLabel('Backup code').fill(backupCodes[0]);
    await page.getByRole('button', { name: 'Verify' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    expect(await alert.textContent()).to.include('backup code is not correct or was already used');
    expect(await page.getByLabel('Backup code').getAttribute('aria-invalid')).to.equal('true');
    await snap(page, 'backup-code-refused');
  });
});
