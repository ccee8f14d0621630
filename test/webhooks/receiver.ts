// A webhook receiver on loopback: records every request and answers with the statuses it is told,
// one per request (the last one repeats).
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface Receiver {
  url: string;
  requests: ReceivedRequest[];
  answer(...statuses: number[]): void;
  close(): Promise<void>;
}

export async function startReceiver(options: { headers?: Record<string, string> } = {}): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  let statuses = [204];
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      requests.push({ headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
      const status = statuses.length > 1 ? statuses.shift()! : statuses[0];
      response.writeHead(status, options.headers).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    requests,
    answer(...next) {
      statuses = next;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
