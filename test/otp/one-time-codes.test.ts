// One-time codes through the real sign-in pages: a code by WhatsApp, SMS or e-mail instead of a
// password (the same answer whether an account exists or not), a code by SMS as the second factor,
// single use, the resend cool-down, five wrong tries void a code, the per-destination limit, and the
// embedded default's outbox standing in for an SMS provider.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as oidc from 'openid-client';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { createFixtures, type Fixtures } from '../helpers/fixtures.ts';
import { Browser, formAction, hiddenField } from '../helpers/browser.ts';
import { discover, REDIRECT_URI } from '../helpers/rp.ts';
import { startFakeMessaging, type FakeMessaging } from '../helpers/fake-messaging.ts';

const PASSWORD = 'a long enough password';
// Generous address limits: every request of the suite comes from 127.0.0.1.
const LIMITS = { RATE_LIMIT_OTP_SEND_PER_IP: '10000/600', RATE_LIMIT_OTP_PER_IP: '10000/300', RATE_LIMIT_LOGIN_PER_IP: '10000/60' };

// Each instance its own mail outbox (the server backend has no data directory of its own).
const outboxes: string[] = [];
function ownOutbox(): Record<string, string> {
  outboxes.push(mkdtempSync(path.join(tmpdir(), 'idp-otp-outbox-')));
  return { MAIL_OUTBOX_DIR: outboxes.at(-1)! };
}

after(() => {
  for (const directory of outboxes.splice(0)) rmSync(directory, { recursive: true, force: true });
});

interface Flow {
  browser: Browser;
  html: string;
  status: number;
  uid: string;
  verifier: string;
  state: string;
  nonce: string;
}

async function openSignIn(instance: Instance, config: oidc.Configuration, tenantSlug: string, browser = new Browser()): Promise<Flow> {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: 'openid email phone',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    tenant: tenantSlug,
  });
  const { response, url: page } = await browser.follow(url, instance.url);
  const html = await response.text();
  return { browser, html, status: response.status, uid: page.pathname.split('/')[2], verifier, state, nonce };
}

async function submit(instance: Instance, flow: Flow, pathEnding: string, fields: Record<string, string>): Promise<Response> {
  const response = await flow.browser.submitForm(new URL(formAction(flow.html, pathEnding), instance.url), { csrf: hiddenField(flow.html, 'csrf'), ...fields });
  flow.status = response.status;
  flow.html = response.status === 303 ? '' : await response.clone().text();
  return response;
}

// From the sign-in page to the code page: "Sign in with a code", then the address or number.
async function requestCode(instance: Instance, config: oidc.Configuration, tenantSlug: string, identifier: string, channel?: string): Promise<Flow> {
  const flow = await openSignIn(instance, config, tenantSlug);
  expect(flow.html).to.include(`/interaction/${flow.uid}/code"`);
  const page = await flow.browser.fetch(new URL(`/interaction/${flow.uid}/code`, instance.url));
  flow.html = await page.text();
  expect(page.status).to.equal(200);
  await submit(instance, flow, '/code', { identifier, ...(channel ? { channel } : {}) });
  return flow;
}

// A right code's redirect, followed back to the client, exchanged for tokens.
async function finish(instance: Instance, config: oidc.Configuration, flow: Flow, response: Response) {
  expect(response.status, flow.html.slice(0, 400)).to.equal(303);
  const { url } = await flow.browser.follow(new URL(response.headers.get('location')!, instance.url), instance.url);
  expect(url.origin, 'back at the client').to.not.equal(instance.url);
  return oidc.authorizationCodeGrant(config, url, { pkceCodeVerifier: flow.verifier, expectedState: flow.state, expectedNonce: flow.nonce });
}

function codeIn(text: string): string {
  const match = /\b(\d{6})\b/.exec(text);
  if (!match) throw new Error(`no code in ${text}`);
  return match[1];
}

// The page without what legitimately differs between two sign-ins.
function normalised(html: string, destination: string): string {
  return html
    .replace(/name="csrf" value="[^"]*"/g, '')
    .replace(/\/interaction\/[\w-]+/g, '/interaction/UID')
    .split(destination)
    .join('DESTINATION');
}

