// Codes by e-mail: the one-time-code mail template in the tenant's colours and the person's
// language, sent through the mailer (SMTP or the local outbox).
import type { Mailer } from '../../mail/mailer.ts';
import { renderMail } from '../../mail/templates.ts';
import type { Views } from '../../http/views.ts';
import type { Branding } from '../../tenants/branding.ts';
import type { Channel } from './channel.ts';

export function createEmailChannel(deps: { mailer: Mailer; views: Views; branding(tenantId: string): Promise<Branding> }): Channel {
  return {
    async deliver(message) {
      const minutes = Math.max(1, Math.round(message.ttlSeconds / 60));
      const mail = renderMail(deps.views, 'one-time-code', message.destination, { code: message.code, minutes, email: message.destination }, { locale: message.locale, branding: await deps.branding(message.tenantId) });
      deps.mailer.sendInBackground(mail, 'one-time-code');
    },
  };
}
