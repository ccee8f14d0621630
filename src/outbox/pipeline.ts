// Wires the events for other services: the outbox changes write to, the publisher that moves
// committed events to the Redis stream, the in-process consumers and the webhook fan-out, and the
// webhook dispatcher; all driven by one worker.
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { Database } from '../store/database.ts';
import type { HotStore } from '../store/hot-store.ts';
import { createOutboxService, type OutboxService } from './service.ts';
import { eventPublisher } from './publisher.ts';
import { hotStoreEventStream, type EventStream } from './stream.ts';
import { lastLoginConsumer } from './last-login.ts';
import type { UserService } from '../users/service.ts';
import { outboxQueries } from './queries.ts';
import { createEventWorker, type EventWorker } from './worker.ts';
import { createWebhookService, type WebhookService } from '../webhooks/service.ts';
import { webhookDispatcher } from '../webhooks/dispatcher.ts';
import type { AuditService } from '../audit/service.ts';
import type { SealingKeys } from '../security/crypto.ts';

export interface EventPipelineOptions {
  config: Pick<Config, 'events' | 'outboundAllowPrivateNetwork' | 'purgeIntervalSeconds'>;
  db: Database;
  hot: HotStore;
  log: Logger;
  keyEncryptionKey: SealingKeys;
  users: Pick<UserService, 'recordLogins'>;
  // Webhook endpoint changes are recorded in the audit trail.
  audit: Pick<AuditService, 'record'>;
  now?: () => Date;
  // Where events are published; the hot store's stream unless replaced (tests simulate crashes).
  stream?: EventStream;
  intervalMs?: number;
}

export interface EventPipeline {
  outbox: OutboxService;
  webhooks: WebhookService;
  worker: EventWorker;
}

const PUBLISH_BATCH = 100;
const DELIVERY_BATCH = 20;
const PURGE_BATCH = 5000;

export function createEventPipeline(options: EventPipelineOptions): EventPipeline {
  const { config, db, hot, log, keyEncryptionKey } = options;
  const now = options.now ?? (() => new Date());
  const outbox = createOutboxService({ db, now });
  const webhooks = createWebhookService({ db, keyEncryptionKey, audit: options.audit, now });
  const publish = eventPublisher({
    db,
    stream: options.stream ?? hotStoreEventStream(hot, config.events.streamMaxLength),
    subscribers: [lastLoginConsumer(options.users), webhooks.fanOut],
    log,
    now,
    batchSize: PUBLISH_BATCH,
  });
  const deliver = webhookDispatcher({
    db,
    keyEncryptionKey,
    log,
    now,
    maxAttempts: config.events.webhookMaxAttempts,
    timeoutMs: config.events.webhookTimeoutSeconds * 1000,
    allowPrivateNetwork: config.outboundAllowPrivateNetwork,
    batchSize: DELIVERY_BATCH,
  });
  const worker = createEventWorker({
    jobs: [
      { name: 'publish', run: publish, fullRound: PUBLISH_BATCH },
      { name: 'deliver', run: deliver, fullRound: DELIVERY_BATCH },
    ],
    purge: () => outboxQueries.purgePublished(db, new Date(now().getTime() - config.events.retentionSeconds * 1000), PURGE_BATCH),
    log,
    intervalMs: options.intervalMs ?? 1000,
    purgeIntervalMs: config.purgeIntervalSeconds * 1000,
  });
  outbox.onEnqueued(() => worker.wake('publish'));
  webhooks.onQueued(() => worker.wake('deliver'));
  return { outbox, webhooks, worker };
}
