// A person's own phone number through the account pages and /api/v1/me/phone: a code by SMS or
// WhatsApp (local fakes of the providers) to the new number, a wrong code refused, the right one
// stores the number in E.164 and verified (audited as the person's own user.update); the number
// then serves as the second factor at sign-in; removal, refused while it is the only second factor
// a required MFA relies on; the resend cool-down; a tenant without phone codes offers nothing.
import { expect } from 'chai';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { createFixtures, type Fixtures } from '../helpers/fixtures.ts';
import { Browser, formAction, hiddenField } from '../helpers/browser.ts';
import { discover, loginWithCode } from '../helpers/rp.ts';
import { startFakeMessaging, type FakeMessaging } from '../helpers/fake-messaging.ts';
import type { Tenant } from '../../src/tenants/service.ts';

const PASSWORD = 'a long and unusual passphrase 42';
// Generous address limits: every request of the suite comes from 127.0.0.1.
const LIMITS = { RATE_LIMIT_OTP_SEND_PER_IP: '10000/600', RATE_LIMIT_OTP_PER_IP: '10000/300', RATE_LIMIT_LOGIN_PER_IP: '10000/60' };

interface Page {
  status: number;
  html: string;
}

function codeIn(text: string): string {
  const match = /\b(\d{6})\b/.exec(text);
  if (!match) throw new Error(`no code in ${text}`);
  return match[1];
}

async function json(response: Response): Promise<Record<string, unknown>> {
  return (await response.json()) as Record<string, unknown>;
}

function wrongCode(code: string): string {
  return code === '000000' ? '111111' : '000000';
}

