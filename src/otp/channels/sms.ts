// SMS through a configurable HTTP provider: POST to SMS_PROVIDER_URL with the Authorization header
// as configured, either JSON {"to","from","text"} or a Twilio-style form (To, From, Body).
import { translator } from '../../i18n/catalogues.ts';
import type { Channel } from './channel.ts';
import { postToProvider, type ProviderRequestOptions } from './http.ts';

export interface SmsSettings {
  url: string;
  authorization?: string;
  from?: string;
  format: 'json' | 'form';
}

export function codeText(message: { code: string; ttlSeconds: number; locale: Parameters<typeof translator>[0] }): string {
  return translator(message.locale)('otp.messageText', { code: message.code, minutes: Math.max(1, Math.round(message.ttlSeconds / 60)) });
}

export function createSmsChannel(settings: SmsSettings, options: ProviderRequestOptions): Channel {
  return {
    async deliver(message) {
      const text = codeText(message);
      const headers: Record<string, string> = settings.authorization ? { authorization: settings.authorization } : {};
      if (settings.format === 'form') {
        const form = new URLSearchParams({ To: message.destination, ...(settings.from ? { From: settings.from } : {}), Body: text });
        await postToProvider(settings.url, { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, form.toString(), options);
        return;
      }
      const body = JSON.stringify({ to: message.destination, ...(settings.from ? { from: settings.from } : {}), text });
      await postToProvider(settings.url, headers, body, options);
    },
  };
}
