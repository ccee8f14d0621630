// One-time-code settings and phone numbers: the configuration's defaults and refusals, and the
// E.164 form numbers are kept in.
import { expect } from 'chai';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { toE164 } from '../../src/otp/phone.ts';
import { tenantPoliciesSchema } from '../../src/tenants/policies.ts';

describe('one-time code settings', () => {
  it('defaults to 5-minute codes, a 30-second cool-down, sensible send limits and no SMS or WhatsApp provider', () => {
    const config = loadConfig({});
    expect(config.oneTimeCodes).to.deep.equal({ codeTtlSeconds: 300, resendCooldownSeconds: 30, providerTimeoutSeconds: 10, sms: undefined, whatsapp: undefined });
    expect(config.rateLimits.otpSendPerDestination).to.deep.equal({ points: 5, durationSeconds: 3600 });
    expect(config.rateLimits.otpSendPerIp).to.deep.equal({ points: 30, durationSeconds: 600 });
  });

  it('reads the SMS and WhatsApp providers, and refuses half a WhatsApp configuration', () => {
    const config = loadConfig({
      SMS_PROVIDER_URL: 'https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json',
      SMS_PROVIDER_AUTHORIZATION: 'Basic QUMxOnNlY3JldA==',
      SMS_FROM: '+15005550006',
      SMS_PROVIDER_FORMAT: 'form',
      WHATSAPP_PHONE_NUMBER_ID: '1234567890',
      WHATSAPP_ACCESS_TOKEN: 'EAAG-token',
      WHATSAPP_TEMPLATE_NAME: 'sign_in_code',
      RATE_LIMIT_OTP_SEND_PER_DESTINATION: 'off',
    });
    expect(config.oneTimeCodes.sms).to.deep.equal({ url: 'https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json', authorization: 'Basic QUMxOnNlY3JldA==', from: '+15005550006', format: 'form' });
    expect(config.oneTimeCodes.whatsapp).to.deep.equal({ apiUrl: 'https://graph.facebook.com/v21.0', phoneNumberId: '1234567890', accessToken: 'EAAG-token', templateName: 'sign_in_code', templateLanguage: 'en' });
    expect(config.rateLimits.otpSendPerDestination).to.equal(undefined);
    expect(() => loadConfig({ WHATSAPP_ACCESS_TOKEN: 'EAAG-token' })).to.throw(ConfigError, /WHATSAPP_PHONE_NUMBER_ID/);
    expect(() => loadConfig({ SMS_PROVIDER_FORMAT: 'xml' })).to.throw(ConfigError, /SMS_PROVIDER_FORMAT/);
    expect(() => loadConfig({ OTP_CODE_TTL_SECONDS: '5' })).to.throw(ConfigError, /OTP_CODE_TTL_SECONDS/);
  });

  it('keeps the tenant policy off by default and refuses unknown or repeated channels', () => {
    expect(tenantPoliciesSchema.parse({}).oneTimeCodes).to.deep.equal({ signIn: [], secondFactor: [] });
    expect(tenantPoliciesSchema.safeParse({ oneTimeCodes: { signIn: ['pigeon'] } }).success).to.equal(false);
    expect(tenantPoliciesSchema.safeParse({ oneTimeCodes: { signIn: ['sms', 'sms'] } }).success).to.equal(false);
  });
});

describe('phone numbers', () => {
  it('normalises national formats with a country code to E.164', () => {
    expect(toE164('+49 151 1234 5678')).to.equal('+4915112345678');
    expect(toE164('0049 (151) 1234-5678')).to.equal('+4915112345678');
    expect(toE164('+1 (415) 555-0123')).to.equal('+14155550123');
    expect(toE164('0151 12345678', 'DE')).to.equal('+4915112345678');
  });

  it('refuses what is not a valid number', () => {
    for (const input of ['0151 12345678', '555-1234', '+49 12', 'call me', '+4915112345678; DROP TABLE', '']) {
      expect(toE164(input), input).to.equal(undefined);
    }
  });
});
