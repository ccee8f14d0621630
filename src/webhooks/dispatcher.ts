// Sends due webhook deliveries: signed per Standard Webhooks, retried with exponential back-off
// and jitter, dead-lettered after maxAttempts failures (an administrator can replay them).
import type { Logger } from 'pino';
import type { Database } from '../store/database.ts';
import { unseal, type SealingKeys } from '../security/crypto.ts';
import { deliveryQueries, type DueDelivery } from './queries.ts';
import { signatureHeaders } from './signature.ts';
import { sendWebhook, type SendResult } from './sender.ts';
import { endpointSealContext } from './service.ts';

export interface DispatcherOptions {
  db: Database;
  keyEncryptionKey: SealingKeys;
  log: Logger;
  now: () => Date;
  maxAttempts: number;
  timeoutMs: number;
  allowPrivateNetwork: boolean;
  batchSize: number;
}

const FIRST_RETRY_SECONDS = 15;
const BACKOFF_FACTOR = 4;
const MAX_RETRY_SECONDS = 6 * 3600;

// After the n-th failed attempt: 15 s, 1 min, 4 min, 16 min, ~1 h, ~4 h, then 6 h, each scaled by a
// random factor in [0.5, 1] so receivers coming back are not hit by every retry at once.
export function retryDelaySeconds(failedAttempts: number, random: () => number = Math.random): number {
  const base = Math.min(FIRST_RETRY_SECONDS * BACKOFF_FACTOR ** (failedAttempts - 1), MAX_RETRY_SECONDS);
  return base * (0.5 + random() / 2);
}

export function webhookDispatcher(options: DispatcherOptions): () => Promise<number> {
  const { db, keyEncryptionKey, log, now, maxAttempts, timeoutMs, allowPrivateNetwork, batchSize } = options;
  // A sender that outlives its lease by this much is presumed dead and the delivery retried.
  const leaseMs = timeoutMs + 30_000;

  async function deliver(delivery: DueDelivery): Promise<void> {
    let result: SendResult;
    try {
      const secret = unseal(keyEncryptionKey, delivery.secretSealed, endpointSealContext(delivery.endpointId));
      const body = JSON.stringify(delivery.event);
      const headers = signatureHeaders(secret, delivery.event.id, Math.floor(now().getTime() / 1000), body);
      result = await sendWebhook(delivery.url, headers, body, { timeoutMs, allowPrivateNetwork });
    } catch (error) {
      log.warn({ err: error, delivery: delivery.id }, 'webhook delivery could not be sent');
      result = { ok: false, error: 'could not be sent' };
    }
    const at = now();
    if (result.ok) return deliveryQueries.recordSuccess(db, delivery.id, result.statusCode!, at);
    const dead = delivery.attempts >= maxAttempts;
    if (dead) log.warn({ delivery: delivery.id, endpoint: delivery.endpointId, attempts: delivery.attempts }, 'webhook delivery dead-lettered');
    await deliveryQueries.recordFailure(db, delivery.id, { statusCode: result.statusCode, error: result.error ?? 'failed' }, {
      dead,
      retryAt: new Date(at.getTime() + retryDelaySeconds(delivery.attempts) * 1000),
    });
  }

  return async () => {
    const at = now();
    const due = await deliveryQueries.claimDue(db, at, new Date(at.getTime() + leaseMs), batchSize);
    await Promise.all(due.map(deliver));
    return due.length;
  };
}
