// The periodic copy of API key usage from the hot store to PostgreSQL (usage.ts), on every serving
// instance; a lock in the hot store lets one instance at a time do it.
import type { Logger } from 'pino';
import type { UsageTracker } from './usage.ts';

export function startUsageFlush(usage: Pick<UsageTracker, 'flush'>, log: Logger, intervalSeconds: number): () => void {
  const timer = setInterval(() => {
    usage
      .flush()
      .then((written) => written && log.debug({ written }, 'flushed API key usage'))
      .catch((error) => log.warn({ err: error }, 'flush of API key usage failed'));
  }, intervalSeconds * 1000);
  timer.unref();
  return () => clearInterval(timer);
}
