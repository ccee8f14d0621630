// Driving a federated sign-in over HTTP: the downstream's sign-in page, its connector button, the
// upstream's own sign-in pages (a second instance of this provider), and back.
import { expect } from 'chai';
import { Browser, formAction, hiddenField } from '../helpers/browser.ts';

export interface Page {
  url: URL;
  status: number;
  html: string;
}

async function pageOf(response: Response, url: URL): Promise<Page> {
  return { url, status: response.status, html: await response.text() };
}

// Follows redirects across origins, stopping at a page or at the first URL of `stopAt`'s origin.
export async function followAll(browser: Browser, url: string | URL, stopAt: string): Promise<Page> {
  let current = new URL(url);
  for (let hops = 0; hops < 20; hops++) {
    if (current.origin === stopAt) return { url: current, status: 0, html: '' };
    const response = await browser.fetch(current);
    if (response.status < 300 || response.status >= 400) return pageOf(response, current);
    await response.body?.cancel();
    current = new URL(response.headers.get('location')!, current);
  }
  throw new Error(`too many redirects from ${url}`);
}

export async function submit(browser: Browser, page: Page, pathEnding: string, fields: Record<string, string>, stopAt: string): Promise<Page> {
  const action = new URL(formAction(page.html, pathEnding), page.url);
  const response = await browser.submitForm(action, { csrf: hiddenField(page.html, 'csrf'), ...fields });
  if (response.status < 300 || response.status >= 400) return pageOf(response, action);
  await response.body?.cancel();
  return followAll(browser, new URL(response.headers.get('location')!, action), stopAt);
}

// At the upstream's sign-in pages: the identifier (when asked first), then the password; ends
// wherever the upstream sends the browser (the downstream's callback, followed to its end).
export async function signInUpstream(browser: Browser, page: Page, credentials: { identifier: string; password: string }, stopAt: string): Promise<Page> {
  let current = page;
  if (current.html.includes('/identify"')) current = await submit(browser, current, '/identify', { identifier: credentials.identifier }, stopAt);
  expect(current.html, `upstream sign-in page at ${current.url}`).to.include('name="password"');
  return submit(browser, current, '/login', { identifier: credentials.identifier, password: credentials.password }, stopAt);
}
