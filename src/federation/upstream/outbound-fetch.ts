// A fetch for talking to upstream identity providers: every request has a timeout, follows no
// redirects, reads a bounded answer, and reaches only public addresses (each address a host name
// resolves to is checked when connecting, so DNS rebinding cannot reach loopback or the private
// network) unless the deployment allows private ones. Plain http only then, too. Failures to
// reach the upstream throw UpstreamError('unreachable') with a message safe to log.
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { isPublicAddress } from '../../webhooks/destination.ts';
import { describe as describeNetworkError, guardedLookup } from '../../webhooks/sender.ts';
import { UpstreamError } from '../connector.ts';

export interface OutboundOptions {
  allowPrivateNetwork: boolean;
  timeoutMs: number;
}

export interface OutboundRequest {
  method?: string;
  headers?: Record<string, string> | Headers;
  body?: string | URLSearchParams | Uint8Array | ArrayBuffer | ReadableStream | null;
  signal?: AbortSignal | null;
}

export type OutboundFetch = (url: string | URL, init?: OutboundRequest) => Promise<Response>;

// Discovery documents, JWKS, tokens and profiles are small; a larger answer is not an upstream's.
const MAX_RESPONSE_BYTES = 1024 * 1024;

async function bodyBytes(body: OutboundRequest['body']): Promise<Buffer | undefined> {
  if (body === undefined || body === null) return undefined;
  return Buffer.from(await new Response(body).arrayBuffer());
}

function unreachable(host: string, reason: string): UpstreamError {
  return new UpstreamError('unreachable', `${host}: ${reason}`);
}

export function createOutboundFetch(options: OutboundOptions): OutboundFetch {
  return async (target, init = {}) => {
    const url = new URL(target);
    const host = url.host;
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && options.allowPrivateNetwork)) {
      throw unreachable(host, 'only https is allowed');
    }
    const literal = url.hostname.replace(/^\[|\]$/g, '');
    if (isIP(literal) && !options.allowPrivateNetwork && !isPublicAddress(literal)) {
      throw unreachable(host, describeNetworkError({ code: 'EBLOCKED' }));
    }
    const timeout = AbortSignal.timeout(options.timeoutMs);
    const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    const body = await bodyBytes(init.body);
    const headers: Record<string, string> = { 'user-agent': 'idp-federation/1' };
    for (const [name, value] of new Headers(init.headers ?? {})) headers[name] = value;
    if (body) headers['content-length'] = String(body.length);
    const client = url.protocol === 'https:' ? https : http;

    return new Promise<Response>((resolve, reject) => {
      const request = client.request(
        url,
        { method: init.method ?? 'GET', headers, lookup: guardedLookup(options.allowPrivateNetwork), signal, agent: false },
        (response) => {
          const chunks: Buffer[] = [];
          let received = 0;
          response.on('data', (chunk: Buffer) => {
            received += chunk.length;
            if (received > MAX_RESPONSE_BYTES) {
              response.destroy();
              reject(unreachable(host, 'the answer is too large'));
              return;
            }
            chunks.push(chunk);
          });
          response.on('error', (error) => reject(unreachable(host, describeNetworkError(error))));
          // Without 'end' first (a reset or a timeout mid-answer); after it, this changes nothing.
          response.on('close', () => reject(unreachable(host, signal.aborted ? 'timed out' : 'connection closed')));
          response.on('end', () => {
            const status = response.statusCode ?? 0;
            if (status < 200 || status > 599) {
              reject(unreachable(host, `unexpected HTTP status ${status}`));
              return;
            }
            try {
              const answerHeaders = new Headers();
              for (let index = 0; index < response.rawHeaders.length; index += 2) {
                answerHeaders.append(response.rawHeaders[index], response.rawHeaders[index + 1]);
              }
              const nullBody = status === 204 || status === 205 || status === 304;
              resolve(new Response(nullBody ? null : Buffer.concat(chunks), { status, headers: answerHeaders }));
            } catch {
              reject(new UpstreamError('invalid_response', `${host}: a malformed HTTP answer`));
            }
          });
        },
      );
      request.on('error', (error) => reject(unreachable(host, describeNetworkError(error))));
      request.end(body);
    });
  };
}
