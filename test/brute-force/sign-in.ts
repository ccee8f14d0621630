// Driving the password page over HTTP for the brute-force suites: a fresh sign-in per attempt
// (through the authorization endpoint, optionally for a tenant and from a simulated address), and
// the mail outbox.
import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as oidc from 'openid-client';
import { Browser, formAction, hiddenField } from '../helpers/browser.ts';
import { REDIRECT_URI } from '../helpers/rp.ts';
import type { Instance } from '../helpers/instance.ts';

export interface PageResult {
  status: number;
  html: string;
  headers: Headers;
  browser: Browser;
}

export interface StoredMail {
  to: string;
  subject: string;
  text: string;
}

export class SignInDriver {
  readonly instance: Instance;
  readonly config: oidc.Configuration;

  constructor(instance: Instance, config: oidc.Configuration) {
    this.instance = instance;
    this.config = config;
  }

  // The password page of a new sign-in (for `tenant`, a slug, when given).
  async open(options: { tenant?: string; ip?: string; browser?: Browser } = {}): Promise<PageResult> {
    const browser = options.browser ?? new Browser(options.ip ? { 'x-forwarded-for': options.ip } : {});
    const url = oidc.buildAuthorizationUrl(this.config, {
      redirect_uri: REDIRECT_URI,
      scope: 'openid',
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
      ...(options.tenant ? { tenant: options.tenant } : {}),
    });
    const { response } = await browser.follow(url, this.instance.url);
    const html = await response.text();
    expect(response.status, html.slice(0, 300)).to.equal(200);
    return { status: response.status, html, headers: response.headers, browser };
  }

  async submit(page: PageResult, pathEnding: string, fields: Record<string, string>): Promise<PageResult> {
    const response = await page.browser.submitForm(new URL(formAction(page.html, pathEnding), this.instance.url), { csrf: hiddenField(page.html, 'csrf'), ...fields });
    const html = response.status === 303 ? '' : await response.text();
    return { status: response.status, html, headers: response.headers, browser: page.browser };
  }

  // One password attempt in a new sign-in.
  async attempt(identifier: string, password: string, options: { tenant?: string; ip?: string; extra?: (page: PageResult) => Record<string, string> } = {}): Promise<PageResult> {
    const page = await this.open(options);
    return this.submit(page, '/login', { identifier, password, ...(options.extra?.(page) ?? {}) });
  }
}

// The page without what legitimately differs between two requests.
export function normalised(html: string, identifier: string): string {
  return html
    .replace(/name="csrf" value="[^"]*"/g, 'name="csrf" value=""')
    .replace(/ nonce="[^"]*"/g, ' nonce=""')
    .replace(/\/interaction\/[\w-]+/g, '/interaction/UID')
    .split(identifier)
    .join('IDENTIFIER');
}

export function readOutbox(directory: string): StoredMail[] {
  return readdirSync(directory)
    .filter((name) => name.endsWith('.json'))
    .sort()
    .map((name) => JSON.parse(readFileSync(path.join(directory, name), 'utf8')) as StoredMail);
}
