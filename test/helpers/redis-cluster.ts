// A throwaway three-master Redis Cluster on loopback, started by the test that needs it.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from './instance.ts';

const run = promisify(execFile);

export interface LocalCluster {
  urls: string[];
  stop(): Promise<void>;
}

export async function redisServerAvailable(): Promise<string | undefined> {
  try {
    await run('redis-server', ['--version']);
    await run('redis-cli', ['--version']);
    return undefined;
  } catch {
    return 'redis-server and redis-cli are not installed';
  }
}

export async function startRedisCluster(): Promise<LocalCluster> {
  const dir = mkdtempSync(path.join(tmpdir(), 'idp-redis-cluster-'));
  const ports = [await freePort(), await freePort(), await freePort()];
  const processes: ChildProcess[] = ports.map((port) =>
    spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`,
        '--dir', dir, '--save', '', '--appendonly', 'no', '--cluster-node-timeout', '2000'],
      { stdio: 'ignore' },
    ),
  );
  const onSignal = (signal: NodeJS.Signals) => {
    stopNow();
    process.kill(process.pid, signal);
  };
  const stopNow = () => {
    process.off('exit', stopNow);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    for (const child of processes) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  // A run that ends early (a failed hook, process.exit, a signal) still leaves no redis-server or
  // directory behind; after cleaning up, the signal is raised again with its default effect.
  process.once('exit', stopNow);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const stop = async () => stopNow();
  try {
    for (const port of ports) await waitForPing(port);
    await run('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 20_000 });
    await waitForClusterOk(ports[0]);
    return { urls: ports.map((port) => `redis://127.0.0.1:${port}`), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

let shared: Promise<LocalCluster> | undefined;

// One cluster for every suite of the process that asks for it, started on first use. Suites run
// one after another and may share it; it is stopped when the process exits.
export function sharedRedisCluster(): Promise<LocalCluster> {
  shared ??= startRedisCluster().catch((error: unknown) => {
    shared = undefined;
    throw error;
  });
  return shared;
}

// Resolves once a redis-server on this loopback port answers PING.
export async function waitForPing(port: number): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    redis.on('error', () => {});
    try {
      await redis.connect();
      await redis.ping();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      redis.disconnect();
    }
  }
  throw new Error(`redis on ${port} did not start`);
}

async function waitForClusterOk(port: number): Promise<void> {
  const redis = new Redis({ port, host: '127.0.0.1' });
  try {
    for (let attempt = 0; attempt < 100; attempt++) {
      const info = (await redis.cluster('INFO')) as string;
      if (info.includes('cluster_state:ok')) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error('cluster did not reach cluster_state:ok');
  } finally {
    redis.disconnect();
  }
}
