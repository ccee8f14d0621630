// Starts a real provider instance (HTTP server + runtime) on a loopback port.
import net from 'node:net';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { startServer, type RunningServer } from '../../src/server.ts';

export interface Instance {
  url: string;
  runtime: Runtime;
  server: RunningServer;
  stop(): Promise<void>;
}

export const TEST_ENV: Record<string, string> = {
  // Real argon2id, with a lighter memory cost so the suite stays quick.
  ARGON2_MEMORY_KIB: '8192',
  ARGON2_ITERATIONS: '1',
  LOG_LEVEL: 'silent',
  // Test peers (back-channel logout receivers, JWKS servers) listen on loopback.
  OUTBOUND_ALLOW_PRIVATE_NETWORK: 'true',
};

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

// `https`: served over TLS (env must set TLS_CERT_FILE and TLS_KEY_FILE).
export async function startInstance(env: Record<string, string>, options: { issuer?: string; port?: number; https?: boolean } = {}): Promise<Instance> {
  const port = options.port ?? (await freePort());
  const scheme = options.https ? 'https' : 'http';
  const issuer = options.issuer ?? `${scheme}://127.0.0.1:${port}`;
  const config = loadConfig({ ...TEST_ENV, ...env, ISSUER: issuer, PORT: String(port), HOST: '127.0.0.1' });
  const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const runtime = await createRuntime(config, { serve: true, log });
  const server = await startServer(runtime, { port, host: '127.0.0.1' });
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    runtime,
    server,
    async stop() {
      await server.close();
      await runtime.close();
    },
  };
}
