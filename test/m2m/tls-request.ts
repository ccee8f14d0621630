// HTTPS (or HTTP) requests with a chosen client certificate and source address: fetch can do
// neither. A fresh connection per request (no agent), so a certificate never leaks into the next.
import http from 'node:http';
import https from 'node:https';

export interface TlsRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  // The CA that issued the server's certificate.
  ca?: string;
  cert?: string;
  key?: string;
  // The source address: 127.0.0.1 is the trusted proxy in these tests, 127.0.0.2 is not.
  localAddress?: string;
}

export interface TlsResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json<T = Record<string, unknown>>(): T;
}

export function tlsRequest(url: string, options: TlsRequest = {}): Promise<TlsResponse> {
  const target = new URL(url);
  const transport = target.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = transport.request(
      target,
      {
        method: options.method ?? 'GET',
        headers: options.headers,
        agent: false,
        localAddress: options.localAddress,
        ...(target.protocol === 'https:' ? { ca: options.ca, cert: options.cert, key: options.key } : {}),
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: <T>() => JSON.parse(text) as T }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

export function form(values: Record<string, string>): { headers: Record<string, string>; body: string } {
  return { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(values).toString() };
}
