// Starts an HTTP server on a runtime and the periodic jobs that keep storage bounded.
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Runtime } from './runtime.ts';
import { buildApp } from './app.ts';
import { purgeExpiredPayloads } from './oidc/durable-payloads.ts';

export interface RunningServer {
  url: string;
  server: http.Server;
  close(): Promise<void>;
}

const KEY_CHECK_INTERVAL_MS = 30_000;
// On close, how long requests in flight may take to finish before their connections are cut.
export const REQUEST_GRACE_MS = 10_000;

export async function startServer(runtime: Runtime, options: { port?: number; host?: string } = {}): Promise<RunningServer> {
  const { config, log } = runtime;
  const app = buildApp(runtime);
  // Over TLS the client is asked for a certificate but never required to have one, nor one from a
  // known CA: mutual TLS client authentication decides what a certificate is worth (RFC 8705).
  const server: http.Server = config.tls
    ? https.createServer({ cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile), requestCert: true, rejectUnauthorized: false }, app.callback())
    : http.createServer(app.callback());
  // A client gets REQUEST_TIMEOUT to send its whole request (headers within at most 20 s: slow
  // headers are the cheapest way to hold a connection); the app answers 503 if it takes as long.
  server.requestTimeout = config.requestTimeoutSeconds * 1000;
  server.headersTimeout = Math.min(20_000, server.requestTimeout);
  server.keepAliveTimeout = 65_000;
  let closing = false;
  // A body refused half-read (oidc-provider and the form parser stop at their size limits) would
  // stay in the socket and wedge the keep-alive connection: the next request on it never gets an
  // answer. Node drains only bodies nobody began to read, so drain the rest here (requestTimeout
  // still bounds how long a client may keep sending).
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    // Closing: a request that still arrives on a kept-alive connection is served, then that
    // connection ends.
    if (closing) res.setHeader('Connection', 'close');
    res.once('finish', () => {
      if (!req.complete && !req.destroyed) req.resume();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? config.port, options.host ?? config.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  const jobs = [
    setInterval(() => {
      purgeExpiredPayloads(runtime.db)
        .then((removed) => removed && log.info({ removed }, 'purged expired oidc records'))
        .catch((error) => log.warn({ err: error }, 'purge of expired oidc records failed'));
      runtime.keys.removeExpired().catch((error) => log.warn({ err: error }, 'removal of expired keys failed'));
    }, config.purgeIntervalSeconds * 1000),
    // Pub/sub announces key changes at once; this catches any announcement an instance missed.
    setInterval(() => void runtime.providerHost.refresh(), KEY_CHECK_INTERVAL_MS),
  ];
  for (const job of jobs) job.unref();

  return {
    url: `${config.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    server,
    async close() {
      for (const job of jobs) clearInterval(job);
      closing = true;
      // New connections are refused at once; a kept-alive connection is closed as soon as its
      // request in flight is answered, and whatever is still running after the grace is cut.
      await new Promise<void>((resolve) => {
        const idleSweep = setInterval(() => server.closeIdleConnections(), 50);
        const cutOff = setTimeout(() => server.closeAllConnections(), REQUEST_GRACE_MS);
        server.close(() => {
          clearInterval(idleSweep);
          clearTimeout(cutOff);
          resolve();
        });
        server.closeIdleConnections();
      });
    },
  };
}