forEachBackend('self-service phone number', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let fixtures: Fixtures;
  let issuer: string;
  let fake: FakeMessaging;

  before(async () => {
    fake = await startFakeMessaging();
    store = await backend.create();
    instance = await startInstance({ ...store.env, ...fake.env, ...LIMITS });
    issuer = instance.url;
    fixtures = await createFixtures(instance.runtime);
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
    await fake?.close();
  });

  async function tenantWith(slug: string, oneTimeCodes: { signIn: Array<'email' | 'sms' | 'whatsapp'>; secondFactor: Array<'email' | 'sms' | 'whatsapp'> }): Promise<Tenant> {
    return instance.runtime.tenants.create({ slug, displayName: slug, policies: { oneTimeCodes } });
  }

  async function setMfa(tenant: Tenant, mfa: 'off' | 'all'): Promise<void> {
    const current = await instance.runtime.tenants.get(tenant.id);
    await instance.runtime.tenants.update(tenant.id, current.version, { policies: { ...current.policies, mfa } });
  }

  // Opens an account page of the tenant, signing in through the provider's login form when asked.
  async function openAccount(browser: Browser, path: string, tenantSlug: string, credentials: { email: string; password: string }): Promise<Page> {
    let { response, url } = await browser.follow(`${issuer}${path}?tenant=${tenantSlug}`, issuer);
    let html = await response.text();
    if (url.pathname.startsWith('/interaction/')) {
      const login = await browser.submitForm(new URL(`${url.pathname}/login`, issuer), { csrf: hiddenField(html, 'csrf'), identifier: credentials.email, password: credentials.password });
      expect(login.status, 'login accepted').to.equal(303);
      ({ response, url } = await browser.follow(new URL(login.headers.get('location')!, issuer), issuer));
      html = await response.text();
    }
    expect(url.pathname).to.equal(path);
    return { status: response.status, html };
  }

  // Posts a form of the page; a redirect is followed to the page it names.
  async function post(browser: Browser, page: Page, action: string, fields: Record<string, string> = {}): Promise<Page & { response: Response }> {
    const response = await browser.submitForm(new URL(formAction(page.html, action), issuer), { csrf: hiddenField(page.html, 'csrf'), ...fields });
    if (response.status !== 303) return { response, status: response.status, html: await response.clone().text() };
    const location = response.headers.get('location')!;
    const next = await browser.fetch(new URL(location, issuer));
    return { response, status: next.status, html: await next.text() };
  }

  async function lastSms(): Promise<{ to: string; text: string }> {
    await instance.runtime.mailer.idle();
    return JSON.parse(fake.sms.requests.at(-1)!.body);
  }

  async function lastWhatsApp(): Promise<{ to: string; code: string }> {
    await instance.runtime.mailer.idle();
    const body = JSON.parse(fake.whatsapp.messages.at(-1)!.body);
    return { to: body.to, code: body.template.components[0].parameters[0].text };
  }

  function bearer(token: string): Record<string, string> {
    return { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  }

  it('adds a number on the account page: SMS code, wrong code 401, right code stores E.164 verified; it is then the second factor; removal', async () => {
    const tenant = await tenantWith('phone-page', { signIn: [], secondFactor: ['sms', 'whatsapp'] });
    const person = { email: 'alice@phone-page.test', password: PASSWORD };
    const user = await instance.runtime.users.create(tenant.id, { ...person, emailVerified: true });
    const browser = new Browser();

    let page = await openAccount(browser, '/account/phone', 'phone-page', person);
    expect(page.status).to.equal(200);
    expect(page.html).to.include('You have not added a phone number.');
    expect(page.html).to.include('action="/account/phone/send"');
    expect(page.html).to.include('value="sms"').and.to.include('value="whatsapp"');
    expect(page.html).to.include('href="/account/phone" aria-current="page"');

    // Without a country code the number cannot be told apart: refused, nothing sent.
    const smsBefore = fake.sms.requests.length;
    const national = await post(browser, page, '/account/phone/send', { phoneNumber: '0151 2345 6701', channel: 'sms' });
    expect(national.status).to.equal(422);
    expect(national.html).to.include('Enter it with its country code');
    expect(national.html).to.match(/id="phoneNumber"[^>]*aria-invalid="true"/);

    const sent = await post(browser, national, '/account/phone/send', { phoneNumber: '+49 (151) 2345-6701', channel: 'sms' });
    expect(sent.response.status).to.equal(303);
    expect(sent.response.headers.get('location')).to.equal('/account/phone?notice=phoneCodeSent');
    const message = await lastSms();
    expect(fake.sms.requests.length).to.equal(smsBefore + 1);
    expect(message.to).to.equal('+4915123456701');
    const code = codeIn(message.text);
    page = sent;
    expect(page.html).to.include('action="/account/phone/verify"');
    expect(page.html).to.include('+49•••••••••01');
    expect(page.html, 'the page shows the number masked').to.not.include('4915123456701');

    // Within the cool-down another code waits, and the page says how long.
    const again = await post(browser, page, '/account/phone/resend');
    expect(again.status).to.equal(429);
    expect(Number(again.response.headers.get('retry-after'))).to.be.within(1, 30);
    expect(again.html).to.match(/You can ask for a new code in \d+ seconds/);
    await instance.runtime.mailer.idle();
    expect(fake.sms.requests.length).to.equal(smsBefore + 1);

    const wrong = await post(browser, page, '/account/phone/verify', { code: wrongCode(code) });
    expect(wrong.status).to.equal(401);
    expect(wrong.html).to.include('role="alert"').and.to.include('That code is not correct');
    expect((await instance.runtime.users.get(tenant.id, user.id)).phoneNumber, 'nothing stored').to.equal(null);

    const verified = await post(browser, wrong, '/account/phone/verify', { code });
    expect(verified.response.headers.get('location')).to.equal('/account/phone?notice=phoneVerified');
    expect(verified.html).to.include('Your number: +49•••••••••01 (verified).');
    const stored = await instance.runtime.users.get(tenant.id, user.id);
    expect([stored.phoneNumber, stored.phoneNumberVerified]).to.deep.equal(['+4915123456701', true]);
    const audit = await instance.runtime.audit.list(tenant.id, { type: 'user.update', target: user.id }, undefined, 10);
    expect(audit.items).to.have.length(1);
    expect(audit.items[0].actor?.id).to.equal(user.id);
    expect((audit.items[0].details.changes as Array<{ field: string }>).map((change) => change.field)).to.have.members(['phoneNumber', 'phoneNumberVerified']);

    // The verified number is now a second factor: with MFA required, the sign-in offers an SMS code.
    await setMfa(tenant, 'all');
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    let mfaPage = '';
    const { tokens } = await loginWithCode(config, issuer, {
      identifier: person.email,
      password: person.password,
      scope: 'openid phone',
      extraParams: { tenant: 'phone-page' },
      onPage: async ({ url, html, browser: signInBrowser }) => {
        mfaPage = html;
        expect(html).to.include('/mfa/code"');
        const uid = url.pathname.split('/')[2];
        const asked = await signInBrowser.submitForm(new URL(`/interaction/${uid}/mfa/code`, issuer), { csrf: hiddenField(html, 'csrf'), channel: 'sms' });
        expect(asked.status).to.equal(200);
        const codePage = await asked.text();
        const sms = await lastSms();
        expect(sms.to).to.equal('+4915123456701');
        return signInBrowser.submitForm(new URL(`/interaction/${uid}/mfa/code/verify`, issuer), { csrf: hiddenField(codePage, 'csrf'), code: codeIn(sms.text) });
      },
    });
    expect(mfaPage, 'the second-factor page was shown').to.not.equal('');
    expect(tokens.claims()!.amr).to.deep.equal(['pwd', 'sms', 'mfa']);

    // The only second factor a required MFA relies on stays.
    page = await openAccount(browser, '/account/phone', 'phone-page', person);
    const refused = await post(browser, page, '/account/phone/remove');
    expect(refused.status).to.equal(409);
    expect(refused.html).to.include('role="alert"').and.to.include('this number is your only second factor');
    expect((await instance.runtime.users.get(tenant.id, user.id)).phoneNumber).to.equal('+4915123456701');

    await setMfa(tenant, 'off');
    const removed = await post(browser, refused, '/account/phone/remove');
    expect(removed.response.headers.get('location')).to.equal('/account/phone?notice=phoneRemoved');
    expect(removed.html).to.include('You have not added a phone number.');
    const after = await instance.runtime.users.get(tenant.id, user.id);
    expect([after.phoneNumber, after.phoneNumberVerified]).to.deep.equal([null, false]);
  });

  it('replaces a number through /api/v1/me/phone by WhatsApp: 202, cool-down 429, wrong code 422, right code 200, single use, DELETE 204', async () => {
    const tenant = await tenantWith('phone-api', { signIn: ['whatsapp'], secondFactor: [] });
    const person = { email: 'bob@phone-api.test', password: PASSWORD };
    const user = await instance.runtime.users.create(tenant.id, { ...person, emailVerified: true, phoneNumber: '+4915100000001', phoneNumberVerified: true });
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const { tokens } = await loginWithCode(config, issuer, { identifier: person.email, password: person.password, extraParams: { tenant: 'phone-api' } });
    const headers = bearer(tokens.access_token);
    const api = (path: string, method: string, body?: unknown) => fetch(`${issuer}/api/v1/me/phone${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });

    const status = await api('', 'GET');
    expect(status.status).to.equal(200);
    expect(await json(status)).to.deep.include({ phoneNumber: '+4915100000001', phoneNumberVerified: true, channels: ['whatsapp'], pending: null });

    // Like setting up an authenticator app: the current password, not the token alone.
    const noPassword = await api('/verification', 'POST', { phoneNumber: '+49 151 0000 0002', channel: 'whatsapp' });
    expect(noPassword.status).to.equal(422);
    expect((await json(noPassword)).errors).to.deep.equal({ currentPassword: 'required' });
    const wrongPassword = await api('/verification', 'POST', { phoneNumber: '+49 151 0000 0002', channel: 'whatsapp', currentPassword: 'not it' });
    expect((await json(wrongPassword)).errors).to.deep.equal({ currentPassword: 'not correct' });
    const invalid = await api('/verification', 'POST', { phoneNumber: '12', channel: 'whatsapp', currentPassword: PASSWORD });
    expect(invalid.status).to.equal(422);
    expect(invalid.headers.get('content-type')).to.include('application/problem+json');
    expect((await json(invalid)).errors).to.have.property('phoneNumber');
    const notOffered = await api('/verification', 'POST', { phoneNumber: '+49 151 0000 0002', channel: 'sms', currentPassword: PASSWORD });
    expect(notOffered.status).to.equal(422);
    expect((await json(notOffered)).errors).to.have.property('channel');

    const requested = await api('/verification', 'POST', { phoneNumber: '+49 151 0000 0002', channel: 'whatsapp', currentPassword: PASSWORD });
    expect(requested.status).to.equal(202);
    expect(await json(requested)).to.deep.equal({ channel: 'whatsapp', resendAfterSeconds: 30 });
    const message = await lastWhatsApp();
    expect(message.to).to.equal('4915100000002');
    expect((await json(await api('', 'GET'))).pending).to.deep.include({ masked: '+49•••••••••02', channel: 'whatsapp' });

    const cooling = await api('/verification', 'POST', { phoneNumber: '+4915100000002', channel: 'whatsapp', currentPassword: PASSWORD });
    expect(cooling.status).to.equal(429);
    expect(cooling.headers.get('content-type')).to.include('application/problem+json');
    expect(Number(cooling.headers.get('retry-after'))).to.be.within(1, 30);
    await instance.runtime.mailer.idle();
    expect(fake.whatsapp.messages.filter((sent) => JSON.parse(sent.body).to === '4915100000002')).to.have.length(1);

    const wrong = await api('', 'POST', { phoneNumber: '+4915100000002', channel: 'whatsapp', code: wrongCode(message.code) });
    expect(wrong.status).to.equal(422);
    expect((await json(wrong)).errors).to.deep.equal({ code: 'not correct' });
    expect((await instance.runtime.users.get(tenant.id, user.id)).phoneNumber, 'the earlier number stays').to.equal('+4915100000001');

    const confirmed = await api('', 'POST', { phoneNumber: '+49 151 0000 0002', channel: 'whatsapp', code: message.code });
    expect(confirmed.status).to.equal(200);
    expect(await json(confirmed)).to.deep.include({ phoneNumber: '+4915100000002', phoneNumberVerified: true, pending: null });
    const me = await json(await fetch(`${issuer}/api/v1/me`, { headers }));
    expect([me.phoneNumber, me.phoneNumberVerified]).to.deep.equal(['+4915100000002', true]);

    const reused = await api('', 'POST', { phoneNumber: '+4915100000002', channel: 'whatsapp', code: message.code });
    expect(reused.status).to.equal(409);

    const removed = await api('', 'DELETE');
    expect(removed.status).to.equal(204);
    const after = await instance.runtime.users.get(tenant.id, user.id);
    expect([after.phoneNumber, after.phoneNumberVerified]).to.deep.equal([null, false]);
  });

  it('offers nothing where the tenant lists no phone channel', async () => {
    const tenant = await tenantWith('phone-off', { signIn: ['email'], secondFactor: ['email'] });
    const person = { email: 'carol@phone-off.test', password: PASSWORD };
    await instance.runtime.users.create(tenant.id, { ...person, emailVerified: true });
    const page = await openAccount(new Browser(), '/account/phone', 'phone-off', person);
    expect(page.status).to.equal(200);
    expect(page.html).to.include('not enabled for your organization');
    expect(page.html).to.not.include('action="/account/phone/send"');

    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const { tokens } = await loginWithCode(config, issuer, { identifier: person.email, password: person.password, extraParams: { tenant: 'phone-off' } });
    const refused = await fetch(`${issuer}/api/v1/me/phone/verification`, { method: 'POST', headers: bearer(tokens.access_token), body: JSON.stringify({ phoneNumber: '+4915100000003', channel: 'sms', currentPassword: PASSWORD }) });
    expect(refused.status).to.equal(403);
    expect((await json(refused)).detail).to.include('not enabled');
    await instance.runtime.mailer.idle();
    expect(fake.sms.requests.some((sent) => JSON.parse(sent.body).to === '+4915100000003')).to.equal(false);
  });

  it('lets two people of a tenant verify the same number', async () => {
    const tenant = await tenantWith('phone-shared', { signIn: [], secondFactor: ['sms'] });
    await instance.runtime.users.create(tenant.id, { email: 'first@phone-shared.test', password: PASSWORD, phoneNumber: '+4915100000004', phoneNumberVerified: true });
    const person = { email: 'second@phone-shared.test', password: PASSWORD };
    const user = await instance.runtime.users.create(tenant.id, { ...person, emailVerified: true });
    const browser = new Browser();
    const page = await openAccount(browser, '/account/phone', 'phone-shared', person);
    expect(page.html, 'one channel: no choice to make').to.include('type="hidden" name="channel" value="sms"');
    const sent = await post(browser, page, '/account/phone/send', { phoneNumber: '0049 151 0000 0004', channel: 'sms' });
    expect(sent.status).to.equal(200);
    const verified = await post(browser, sent, '/account/phone/verify', { code: codeIn((await lastSms()).text) });
    expect(verified.response.status).to.equal(303);
    expect((await instance.runtime.users.get(tenant.id, user.id)).phoneNumberVerified).to.equal(true);
  });
});
