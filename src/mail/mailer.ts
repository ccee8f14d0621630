// Outgoing mail through nodemailer: SMTP when MAIL_SMTP_URL is set, otherwise the local outbox.
// Mail is sent in the background of the request that causes it: the answer neither waits for the
// mail server nor tells whether a mail went out. Failures are logged without the message, whose
// links are secrets.
import nodemailer from 'nodemailer';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import { createOutbox, type Outbox } from './outbox.ts';

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  html: string;
}

export interface Mailer {
  readonly transport: 'smtp' | 'outbox';
  // Set when mail goes to the local outbox.
  readonly outbox?: Outbox;
  send(message: MailMessage): Promise<void>;
  // Starts sending and returns at once; `kind` names the mail in the log ("password-reset").
  sendInBackground(message: MailMessage, kind: string): void;
  // Runs work that leads to a mail (look-ups, a token) after the request has been answered, so
  // the answer's timing says nothing about the outcome. A failure is logged by kind and error
  // class only: the work's data (addresses, tokens) never reaches the log.
  inBackground(kind: string, work: () => Promise<void>): void;
  // Resolves once every mail and background work started so far is done or has failed (tests,
  // shutdown).
  idle(): Promise<void>;
  close(): void;
}

export function createMailer(config: { mail: Pick<Config['mail'], 'smtpUrl' | 'from' | 'outboxDir'> }, log: Logger): Mailer {
  const { smtpUrl, from, outboxDir } = config.mail;
  const outbox = smtpUrl ? undefined : createOutbox(outboxDir);
  // The outbox still goes through nodemailer (its JSON transport) so addresses and headers are
  // checked the same way as for SMTP.
  const transporter = smtpUrl ? nodemailer.createTransport(smtpUrl) : nodemailer.createTransport({ jsonTransport: true });
  const pending = new Set<Promise<void>>();

  function track(work: Promise<void>): void {
    pending.add(work);
    void work.finally(() => pending.delete(work));
  }

  async function send(message: MailMessage): Promise<void> {
    await transporter.sendMail({ from, to: message.to, subject: message.subject, text: message.text, html: message.html });
    if (outbox) await outbox.write({ from, ...message });
  }

  return {
    transport: smtpUrl ? 'smtp' : 'outbox',
    outbox,
    send,
    sendInBackground(message, kind) {
      const delivery = send(message).catch((error: unknown) => {
        const err = error as { code?: string; responseCode?: number; command?: string };
        // Never the message, the recipient or the SMTP URL: only what helps to find the cause.
        log.error({ mail: kind, code: err?.code, responseCode: err?.responseCode, command: err?.command }, 'a mail could not be sent');
      });
      track(delivery);
    },
    inBackground(kind, work) {
      // Started on the next tick: the request's own work goes first.
      const running = new Promise<void>((resolve) => setImmediate(resolve)).then(work).catch((error: unknown) => {
        const err = error as { name?: string; code?: string };
        log.error({ work: kind, error: err?.name, code: err?.code }, 'background work for a mail failed');
      });
      track(running);
    },
    async idle() {
      while (pending.size) await Promise.all([...pending]);
    },
    close() {
      transporter.close();
    },
  };
}
