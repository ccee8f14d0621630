// The password lifecycle through HTTP against started instances: reset by mail (single use,
// expiry, hashed token, unknown addresses indistinguishable), the tenant's password policy on every
// path that sets a password, the administrator's reset, expiry, e-mail verification and
// registration of an address that exists.
import { expect } from 'chai';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { clientCredentialsToken } from '../helpers/fixtures.ts';
import { Browser, hiddenField } from '../helpers/browser.ts';
import { ADMIN_API_PERMISSIONS } from '../../src/tenants/system-roles.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import { withTenant } from '../../src/store/tenant-scope.ts';

interface StoredMail {
  id: string;
  to: string;
  subject: string;
  text: string;
  html: string;
}

const PASSWORD = 'a long enough password';

forEachBackend('password lifecycle', (backend) => {
  let store: BackendEnv;
  let outboxDir: string;
  let instance: Instance;
  let token: string;
  let tenant: { id: string; slug: string };

  function api(method: string, apiPath: string, body?: unknown, headers: Record<string, string> = {}) {
    return fetch(`${instance.url}/api/v1${apiPath}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async function createTenant(slug: string, policies: Record<string, unknown>, extra: Record<string, unknown> = {}) {
    const response = await api('POST', '/tenants', { slug, displayName: `Tenant ${slug}`, policies, ...extra });
    expect(response.status, await response.clone().text()).to.equal(201);
    return { id: ((await response.json()) as { id: string }).id, slug };
  }

  async function createUser(tenantId: string, email: string, password = PASSWORD): Promise<{ id: string; etag: string }> {
    const response = await api('POST', `/tenants/${tenantId}/users`, { email, password });
    expect(response.status, await response.clone().text()).to.equal(201);
    return { id: ((await response.json()) as { id: string }).id, etag: response.headers.get('etag')! };
  }

  // Every mail the outbox holds, once the mail started so far has been written.
  async function mails(): Promise<StoredMail[]> {
    await instance.runtime.mailer.idle();
    return readdirSync(outboxDir)
      .filter((name) => name.endsWith('.json'))
      .sort()
      .map((name) => JSON.parse(readFileSync(path.join(outboxDir, name), 'utf8')) as StoredMail);
  }

  async function mailsTo(address: string): Promise<StoredMail[]> {
    return (await mails()).filter((mail) => mail.to === address);
  }

  function linkIn(mail: StoredMail, pathname: string): string {
    const match = mail.text.match(new RegExp(`https?://\\S+${pathname}\\?token=[A-Za-z0-9_-]+`));
    if (!match) throw new Error(`no ${pathname} link in the mail`);
    return match[0];
  }

  async function page(browser: Browser, url: string): Promise<{ status: number; html: string }> {
    const response = await browser.fetch(url);
    return { status: response.status, html: await response.text() };
  }

  async function submit(browser: Browser, url: string, fields: Record<string, string>): Promise<{ status: number; html: string }> {
    const response = await browser.submitForm(url, fields);
    return { status: response.status, html: await response.text() };
  }

  async function requestReset(browser: Browser, email: string, slug = tenant.slug) {
    const form = await page(browser, `${instance.url}/password/forgot?tenant=${slug}`);
    expect(form.status).to.equal(200);
    return submit(browser, `${instance.url}/password/forgot`, { csrf: hiddenField(form.html, 'csrf'), tenant: slug, email });
  }

  async function resetLinkFor(email: string): Promise<string> {
    await requestReset(new Browser(), email);
    const received = (await mailsTo(email)).filter((mail) => mail.subject === 'Reset your password');
    expect(received.length).to.be.greaterThan(0);
    return linkIn(received.at(-1)!, '/password/reset');
  }

  async function openResetForm(browser: Browser, link: string) {
    const form = await page(browser, link);
    expect(form.status, form.html).to.equal(200);
    return { csrf: hiddenField(form.html, 'csrf'), token: hiddenField(form.html, 'token') };
  }

  before(async () => {
    store = await backend.create();
    outboxDir = mkdtempSync(path.join(tmpdir(), 'idp-outbox-'));
    instance = await startInstance({ ...store.env, MAIL_OUTBOX_DIR: outboxDir });
    const { runtime } = instance;
    const { client, clientSecret } = await runtime.clients.create({ name: 'platform admin', grantTypes: ['client_credentials'], tenantId: DEFAULT_TENANT_ID });
    await runtime.rbac.assign(DEFAULT_TENANT_ID, (await runtime.rbac.roleIdByName(DEFAULT_TENANT_ID, 'root-admin'))!, 'client', client.clientId);
    const response = await clientCredentialsToken(instance.url, { clientId: client.clientId, clientSecret: clientSecret! }, { resource: runtime.adminApi, scope: ADMIN_API_PERMISSIONS.join(' ') });
    token = ((await response.json()) as { access_token: string }).access_token;
    tenant = await createTenant('acme', { password: { minLength: 12, historySize: 2 } }, { selfRegistration: true });
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
    if (outboxDir) rmSync(outboxDir, { recursive: true, force: true });
  });

  describe('reset by mail', () => {
    it('answers a known and an unknown address alike, and mails only the known one, its token stored hashed', async () => {
      const known = 'known@acme.example';
      const unknown = 'nobody@acme.example';
      await createUser(tenant.id, known);
      const browser = new Browser();
      const forUnknown = await requestReset(browser, unknown);
      const forKnown = await requestReset(browser, known);
      expect(forKnown.status).to.equal(200);
      expect(forUnknown.status).to.equal(forKnown.status);
      expect(forKnown.html.replaceAll(known, 'ADDRESS')).to.equal(forUnknown.html.replaceAll(unknown, 'ADDRESS'));
      expect(forKnown.html).to.include('If an account exists for');

      expect(await mailsTo(unknown)).to.have.length(0);
      const received = await mailsTo(known);
      expect(received).to.have.length(1);
      expect(received[0].subject).to.equal('Reset your password');
      const link = linkIn(received[0], '/password/reset');
      expect(link.startsWith(`${instance.url}/password/reset?token=`)).to.equal(true);

      const secret = new URL(link).searchParams.get('token')!;
      const rows = await instance.runtime.db('user_tokens').where({ purpose: 'password_reset' });
      expect(rows).to.have.length(1);
      expect(rows[0].token_hash).to.equal(createHash('sha256').update(secret).digest('hex'));
      expect(JSON.stringify(rows)).to.not.include(secret);
    });

    it('sets the password through the link once; opening the link does not use it up', async () => {
      const email = 'once@acme.example';
      const user = await createUser(tenant.id, email);
      const link = await resetLinkFor(email);
      const browser = new Browser();
      await openResetForm(browser, link);
      const { csrf, token: resetToken } = await openResetForm(browser, link);

      const mismatch = await submit(browser, `${instance.url}/password/reset`, { csrf, token: resetToken, password: 'a brand new passphrase', passwordConfirm: 'something else entirely' });
      expect(mismatch.status).to.equal(400);
      expect(mismatch.html).to.include('The two passwords are not the same.');

      const common = await submit(browser, `${instance.url}/password/reset`, { csrf, token: resetToken, password: 'password123456', passwordConfirm: 'password123456' });
      expect(common.status).to.equal(422);
      expect(common.html).to.include('Too common: it appears in lists of leaked passwords. Choose a longer passphrase.');
      expect(common.html).to.match(/aria-invalid="true"/);

      const done = await submit(browser, `${instance.url}/password/reset`, { csrf, token: resetToken, password: 'a brand new passphrase', passwordConfirm: 'a brand new passphrase' });
      expect(done.status, done.html).to.equal(200);
      expect(done.html).to.include('Password changed');
      expect((await instance.runtime.users.authenticate(email, 'a brand new passphrase', tenant.id))?.id).to.equal(user.id);
      expect(await instance.runtime.users.authenticate(email, PASSWORD, tenant.id)).to.equal(undefined);

      const again = await submit(browser, `${instance.url}/password/reset`, { csrf, token: resetToken, password: 'yet another passphrase', passwordConfirm: 'yet another passphrase' });
      expect(again.status).to.equal(400);
      expect(again.html).to.include('The link has expired or was already used.');
      expect((await page(browser, link)).status).to.equal(400);
      expect((await instance.runtime.users.authenticate(email, 'a brand new passphrase', tenant.id))?.id).to.equal(user.id);
      expect((await mailsTo(email)).map((mail) => mail.subject)).to.include('Your password was changed');
    });

    it('refuses an expired link', async () => {
      const email = 'late@acme.example';
      await createUser(tenant.id, email);
      const link = await resetLinkFor(email);
      const browser = new Browser();
      const { csrf, token: resetToken } = await openResetForm(browser, link);
      const digest = createHash('sha256').update(resetToken).digest('hex');
      await instance.runtime.db('user_tokens').where({ token_hash: digest }).update({ expires_at: instance.runtime.db.raw("now() - interval '1 minute'") });
      expect((await page(browser, link)).status).to.equal(400);
      const late = await submit(browser, `${instance.url}/password/reset`, { csrf, token: resetToken, password: 'a brand new passphrase', passwordConfirm: 'a brand new passphrase' });
      expect(late.status).to.equal(400);
      expect(late.html).to.include('The link has expired or was already used.');
      expect(await instance.runtime.users.authenticate(email, PASSWORD, tenant.id)).to.not.equal(undefined);
    });

    it('refuses a made-up token and a form without its CSRF field', async () => {
      const browser = new Browser();
      expect((await page(browser, `${instance.url}/password/reset?token=${'A'.repeat(43)}`)).status).to.equal(400);
      expect((await page(browser, `${instance.url}/password/reset`)).status).to.equal(400);
      const forged = await submit(browser, `${instance.url}/password/reset`, { token: 'A'.repeat(43), password: 'x', passwordConfirm: 'x' });
      expect(forged.status).to.equal(403);
    });
  });

  describe('password policy', () => {
    it('refuses a common password and a short one through the admin API, with a readable message', async () => {
      const common = await api('POST', `/tenants/${tenant.id}/users`, { email: 'common@acme.example', password: 'password123456' });
      expect(common.status).to.equal(422);
      expect(common.headers.get('content-type')).to.match(/application\/problem\+json/);
      const body = (await common.json()) as { errors: Record<string, string> };
      expect(body.errors.password).to.equal('is too common: it appears in lists of leaked passwords; choose a longer passphrase');
      const short = await api('POST', `/tenants/${tenant.id}/users`, { email: 'short@acme.example', password: 'elevenchars' });
      expect(short.status).to.equal(422);
      expect(((await short.json()) as { errors: Record<string, string> }).errors.password).to.equal('must be at least 12 characters');
      expect((await api('GET', `/tenants/${tenant.id}/users?email=common@acme.example`).then((r) => r.json()) as { items: unknown[] }).items).to.have.length(0);
    });

    it('refuses reusing one of the last two passwords (historySize 2)', async () => {
      const user = await createUser(tenant.id, 'history@acme.example', 'first passphrase one');
      let etag = user.etag;
      const change = async (password: string) => {
        const response = await api('PATCH', `/tenants/${tenant.id}/users/${user.id}`, { password }, { 'if-match': etag });
        if (response.status === 200) etag = response.headers.get('etag')!;
        return response;
      };
      expect((await change('second passphrase two')).status).to.equal(200);
      const reused = await change('first passphrase one');
      expect(reused.status).to.equal(422);
      expect(((await reused.json()) as { errors: Record<string, string> }).errors.password).to.equal('must differ from the last 2 passwords');
      expect((await change('second passphrase two')).status).to.equal(422);
      expect((await change('third passphrase three')).status).to.equal(200);
      // Two changes ago is outside the window of two.
      expect((await change('first passphrase one')).status).to.equal(200);
      const kept = await instance.runtime.db('password_history').where({ user_id: user.id });
      expect(kept).to.have.length(2);
      expect(kept.every((row: { password_hash: string }) => row.password_hash.startsWith('$argon2id$'))).to.equal(true);
    });
  });

  describe('row-level security', () => {
    it('keeps tokens and password history inside their tenant', async () => {
      const { db } = instance.runtime;
      for (const table of ['user_tokens', 'password_history']) {
        const own = await withTenant(db, tenant.id, (trx) => trx(table).select('user_id'));
        const other = await withTenant(db, DEFAULT_TENANT_ID, (trx) => trx(table).select('user_id'));
        expect(own.length, table).to.be.greaterThan(0);
        expect(other, table).to.have.length(0);
      }
    });
  });

  describe('administrator reset and expiry', () => {
    it('sets a one-time password that must be changed at the next sign-in', async () => {
      const email = 'temporary@acme.example';
      const user = await createUser(tenant.id, email);
      const response = await api('POST', `/tenants/${tenant.id}/users/${user.id}/password-reset`, { mode: 'temporary' });
      expect(response.status).to.equal(200);
      const { temporaryPassword } = (await response.json()) as { temporaryPassword: string };
      expect(temporaryPassword).to.be.a('string').with.length.of.at.least(12);
      expect(await instance.runtime.users.authenticate(email, PASSWORD, tenant.id)).to.equal(undefined);
      expect((await instance.runtime.users.authenticate(email, temporaryPassword, tenant.id))?.id).to.equal(user.id);
      const { credentials } = instance.runtime;
      expect(await credentials.passwordState(tenant.id, user.id)).to.deep.equal({ mustChange: true, reason: 'temporary' });
      await credentials.setPassword(tenant.id, user.id, 'my own passphrase now');
      expect(await credentials.passwordState(tenant.id, user.id)).to.deep.equal({ mustChange: false });
    });

    it('answers the password state a sign-in asks for from its own read, unless the password changed since', async () => {
      const email = 'state-after-sign-in@acme.example';
      const user = await createUser(tenant.id, email);
      const { credentials, users, db } = instance.runtime;
      const statements: string[] = [];
      const record = (query: { sql: string }) => statements.push(query.sql);
      const during = async <T>(work: () => Promise<T>): Promise<T> => {
        statements.length = 0;
        db.on('query', record);
        try {
          return await work();
        } finally {
          db.off('query', record);
        }
      };
      expect((await users.authenticate(email, PASSWORD, tenant.id))?.id).to.equal(user.id);
      expect(await during(() => users.passwordStatus(tenant.id, user.id))).to.include({ hasPassword: true, mustChange: false });
      expect(statements.filter((sql) => /password/.test(sql)), 'answered from the sign-in’s read').to.deep.equal([]);
      expect(await during(() => users.passwordStatus(tenant.id, user.id))).to.include({ mustChange: false });
      expect(statements.some((sql) => /password_must_change/.test(sql)), 'read again: the answer is taken once').to.equal(true);

      // An administrator's reset between the sign-in and the question wins over what the sign-in read.
      expect((await users.authenticate(email, PASSWORD, tenant.id))?.id).to.equal(user.id);
      expect((await api('POST', `/tenants/${tenant.id}/users/${user.id}/password-reset`, { mode: 'temporary' })).status).to.equal(200);
      expect(await credentials.passwordState(tenant.id, user.id)).to.deep.equal({ mustChange: true, reason: 'temporary' });
    });

    it('mails a reset link on request (202) and refuses an unknown mode', async () => {
      const email = 'byadmin@acme.example';
      const user = await createUser(tenant.id, email);
      const response = await api('POST', `/tenants/${tenant.id}/users/${user.id}/password-reset`, { mode: 'email' });
      expect(response.status).to.equal(202);
      expect((await mailsTo(email)).map((mail) => mail.subject)).to.deep.equal(['Reset your password']);
      expect((await api('POST', `/tenants/${tenant.id}/users/${user.id}/password-reset`, { mode: 'sms' })).status).to.equal(422);
    });

    it('says a password is expired once it is older than maxAgeDays', async () => {
      const expiring = await createTenant('expiring', { password: { maxAgeDays: 1 } });
      const user = await createUser(expiring.id, 'old@expiring.example');
      const { credentials, db } = instance.runtime;
      expect(await credentials.passwordState(expiring.id, user.id)).to.deep.equal({ mustChange: false });
      await db('users').where({ id: user.id }).update({ password_changed_at: db.raw("now() - interval '2 days'") });
      expect(await credentials.passwordState(expiring.id, user.id)).to.deep.equal({ mustChange: true, reason: 'expired' });
      await expectRejection(credentials.setPassword(expiring.id, user.id, PASSWORD), 'must differ from the current password');
      await credentials.setPassword(expiring.id, user.id, 'a fresh passphrase here');
      expect(await credentials.passwordState(expiring.id, user.id)).to.deep.equal({ mustChange: false });
    });
  });

  describe('e-mail verification and registration', () => {
    let verifying: { id: string; slug: string };
    before(async () => {
      verifying = await createTenant('verifying', { emailVerification: 'required' }, { selfRegistration: true });
    });

    it('verifies the address through the mailed link, confirmed by a POST', async () => {
      const email = 'new@verifying.example';
      const { credentials, users } = instance.runtime;
      expect(await credentials.emailVerificationRequired(verifying.id)).to.equal(true);
      await credentials.register(verifying.id, { email, password: PASSWORD }, 'en');
      const [mail] = await mailsTo(email);
      expect(mail.subject).to.equal('Confirm your e-mail address');
      const link = linkIn(mail, '/email/verify');
      const browser = new Browser();
      const confirm = await page(browser, link);
      expect(confirm.status).to.equal(200);
      const [user] = (await users.list(verifying.id, { email })).items;
      expect(user.emailVerified).to.equal(false);
      const fields = { csrf: hiddenField(confirm.html, 'csrf'), token: hiddenField(confirm.html, 'token') };
      const done = await submit(browser, `${instance.url}/email/verify`, fields);
      expect(done.status).to.equal(200);
      expect(done.html).to.include('E-mail address confirmed');
      expect((await users.get(verifying.id, user.id)).emailVerified).to.equal(true);
      expect((await submit(browser, `${instance.url}/email/verify`, fields)).status).to.equal(400);
    });

    it('mails the owner of an address that registers again, at most once per 15 minutes, and reports policy problems', async () => {
      const email = 'taken@verifying.example';
      const { credentials } = instance.runtime;
      const subjects = async () => (await mails()).filter((mail) => mail.to.toLowerCase() === email).map((mail) => mail.subject);
      await credentials.register(verifying.id, { email, password: PASSWORD });
      expect(await subjects()).to.deep.equal(['Confirm your e-mail address']);
      await credentials.register(verifying.id, { email: 'TAKEN@verifying.example', password: 'another long passphrase' });
      expect(await subjects()).to.deep.equal(['Confirm your e-mail address', 'Someone tried to register with your e-mail address']);
      // Repeated attempts answer alike but send nothing more (mail flooding).
      for (let attempt = 0; attempt < 3; attempt++) await credentials.register(verifying.id, { email, password: 'another long passphrase' });
      expect(await subjects()).to.deep.equal(['Confirm your e-mail address', 'Someone tried to register with your e-mail address']);
      // The window is per address: another taken address still gets its one notice.
      const other = 'also-taken@verifying.example';
      await credentials.register(verifying.id, { email: other, password: PASSWORD });
      await credentials.register(verifying.id, { email: other, password: 'another long passphrase' });
      expect((await mailsTo(other)).map((mail) => mail.subject)).to.deep.equal(['Confirm your e-mail address', 'Someone tried to register with your e-mail address']);
      await expectRejection(credentials.register(verifying.id, { email, password: 'qwerty123456' }), 'too common');
    });

    it('sends a verification link on an administrator’s request', async () => {
      const user = await createUser(verifying.id, 'asked@verifying.example');
      expect((await api('POST', `/tenants/${verifying.id}/users/${user.id}/send-verification`)).status).to.equal(202);
      expect((await mailsTo('asked@verifying.example')).map((mail) => mail.subject)).to.deep.equal(['Confirm your e-mail address']);
    });
  });

  describe('outbox page', () => {
    // The mails hold live reset links: on a database others share, the page is an opt-in.
    if (!backend.name.startsWith('embedded')) {
      it('does not exist on PostgreSQL without MAIL_OUTBOX_PAGE, though mail goes to the outbox', async () => {
        expect(instance.runtime.config.embedded.database).to.equal(false);
        expect((await mails()).length).to.be.greaterThan(0);
        expect((await page(new Browser(), `${instance.url}/outbox`)).status).to.equal(404);
        expect((await page(new Browser(), `${instance.url}/outbox/${(await mails())[0].id}`)).status).to.equal(404);
      });
      return;
    }

    it('refuses a request that came through a proxy or names another host, though it comes from loopback', async () => {
      const refused: Record<string, string>[] = [{ 'x-forwarded-for': '127.0.0.1' }, { forwarded: 'for=127.0.0.1' }, { 'x-real-ip': '127.0.0.1' }, { host: 'attacker.example' }];
      for (const headers of refused) {
        const response = await rawGet(`${instance.url}/outbox`, headers);
        expect(response.status, JSON.stringify(headers)).to.equal(403);
        expect(response.headers['cache-control']).to.equal('no-store');
        expect(response.body, JSON.stringify(headers)).to.not.include('/outbox/');
      }
      expect((await rawGet(`${instance.url}/outbox`, { host: 'localhost' })).status).to.equal(200);
    });

    it('lists the mail newest first and shows one with its links', async () => {
      const all = await mails();
      const list = await page(new Browser(), `${instance.url}/outbox`);
      expect(list.status).to.equal(200);
      const newest = all.at(-1)!;
      const oldest = all[0];
      expect(list.html.indexOf(`/outbox/${newest.id}`)).to.be.greaterThan(-1);
      expect(list.html.indexOf(`/outbox/${newest.id}`)).to.be.lessThan(list.html.indexOf(`/outbox/${oldest.id}`));
      const one = await page(new Browser(), `${instance.url}/outbox/${oldest.id}`);
      expect(one.status).to.equal(200);
      expect(one.html).to.include(`href="${linkIn(oldest, '/password/reset')}"`);
      // The mail's HTML is shown as source, never as markup of the page.
      expect(one.html).to.include('&lt;a href=');
      expect(one.html).to.not.include('style="display:inline-block');
      expect((await page(new Browser(), `${instance.url}/outbox/..%2F..%2Fetc%2Fpasswd`)).status).to.equal(404);
    });
  });
});

// A GET with headers as given, Host included (fetch sets its own Host).
function rawGet(url: string, headers: Record<string, string>): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body }));
      })
      .on('error', reject);
  });
}

async function expectRejection(promise: Promise<unknown>, message: string): Promise<void> {
  try {
    await promise;
  } catch (error) {
    expect(String((error as Error).message)).to.include(message);
    return;
  }
  throw new Error('expected a rejection');
}
