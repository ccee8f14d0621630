// The pieces of mutual TLS that decide alone, checked against openssl-made certificates: subject
// and SAN matching, the CA check, the forwarded-header formats and the binding check.
import { expect } from 'chai';
import { readCertificateBundle, issuedByTrustedCa, certificateSubjectMatches } from '../../src/clients/certificate-subject.ts';
import { parseForwardedCertificate } from '../../src/clients/client-certificate.ts';
import { certificateThumbprint, certificateThumbprintMatches } from '../../src/security/certificate-binding.ts';
import { testPki, type TestPki } from './certificates.ts';

describe('mutual TLS certificate checks', () => {
  let pki: TestPki;
  before(function () {
    this.timeout(60_000);
    pki = testPki();
  });

  it('matches a registered subject DN in RFC 4514 order, in certificate order, and not another', () => {
    const billing = pki.billing.x509;
    for (const dn of ['CN=billing.service,O=Acme\\, Inc.,C=DE', 'cn=billing.service, o=Acme\\2C Inc., c=DE', 'C=DE,O=Acme\\, Inc.,CN=billing.service']) {
      expect(certificateSubjectMatches(billing, 'tls_client_auth_subject_dn', dn), dn).to.equal(true);
    }
    for (const dn of ['CN=billing.service,O=Acme,C=DE', 'CN=billing.service', 'CN=billing.service,O=Acme\\, Inc.,C=DE,DC=extra', 'CN=intruder,O=Acme\\, Inc.,C=DE', 'not a dn']) {
      expect(certificateSubjectMatches(billing, 'tls_client_auth_subject_dn', dn), dn).to.equal(false);
    }
  });

  it('matches each kind of subjectAltName entry exactly', () => {
    const billing = pki.billing.x509;
    expect(certificateSubjectMatches(billing, 'tls_client_auth_san_dns', 'billing.example')).to.equal(true);
    expect(certificateSubjectMatches(billing, 'tls_client_auth_san_dns', 'evil.billing.example')).to.equal(false);
    expect(certificateSubjectMatches(billing, 'tls_client_auth_san_email', 'billing@acme.example')).to.equal(true);
    expect(certificateSubjectMatches(billing, 'tls_client_auth_san_uri', 'spiffe://acme.example/billing')).to.equal(true);
    expect(certificateSubjectMatches(billing, 'tls_client_auth_san_uri', 'spiffe://acme.example/billing/x')).to.equal(false);
    expect(certificateSubjectMatches(billing, 'tls_client_auth_san_ip', '2001:0db8:0:0:0:0:0:7')).to.equal(true);
    expect(certificateSubjectMatches(billing, 'tls_client_auth_san_ip', '2001:db8::8')).to.equal(false);
    expect(certificateSubjectMatches(pki.intruder.x509, 'tls_client_auth_san_dns', 'billing.example')).to.equal(false);
  });

  it('trusts only certificates issued by a CA of the bundle, while they are valid', () => {
    const authorities = readCertificateBundle(pki.caFile);
    expect(issuedByTrustedCa(pki.billing.x509, authorities)).to.equal(true);
    expect(issuedByTrustedCa(pki.forgedBilling.x509, authorities), 'self-signed with the same subject').to.equal(false);
    expect(issuedByTrustedCa(pki.billing.x509, authorities, new Date(Date.now() + 10 * 24 * 3600 * 1000)), 'expired').to.equal(false);
    expect(issuedByTrustedCa(pki.billing.x509, []), 'no CA configured').to.equal(false);
  });

  it('reads a forwarded certificate as URL-encoded PEM or base64 DER, and nothing else', () => {
    const expected = certificateThumbprint(pki.billing.x509);
    const der = pki.billing.x509.raw;
    for (const value of [encodeURIComponent(pki.billing.cert), der.toString('base64'), der.toString('base64url'), `:${der.toString('base64')}:`]) {
      const parsed = parseForwardedCertificate(value);
      expect(parsed && certificateThumbprint(parsed), value.slice(0, 20)).to.equal(expected);
    }
    for (const value of ['', 'not-a-certificate', '%ZZ', Buffer.from('junk').toString('base64'), 'A'.repeat(20_000)]) {
      expect(parseForwardedCertificate(value), value.slice(0, 20)).to.equal(undefined);
    }
  });

  it('compares a token’s cnf.x5t#S256 with the presented certificate', () => {
    const bound = { cnf: { 'x5t#S256': certificateThumbprint(pki.billing.x509) } };
    expect(certificateThumbprintMatches(bound, pki.billing.x509)).to.equal(true);
    expect(certificateThumbprintMatches(bound, pki.forgedBilling.x509)).to.equal(false);
    expect(certificateThumbprintMatches(bound, undefined)).to.equal(false);
    expect(certificateThumbprintMatches({ cnf: { 'x5t#S256': 42 } }, pki.billing.x509)).to.equal(false);
    expect(certificateThumbprintMatches({ active: true } as { cnf?: unknown }, undefined), 'an unbound token').to.equal(true);
  });
});
