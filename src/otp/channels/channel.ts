// What a channel does with a code: deliver it to one destination (an e-mail address, or a phone
// number in E.164). Delivery runs after the request was answered; a failure is logged by the
// caller without the code or the destination.
import type { Locale } from '../../i18n/catalogues.ts';

export interface CodeMessage {
  tenantId: string;
  purpose: string;
  destination: string;
  code: string;
  ttlSeconds: number;
  locale: Locale;
}

export interface Channel {
  deliver(message: CodeMessage): Promise<void>;
}

// A provider refused or could not be reached; `reason` is safe to log (no number, no code).
export class DeliveryError extends Error {}
