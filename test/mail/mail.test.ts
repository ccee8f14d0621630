// Mail: templates in both languages, the local outbox, failures logged without secrets, and the
// outbox page existing only while mail goes to the outbox on the embedded default (or by opt-in).
import { expect } from 'chai';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createMailer } from '../../src/mail/mailer.ts';
import { announceMailTransport, outboxPageEnabled } from '../../src/mail/routes.ts';
import { loadConfig } from '../../src/config.ts';
import { renderMail } from '../../src/mail/templates.ts';
import { createViews } from '../../src/http/views.ts';
import { DEFAULT_BRANDING } from '../../src/tenants/branding.ts';
import { startInstance } from '../helpers/instance.ts';
import { Browser, hiddenField } from '../helpers/browser.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';

const FROM = '"Identity" <no-reply@localhost>';

describe('mail', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'idp-mail-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('renders a mail in the reader’s language: the link verbatim in the text, escaped in the HTML', () => {
    const views = createViews();
    const link = 'https://id.example/password/reset?token=abc&x=<y>';
    const branding = { ...DEFAULT_BRANDING, name: 'Acme & Co' };
    const german = renderMail(views, 'password-reset', 'ada@example.com', { email: 'ada@example.com', link, minutes: 30 }, { locale: 'de', branding });
    expect(german.subject).to.equal('Passwort zurücksetzen');
    expect(german.to).to.equal('ada@example.com');
    expect(german.text).to.include(link);
    expect(german.text).to.include('läuft in 30 Minuten ab');
    expect(german.html).to.include('href="https://id.example/password/reset?token=abc&amp;x=&lt;y&gt;"');
    expect(german.html).to.include('Acme &amp; Co');
    expect(german.html).to.not.include('<script');
    const english = renderMail(views, 'already-registered', 'ada@example.com', { email: 'ada@example.com', link }, { locale: 'en', branding: DEFAULT_BRANDING });
    expect(english.subject).to.equal('Someone tried to register with your e-mail address');
    expect(english.text).to.include('sign in with your existing account, or reset your password');
  });

  it('writes each mail to the outbox as a file the outbox lists, newest first', async () => {
    const mailer = createMailer({ mail: { from: FROM, outboxDir: dir } }, pino({ level: 'silent' }));
    expect(mailer.transport).to.equal('outbox');
    await mailer.send({ to: 'a@example.com', subject: 'First', text: 'one', html: '<p>one</p>' });
    mailer.sendInBackground({ to: 'b@example.com', subject: 'Second', text: 'two', html: '<p>two</p>' }, 'test');
    await mailer.idle();
    const files = readdirSync(dir).sort();
    expect(files).to.have.length(2);
    const stored = JSON.parse(readFileSync(path.join(dir, files[0]), 'utf8'));
    expect(stored).to.include({ from: FROM, to: 'a@example.com', subject: 'First', text: 'one', html: '<p>one</p>' });
    expect((await mailer.outbox!.list()).map((entry) => entry.subject)).to.deep.equal(['Second', 'First']);
    expect(await mailer.outbox!.read('../../etc/passwd')).to.equal(undefined);
    mailer.close();
  });

  it('logs a failed delivery without the message, its links or the SMTP credentials', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, new Writable({ write(chunk, _encoding, done) { lines.push(String(chunk)); done(); } }));
    const mailer = createMailer({ mail: { smtpUrl: 'smtp://user:hunter2secret@127.0.0.1:1', from: FROM, outboxDir: dir } }, log);
    expect(mailer.transport).to.equal('smtp');
    expect(mailer.outbox).to.equal(undefined);
    mailer.sendInBackground({ to: 'victim@example.com', subject: 'Reset', text: 'https://id.example/password/reset?token=SECRET-TOKEN', html: '<a href="https://id.example/password/reset?token=SECRET-TOKEN">x</a>' }, 'password-reset');
    // Background work that fails (a look-up before the mail): its error message stays out too.
    mailer.inBackground('password-reset', async () => {
      throw new Error('no user victim@example.com for SECRET-TOKEN');
    });
    await mailer.idle();
    mailer.close();
    const output = lines.join('');
    expect(output).to.include('a mail could not be sent');
    expect(output).to.include('"mail":"password-reset"');
    expect(output).to.include('background work for a mail failed');
    expect(output).to.include('"work":"password-reset"');
    for (const secret of ['SECRET-TOKEN', 'hunter2secret', 'victim@example.com']) expect(output).to.not.include(secret);
  });

  it('waits in idle() for background work and the mail it starts', async () => {
    const mailer = createMailer({ mail: { from: FROM, outboxDir: dir } }, pino({ level: 'silent' }));
    mailer.inBackground('test', async () => {
      await new Promise((resolve) => setImmediate(resolve));
      mailer.sendInBackground({ to: 'late@example.com', subject: 'Late', text: 'late', html: '<p>late</p>' }, 'test');
    });
    await mailer.idle();
    expect((await mailer.outbox!.list()).map((entry) => entry.to)).to.deep.equal(['late@example.com']);
    mailer.close();
  });

  it('serves the outbox page only with the outbox on the embedded database, or when MAIL_OUTBOX_PAGE=true', () => {
    const postgres = { DATABASE_URL: 'postgres://db.example/idp' };
    expect(outboxPageEnabled(loadConfig({}))).to.equal(true);
    expect(outboxPageEnabled(loadConfig(postgres))).to.equal(false);
    expect(outboxPageEnabled(loadConfig({ ...postgres, MAIL_OUTBOX_PAGE: 'true' }))).to.equal(true);
    expect(outboxPageEnabled(loadConfig({ MAIL_SMTP_URL: 'smtp://mail.example', MAIL_OUTBOX_PAGE: 'true' }))).to.equal(false);
    expect(() => loadConfig({ MAIL_OUTBOX_PAGE: 'yes' })).to.throw('MAIL_OUTBOX_PAGE must be true or false');
  });

  it('warns at start-up when mail only goes to files on a shared database', () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, new Writable({ write(chunk, _encoding, done) { lines.push(String(chunk)); done(); } }));
    announceMailTransport(loadConfig({}), log);
    expect(lines.join('')).to.not.include('"level":40');
    announceMailTransport(loadConfig({ DATABASE_URL: 'postgres://db.example/idp' }), log);
    const warnings = lines.map((line) => JSON.parse(line) as { level: number; msg: string }).filter((line) => line.level === 40);
    expect(warnings.map((line) => line.msg)).to.deep.equal(['MAIL_SMTP_URL is not set: password-reset and verification mail is only written to files in the outbox directory and never reaches anyone']);
  });

  it('serves no outbox page when SMTP is configured, and a reset request still answers normally', async () => {
    const data = mkdtempSync(path.join(tmpdir(), 'idp-test-'));
    const instance = await startInstance({ DATA_DIR: data, MAIL_SMTP_URL: 'smtp://127.0.0.1:1' });
    try {
      expect(instance.runtime.mailer.transport).to.equal('smtp');
      const outbox = await fetch(`${instance.url}/outbox`);
      expect(outbox.status).to.equal(404);
      await instance.runtime.users.create(DEFAULT_TENANT_ID, { email: 'ada@example.com', password: 'a long enough password' });
      const browser = new Browser();
      const form = await browser.fetch(`${instance.url}/password/forgot`);
      expect(form.status).to.equal(200);
      const sent = await browser.submitForm(`${instance.url}/password/forgot`, { csrf: hiddenField(await form.text(), 'csrf'), email: 'ada@example.com' });
      expect(sent.status).to.equal(200);
      expect(await sent.text()).to.include('If an account exists for ada@example.com');
      // The mail server is unreachable: the failure stays in the background.
      await instance.runtime.mailer.idle();
    } finally {
      await instance.stop();
      rmSync(data, { recursive: true, force: true });
    }
  });
});
