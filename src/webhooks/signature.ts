// Standard Webhooks (https://www.standardwebhooks.com) signing: the secret is "whsec_" and the
// base64 of random bytes; the signature is v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">
// under the decoded secret. Receivers reject timestamps far from their clock (replay).
import { createHmac, randomBytes } from 'node:crypto';

const PREFIX = 'whsec_';

export function generateSigningSecret(): string {
  return PREFIX + randomBytes(32).toString('base64');
}

export function signatureHeaders(secret: string, messageId: string, timestampSeconds: number, body: string): Record<string, string> {
  const key = Buffer.from(secret.slice(PREFIX.length), 'base64');
  const signature = createHmac('sha256', key).update(`${messageId}.${timestampSeconds}.${body}`).digest('base64');
  return {
    'webhook-id': messageId,
    'webhook-timestamp': String(timestampSeconds),
    'webhook-signature': `v1,${signature}`,
  };
}
