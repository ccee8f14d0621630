// The Content-Security-Policy in a real Chromium: the page's inline style, allowed by its hash,
// applies, and the browser reports no violation.
import { expect } from 'chai';
import { backends, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { consoleErrors, useChromium, visit } from '../helpers/chromium.ts';

const embedded = backends[0];

describe('content security policy in Chromium', () => {
  let store: BackendEnv;
  let instance: Instance;
  const chrome = useChromium();

  before(async function () {
    this.timeout(120_000);
    store = await embedded.create();
    instance = await startInstance(store.env);
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  it('applies the layout’s inline style and reports no violation', async () => {
    const page = await chrome.page();
    const errors = consoleErrors(page);
    await visit(page, `${instance.url}/password/forgot`);
    // 30rem from the layout's style: without it, main would span the window.
    expect(await page.evaluate("getComputedStyle(document.querySelector('main')).maxWidth")).to.equal('480px');
    // (The browser's own favicon request may 404; only policy violations count here.)
    expect(errors.filter((error) => /Content Security Policy/i.test(error))).to.deep.equal([]);
  });

  it('blocks an inline style that is not the one the policy names', async () => {
    const page = await chrome.page();
    const errors = consoleErrors(page);
    // The same response with its style altered on the way: its hash no longer matches.
    await page.route('**/password/forgot', async (route) => {
      const response = await route.fetch();
      await route.fulfill({ response, body: (await response.text()).replace('max-width: 30rem', 'max-width: 31rem') });
    });
    await visit(page, `${instance.url}/password/forgot`);
    expect(await page.evaluate("getComputedStyle(document.querySelector('main')).maxWidth")).to.equal('none');
    expect(errors.some((error) => /Content Security Policy/i.test(error))).to.equal(true);
  });
});
