// WhatsApp through the WhatsApp Business Cloud API: an authentication template whose body and
// copy-code button both carry the code (the template is created at Meta, docs/one-time-codes.md).
import type { Channel } from './channel.ts';
import { postToProvider, type ProviderRequestOptions } from './http.ts';

export interface WhatsAppSettings {
  apiUrl: string;
  phoneNumberId: string;
  accessToken: string;
  templateName: string;
  templateLanguage: string;
}

export function whatsAppMessage(settings: Pick<WhatsAppSettings, 'templateName' | 'templateLanguage'>, to: string, code: string) {
  return {
    messaging_product: 'whatsapp',
    recipient_type: 'individual',
    // The Cloud API takes the number without its "+".
    to: to.replace(/^\+/, ''),
    type: 'template',
    template: {
      name: settings.templateName,
      language: { code: settings.templateLanguage },
      components: [
        { type: 'body', parameters: [{ type: 'text', text: code }] },
        { type: 'button', sub_type: 'url', index: '0', parameters: [{ type: 'text', text: code }] },
      ],
    },
  };
}

export function createWhatsAppChannel(settings: WhatsAppSettings, options: ProviderRequestOptions): Channel {
  const url = `${settings.apiUrl.replace(/\/+$/, '')}/${encodeURIComponent(settings.phoneNumberId)}/messages`;
  return {
    async deliver(message) {
      const body = JSON.stringify(whatsAppMessage(settings, message.destination, message.code));
      await postToProvider(url, { authorization: `Bearer ${settings.accessToken}` }, body, options);
    },
  };
}
