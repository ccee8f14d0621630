// A local certificate authority made with the openssl command line, as an operator would: the
// provider's server certificate, client certificates it issues, and self-signed certificates.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { exportJWK, importX509 } from 'jose';

export interface Credential {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
  x509: X509Certificate;
}

export interface TestPki {
  dir: string;
  caFile: string;
  ca: string;
  server: Credential;
  // Issued by the CA: C=DE, O="Acme, Inc.", CN=billing.service; SAN DNS billing.example, e-mail
  // billing@acme.example, URI spiffe://acme.example/billing, IP 2001:db8::7.
  billing: Credential;
  // Issued by the CA to someone else: CN=intruder.
  intruder: Credential;
  // Self-signed, with the very subject of `billing` (not from the CA).
  forgedBilling: Credential;
  selfSigned: Credential;
  otherSelfSigned: Credential;
  cleanup(): void;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function credential(dir: string, name: string): Credential {
  const certFile = path.join(dir, `${name}.pem`);
  const keyFile = path.join(dir, `${name}.key`);
  const cert = readFileSync(certFile, 'utf8');
  return { certFile, keyFile, cert, key: readFileSync(keyFile, 'utf8'), x509: new X509Certificate(cert) };
}

function issued(dir: string, name: string, subject: string, extensions: string): Credential {
  writeFileSync(path.join(dir, `${name}.ext`), extensions);
  openssl(dir, ['req', '-new', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', `${name}.pem`, '-extfile', `${name}.ext`]);
  return credential(dir, name);
}

function selfSigned(dir: string, name: string, subject: string): Credential {
  openssl(dir, ['req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', subject]);
  return credential(dir, name);
}

let made: TestPki | undefined;

// Made once per test run (openssl takes a moment), removed at exit.
export function testPki(): TestPki {
  if (made) return made;
  const dir = mkdtempSync(path.join(tmpdir(), 'idp-pki-'));
  openssl(dir, [
    'req', '-x509', ...EC, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/C=DE/O=Acme/CN=Acme Test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const leaf = 'basicConstraints=CA:FALSE\n';
  const server = issued(dir, 'server', '/CN=127.0.0.1', `${leaf}subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n`);
  const billing = issued(dir, 'billing', '/C=DE/O=Acme, Inc./CN=billing.service', `${leaf}subjectAltName=DNS:billing.example,email:billing@acme.example,URI:spiffe://acme.example/billing,IP:2001:db8::7\nextendedKeyUsage=clientAuth\n`);
  const intruder = issued(dir, 'intruder', '/C=DE/O=Acme, Inc./CN=intruder', `${leaf}subjectAltName=DNS:intruder.example\nextendedKeyUsage=clientAuth\n`);
  const caFile = path.join(dir, 'ca.pem');
  made = {
    dir,
    caFile,
    ca: readFileSync(caFile, 'utf8'),
    server,
    billing,
    intruder,
    forgedBilling: selfSigned(dir, 'forged-billing', '/C=DE/O=Acme, Inc./CN=billing.service'),
    selfSigned: selfSigned(dir, 'self', '/CN=inventory.service'),
    otherSelfSigned: selfSigned(dir, 'other-self', '/CN=inventory.service'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
  process.once('exit', () => made?.cleanup());
  return made;
}

// The JWK Set a self_signed_tls_client_auth client registers: the certificate's public key, with
// the certificate itself in `x5c`.
export async function jwksOfCertificate(credential: Credential): Promise<{ keys: Record<string, unknown>[] }> {
  const key = await importX509(credential.cert, 'ES256', { extractable: true });
  return { keys: [{ ...(await exportJWK(key)), x5c: [credential.x509.raw.toString('base64')] }] };
}
