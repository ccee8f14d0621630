// A real browser for page tests: the Debian Chromium driven by playwright-core.
//
//   const chrome = useChromium();                  // inside a describe(): one browser per suite
//   const page = await chrome.page({ locale: 'de-DE', viewport: VIEWPORTS.mobile });
//   const rp = await startRedirectTarget();        // register rp.redirectUri with the client
//   await visit(page, authorizationUrl);           // fails on a 4xx/5xx page
//   ...
//   const url = await rp.next();                   // the redirect back to the client
//   await screenshot(page, 'login-desktop');       // artifacts/screenshots/login-desktop.png
//
// A test that fails leaves a screenshot of every page it opened (failed-<n>-<test title>.png).
// There is no skip: without Chromium every browser test fails and says how to install it.
import { existsSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export type { Browser, Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const SCREENSHOT_DIRECTORY = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../artifacts/screenshots');

export const VIEWPORTS = {
  desktop: { width: 1280, height: 800 },
  mobile: { width: 390, height: 844 },
} as const;

// Headless in a container as root: no sandbox, no GPU, and nothing that phones home or updates.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM_PATH}: browser tests need it. ` +
        'Install it with `apt-get install -y --no-install-recommends chromium` (Debian), ' +
        'or point CHROMIUM_PATH at a Chromium or Chrome binary.',
    );
  }
  // Playwright gives each launch a fresh temporary profile and removes it on close.
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
}

export interface PageOptions {
  // A BCP 47 tag such as 'de-DE': sets Accept-Language and navigator.language.
  locale?: string;
  userAgent?: string;
  viewport?: { width: number; height: number };
  colorScheme?: 'light' | 'dark';
}

// A page in its own context: its own cookies, so each page is a new visitor.
export async function newPage(browser: Browser, options: PageOptions = {}): Promise<Page> {
  const context = await browser.newContext({
    locale: options.locale ?? 'en-US',
    userAgent: options.userAgent,
    viewport: options.viewport ?? VIEWPORTS.desktop,
    colorScheme: options.colorScheme ?? 'light',
    serviceWorkers: 'block',
  });
  // A missing element fails in seconds, well within mocha's timeout, with Playwright's message.
  context.setDefaultTimeout(10_000);
  return context.newPage();
}

// page.goto that fails on an error status with what the page said, not later on a missing field.
export async function visit(page: Page, url: string): Promise<void> {
  const response = await page.goto(url);
  const status = response?.status() ?? 0;
  if (status >= 400) {
    const said = await page.locator('main').innerText().catch(() => '');
    throw new Error(`${url} answered ${status}: ${said.replace(/\s+/g, ' ').trim().slice(0, 300)}`);
  }
}

// Errors the page reports from now on (CSP violations, failed loads, script errors), as a live
// list: our pages have no scripts and no external assets, so it should stay empty.
export function consoleErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(error.message));
  return errors;
}

// Writes a full-page PNG to artifacts/screenshots/<name>.png and returns its path.
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIRECTORY, { recursive: true });
  const file = path.join(SCREENSHOT_DIRECTORY, `${fileName(name)}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

export interface RedirectTarget {
  // Register this as the client's redirect URI: http://127.0.0.1:<port>/callback.
  readonly redirectUri: string;
  // Resolves with the next request the browser made to it (code or error in its query).
  next(): Promise<URL>;
  close(): Promise<void>;
}

// A relying party's callback endpoint: a loopback HTTP server that answers with a small page and
// hands each URL it receives to the test. (Playwright cannot fulfil a request reached by a
// redirect, so the redirect must land on something real.)
export async function startRedirectTarget(): Promise<RedirectTarget> {
  const received: URL[] = [];
  const waiting: Array<(url: URL) => void> = [];
  const server = http.createServer((request, response) => {
    const url = new URL(request.url ?? '/', `http://${request.headers.host}`);
    if (url.pathname !== '/callback') {
      // The browser's own requests (a favicon) are not redirects.
      response.writeHead(404).end();
      return;
    }
    const resolve = waiting.shift();
    if (resolve) resolve(url);
    else received.push(url);
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    response.end('<!DOCTYPE html><html lang="en"><title>Relying party</title><p>Back at the relying party.</p></html>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    redirectUri: `http://127.0.0.1:${port}/callback`,
    next() {
      const url = received.shift();
      if (url) return Promise.resolve(url);
      return new Promise((resolve, reject) => {
        const deliver = (arrived: URL) => {
          clearTimeout(timer);
          resolve(arrived);
        };
        const timer = setTimeout(() => {
          waiting.splice(waiting.indexOf(deliver), 1);
          reject(new Error('the browser did not come back to the redirect URI within 10 s'));
        }, 10_000);
        waiting.push(deliver);
      });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface ChromiumSuite {
  // The suite's browser (launched in before()).
  readonly browser: Browser;
  // A new page in a fresh context, closed after the test; screenshotted if the test fails.
  page(options?: PageOptions): Promise<Page>;
}

// Mocha hooks for a describe(): one browser for the suite, pages per test, a screenshot of each
// open page when a test fails.
export function useChromium(): ChromiumSuite {
  let browser: Browser | undefined;
  let contexts: BrowserContext[] = [];
  before(async function () {
    this.timeout(60_000);
    browser = await launchChromium();
  });
  afterEach(async function () {
    const test = this.currentTest;
    if (test?.state === 'failed') {
      const pages = contexts.flatMap((context) => context.pages());
      for (const [index, page] of pages.entries()) {
        const file = await screenshot(page, `failed-${index + 1}-${test.fullTitle()}`).catch(() => undefined);
        if (file) console.log(`      screenshot of the failed page: ${path.relative(process.cwd(), file)} (${page.url()})`);
      }
    }
    await Promise.all(contexts.map((context) => context.close().catch(() => {})));
    contexts = [];
  });
  after(async () => {
    await browser?.close();
  });
  return {
    get browser() {
      if (!browser) throw new Error('the browser is launched in before(): use it inside a test or hook');
      return browser;
    },
    async page(options) {
      const page = await newPage(this.browser, options);
      contexts.push(page.context());
      return page;
    },
  };
}

function fileName(name: string): string {
  return name.replace(/[^\w.-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 120) || 'page';
}
