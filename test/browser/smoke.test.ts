// The sign-in page in a real Chromium: found by its labels, usable by keyboard, in the browser's
// language, and the authorization code it leads to is a working one.
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { backends, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { createFixtures, USER, type Fixtures } from '../helpers/fixtures.ts';
import { authorizationRequest, discover } from '../helpers/rp.ts';
import { consoleErrors, screenshot, startRedirectTarget, useChromium, visit, VIEWPORTS, type Page, type RedirectTarget } from '../helpers/chromium.ts';

// Browser tests check pages, not storage: the embedded backend is enough.
const embedded = backends[0];

async function documentLanguage(page: Page): Promise<string | null> {
  return page.locator('html').getAttribute('lang');
}

describe('sign-in page in Chromium', function () {
  let store: BackendEnv;
  let instance: Instance;
  let fixtures: Fixtures;
  let config: oidc.Configuration;
  let rp: RedirectTarget;
  const chrome = useChromium();
  const authorizationUrl = async () => (await authorizationRequest(config, rp.redirectUri)).url.href;

  before(async () => {
    store = await embedded.create();
    instance = await startInstance(store.env);
    fixtures = await createFixtures(instance.runtime);
    rp = await startRedirectTarget();
    const { client, clientSecret } = await instance.runtime.clients.create({
      name: 'Browser test app',
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

  // The page's focused element, to compare with a field found by its label.
  async function focusedId(page: Page): Promise<string | null> {
    return page.locator(':focus').getAttribute('id');
  }

  it('signs in by label and keyboard, and the code it returns is exchanged for the user’s ID token', async () => {
    const page = await chrome.page();
    const request = await authorizationRequest(config, rp.redirectUri);
    await visit(page, request.url.href);

    // Identifier first: the first field has focus on load, so a keyboard user types straight away.
    expect(await documentLanguage(page)).to.equal('en');
    const identifier = page.getByLabel('E-mail or username');
    expect(await focusedId(page)).to.equal(await identifier.getAttribute('id'));
    await page.keyboard.type(USER.email);
    await page.keyboard.press('Enter');

    // Then the password, focused in its turn.
    const password = page.getByLabel('Password', { exact: true });
    await password.waitFor();
    expect(await focusedId(page)).to.equal(await password.getAttribute('id'));
    await page.keyboard.type(USER.password);
    await page.getByRole('button', { name: 'Sign in' }).click();

    const redirect = await rp.next();
    await page.waitForURL((url) => url.href.startsWith(rp.redirectUri));
    expect(redirect.searchParams.get('code')).to.be.a('string');
    const tokens = await oidc.authorizationCodeGrant(config, redirect, {
      pkceCodeVerifier: request.verifier,
      expectedState: request.state,
      expectedNonce: request.nonce,
      idTokenExpected: true,
    });
    expect(tokens.claims()!.sub).to.equal(fixtures.userId);
  });

  it('announces a failed sign-in and marks the password invalid', async () => {
    const page = await chrome.page();
    await visit(page, await authorizationUrl());
    await page.getByLabel('E-mail or username').fill(USER.email);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByLabel('Password', { exact: true }).fill('not the password');
    await page.getByRole('button', { name: 'Sign in' }).click();

    const alert = page.getByRole('alert');
    expect(await alert.textContent()).to.match(/\w/);
    const password = page.getByLabel('Password', { exact: true });
    expect(await password.getAttribute('aria-invalid')).to.equal('true');
    const describedBy = (await password.getAttribute('aria-describedby')) ?? '';
    expect(describedBy.split(/\s+/)).to.include(await alert.getAttribute('id'));
    await screenshot(page, 'sign-in-error-desktop');
  });

  it('speaks German to a German browser', async () => {
    const page = await chrome.page({ locale: 'de-DE' });
    await visit(page, await authorizationUrl());
    expect(await documentLanguage(page)).to.equal('de');
    expect(await page.getByRole('heading', { level: 1 }).innerText()).to.equal('Anmelden');
    await page.getByLabel('E-Mail oder Benutzername').fill(USER.email);
    await page.getByRole('button', { name: 'Weiter' }).click();
    expect(await page.getByLabel('Passwort', { exact: true }).isVisible()).to.equal(true);
    expect(await page.getByRole('button', { name: 'Anmelden' }).isVisible()).to.equal(true);
    expect(await page.getByRole('button', { name: 'Sign in' }).count()).to.equal(0);
    await screenshot(page, 'sign-in-password-de-desktop');
  });

  for (const [name, viewport] of Object.entries(VIEWPORTS)) {
    it(`fits a ${name} screen (${viewport.width}x${viewport.height}) without sideways scrolling`, async () => {
      const page = await chrome.page({ viewport });
      const errors = consoleErrors(page);
      await visit(page, await authorizationUrl());
      const fitsWidth = async () => expect(await page.evaluate('document.documentElement.scrollWidth')).to.be.at.most(viewport.width);
      await fitsWidth();
      await screenshot(page, `sign-in-identifier-${name}`);
      await page.getByLabel('E-mail or username').fill(USER.email);
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByLabel('Password', { exact: true }).waitFor();
      await fitsWidth();
      await screenshot(page, `sign-in-password-${name}`);
      expect(errors, 'console errors (a CSP violation is one)').to.deep.equal([]);
    });
  }
});
