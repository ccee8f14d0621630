// A TCP proxy on a free loopback port in front of a server (PostgreSQL in the outage tests), which a
// test can cut (every open connection dropped, new ones reset at once) and restore; or arm to cut at
// a precise point of a conversation (a COMMIT after a given statement), to prove nothing half-applies.
import net from 'node:net';

export interface TcpProxy {
  port: number;
  // Drops every open connection and refuses new ones until restore().
  cut(): void;
  restore(): void;
  // Cuts (as cut()) when a client connection sends `then` after it sent `first` (case-insensitive);
  // the chunk carrying `then` never reaches the server. Resolves when it happened.
  cutWhenSent(first: string, then: string): Promise<void>;
  close(): Promise<void>;
}

interface Trigger {
  first: string;
  then: string;
  fired: () => void;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let isCut = false;
  let trigger: Trigger | undefined;
  const open = new Set<net.Socket>();
  const track = (socket: net.Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    socket.on('error', () => {});
  };
  const cut = () => {
    isCut = true;
    for (const socket of open) socket.resetAndDestroy();
  };
  const server = net.createServer((client) => {
    track(client);
    if (isCut) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(target.port, target.host);
    track(upstream);
    let sawFirst = false;
    client.on('data', (chunk: Buffer) => {
      if (trigger) {
        const text = chunk.toString('latin1').toLowerCase();
        if (sawFirst && text.includes(trigger.then)) {
          const { fired } = trigger;
          trigger = undefined;
          cut();
          fired();
          return;
        }
        if (text.includes(trigger.first)) sawFirst = true;
      }
      upstream.write(chunk);
    });
    upstream.pipe(client);
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    cut,
    restore() {
      isCut = false;
    },
    cutWhenSent(first, then) {
      return new Promise<void>((resolve) => {
        trigger = { first: first.toLowerCase(), then: then.toLowerCase(), fired: resolve };
      });
    },
    async close() {
      trigger = undefined;
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
