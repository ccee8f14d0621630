// The periodic cleanup of device-session rows (next to the purge of expired oidc records): ended
// rows and rows idle longer than any provider session lives go, in bounded batches per run.
import type { Logger } from 'pino';
import type { SessionService } from './service.ts';

export function startSessionPurge(sessions: Pick<SessionService, 'purge'>, log: Logger, intervalSeconds: number): () => void {
  const timer = setInterval(() => {
    sessions
      .purge()
      .then((removed) => removed && log.info({ removed }, 'purged ended device sessions'))
      .catch((error) => log.warn({ err: error }, 'purge of ended device sessions failed'));
  }, intervalSeconds * 1000);
  timer.unref();
  return () => clearInterval(timer);
}
