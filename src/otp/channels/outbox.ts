// The embedded default without an SMS or WhatsApp provider: the message lands in the local mail
// outbox (the /outbox page), addressed to the phone number, its subject naming the channel, so a
// developer can sign in with a code without any provider.
import type { Outbox } from '../../mail/outbox.ts';
import type { Channel } from './channel.ts';
import { codeText } from './sms.ts';

const SUBJECTS = { sms: 'SMS', whatsapp: 'WhatsApp' } as const;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

export function createOutboxChannel(outbox: Outbox, from: string, channel: keyof typeof SUBJECTS): Channel {
  return {
    async deliver(message) {
      const text = codeText(message);
      await outbox.write({ from, to: message.destination, subject: `${SUBJECTS[channel]} (local outbox)`, text, html: `<p>${escapeHtml(text)}</p>` });
    },
  };
}
