// A round-robin HTTP proxy on one loopback port in front of several instances, as a load balancer
// without affinity would be: the instances share one issuer (the proxy's URL), and each request
// goes to the next instance in turn. The proxy records which instance served each request, so a
// test can tell where the steps of a flow landed without any help from the instances.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ServedRequest {
  method: string;
  path: string;
  // Index of the target in the order given to `use`.
  target: number;
  status: number;
}

export interface RoundRobinProxy {
  // The one URL clients know; the instances' issuer.
  url: string;
  // Every request proxied so far, in the order the answers came back.
  served: ServedRequest[];
  // Sets the instances to spread over (base URLs); requests before that are answered 503.
  use(targets: string[]): void;
  // Requests served per target.
  counts(): number[];
  close(): Promise<void>;
}

export async function startRoundRobinProxy(): Promise<RoundRobinProxy> {
  let targets: URL[] = [];
  let next = 0;
  const served: ServedRequest[] = [];
  const agent = new http.Agent({ keepAlive: true });

  const server = http.createServer((request, response) => {
    if (!targets.length) {
      response.writeHead(503).end();
      return;
    }
    const index = next;
    next = (next + 1) % targets.length;
    const target = targets[index];
    // The Host header is left as the client sent it: the instances see the issuer's host.
    const upstream = http.request(
      { agent, host: target.hostname, port: target.port, method: request.method, path: request.url, headers: request.headers },
      (answer) => {
        served.push({ method: request.method ?? 'GET', path: (request.url ?? '/').split('?')[0], target: index, status: answer.statusCode ?? 0 });
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.on('error', () => response.destroy());
        answer.pipe(response);
      },
    );
    // A connection cut on either side ends the exchange; it must not bring the test process down.
    upstream.on('error', () => {
      if (!response.headersSent) response.writeHead(502);
      response.end();
    });
    request.on('error', () => upstream.destroy());
    response.on('error', () => upstream.destroy());
    request.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    served,
    use(urls) {
      targets = urls.map((url) => new URL(url));
      next = 0;
    },
    counts() {
      return targets.map((_, index) => served.filter((entry) => entry.target === index).length);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
