// A private redis-server on a free loopback port that a test can stop and start again on the same
// port (a Redis outage and its end). Nothing is persisted: a restart begins empty, as after a crash.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { waitForPing } from './redis-cluster.ts';
import { freePort } from './instance.ts';

export interface PrivateRedis {
  url: string;
  port: number;
  // Kills the server (SIGKILL: an outage, not a clean shutdown) and waits for it to be gone.
  stop(): Promise<void>;
  // Starts it again on the same port and waits until it answers.
  start(): Promise<void>;
  // Freezes it (SIGSTOP): connections stay open, nothing is answered. resume() thaws it (SIGCONT).
  pause(): void;
  resume(): void;
  // Stops it for good and removes its directory; safe to call more than once.
  close(): Promise<void>;
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'idp-redis-'));
  let child: ChildProcess | undefined;

  const start = async () => {
    if (child) return;
    const started = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    child = started;
    started.once('exit', () => {
      if (child === started) child = undefined;
    });
    await waitForPing(port);
  };
  const stop = async () => {
    const running = child;
    if (!running) return;
    child = undefined;
    const exited = new Promise<void>((resolve) => (running.exitCode !== null || running.signalCode !== null ? resolve() : running.once('exit', () => resolve())));
    running.kill('SIGKILL');
    await exited;
  };
  try {
    await start();
  } catch (error) {
    await stop();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop,
    start,
    pause() {
      child?.kill('SIGSTOP');
    },
    resume() {
      child?.kill('SIGCONT');
    },
    async close() {
      child?.kill('SIGCONT');
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

