// GET /events/revocations: the revocation events as Server-Sent Events, for resource servers.
// Each event is `id:` (the event id), `event:` (its type) and `data:` (the event as JSON); a
// comment line every 15 seconds keeps proxies from closing an idle stream. Last-Event-ID is not
// honoured: events are not kept, so a reader that reconnects has missed what happened meanwhile.
import Router from '@koa/router';
import { PassThrough } from 'node:stream';
import type { Logger } from 'pino';
import { problem } from '../http/errors.ts';
import type { RevocationBus, RevocationEvent } from './revocation-bus.ts';
import { streamAccess, type StreamAccessDependencies, type StreamReader } from './stream-access.ts';

export const REVOCATION_STREAM_PATH = '/events/revocations';
const HEARTBEAT_MS = 15_000;
const RECONNECT_HINT_MS = 2_000;
// Open streams per instance: each holds a connection, so their number has a ceiling.
const MAX_STREAMS = 1_000;

export interface RevocationStreamDependencies extends StreamAccessDependencies {
  revocations: RevocationBus;
  log: Logger;
  heartbeatMs?: number;
  maxStreams?: number;
}

// Events without a tenant are only for platform readers: a tenant never sees another's.
export function visibleTo(reader: StreamReader, event: RevocationEvent): boolean {
  return reader.platform || (event.tenantId !== undefined && event.tenantId === reader.tenantId);
}

export function formatEvent(event: RevocationEvent): string {
  return `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
}

export function revocationStreamRoutes(deps: RevocationStreamDependencies): Router {
  const access = streamAccess(deps);
  const router = new Router();
  let open = 0;

  router.get(REVOCATION_STREAM_PATH, async (ctx) => {
    const result = await access.authenticate(ctx);
    if (!result.ok) {
      if (result.status === 401) ctx.set('WWW-Authenticate', 'Basic realm="revocations", charset="UTF-8"');
      problem(ctx, result.status, result.status === 401 ? 'unauthorized' : 'forbidden', result.detail);
      return;
    }
    const { reader } = result;
    if (open >= (deps.maxStreams ?? MAX_STREAMS)) {
      ctx.set('Retry-After', '30');
      problem(ctx, 503, 'too-many-streams', 'this instance serves as many revocation streams as it may; retry later');
      return;
    }
    // Subscribed before the first byte: what is revoked after the response starts reaches it.
    await deps.revocations.ready();

    const stream = new PassThrough();
    stream.on('error', () => {});
    let ended = false;
    open++;
    const send = (text: string) => {
      if (!ended) stream.write(text);
    };
    const unsubscribe = deps.revocations.subscribe((event) => {
      if (visibleTo(reader, event)) send(formatEvent(event));
    });
    const heartbeat = setInterval(() => {
      send(': heartbeat\n\n');
      access.stillAllowed(reader).then(
        (allowed) => allowed || end(),
        () => {},
      );
    }, deps.heartbeatMs ?? HEARTBEAT_MS);
    heartbeat.unref();
    function end(): void {
      if (ended) return;
      ended = true;
      open--;
      clearInterval(heartbeat);
      unsubscribe();
      stream.end();
    }
    ctx.res.once('close', end);
    deps.log.debug({ clientId: reader.clientId, tenantId: reader.platform ? '*' : reader.tenantId }, 'revocation stream opened');

    ctx.req.socket.setNoDelay(true);
    ctx.req.socket.setTimeout(0);
    ctx.status = 200;
    ctx.type = 'text/event-stream; charset=utf-8';
    ctx.set('Cache-Control', 'no-store');
    ctx.set('X-Accel-Buffering', 'no');
    send(`retry: ${RECONNECT_HINT_MS}\n: subscribed\n\n`);
    ctx.body = stream;
  });

  return router;
}
