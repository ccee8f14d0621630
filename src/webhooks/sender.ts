// One webhook POST: a timeout, no redirects followed (a 3xx is a failure), and only to public
// addresses unless the deployment allows private ones. The answer's body is read (bounded) and
// dropped; only the status counts.
import http from 'node:http';
import https from 'node:https';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { isPublicAddress } from './destination.ts';

export interface SendResult {
  ok: boolean;
  statusCode?: number;
  // Short and safe to show administrators: never the request, its headers or the secret.
  error?: string;
}

export interface SendOptions {
  timeoutMs: number;
  allowPrivateNetwork: boolean;
}

const MAX_RESPONSE_BYTES = 64 * 1024;

class BlockedAddressError extends Error {
  code = 'EBLOCKED';
}

export function guardedLookup(allowPrivateNetwork: boolean): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
      if (error) return (callback as (error: Error) => void)(error);
      if (!allowPrivateNetwork && addresses.some((item) => !isPublicAddress(item.address))) {
        return (callback as (error: Error) => void)(new BlockedAddressError(`${hostname} resolves to a non-public address`));
      }
      if (options.all) return (callback as (error: null, addresses: LookupAddress[]) => void)(null, addresses);
      (callback as (error: null, address: string, family: number) => void)(null, addresses[0].address, addresses[0].family);
    });
  };
}

export function describe(error: unknown): string {
  const code = (error as { code?: string }).code;
  if (code === 'EBLOCKED') return 'the address is not public (blocked)';
  if (code === 'ETIMEDOUT' || (error as Error).name === 'TimeoutError' || (error as Error).name === 'AbortError') return 'timed out';
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'host not found';
  if (code === 'ECONNRESET') return 'connection reset';
  if (code?.startsWith('ERR_TLS') || code?.includes('CERT')) return 'TLS failure';
  return code ? `network error (${code})` : 'network error';
}

export function sendWebhook(target: string, headers: Record<string, string>, body: string, options: SendOptions): Promise<SendResult> {
  const url = new URL(target);
  const literal = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(literal) && !options.allowPrivateNetwork && !isPublicAddress(literal)) {
    return Promise.resolve({ ok: false, error: describe(new BlockedAddressError()) });
  }
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve) => {
    const request = client.request(
      url,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'user-agent': 'idp-webhooks/1', ...headers },
        lookup: guardedLookup(options.allowPrivateNetwork),
        signal: AbortSignal.timeout(options.timeoutMs),
        agent: false,
      },
      (response) => {
        let received = 0;
        response.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received > MAX_RESPONSE_BYTES) response.destroy();
        });
        const statusCode = response.statusCode ?? 0;
        const settle = () => resolve(statusCode >= 200 && statusCode < 300 ? { ok: true, statusCode } : { ok: false, statusCode, error: `HTTP ${statusCode}` });
        response.on('end', settle);
        response.on('close', settle);
        response.on('error', settle);
      },
    );
    request.on('error', (error) => resolve({ ok: false, error: describe(error) }));
    request.end(body);
  });
}
