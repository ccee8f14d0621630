// Local stand-ins for the messaging providers one-time codes go through: the WhatsApp Business
// Cloud API (checks the Bearer token and the phone-number-id path, answers like Meta) and an SMS
// provider's HTTP endpoint. Both record what they receive.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';

export interface RecordedRequest {
  path: string;
  authorization?: string;
  contentType?: string;
  body: string;
}

export interface FakeMessaging {
  url: string;
  // The settings an instance needs to use these fakes (SMS as JSON; see smsFormEnv for form).
  env: Record<string, string>;
  whatsapp: { phoneNumberId: string; accessToken: string; templateName: string; templateLanguage: string; messages: RecordedRequest[]; refused: RecordedRequest[] };
  sms: { authorization: string; requests: RecordedRequest[] };
  close(): Promise<void>;
}

const PHONE_NUMBER_ID = '109876543210';
const ACCESS_TOKEN = `EAAG${randomBytes(12).toString('hex')}`;
const SMS_AUTHORIZATION = `Basic ${Buffer.from('account:secret').toString('base64')}`;

export async function startFakeMessaging(): Promise<FakeMessaging> {
  const whatsapp = { phoneNumberId: PHONE_NUMBER_ID, accessToken: ACCESS_TOKEN, templateName: 'sign_in_code', templateLanguage: 'de', messages: [] as RecordedRequest[], refused: [] as RecordedRequest[] };
  const sms = { authorization: SMS_AUTHORIZATION, requests: [] as RecordedRequest[] };

  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const recorded: RecordedRequest = { path: request.url ?? '', authorization: request.headers.authorization, contentType: request.headers['content-type'], body: Buffer.concat(chunks).toString('utf8') };
      const answer = (status: number, body: unknown) => {
        response.writeHead(status, { 'content-type': 'application/json' });
        response.end(JSON.stringify(body));
      };
      if (request.method === 'POST' && recorded.path === '/sms') {
        sms.requests.push(recorded);
        return answer(201, { sid: `SM${randomBytes(16).toString('hex')}`, status: 'queued' });
      }
      if (request.method === 'POST' && recorded.path.startsWith('/v21.0/')) {
        if (recorded.path !== `/v21.0/${PHONE_NUMBER_ID}/messages`) {
          whatsapp.refused.push(recorded);
          return answer(400, { error: { message: 'Unsupported post request.', type: 'GraphMethodException', code: 100 } });
        }
        if (recorded.authorization !== `Bearer ${ACCESS_TOKEN}`) {
          whatsapp.refused.push(recorded);
          return answer(401, { error: { message: 'Invalid OAuth access token.', type: 'OAuthException', code: 190 } });
        }
        whatsapp.messages.push(recorded);
        const to = (JSON.parse(recorded.body) as { to: string }).to;
        return answer(200, { messaging_product: 'whatsapp', contacts: [{ input: to, wa_id: to }], messages: [{ id: `wamid.${randomBytes(24).toString('base64url')}` }] });
      }
      answer(404, { error: 'not found' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    env: {
      SMS_PROVIDER_URL: `${url}/sms`,
      SMS_PROVIDER_AUTHORIZATION: SMS_AUTHORIZATION,
      SMS_FROM: 'Identity',
      WHATSAPP_API_URL: `${url}/v21.0`,
      WHATSAPP_PHONE_NUMBER_ID: PHONE_NUMBER_ID,
      WHATSAPP_ACCESS_TOKEN: ACCESS_TOKEN,
      WHATSAPP_TEMPLATE_NAME: whatsapp.templateName,
      WHATSAPP_TEMPLATE_LANGUAGE: whatsapp.templateLanguage,
    },
    whatsapp,
    sms,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
