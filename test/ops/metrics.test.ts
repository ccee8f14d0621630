// GET /metrics: Prometheus text format behind a bearer token, and counters that move with the flows
// by exactly what the flows did, on every backend.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import * as oidc from 'openid-client';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { createFixtures, clientCredentialsToken, API, USER, type Fixtures } from '../helpers/fixtures.ts';
import { authorizeWithLogin, discover, loginWithCode } from '../helpers/rp.ts';
import { formAction, hiddenField } from '../helpers/browser.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import { currentTotpCode } from '../../src/mfa/totp.ts';
import { parsePrometheusText, sampleValue, type Family } from './prometheus-text.ts';
import { ConfigError, loadConfig } from '../../src/config.ts';

const METRICS_TOKEN = randomBytes(32).toString('base64url');
const MFA_USER = { email: 'grace@example.com', password: 'a long enough passphrase for grace' };

describe('METRICS_TOKEN', () => {
  it('is unset by default and refused when shorter than 32 characters', () => {
    expect(loadConfig({}).metricsToken).to.equal(undefined);
    expect(() => loadConfig({ METRICS_TOKEN: 'too-short' })).to.throw(ConfigError, /METRICS_TOKEN must be at least 32 characters/);
    expect(loadConfig({ METRICS_TOKEN }).metricsToken).to.equal(METRICS_TOKEN);
  });
});

