// oidc-provider's mutual TLS feature (RFC 8705) as this deployment can offer it: on when the
// provider sees client certificates (served over TLS itself, or behind a proxy that forwards them),
// off otherwise, so discovery never advertises what cannot work.
import type { X509Certificate } from 'node:crypto';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Config } from '../config.ts';
import { clientCertificateSource } from './client-certificate.ts';
import { certificateSubjectMatches, issuedByTrustedCa, readCertificateBundle } from './certificate-subject.ts';
import { CLIENT_AUTH_METHODS, MTLS_AUTH_METHODS } from './service.ts';

// The endpoints a client calls with its certificate (RFC 8705 §5).
const ALIASED_ENDPOINTS = {
  token_endpoint: '/token',
  introspection_endpoint: '/token/introspection',
  revocation_endpoint: '/token/revocation',
  userinfo_endpoint: '/me',
  pushed_authorization_request_endpoint: '/request',
} as const;

export function mtlsEnabled(config: Pick<Config, 'tls' | 'mtls'>): boolean {
  return Boolean(config.tls || config.mtls.certificateHeader);
}

// The token endpoint authentication methods the provider offers.
export function offeredAuthMethods(config: Pick<Config, 'tls' | 'mtls'>): string[] {
  const mtls = new Set<string>(MTLS_AUTH_METHODS);
  return CLIENT_AUTH_METHODS.filter((method) => mtlsEnabled(config) || !mtls.has(method));
}

// `mtls_endpoint_aliases` for discovery, when the certificate-taking endpoints live on their own
// host (MTLS_ENDPOINT_ALIASES_URL), so browsers on the main host are never asked for a certificate.
// Returned as the discovery members to add (none without the setting).
export function mtlsEndpointAliases(config: Pick<Config, 'mtls'>): { mtls_endpoint_aliases?: Record<string, string> } {
  const base = config.mtls.endpointAliasesUrl;
  if (!base) return {};
  return { mtls_endpoint_aliases: Object.fromEntries(Object.entries(ALIASED_ENDPOINTS).map(([name, path]) => [name, `${base}${path}`])) };
}

export function mtlsFeature(config: Pick<Config, 'tls' | 'mtls' | 'trustedProxies'>) {
  if (!mtlsEnabled(config)) return { enabled: false as const };
  const certificateOf = clientCertificateSource({ trustedProxies: config.trustedProxies, certificateHeader: config.mtls.certificateHeader });
  // Without MTLS_CLIENT_CA_FILE no CA is trusted: tls_client_auth always fails, self-signed works.
  const authorities = config.mtls.clientCaFile ? readCertificateBundle(config.mtls.clientCaFile) : [];
  const certificate = (ctx: KoaContextWithOIDC): X509Certificate | undefined => certificateOf(ctx.req);
  return {
    enabled: true as const,
    certificateBoundAccessTokens: true,
    tlsClientAuth: true,
    selfSignedTlsClientAuth: true,
    getCertificate: certificate,
    certificateAuthorized: (ctx: KoaContextWithOIDC) => {
      const presented = certificate(ctx);
      return Boolean(presented && issuedByTrustedCa(presented, authorities));
    },
    certificateSubjectMatches: (ctx: KoaContextWithOIDC, property: string, expected: string) => {
      const presented = certificate(ctx);
      return Boolean(presented && certificateSubjectMatches(presented, property, expected));
    },
  };
}
