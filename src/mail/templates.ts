// Mails are templates like the pages: views/mail/<name>.njk (HTML) and views/mail/<name>.txt.njk
// (plain text), every string from locales/<language>/mail.json, the subject at mail.<key>.subject.
import type { Views } from '../http/views.ts';
import type { Locale } from '../i18n/catalogues.ts';
import { translator } from '../i18n/catalogues.ts';
import type { Branding } from '../tenants/branding.ts';
import type { MailMessage } from './mailer.ts';

export type MailTemplate = 'password-reset' | 'password-changed' | 'email-verification' | 'already-registered' | 'account-unlock' | 'one-time-code';

function catalogueKey(name: MailTemplate): string {
  return name.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

export function renderMail(
  views: Views,
  name: MailTemplate,
  to: string,
  context: Record<string, unknown>,
  options: { locale: Locale; branding: Branding },
): MailMessage {
  const t = translator(options.locale);
  const subject = t(`mail.${catalogueKey(name)}.subject`, context);
  const full = { ...context, subject };
  return {
    to,
    subject,
    html: views.render(`mail/${name}.njk`, full, options),
    text: views.render(`mail/${name}.txt.njk`, full, options),
  };
}
