// Builds the one-time-code service from the configuration: which channels exist (a provider
// configured, or the local outbox on the embedded default) and the limits.
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { HotStore } from '../store/hot-store.ts';
import type { Mailer } from '../mail/mailer.ts';
import type { Views } from '../http/views.ts';
import type { RateLimits } from '../security/rate-limits.ts';
import type { TenantService } from '../tenants/service.ts';
import { brandingFor } from '../tenants/branding.ts';
import { createOneTimeCodeService, type CodeChannel, type OneTimeCodeService } from './service.ts';
import type { Channel } from './channels/channel.ts';
import { createEmailChannel } from './channels/email.ts';
import { createSmsChannel } from './channels/sms.ts';
import { createWhatsAppChannel } from './channels/whatsapp.ts';
import { createOutboxChannel } from './channels/outbox.ts';

export interface OneTimeCodeSetup {
  config: Config;
  hot: HotStore;
  keyEncryptionKey: Buffer;
  mailer: Mailer;
  views: Views;
  tenants: Pick<TenantService, 'get'>;
  rateLimits: Pick<RateLimits, 'limiter'>;
  log: Logger;
}

export function setUpOneTimeCodes(setup: OneTimeCodeSetup): OneTimeCodeService {
  const { config, mailer } = setup;
  const settings = config.oneTimeCodes;
  const requests = { timeoutMs: settings.providerTimeoutSeconds * 1000, allowPrivateNetwork: config.outboundAllowPrivateNetwork };
  // Only the embedded default (no database server, mail into the outbox) fakes a phone provider.
  const outbox = config.embedded.database && mailer.transport === 'outbox' ? mailer.outbox : undefined;
  const channels: Partial<Record<CodeChannel, Channel>> = {
    email: createEmailChannel({ mailer, views: setup.views, branding: async (tenantId) => brandingFor(await setup.tenants.get(tenantId)) }),
  };
  if (settings.sms) channels.sms = createSmsChannel(settings.sms, requests);
  else if (outbox) channels.sms = createOutboxChannel(outbox, config.mail.from, 'sms');
  if (settings.whatsapp) channels.whatsapp = createWhatsAppChannel(settings.whatsapp, requests);
  else if (outbox) channels.whatsapp = createOutboxChannel(outbox, config.mail.from, 'whatsapp');
  return createOneTimeCodeService({
    hot: setup.hot,
    instanceSecret: setup.keyEncryptionKey,
    channels,
    codeTtlSeconds: settings.codeTtlSeconds,
    resendCooldownSeconds: settings.resendCooldownSeconds,
    perDestination: setup.rateLimits.limiter('otpSendPerDestination'),
    perIp: setup.rateLimits.limiter('otpSendPerIp'),
    log: setup.log,
    inBackground: (kind, work) => mailer.inBackground(kind, work),
  });
}
