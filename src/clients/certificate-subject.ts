// tls_client_auth (RFC 8705 §2.1): the certificate must come from a CA the deployment trusts
// (MTLS_CLIENT_CA_FILE) and carry the subject the client registered: its subject DN, or one
// subjectAltName entry (DNS name, IP address, e-mail address or URI).
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

export const SUBJECT_METADATA = ['tls_client_auth_subject_dn', 'tls_client_auth_san_dns', 'tls_client_auth_san_ip', 'tls_client_auth_san_email', 'tls_client_auth_san_uri'] as const;
export type SubjectMetadata = (typeof SUBJECT_METADATA)[number];

// Every certificate of a PEM bundle.
export function readCertificateBundle(file: string): X509Certificate[] {
  const pem = readFileSync(file, 'utf8');
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (!blocks.length) throw new Error(`${file} holds no PEM certificate`);
  return blocks.map((block) => new X509Certificate(block));
}

// Issued (and signed) by one of the trusted CAs, and valid now. Forwarded certificates are leaves
// only, so the bundle names the CAs that issue client certificates directly (intermediates included).
export function issuedByTrustedCa(certificate: X509Certificate, authorities: X509Certificate[], now = new Date()): boolean {
  if (new Date(certificate.validFrom) > now || new Date(certificate.validTo) < now) return false;
  return authorities.some(
    (authority) =>
      authority.ca &&
      new Date(authority.validFrom) <= now &&
      new Date(authority.validTo) >= now &&
      certificate.checkIssued(authority) &&
      certificate.verify(authority.publicKey),
  );
}

// RFC 4514 escapes (`\,` `\+` `\"` `\\` `\<` `\>` `\;` `\=` `\ ` and `\XX` hex) undone.
function unescapeValue(value: string): string {
  const bytes: number[] = [];
  const text = value.trim();
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char === '\\' && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (char === '\\' && i + 1 < text.length) {
      bytes.push(...Buffer.from(text[++i]));
    } else {
      bytes.push(...Buffer.from(char));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

// Splits on a separator that is not escaped.
function splitUnescaped(text: string, separators: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\' && i + 1 < text.length) {
      current += text[i] + text[++i];
    } else if (separators.includes(text[i])) {
      parts.push(current);
      current = '';
    } else {
      current += text[i];
    }
  }
  parts.push(current);
  return parts;
}

// One relative distinguished name as a comparable string: `TYPE=value[+TYPE=value]`.
function normalizeRdn(rdn: string): string | undefined {
  const attributes = splitUnescaped(rdn, '+').map((attribute) => {
    const [type, ...rest] = splitUnescaped(attribute, '=');
    if (!rest.length || !type.trim()) return undefined;
    return `${type.trim().toUpperCase()}=${unescapeValue(rest.join('='))}`;
  });
  return attributes.every(Boolean) ? attributes.sort().join('+') : undefined;
}

// A registered DN (RFC 4514: most specific first, `CN=svc,O=Acme,C=DE`) as RDNs.
export function parseDistinguishedName(dn: string): string[] | undefined {
  const rdns = splitUnescaped(dn, ',').map(normalizeRdn);
  return rdns.length && rdns.every(Boolean) ? (rdns as string[]) : undefined;
}

// Node prints a subject one RDN a line, in certificate order (`C=DE\nO=Acme\nCN=svc`).
function certificateRdns(certificate: X509Certificate): string[] {
  return certificate.subject.split('\n').filter(Boolean).map((rdn) => normalizeRdn(rdn) ?? rdn);
}

function sameSequence(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((value, index) => value === b[index]);
}

function normalizeIp(ip: string): string | undefined {
  const family = isIP(ip);
  if (family === 4) return ip;
  // The URL parser writes an IPv6 address in its one canonical (compressed, lower-case) form.
  return family === 6 ? new URL(`http://[${ip}]/`).hostname : undefined;
}

// subjectAltName as Node prints it: `DNS:a, IP Address:1.2.3.4, URI:"https://x/a,b"` (values with
// a comma or quote are JSON strings).
function subjectAltNames(certificate: X509Certificate): { type: string; value: string }[] {
  const text = certificate.subjectAltName ?? '';
  const names: { type: string; value: string }[] = [];
  const pattern = /([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/gy;
  for (let match = pattern.exec(text); match && match[0]; match = pattern.exec(text)) {
    let value = match[2];
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        continue;
      }
    }
    names.push({ type: match[1], value });
  }
  return names;
}

// Whether the certificate carries the subject value registered under `property`.
export function certificateSubjectMatches(certificate: X509Certificate, property: string, expected: string): boolean {
  switch (property) {
    case 'tls_client_auth_subject_dn': {
      const wanted = parseDistinguishedName(expected);
      if (!wanted) return false;
      const actual = certificateRdns(certificate);
      // RFC 4514 writes the most specific RDN first; OpenSSL-style strings keep certificate order.
      return sameSequence(wanted, [...actual].reverse()) || sameSequence(wanted, actual);
    }
    case 'tls_client_auth_san_dns':
      return subjectAltNames(certificate).some(({ type, value }) => type === 'DNS' && value.toLowerCase() === expected.toLowerCase());
    case 'tls_client_auth_san_email':
      return subjectAltNames(certificate).some(({ type, value }) => type === 'email' && value === expected);
    case 'tls_client_auth_san_uri':
      return subjectAltNames(certificate).some(({ type, value }) => type === 'URI' && value === expected);
    case 'tls_client_auth_san_ip': {
      const wanted = normalizeIp(expected);
      return Boolean(wanted) && subjectAltNames(certificate).some(({ type, value }) => type === 'IP Address' && normalizeIp(value) === wanted);
    }
    default:
      return false;
  }
}
