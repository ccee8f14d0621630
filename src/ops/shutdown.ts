// Graceful shutdown on SIGTERM (what orchestrators send) and SIGINT: stop accepting connections,
// let requests in flight finish (bounded by the server's grace), then close the runtime, which
// lets mail and events still on their way leave before the stores close, and exit 0. A shutdown
// that hangs past the deadline exits 1 rather than never.
import type { Logger } from 'pino';
import type { RunningServer } from '../server.ts';
import type { Runtime } from '../runtime.ts';

// Under Kubernetes' default 30-second termination grace period.
export const SHUTDOWN_DEADLINE_MS = 25_000;

export function exitGracefullyOnSignals(running: RunningServer, runtime: Runtime, log: Logger): void {
  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: finishing requests in flight');
    setTimeout(() => {
      log.error({ deadlineMs: SHUTDOWN_DEADLINE_MS }, 'shutdown did not finish in time: exiting');
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS);
    try {
      await running.close();
      await runtime.close();
    } catch (error) {
      log.error({ err: error }, 'shutdown failed');
      process.exit(1);
    }
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}
