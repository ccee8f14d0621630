// The client certificate of a request (mutual TLS, RFC 8705). Served over TLS, it is the one the
// peer presented in the handshake. Behind a TLS-terminating proxy, it is the one the proxy forwards
// in MTLS_CERTIFICATE_HEADER, and only when the connection itself comes from a trusted proxy: the
// decision uses the socket's address, never X-Forwarded-For, which any client can write.
import { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { clientAddressResolver } from '../security/client-ip.ts';

export interface ClientCertificateOptions {
  trustedProxies: string[];
  // Lower-case header name; unset, no header is ever read.
  certificateHeader?: string;
}

export type ClientCertificateSource = (req: IncomingMessage) => X509Certificate | undefined;

// A forwarded certificate is at most a few kilobytes; anything larger is refused unread.
const MAX_HEADER_LENGTH = 16_384;

// The header holds either a URL-encoded PEM certificate (nginx `$ssl_client_escaped_cert`,
// Traefik, HAProxy with url-encoding) or the base64 DER encoding (Caddy
// `{http.request.tls.client.certificate_der_base64}`, Envoy-style `:base64:` values).
export function parseForwardedCertificate(value: string): X509Certificate | undefined {
  if (!value || value.length > MAX_HEADER_LENGTH) return undefined;
  try {
    let text = value.trim();
    if (text.includes('%')) text = decodeURIComponent(text);
    if (text.includes('-----BEGIN CERTIFICATE-----')) return new X509Certificate(text);
    const der = text.replace(/^:|:$/g, '').replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(der)) return undefined;
    return new X509Certificate(Buffer.from(der, der.includes('-') || der.includes('_') ? 'base64url' : 'base64'));
  } catch {
    return undefined;
  }
}

export function clientCertificateSource(options: ClientCertificateOptions): ClientCertificateSource {
  // The trust decision X-Forwarded-For gets (src/security/client-ip.ts), on the socket's address.
  const proxies = clientAddressResolver(options.trustedProxies);
  const header = options.certificateHeader?.toLowerCase();
  const perRequest = new WeakMap<IncomingMessage, { certificate?: X509Certificate }>();
  return (req) => {
    const known = perRequest.get(req);
    if (known) return known.certificate;
    let certificate: X509Certificate | undefined;
    if (header && proxies.trusts(req.socket.remoteAddress ?? '')) {
      // The proxy speaks for its client: its own connection's certificate (if any) is not the client's.
      const forwarded = req.headers[header];
      certificate = typeof forwarded === 'string' ? parseForwardedCertificate(forwarded) : undefined;
    } else if ((req.socket as TLSSocket).encrypted) {
      certificate = (req.socket as TLSSocket).getPeerX509Certificate() ?? undefined;
    }
    perRequest.set(req, { certificate });
    return certificate;
  };
}
