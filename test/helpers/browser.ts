// A minimal browser for HTTP-level flows: a cookie jar, manual redirects and form fields.
// Like a real browser, cookies are kept per host name, not per port.
export class Browser {
  #cookies = new Map<string, Map<string, string>>();
  // Sent with every request, like a browser's language and user agent.
  readonly defaultHeaders: Record<string, string>;

  constructor(defaultHeaders: Record<string, string> = {}) {
    this.defaultHeaders = defaultHeaders;
  }

  async fetch(url: string | URL, init: RequestInit = {}): Promise<Response> {
    const target = new URL(url);
    const headers = new Headers({ ...this.defaultHeaders, ...Object.fromEntries(new Headers(init.headers)) });
    const cookie = this.cookieHeader(target);
    if (cookie) headers.set('cookie', cookie);
    const response = await fetch(target, { ...init, headers, redirect: 'manual' });
    this.#store(target, response);
    return response;
  }

  // Follows redirects until one leaves `origin` or a page is reached; returns the final response
  // and the URL it came from.
  async follow(url: string | URL, origin: string, init: RequestInit = {}): Promise<{ response: Response; url: URL }> {
    let current = new URL(url);
    let response = await this.fetch(current, init);
    for (let hops = 0; hops < 10 && response.status >= 300 && response.status < 400; hops++) {
      const next = new URL(response.headers.get('location')!, current);
      if (next.origin !== origin) return { response, url: next };
      current = next;
      response = await this.fetch(current);
    }
    return { response, url: current };
  }

  async submitForm(url: string | URL, fields: Record<string, string>): Promise<Response> {
    return this.fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });
  }

  cookieHeader(url: URL): string {
    const jar = this.#cookies.get(url.hostname);
    return jar ? [...jar].map(([name, value]) => `${name}=${value}`).join('; ') : '';
  }

  clearCookies(): void {
    this.#cookies.clear();
  }

  #store(url: URL, response: Response): void {
    for (const header of response.headers.getSetCookie()) {
      const [pair, ...attributes] = header.split(';');
      const index = pair.indexOf('=');
      const name = pair.slice(0, index).trim();
      const value = pair.slice(index + 1).trim();
      const jar = this.#cookies.get(url.hostname) ?? new Map<string, string>();
      const expired = attributes.some((attribute) => /^\s*expires=Thu, 01 Jan 1970/i.test(attribute) || /^\s*max-age=0/i.test(attribute));
      if (expired || value === '') jar.delete(name);
      else jar.set(name, value);
      this.#cookies.set(url.hostname, jar);
    }
  }
}

export function hiddenField(html: string, name: string): string {
  const match = html.match(new RegExp(`name="${name}" value="([^"]*)"`));
  if (!match) throw new Error(`no hidden field ${name} in page`);
  return match[1].replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>');
}

export function formAction(html: string, pathEnding: string): string {
  const match = html.match(new RegExp(`action="([^"]*${pathEnding})"`));
  if (!match) throw new Error(`no form posting to ${pathEnding}`);
  return match[1];
}
