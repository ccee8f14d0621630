// Prometheus metrics. Counters and histograms count for the whole process (one instance per
// process in production), and each place that counts calls one function here. Store health is
// sampled per runtime when Prometheus scrapes, with the checks /readyz makes; nothing is measured
// per request for it.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Database } from '../store/database.ts';
import type { HotStore } from '../store/hot-store.ts';
import { checkStores, STORE_CHECK_TIMEOUT_MS } from './store-health.ts';

const processMetrics = new Registry();
// Node's own: CPU, memory, heap, event-loop delay, handles, GC.
collectDefaultMetrics({ register: processMetrics });

export type LoginOutcome = 'success' | 'invalid_credentials' | 'invalid_second_factor';

const logins = new Counter({
  name: 'idp_logins_total',
  help: 'Interactive sign-ins by outcome: success (the provider got the login), invalid_credentials (wrong identifier or password), invalid_second_factor (wrong TOTP or backup code).',
  labelNames: ['outcome'] as const,
  registers: [processMetrics],
});

const tokens = new Counter({
  name: 'idp_tokens_issued_total',
  help: 'Successful token endpoint responses by grant type.',
  labelNames: ['grant_type'] as const,
  registers: [processMetrics],
});

const attemptsRefused = new Counter({
  name: 'idp_rate_limited_total',
  help: 'Requests and attempts refused because their key was over a rate or attempt limit, by limiter.',
  labelNames: ['limiter'] as const,
  registers: [processMetrics],
});

const lockouts = new Counter({
  name: 'idp_lockouts_total',
  help: 'Keys (a sign-in, a person) that went over the limit of an attempt limiter and are locked until its window ends, by limiter.',
  labelNames: ['limiter'] as const,
  registers: [processMetrics],
});

// Bounded label set: the kinds below, nothing per user or address.
export type SecurityEventKind = 'lockout' | 'permanent_lockout' | 'locked_refusal' | 'identifier_rate_limited' | 'captcha_required' | 'captcha_failed' | 'spraying_detected' | 'spraying_refusal' | 'unlock';

const securityEvents = new Counter({
  name: 'idp_security_events_total',
  help: 'Sign-in abuse protection by kind: lockout, permanent_lockout, locked_refusal (an attempt at a locked identifier), identifier_rate_limited, captcha_required, captcha_failed, spraying_detected, spraying_refusal (an attempt from a blocked address), unlock.',
  labelNames: ['kind'] as const,
  registers: [processMetrics],
});

const requestDuration = new Histogram({
  name: 'idp_http_request_duration_seconds',
  help: 'Time to answer an HTTP request, by method, route template (or oidc-provider route name) and status.',
  labelNames: ['method', 'route', 'status'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [processMetrics],
});

const ipBlocked = new Counter({
  name: 'idp_ip_blocked_total',
  help: 'Requests refused because the tenant\'s IP rules do not admit the client address, by surface (login, adminApi, apiKeys).',
  labelNames: ['surface'] as const,
  registers: [processMetrics],
});

let outboxLagProbe: (() => Promise<number>) | undefined;

const outboxLag = new Gauge({
  name: 'idp_outbox_lag_seconds',
  help: 'Age of the oldest event in the outbox not yet delivered (0 when it is empty or no outbox reports).',
  registers: [processMetrics],
  async collect() {
    if (!outboxLagProbe) return;
    const seconds = await Promise.race([
      outboxLagProbe().catch(() => undefined),
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), STORE_CHECK_TIMEOUT_MS).unref()),
    ]);
    // A probe that fails or times out leaves the last value: the lag is unknown, not zero.
    if (seconds !== undefined && Number.isFinite(seconds)) this.set(Math.max(0, seconds));
  },
});

export function countLogin(outcome: LoginOutcome): void {
  logins.inc({ outcome });
}

// grant_type is one the provider registered (the request was served), so the label set is bounded.
export function countTokenIssued(grantType: string): void {
  tokens.inc({ grant_type: grantType });
}

// lockoutBegins: this refusal is the first for its key in the window.
export function countAttemptRefused(limiter: string, lockoutBegins: boolean): void {
  attemptsRefused.inc({ limiter });
  if (lockoutBegins) lockouts.inc({ limiter });
}

// A rate-limit refusal delays, it does not lock anyone out: only the refusal counter moves.
export function countRateLimited(limiter: string): void {
  attemptsRefused.inc({ limiter });
}

export function countSecurityEvent(kind: SecurityEventKind): void {
  securityEvents.inc({ kind });
}

export function countIpBlocked(surface: string): void {
  ipBlocked.inc({ surface });
}

export function timeRequest(): (labels: { method: string; route: string; status: string }) => void {
  const end = requestDuration.startTimer();
  return (labels) => void end(labels);
}

// The outbox reports its lag: either pushed whenever it knows it...
export function setOutboxLag(seconds: number): void {
  if (Number.isFinite(seconds)) outboxLag.set(Math.max(0, seconds));
}

// ...or sampled at scrape time (bounded by a timeout). Returns the function that unregisters it.
export function sampleOutboxLagOnScrape(probe: () => Promise<number>): () => void {
  outboxLagProbe = probe;
  return () => {
    if (outboxLagProbe === probe) outboxLagProbe = undefined;
  };
}

// What one runtime serves at /metrics: the process's metrics and the health of its own stores.
export function createInstanceMetrics(db: Database, hot: HotStore): Registry {
  const instance = new Registry();
  new Gauge({
    name: 'idp_store_up',
    help: 'Readiness checks sampled at scrape time: database (PostgreSQL answers), hot_store (Redis answers), migrations (all applied). 1 up, 0 down.',
    labelNames: ['check'] as const,
    registers: [instance],
    async collect() {
      const health = await checkStores(db, hot);
      this.set({ check: 'database' }, Number(health.database));
      this.set({ check: 'hot_store' }, Number(health.hotStore));
      this.set({ check: 'migrations' }, Number(health.migrations));
    },
  });
  return Registry.merge([processMetrics, instance]);
}

// Outages (docs/operations.md, "Outages"): Redis unreachable, PostgreSQL unreachable.
const hotStoreDegraded = new Gauge({
  name: 'idp_hot_store_degraded',
  help: '1 while Redis is unreachable and this instance keeps hot state in its in-process fallback, else 0.',
  registers: [processMetrics],
});

const hotStoreFallbackOperations = new Counter({
  name: 'idp_hot_store_fallback_operations_total',
  help: 'Hot-store operations the in-process fallback served (or refused when full) because Redis was unreachable.',
  registers: [processMetrics],
});

const storeUnavailableRequests = new Counter({
  name: 'idp_store_unavailable_total',
  help: 'Requests answered 503 because a store was unreachable: PostgreSQL down or its pool without a connection in time, or Redis down with the fallback full.',
  registers: [processMetrics],
});

export function setHotStoreDegraded(degraded: boolean): void {
  hotStoreDegraded.set(degraded ? 1 : 0);
}

export function countHotStoreFallback(): void {
  hotStoreFallbackOperations.inc();
}

export function countStoreUnavailable(): void {
  storeUnavailableRequests.inc();
}
