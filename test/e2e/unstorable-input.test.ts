// Input PostgreSQL cannot hold (a NUL character, an unpaired UTF-16 surrogate), a body that does
// not decode as its Content-Encoding says, and a Host header that is not the provider's: each gets
// the 4xx of its surface (RFC 6749 JSON, problem+json naming the field, an error page), never a 500,
// and the discovery document keeps the issuer's own addresses.
import http from 'node:http';
import { gzipSync } from 'node:zlib';
import { expect } from 'chai';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { createFixtures, basicAuth, type Fixtures } from '../helpers/fixtures.ts';
import { adminApi, type AdminApi } from '../helpers/admin-api.ts';
import { Browser, formAction, hiddenField } from '../helpers/browser.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import { REDIRECT_URI } from '../helpers/rp.ts';

const FORM = 'application/x-www-form-urlencoded';

// A request with a Host header of our choosing (fetch may not set one).
function withHost(url: string, host: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { headers: { host } }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, text }));
    });
    request.on('error', reject);
    request.end();
  });
}

forEachBackend('input the store cannot hold', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let fixtures: Fixtures;
  let api: AdminApi;
  let admin: string;

  before(async () => {
    store = await backend.create();
    instance = await startInstance(store.env);
    fixtures = await createFixtures(instance.runtime);
    api = adminApi(instance);
    admin = await api.token(DEFAULT_TENANT_ID, 'root-admin');
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  async function problemFields(response: Response, status: number): Promise<Record<string, string>> {
    const text = await response.text();
    expect(response.status, text).to.equal(status);
    expect(response.headers.get('content-type')).to.match(/^application\/problem\+json/);
    return (JSON.parse(text) as { errors?: Record<string, string> }).errors ?? {};
  }

  it('answers protocol requests naming an impossible client or resource with the OAuth error', async () => {
    const nulClient = await fetch(`${instance.url}/token`, { method: 'POST', headers: { 'content-type': FORM }, body: 'grant_type=client_credentials&client_id=%00&client_secret=x' });
    expect(nulClient.status).to.equal(401);
    expect(((await nulClient.json()) as { error: string }).error).to.equal('invalid_client');
    const nulResource = await fetch(`${instance.url}/token`, {
      method: 'POST',
      headers: { 'content-type': FORM, authorization: basicAuth(fixtures.machine) },
      body: `grant_type=client_credentials&resource=${encodeURIComponent('https://api.example.test/\u0000')}`,
    });
    expect(nulResource.status).to.equal(400);
    expect(((await nulResource.json()) as { error: string }).error).to.equal('invalid_target');
    const authorize = await fetch(`${instance.url}/auth?client_id=%00&response_type=code&scope=openid&redirect_uri=${encodeURIComponent(REDIRECT_URI)}`, { redirect: 'manual' });
    expect(authorize.status).to.equal(400);
    const verify = await fetch(`${instance.url}/api-keys/verify`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from('\u0000:x').toString('base64')}`, 'content-type': 'application/json' }, body: '{"key":"x"}' });
    expect(verify.status).to.equal(401);
  });

  it('refuses such text in admin API bodies, queries and paths with 422 naming the field, and stores nothing', async () => {
    const role = await api.call(admin, 'POST', `/tenants/${DEFAULT_TENANT_ID}/roles`, { name: 'nul-role', description: 'a\u0000b' });
    expect(await problemFields(role, 422)).to.have.property('body.description');
    const surrogate = await api.call(admin, 'POST', `/tenants/${DEFAULT_TENANT_ID}/clients`, { name: '\ud800', grantTypes: ['client_credentials'] });
    expect(await problemFields(surrogate, 422)).to.have.property('body.name');
    const audit = await api.call(admin, 'GET', `/tenants/${DEFAULT_TENANT_ID}/audit?actor=%00`);
    expect(await problemFields(audit, 422)).to.have.property('query.actor');
    const client = await api.call(admin, 'GET', `/tenants/${DEFAULT_TENANT_ID}/clients/%00`);
    expect(await problemFields(client, 422)).to.have.property('path.clientId');
    const roles = (await (await api.call(admin, 'GET', `/tenants/${DEFAULT_TENANT_ID}/roles`)).json()) as { items: Array<{ name: string }> };
    expect(roles.items.map((item) => item.name)).to.not.include('nul-role');
  });

  it('answers a body that does not decode as its Content-Encoding says with 400', async () => {
    const plain = JSON.stringify({ name: 'gzip-role' });
    const admin400 = await fetch(`${instance.url}/api/v1/tenants/${DEFAULT_TENANT_ID}/roles`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: plain });
    await problemFields(admin400, 400);
    // A body that really is gzip is read as usual.
    const zipped = await fetch(`${instance.url}/api/v1/tenants/${DEFAULT_TENANT_ID}/roles`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: gzipSync(plain) });
    expect(zipped.status, await zipped.clone().text()).to.equal(201);
  });

  it('answers sign-in forms with such text, or an undecodable body, with an error page', async () => {
    const browser = new Browser();
    const start = await browser.follow(`${instance.url}/auth?client_id=${fixtures.web.clientId}&response_type=code&scope=openid&redirect_uri=${encodeURIComponent(REDIRECT_URI)}&code_challenge=${'a'.repeat(43)}&code_challenge_method=S256`, instance.url);
    const html = await start.response.text();
    const action = new URL(formAction(html, '/identify'), instance.url);
    const nul = await browser.submitForm(action, { csrf: hiddenField(html, 'csrf'), identifier: 'ann\u0000@example.com' });
    expect(nul.status).to.equal(422);
    expect(nul.headers.get('content-type')).to.match(/^text\/html/);
    const garbled = await browser.fetch(action, { method: 'POST', headers: { 'content-type': FORM, 'content-encoding': 'gzip' }, body: `csrf=${hiddenField(html, 'csrf')}&identifier=ann` });
    expect(garbled.status).to.equal(400);
    const forgot = await fetch(`${instance.url}/password/forgot?tenant=%00`);
    expect(forgot.status).to.be.below(500);
  });

  it('publishes the issuer’s addresses whatever Host the request names, and survives one that is no host', async () => {
    const expected = `${instance.url}/auth`;
    for (const host of ['evil.example', 'evil.example:99999', 'a:b:c', '[::1']) {
      const discovery = await withHost(`${instance.url}/.well-known/openid-configuration`, host);
      expect(discovery.status, `${host}: ${discovery.text.slice(0, 200)}`).to.equal(200);
      expect((JSON.parse(discovery.text) as { authorization_endpoint: string }).authorization_endpoint).to.equal(expected);
    }
  });
});