forEachBackend('metrics', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let fixtures: Fixtures;
  let issuer: string;

  before(async () => {
    store = await backend.create();
    instance = await startInstance({ ...store.env, METRICS_TOKEN });
    issuer = instance.url;
    fixtures = await createFixtures(instance.runtime);
    const { mfa, users } = instance.runtime;
    const grace = await users.create(DEFAULT_TENANT_ID, { ...MFA_USER, emailVerified: true });
    const { secret } = await mfa.beginTotpEnrolment(DEFAULT_TENANT_ID, grace.id, { accountName: MFA_USER.email, issuer: 'Test' });
    expect(await mfa.confirmTotpEnrolment(DEFAULT_TENANT_ID, grace.id, currentTotpCode(secret))).to.be.an('object');
  });

  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  async function scrape(): Promise<Map<string, Family>> {
    const response = await fetch(`${issuer}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(response.status).to.equal(200);
    expect(response.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
    return parsePrometheusText(await response.text());
  }

  it('answers 401 without the metrics bearer token, whatever else is presented', async () => {
    for (const authorization of [undefined, 'Bearer wrong-token-of-some-length-0123456789', `Basic ${METRICS_TOKEN}`, `Bearer ${METRICS_TOKEN}x`]) {
      const response = await fetch(`${issuer}/metrics`, { headers: authorization ? { authorization } : {} });
      expect(response.status, String(authorization)).to.equal(401);
      expect(response.headers.get('www-authenticate')).to.equal('Bearer realm="metrics"');
      expect(response.headers.get('content-type')).to.match(/application\/problem\+json/);
      expect(await response.text()).to.not.include('idp_');
    }
  });

  it('parses as Prometheus text format, with every family typed and the stores sampled up', async () => {
    const families = await scrape();
    const types = Object.fromEntries([...families.values()].map((family) => [family.name, family.type]));
    expect(types).to.include({
      idp_logins_total: 'counter',
      idp_tokens_issued_total: 'counter',
      idp_rate_limited_total: 'counter',
      idp_lockouts_total: 'counter',
      idp_http_request_duration_seconds: 'histogram',
      idp_outbox_lag_seconds: 'gauge',
      idp_store_up: 'gauge',
      process_cpu_user_seconds_total: 'counter',
    });
    for (const family of families.values()) expect(family.help, family.name).to.be.a('string').and.not.empty;
    for (const check of ['database', 'hot_store', 'migrations']) expect(sampleValue(families, 'idp_store_up', { check }), check).to.equal(1);
  });

  it('moves the login, token and latency counters by exactly what a login, a failed login, a client-credentials grant and a refresh did', async () => {
    const before = await scrape();
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);

    const { tokens } = await loginWithCode(config, issuer, { identifier: USER.email, password: USER.password });
    await expect(authorizeWithLogin(config, issuer, { identifier: USER.email, password: 'not the password' })).to.be.rejectedWith('login failed with 401');
    const machine = await clientCredentialsToken(issuer, fixtures.machine, { resource: API.identifier, scope: 'read' });
    expect(machine.status).to.equal(200);
    await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    const unknownId = randomBytes(8).toString('hex');
    expect((await fetch(`${issuer}/no/such/${unknownId}`)).status).to.equal(404);
    // Refused before its route handler runs (no CSRF token): still labelled by a template.
    const refused = await fetch(`${issuer}/interaction/${unknownId}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'password=x' });
    expect(refused.status).to.be.within(400, 499);
    const adminCall = await fetch(`${issuer}/api/v1/tenants/${DEFAULT_TENANT_ID}/users/${fixtures.userId}`);
    expect(adminCall.status).to.equal(401);

    const after = await scrape();
    const moved = (name: string, labels: Record<string, string>) => sampleValue(after, name, labels) - sampleValue(before, name, labels);
    expect(moved('idp_logins_total', { outcome: 'success' })).to.equal(1);
    expect(moved('idp_logins_total', { outcome: 'invalid_credentials' })).to.equal(1);
    expect(moved('idp_logins_total', { outcome: 'invalid_second_factor' })).to.equal(0);
    expect(moved('idp_tokens_issued_total', { grant_type: 'authorization_code' })).to.equal(1);
    expect(moved('idp_tokens_issued_total', { grant_type: 'client_credentials' })).to.equal(1);
    expect(moved('idp_tokens_issued_total', { grant_type: 'refresh_token' })).to.equal(1);

    const requests = (route: string, method: string, status: string) => moved('idp_http_request_duration_seconds_count', { method, route, status });
    expect(requests('token', 'POST', '200')).to.equal(3);
    expect(requests('/interaction/:uid/login', 'POST', '303')).to.equal(1);
    expect(requests('/interaction/:uid/login', 'POST', '401')).to.equal(1);
    expect(requests('authorization', 'GET', '303')).to.equal(2);
    expect(requests('unmatched', 'GET', '404')).to.equal(1);
    expect(requests('/api/v1/tenants/:tenantId/users/:userId', 'GET', '401')).to.equal(1);

    // Route labels are templates or oidc-provider route names: no id and no raw path gets in.
    const routes = new Set(after.get('idp_http_request_duration_seconds')!.samples.map((sample) => sample.labels.route));
    for (const route of routes) expect(route).to.match(/^(unmatched|[a-z_]+|(\/(:[A-Za-z]+|[a-z0-9.-]+))+|\/)$/);
    const raw = [unknownId, '/no/such', fixtures.userId, DEFAULT_TENANT_ID];
    expect([...routes].filter((route) => raw.some((part) => route.includes(part)))).to.deep.equal([]);
  });

  it('counts wrong second factors, the refused attempt and the lockout it begins', async () => {
    const before = await scrape();
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    let statuses: number[] = [];
    const stop = new Error('stopped after the lockout');
    const flow = authorizeWithLogin(config, issuer, {
      identifier: MFA_USER.email,
      password: MFA_USER.password,
      onPage: async ({ url, html, browser }) => {
        if (statuses.length) throw stop;
        let response!: Response;
        let page = html;
        // Five wrong codes are checked and refused; the sixth is not checked: the sign-in must start again.
        for (let attempt = 0; attempt < 6; attempt++) {
          response = await browser.submitForm(new URL(formAction(page, '/mfa'), url), { csrf: hiddenField(page, 'csrf'), code: '000000' });
          statuses.push(response.status);
          page = await response.clone().text();
        }
        return response;
      },
    });
    await expect(flow).to.be.rejectedWith(stop.message);
    expect(statuses).to.deep.equal([401, 401, 401, 401, 401, 401]);

    const after = await scrape();
    const moved = (name: string, labels: Record<string, string>) => sampleValue(after, name, labels) - sampleValue(before, name, labels);
    expect(moved('idp_logins_total', { outcome: 'invalid_second_factor' })).to.equal(5);
    expect(moved('idp_logins_total', { outcome: 'success' })).to.equal(0);
    expect(moved('idp_rate_limited_total', { limiter: 'second-factor-sign-in' })).to.equal(1);
    expect(moved('idp_lockouts_total', { limiter: 'second-factor-sign-in' })).to.equal(1);
    expect(moved('idp_rate_limited_total', { limiter: 'second-factor-person' })).to.equal(0);
  });
});
