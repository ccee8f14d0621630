// The background side of the outbox: a loop per job (publishing, webhook delivery), each woken by
// a short interval and on demand, and a slower purge of what is past its retention. A loop never
// overlaps itself; a failed round is logged and retried on the next tick.
import type { Logger } from 'pino';

export interface WorkerJob {
  name: string;
  // One bounded round; resolves to how much it did. A full round is followed by another at once.
  run(): Promise<number>;
  // A round that did at least this much runs again without waiting for the interval.
  fullRound: number;
}

export interface EventWorkerOptions {
  jobs: WorkerJob[];
  purge: () => Promise<number>;
  log: Logger;
  intervalMs: number;
  purgeIntervalMs: number;
}

export interface EventWorker {
  start(): void;
  // Run soon (an event was just committed in this process): the job of that name, or every job.
  wake(job?: string): void;
  // Every job until it runs out of work: what tests and the shutdown flush use.
  drain(): Promise<void>;
  // One purge round now (it also runs on its own interval); how many events went.
  purge(): Promise<number>;
  // Stops the loops; with flushMs, a started worker first works off what is due for at most that long.
  stop(options?: { flushMs?: number }): Promise<void>;
}

const MAX_ROUNDS_PER_TICK = 20;
// A wake runs the loop this much later, so the events of sign-ins committed close together go out
// in one round (one transaction) instead of one round each.
const WAKE_COALESCE_MS = 15;

interface Loop {
  job: WorkerJob;
  timer?: NodeJS.Timeout;
  current?: Promise<void>;
  again: boolean;
  woken: boolean;
}

export function createEventWorker(options: EventWorkerOptions): EventWorker {
  const { log, intervalMs } = options;
  const loops: Loop[] = options.jobs.map((job) => ({ job, again: false, woken: false }));
  let running = false;
  let purgeTimer: NodeJS.Timeout | undefined;

  async function rounds(loop: Loop, limit: number): Promise<void> {
    for (let round = 0; round < limit; round++) {
      const done = await loop.job.run();
      if (done < loop.job.fullRound) return;
    }
  }

  function schedule(loop: Loop, delayMs: number): void {
    if (!running) return;
    clearTimeout(loop.timer);
    loop.timer = setTimeout(() => tick(loop), delayMs);
    loop.timer.unref();
  }

  function tick(loop: Loop): void {
    clearTimeout(loop.timer);
    loop.woken = false;
    if (loop.current) {
      loop.again = true;
      return;
    }
    loop.again = false;
    loop.current = rounds(loop, MAX_ROUNDS_PER_TICK)
      .catch((error) => log.warn({ err: error, job: loop.job.name }, 'event worker round failed'))
      .finally(() => {
        loop.current = undefined;
        schedule(loop, loop.again ? 0 : intervalMs);
      });
  }

  async function idle(): Promise<void> {
    await Promise.all(loops.map((loop) => loop.current));
  }

  async function drain(deadline = Infinity): Promise<void> {
    await idle();
    for (const loop of loops) {
      while (Date.now() < deadline) {
        const done = await loop.job.run();
        if (done === 0) break;
      }
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      for (const loop of loops) schedule(loop, 0);
      purgeTimer = setInterval(() => {
        options
          .purge()
          .then((removed) => removed && log.info({ removed }, 'purged published events past their retention'))
          .catch((error) => log.warn({ err: error }, 'purge of published events failed'));
      }, options.purgeIntervalMs);
      purgeTimer.unref();
    },
    wake(job) {
      if (!running) return;
      for (const loop of loops) {
        if (job && loop.job.name !== job) continue;
        if (loop.current) loop.again = true;
        else if (!loop.woken) {
          loop.woken = true;
          schedule(loop, WAKE_COALESCE_MS);
        }
      }
    },
    drain: () => drain(),
    purge: () => options.purge(),
    async stop({ flushMs = 0 } = {}) {
      const wasRunning = running;
      running = false;
      clearInterval(purgeTimer);
      for (const loop of loops) clearTimeout(loop.timer);
      await idle();
      if (wasRunning && flushMs > 0) {
        // A round in flight at the deadline is abandoned: its rows stay claimable, so nothing is lost.
        const deadline = new Promise<void>((resolve) => setTimeout(resolve, flushMs).unref());
        await Promise.race([drain(Date.now() + flushMs).catch((error) => log.warn({ err: error }, 'flushing events at shutdown failed')), deadline]);
      }
    },
  };
}