async function latestMailTo(instance: Instance, to: string) {
  await instance.runtime.mailer.idle();
  const outbox = instance.runtime.mailer.outbox!;
  const entry = (await outbox.list()).find((mail) => mail.to === to);
  return entry ? outbox.read(entry.id) : undefined;
}

async function mailsTo(instance: Instance, to: string): Promise<number> {
  await instance.runtime.mailer.idle();
  return (await instance.runtime.mailer.outbox!.list(1000)).filter((mail) => mail.to === to).length;
}

forEachBackend('one-time codes', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let fixtures: Fixtures;
  let config: oidc.Configuration;
  let fake: FakeMessaging;
  let acme: { id: string };

  before(async () => {
    fake = await startFakeMessaging();
    store = await backend.create();
    instance = await startInstance({ ...store.env, ...fake.env, ...LIMITS, ...ownOutbox() });
    fixtures = await createFixtures(instance.runtime);
    config = await discover(instance.url, fixtures.web.clientId, fixtures.web.clientSecret);
    acme = await instance.runtime.tenants.create({ slug: 'acme', displayName: 'Acme', policies: { oneTimeCodes: { signIn: ['email', 'sms', 'whatsapp'], secondFactor: [] } } });
    // National formatting with the country code: stored as E.164.
    await instance.runtime.users.create(acme.id, { email: 'wanda@acme.test', password: PASSWORD, emailVerified: true, phoneNumber: '+49 151 1234 5678', phoneNumberVerified: true });
    await instance.runtime.users.create(acme.id, { email: 'sam@acme.test', password: PASSWORD, emailVerified: true, phoneNumber: '0049 (151) 2345-6789', phoneNumberVerified: true });
    await instance.runtime.users.create(acme.id, { email: 'eve@acme.test', password: PASSWORD, emailVerified: true });
    // The same number verified for two people: it signs in nobody.
    await instance.runtime.users.create(acme.id, { email: 'twin1@acme.test', password: PASSWORD, phoneNumber: '+4915199990000', phoneNumberVerified: true });
    await instance.runtime.users.create(acme.id, { email: 'twin2@acme.test', password: PASSWORD, phoneNumber: '+4915199990000', phoneNumberVerified: true });
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
    await fake?.close();
  });

  it('keeps phone numbers in E.164 and refuses what is no phone number', async () => {
    const { items } = await instance.runtime.users.list(acme.id, { email: 'sam@acme.test' });
    expect(items[0].phoneNumber).to.equal('+4915123456789');
    let refused: { fields?: Record<string, string> } | undefined;
    await instance.runtime.users.create(acme.id, { email: 'x@acme.test', phoneNumber: '0151 23456789' }).catch((error) => (refused = error));
    expect(refused?.fields?.phoneNumber).to.match(/E\.164/);
  });

  it('offers no code sign-in where the policy does not allow it (the default)', async () => {
    const flow = await openSignIn(instance, config, 'default');
    expect(flow.html).to.include('/login"');
    expect(flow.html).to.not.include(`/interaction/${flow.uid}/code"`);
    const page = await flow.browser.fetch(new URL(`/interaction/${flow.uid}/code`, instance.url));
    expect(await page.text()).to.not.include('name="channel"');
  });

  it('signs in with a WhatsApp code: the template carries the code in body and button; the code works once and a resend waits', async () => {
    const before = fake.whatsapp.messages.length;
    const flow = await requestCode(instance, config, 'acme', '+49 151 1234 5678', 'whatsapp');
    expect(flow.status).to.equal(200);
    expect(flow.html).to.include('+4915112345678');
    await instance.runtime.mailer.idle();
    expect(fake.whatsapp.messages.length).to.equal(before + 1);
    const sent = fake.whatsapp.messages.at(-1)!;
    expect(sent.path).to.equal(`/v21.0/${fake.whatsapp.phoneNumberId}/messages`);
    expect(sent.authorization).to.equal(`Bearer ${fake.whatsapp.accessToken}`);
    const body = JSON.parse(sent.body);
    expect(body).to.deep.include({ messaging_product: 'whatsapp', recipient_type: 'individual', to: '4915112345678', type: 'template' });
    expect(body.template.name).to.equal('sign_in_code');
    expect(body.template.language).to.deep.equal({ code: 'de' });
    const [bodyComponent, button] = body.template.components;
    expect(bodyComponent.type).to.equal('body');
    expect(button).to.deep.include({ type: 'button', sub_type: 'url', index: '0' });
    const code = bodyComponent.parameters[0].text;
    expect(code).to.match(/^\d{6}$/);
    expect(button.parameters[0]).to.deep.equal({ type: 'text', text: code });

    // Within the cool-down a second sign-in sends nothing and says how long to wait.
    const second = await requestCode(instance, config, 'acme', '+4915112345678', 'whatsapp');
    expect(second.status).to.equal(200);
    expect(second.html).to.match(/You can ask for a new code in \d+ seconds/);
    await submit(instance, second, '/code/resend', {});
    expect(second.html).to.match(/You can ask for a new code in \d+ seconds/);
    await instance.runtime.mailer.idle();
    expect(fake.whatsapp.messages.length).to.equal(before + 1);

    const tokens = await finish(instance, config, flow, await submit(instance, flow, '/code/verify', { code }));
    expect(tokens.claims()!.amr).to.deep.equal(['otp']);
    expect(tokens.claims()!.tenant_id).to.equal(acme.id);

    // Used once: the same code again is refused.
    const reuse = await submit(instance, second, '/code/verify', { code });
    expect(reuse.status).to.equal(401);
    expect(second.html).to.include('role="alert"');
  });

  it('signs in with an SMS code sent to the provider as JSON with its Authorization header', async () => {
    const before = fake.sms.requests.length;
    const flow = await requestCode(instance, config, 'acme', '+49 151 23456789', 'sms');
    await instance.runtime.mailer.idle();
    expect(fake.sms.requests.length).to.equal(before + 1);
    const sent = fake.sms.requests.at(-1)!;
    expect(sent.authorization).to.equal(fake.sms.authorization);
    expect(sent.contentType).to.equal('application/json');
    const body = JSON.parse(sent.body);
    expect(body.to).to.equal('+4915123456789');
    expect(body.from).to.equal('Identity');
    const code = codeIn(body.text);
    const wrong = await submit(instance, flow, '/code/verify', { code: code === '000000' ? '111111' : '000000' });
    expect(wrong.status).to.equal(401);
    const tokens = await finish(instance, config, flow, await submit(instance, flow, '/code/verify', { code }));
    expect(tokens.claims()!.amr).to.deep.equal(['sms']);
  });

  it('answers an unknown number, and a number two people share, with the same page, and sends nothing', async () => {
    const before = fake.sms.requests.length;
    const unknown = await requestCode(instance, config, 'acme', '+4915112340000', 'sms');
    await instance.runtime.mailer.idle();
    expect(fake.sms.requests.length).to.equal(before);
    await instance.runtime.users.create(acme.id, { email: 'late@acme.test', phoneNumber: '+4915112349999', phoneNumberVerified: true });
    const known = await requestCode(instance, config, 'acme', '+4915112349999', 'sms');
    await instance.runtime.mailer.idle();
    expect(fake.sms.requests.length).to.equal(before + 1);
    const shared = await requestCode(instance, config, 'acme', '+4915199990000', 'sms');
    await instance.runtime.mailer.idle();
    expect(fake.sms.requests.length).to.equal(before + 1);
    expect([unknown.status, known.status, shared.status]).to.deep.equal([200, 200, 200]);
    expect(normalised(unknown.html, '+4915112340000')).to.equal(normalised(known.html, '+4915112349999'));
    expect(normalised(shared.html, '+4915199990000')).to.equal(normalised(known.html, '+4915112349999'));
    // Whatever is typed, nobody is signed in.
    const guess = await submit(instance, unknown, '/code/verify', { code: '123456' });
    expect(guess.status).to.equal(401);
    expect(unknown.html).to.include('role="alert"');
  });

  it('sends an e-mail code to the outbox; five wrong tries void it', async () => {
    const flow = await requestCode(instance, config, 'acme', 'Eve@acme.test');
    expect(flow.status).to.equal(200);
    const mail = await latestMailTo(instance, 'eve@acme.test');
    expect(mail?.subject).to.equal('Your one-time code');
    const code = codeIn(mail!.text);
    const wrongCode = code === '999999' ? '888888' : '999999';
    for (let attempt = 0; attempt < 5; attempt++) {
      expect((await submit(instance, flow, '/code/verify', { code: wrongCode })).status).to.equal(401);
    }
    const tooLate = await submit(instance, flow, '/code/verify', { code });
    expect(tooLate.status).to.equal(401);
    expect(flow.html).to.include('role="alert"');
  });

  it('lets exactly one of two parallel sign-ins with the same code through', async () => {
    await instance.runtime.users.create(acme.id, { email: 'pat@acme.test', password: PASSWORD, emailVerified: true });
    const first = await requestCode(instance, config, 'acme', 'pat@acme.test');
    const second = await requestCode(instance, config, 'acme', 'pat@acme.test');
    const code = codeIn((await latestMailTo(instance, 'pat@acme.test'))!.text);
    const answers = await Promise.all([first, second].map((flow) => flow.browser.submitForm(new URL(`/interaction/${flow.uid}/code/verify`, instance.url), { csrf: hiddenField(flow.html, 'csrf'), code })));
    expect(answers.map((answer) => answer.status).sort()).to.deep.equal([303, 401]);
  });

  it('offers a code by SMS as the second factor after the password, without an authenticator app', async () => {
    const globex = await instance.runtime.tenants.create({ slug: 'globex', displayName: 'Globex', policies: { mfa: 'all', oneTimeCodes: { signIn: [], secondFactor: ['sms'] } } });
    await instance.runtime.users.create(globex.id, { email: 'hank@globex.test', password: PASSWORD, emailVerified: true, phoneNumber: '+4915155550000', phoneNumberVerified: true });
    const flow = await openSignIn(instance, config, 'globex');
    expect(flow.html).to.not.include(`/interaction/${flow.uid}/code"`);
    await submit(instance, flow, '/login', { identifier: 'hank@globex.test', password: PASSWORD });
    expect(flow.status).to.equal(200);
    expect(flow.html).to.include('/mfa/code"');
    expect(flow.html).to.not.include('/mfa/enrol');
    expect(flow.html).to.not.include(`action="/interaction/${flow.uid}/mfa"`);
    // Without an app, an app's code is wrong, and the page still offers the SMS.
    await flow.browser.submitForm(new URL(`/interaction/${flow.uid}/mfa`, instance.url), { csrf: hiddenField(flow.html, 'csrf'), code: '123456' }).then(async (response) => {
      expect(response.status).to.equal(401);
      flow.html = await response.text();
    });
    expect(flow.html).to.include('/mfa/code"');
    expect(flow.html).to.not.include(`action="/interaction/${flow.uid}/mfa"`);
    const before = fake.sms.requests.length;
    await submit(instance, flow, '/mfa/code', { channel: 'sms' });
    expect(flow.status).to.equal(200);
    expect(flow.html).to.not.include('4915155550000');
    await instance.runtime.mailer.idle();
    expect(fake.sms.requests.length).to.equal(before + 1);
    const sent = JSON.parse(fake.sms.requests.at(-1)!.body);
    expect(sent.to).to.equal('+4915155550000');
    const wrong = await submit(instance, flow, '/mfa/code/verify', { code: '000000' === codeIn(sent.text) ? '111111' : '000000' });
    expect(wrong.status).to.equal(401);
    const tokens = await finish(instance, config, flow, await submit(instance, flow, '/mfa/code/verify', { code: codeIn(sent.text) }));
    expect(tokens.claims()!.amr).to.deep.equal(['pwd', 'sms', 'mfa']);
  });

  describe('the service other flows call (runtime.oneTimeCodes), with a Twilio-style SMS provider', () => {
    let formal: Instance;
    let formalStore: BackendEnv;
    const destination = '+4915166660000';

    before(async () => {
      formalStore = await backend.create();
      formal = await startInstance({ ...formalStore.env, ...fake.env, ...LIMITS, ...ownOutbox(), SMS_PROVIDER_FORMAT: 'form', OTP_RESEND_COOLDOWN_SECONDS: '0' });
    });
    after(async () => {
      await formal?.stop();
      await formalStore?.cleanup();
    });

    it('posts To, From and Body as a form; a code is good only for its purpose, once', async () => {
      const codes = formal.runtime.oneTimeCodes;
      expect(['email', 'sms', 'whatsapp'].map((channel) => codes.available(channel as 'sms'))).to.deep.equal([true, true, true]);
      const request = { tenantId: acme.id, purpose: 'link' as const, channel: 'sms' as const, destination, ip: '192.0.2.7', locale: 'de' };
      const before = fake.sms.requests.length;
      expect(await codes.send(request)).to.deep.equal({ status: 'sent', resendAfterSeconds: 0 });
      await formal.runtime.mailer.idle();
      expect(fake.sms.requests.length).to.equal(before + 1);
      const sent = fake.sms.requests.at(-1)!;
      expect(sent.contentType).to.equal('application/x-www-form-urlencoded');
      expect(sent.authorization).to.equal(fake.sms.authorization);
      const form = new URLSearchParams(sent.body);
      expect(form.get('To')).to.equal(destination);
      expect(form.get('From')).to.equal('Identity');
      expect(form.get('Body')).to.include('Bestätigungscode');
      const code = codeIn(form.get('Body')!);
      const asked = { tenantId: acme.id, channel: 'sms' as const, destination, code };
      expect(await codes.verify({ ...asked, purpose: 'sign-in' })).to.equal(false);
      const parallel = await Promise.all([codes.verify({ ...asked, purpose: 'link' }), codes.verify({ ...asked, purpose: 'link' })]);
      expect(parallel.sort()).to.deep.equal([false, true]);
      expect(await codes.verify({ ...asked, purpose: 'link' })).to.equal(false);
    });
  });

  describe('without messaging providers', () => {
    let bare: Instance;
    let bareStore: BackendEnv;
    let bareConfig: oidc.Configuration;

    before(async () => {
      bareStore = await backend.create();
      bare = await startInstance({ ...bareStore.env, ...LIMITS, ...ownOutbox(), OTP_RESEND_COOLDOWN_SECONDS: '0', RATE_LIMIT_OTP_SEND_PER_DESTINATION: '3/3600' });
      const bareFixtures = await createFixtures(bare.runtime);
      bareConfig = await discover(bare.url, bareFixtures.web.clientId, bareFixtures.web.clientSecret);
      const tenant = await bare.runtime.tenants.create({ slug: 'initech', displayName: 'Initech', policies: { oneTimeCodes: { signIn: ['email', 'sms'], secondFactor: [] } } });
      await bare.runtime.users.create(tenant.id, { email: 'milton@initech.test', password: PASSWORD, emailVerified: true, phoneNumber: '+4915177770000', phoneNumberVerified: true });
    });
    after(async () => {
      await bare?.stop();
      await bareStore?.cleanup();
    });

    it('limits the codes sent to one destination', async () => {
      const before = await mailsTo(bare, 'milton@initech.test');
      for (let send = 0; send < 3; send++) {
        const flow = await requestCode(bare, bareConfig, 'initech', 'milton@initech.test');
        expect(flow.status).to.equal(200);
      }
      const limited = await requestCode(bare, bareConfig, 'initech', 'milton@initech.test');
      expect(limited.status).to.equal(429);
      expect(limited.html).to.include('Too many codes were asked for');
      expect(await mailsTo(bare, 'milton@initech.test')).to.equal(before + 3);
    });

    if (backend.name.startsWith('embedded')) {
      it('puts an SMS into the local outbox on the embedded default, and the code signs in', async () => {
        const flow = await requestCode(bare, bareConfig, 'initech', '+49 151 77770000', 'sms');
        expect(flow.status).to.equal(200);
        const mail = await latestMailTo(bare, '+4915177770000');
        expect(mail?.subject).to.match(/^SMS/);
        const tokens = await finish(bare, bareConfig, flow, await submit(bare, flow, '/code/verify', { code: codeIn(mail!.text) }));
        expect(tokens.claims()!.amr).to.deep.equal(['sms']);
      });
    } else {
      it('offers no SMS without a provider beyond the embedded default', async () => {
        const before = await mailsTo(bare, '+4915177770000');
        const flow = await requestCode(bare, bareConfig, 'initech', '+4915177770000', 'sms');
        expect(flow.status).to.equal(400);
        expect(flow.html).to.not.include('name="channel"');
        expect(await mailsTo(bare, '+4915177770000')).to.equal(before);
      });
    }
  });
});
