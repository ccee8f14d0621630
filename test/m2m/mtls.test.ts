// Mutual TLS client authentication and certificate-bound access tokens (RFC 8705), with the
// provider served over HTTPS and a local CA made with openssl: tls_client_auth (subject DN, SAN),
// self_signed_tls_client_auth, the trusted-proxy certificate header, and a resource server that
// refuses a bound token presented with another certificate.
import { expect } from 'chai';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { decodeJwt } from 'jose';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import { ADMIN_API_PERMISSIONS } from '../../src/tenants/system-roles.ts';
import { certificateThumbprint, certificateThumbprintMatches } from '../../src/security/certificate-binding.ts';
import { testPki, jwksOfCertificate, type Credential, type TestPki } from './certificates.ts';
import { form, tlsRequest, type TlsResponse } from './tls-request.ts';

const ORDERS = { identifier: 'https://orders.example.test', name: 'Orders', scopes: ['orders:read', 'orders:write'] };
const PROXY_ADDRESS = '127.0.0.1';
const DIRECT_ADDRESS = '127.0.0.2';
const CERT_HEADER = 'x-client-cert';
const ALIASES = 'https://mtls.id.example.test';

forEachBackend('mutual TLS machine clients', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let pki: TestPki;
  let adminToken: string;
  let introspector: { clientId: string; clientSecret: string };
  let dnClient: string;
  let sanClient: string;
  let selfSignedClient: string;

  // The token endpoint reached directly over TLS, from an address that is not a trusted proxy.
  function tokenDirect(clientId: string, credential: Credential | undefined, extra: Record<string, string> = {}): Promise<TlsResponse> {
    const request = form({ grant_type: 'client_credentials', client_id: clientId, ...extra });
    return tlsRequest(`${instance.url}/token`, { method: 'POST', ...request, ca: pki.ca, cert: credential?.cert, key: credential?.key, localAddress: DIRECT_ADDRESS });
  }

  // The token endpoint reached through the trusted proxy, which forwards the client's certificate.
  function tokenViaProxy(clientId: string, forwarded: string | undefined, localAddress = PROXY_ADDRESS): Promise<TlsResponse> {
    const request = form({ grant_type: 'client_credentials', client_id: clientId });
    const headers = forwarded === undefined ? request.headers : { ...request.headers, [CERT_HEADER]: forwarded };
    return tlsRequest(`${instance.url}/token`, { method: 'POST', headers, body: request.body, ca: pki.ca, localAddress });
  }

  async function introspect(token: string): Promise<Record<string, unknown>> {
    const request = form({ token });
    const response = await tlsRequest(`${instance.url}/token/introspection`, {
      method: 'POST',
      body: request.body,
      headers: { ...request.headers, authorization: `Basic ${Buffer.from(`${introspector.clientId}:${introspector.clientSecret}`).toString('base64')}` },
      ca: pki.ca,
    });
    expect(response.status, response.text).to.equal(200);
    return response.json();
  }

  function adminApi(method: string, path: string, body?: unknown): Promise<TlsResponse> {
    return tlsRequest(`${instance.url}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      ca: pki.ca,
    });
  }

  async function registerClient(body: Record<string, unknown>): Promise<string> {
    const response = await adminApi('POST', `/tenants/${DEFAULT_TENANT_ID}/clients`, { grantTypes: ['client_credentials'], ...body });
    expect(response.status, response.text).to.equal(201);
    const created = response.json<{ clientId: string; clientSecret?: string }>();
    expect(created.clientSecret, 'mutual TLS clients have no shared secret').to.equal(undefined);
    return created.clientId;
  }

  before(async function () {
    // openssl and an instance start: a busy machine needs more than the default 30 s.
    this.timeout(90_000);
    pki = testPki();
    store = await backend.create();
    instance = await startInstance(
      {
        ...store.env,
        TLS_CERT_FILE: pki.server.certFile,
        TLS_KEY_FILE: pki.server.keyFile,
        MTLS_CLIENT_CA_FILE: pki.caFile,
        MTLS_CERTIFICATE_HEADER: CERT_HEADER,
        MTLS_ENDPOINT_ALIASES_URL: ALIASES,
        TRUSTED_PROXIES: PROXY_ADDRESS,
      },
      { https: true },
    );
    const { runtime } = instance;
    const admin = await runtime.clients.create({ name: 'platform admin', grantTypes: ['client_credentials'], tenantId: DEFAULT_TENANT_ID });
    await runtime.rbac.assign(DEFAULT_TENANT_ID, (await runtime.rbac.roleIdByName(DEFAULT_TENANT_ID, 'root-admin'))!, 'client', admin.client.clientId);
    const tokenRequest = form({ grant_type: 'client_credentials', resource: runtime.adminApi, scope: ADMIN_API_PERMISSIONS.join(' ') });
    const issued = await tlsRequest(`${instance.url}/token`, {
      method: 'POST',
      body: tokenRequest.body,
      headers: { ...tokenRequest.headers, authorization: `Basic ${Buffer.from(`${admin.client.clientId}:${admin.clientSecret}`).toString('base64')}` },
      ca: pki.ca,
    });
    expect(issued.status, issued.text).to.equal(200);
    adminToken = issued.json<{ access_token: string }>().access_token;

    await runtime.apis.create(ORDERS);
    const reader = await runtime.rbac.createRole(DEFAULT_TENANT_ID, { name: 'orders-reader', permissions: [{ api: ORDERS.identifier, permission: 'orders:read' }] });
    const resourceServer = await runtime.clients.create({ name: 'Orders resource server', grantTypes: ['client_credentials'], tenantId: DEFAULT_TENANT_ID });
    introspector = { clientId: resourceServer.client.clientId, clientSecret: resourceServer.clientSecret! };

    dnClient = await registerClient({ name: 'Billing (subject DN)', authMethod: 'tls_client_auth', tlsClientAuth: { subjectDn: 'CN=billing.service,O=Acme\\, Inc.,C=DE' } });
    sanClient = await registerClient({ name: 'Billing (SAN)', authMethod: 'tls_client_auth', tlsClientAuth: { sanDns: 'billing.example' } });
    selfSignedClient = await registerClient({ name: 'Inventory (self-signed)', authMethod: 'self_signed_tls_client_auth', jwks: await jwksOfCertificate(pki.selfSigned) });
    await runtime.rbac.assign(DEFAULT_TENANT_ID, reader.id, 'client', dnClient);
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  it('advertises the mutual TLS methods, bound tokens and the endpoint aliases in discovery', async () => {
    const discovery = (await tlsRequest(`${instance.url}/.well-known/openid-configuration`, { ca: pki.ca })).json<Record<string, unknown>>();
    expect(discovery.token_endpoint_auth_methods_supported).to.include.members(['tls_client_auth', 'self_signed_tls_client_auth', 'private_key_jwt']);
    expect(discovery.tls_client_certificate_bound_access_tokens).to.equal(true);
    expect(discovery.mtls_endpoint_aliases).to.deep.include({ token_endpoint: `${ALIASES}/token`, introspection_endpoint: `${ALIASES}/token/introspection` });
  });

  it('authenticates tls_client_auth by subject DN over TLS and binds the token to the certificate', async () => {
    const response = await tokenDirect(dnClient, pki.billing);
    expect(response.status, response.text).to.equal(200);
    const { access_token: token, token_type: tokenType } = response.json<{ access_token: string; token_type: string }>();
    expect(tokenType).to.equal('Bearer');
    const introspection = await introspect(token);
    expect(introspection.active).to.equal(true);
    expect(introspection.client_id).to.equal(dnClient);
    expect(introspection.cnf).to.deep.equal({ 'x5t#S256': certificateThumbprint(pki.billing.x509) });
  });

  it('refuses tls_client_auth with another subject, a certificate from no trusted CA, or none', async () => {
    for (const credential of [pki.intruder, pki.forgedBilling, undefined]) {
      const response = await tokenDirect(dnClient, credential);
      expect(response.status, credential?.x509.subject ?? 'no certificate').to.equal(401);
      expect(response.json().error).to.equal('invalid_client');
    }
  });

  it('authenticates tls_client_auth by a subjectAltName DNS entry', async () => {
    expect((await tokenDirect(sanClient, pki.billing)).status).to.equal(200);
    expect((await tokenDirect(sanClient, pki.intruder)).json().error).to.equal('invalid_client');
  });

  it('authenticates self_signed_tls_client_auth with the registered certificate only', async () => {
    const response = await tokenDirect(selfSignedClient, pki.selfSigned);
    expect(response.status, response.text).to.equal(200);
    const introspection = await introspect(response.json<{ access_token: string }>().access_token);
    expect(introspection.cnf).to.deep.equal({ 'x5t#S256': certificateThumbprint(pki.selfSigned.x509) });
    const other = await tokenDirect(selfSignedClient, pki.otherSelfSigned);
    expect(other.status).to.equal(401);
    expect(other.json().error).to.equal('invalid_client');
  });

  it('issues JWT access tokens carrying cnf.x5t#S256 and only the permissions the client holds through its roles', async () => {
    const response = await tokenDirect(dnClient, pki.billing, { resource: ORDERS.identifier, scope: 'orders:read orders:write' });
    expect(response.status, response.text).to.equal(200);
    const { access_token: token, scope } = response.json<{ access_token: string; scope: string }>();
    expect(scope).to.equal('orders:read');
    const payload = decodeJwt(token);
    expect(payload.cnf).to.deep.equal({ 'x5t#S256': certificateThumbprint(pki.billing.x509) });
    expect(payload).to.include({ sub: dnClient, client_id: dnClient, tenant_id: DEFAULT_TENANT_ID, scope: 'orders:read' });
    expect(payload.roles).to.deep.equal(['orders-reader']);
    const introspection = await introspect(token);
    expect(introspection).to.include({ active: true, scope: 'orders:read' });
    expect(introspection.cnf).to.deep.equal(payload.cnf);

    // A client without a role gets none of the API's permissions.
    const unprivileged = await tokenDirect(selfSignedClient, pki.selfSigned, { resource: ORDERS.identifier, scope: 'orders:read' });
    const body = unprivileged.json<{ scope?: string; error?: string }>();
    expect(body.scope ?? '', unprivileged.text).to.not.include('orders:read');
  });

  it('accepts a bound admin API token only over a connection presenting its certificate', async () => {
    const { runtime } = instance;
    const auditors = await runtime.rbac.createRole(DEFAULT_TENANT_ID, { name: 'mtls-auditors', permissions: [{ api: runtime.adminApi, permission: 'users:read' }] });
    await runtime.rbac.assign(DEFAULT_TENANT_ID, auditors.id, 'client', sanClient);
    const issued = await tokenDirect(sanClient, pki.billing, { resource: runtime.adminApi, scope: 'users:read' });
    expect(issued.status, issued.text).to.equal(200);
    const token = issued.json<{ access_token: string }>().access_token;
    expect(decodeJwt(token).cnf).to.deep.equal({ 'x5t#S256': certificateThumbprint(pki.billing.x509) });
    const listUsers = (credential: Credential | undefined) =>
      tlsRequest(`${instance.url}/api/v1/tenants/${DEFAULT_TENANT_ID}/users`, { headers: { authorization: `Bearer ${token}` }, ca: pki.ca, cert: credential?.cert, key: credential?.key, localAddress: DIRECT_ADDRESS });
    expect((await listUsers(pki.billing)).status).to.equal(200);
    for (const other of [pki.selfSigned, undefined]) {
      const refused = await listUsers(other);
      expect(refused.status).to.equal(401);
      expect(refused.text).to.include('bound to a client certificate');
    }
  });

  it('takes the certificate from the header only when the connection comes from a trusted proxy', async () => {
    const pem = encodeURIComponent(pki.billing.cert);
    const viaPem = await tokenViaProxy(dnClient, pem);
    expect(viaPem.status, viaPem.text).to.equal(200);
    const bound = await introspect(viaPem.json<{ access_token: string }>().access_token);
    expect(bound.cnf).to.deep.equal({ 'x5t#S256': certificateThumbprint(pki.billing.x509) });
    const viaDer = await tokenViaProxy(dnClient, pki.billing.x509.raw.toString('base64'));
    expect(viaDer.status, viaDer.text).to.equal(200);

    // The same header from a peer that is not a trusted proxy is ignored.
    const spoofed = await tokenViaProxy(dnClient, pem, DIRECT_ADDRESS);
    expect(spoofed.status).to.equal(401);
    expect(spoofed.json().error).to.equal('invalid_client');
    const spoofedOverOwnCertificate = await tlsRequest(`${instance.url}/token`, {
      method: 'POST',
      ...form({ grant_type: 'client_credentials', client_id: dnClient }),
      ca: pki.ca,
      cert: pki.intruder.cert,
      key: pki.intruder.key,
      localAddress: DIRECT_ADDRESS,
    });
    expect(spoofedOverOwnCertificate.status).to.equal(401);
    // A trusted proxy that forwards no certificate (or garbage) authenticates nobody.
    expect((await tokenViaProxy(dnClient, undefined)).status).to.equal(401);
    expect((await tokenViaProxy(dnClient, 'not-a-certificate')).status).to.equal(401);
  });

  it('lets a resource server refuse a bound token presented with another certificate (introspection check)', async () => {
    const issued = await tokenDirect(dnClient, pki.billing);
    const token = issued.json<{ access_token: string }>().access_token;
    // The recipe of docs/machine-to-machine.md: introspect, then compare cnf.x5t#S256 with the
    // SHA-256 thumbprint of the certificate the caller presented on this connection.
    const resourceServer = https.createServer({ cert: pki.server.cert, key: pki.server.key, requestCert: true, rejectUnauthorized: false }, (req, res) => {
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      void (async () => {
        const introspection = bearer ? await introspect(bearer) : { active: false };
        const presented = (req.socket as TLSSocket).getPeerX509Certificate();
        const allowed = introspection.active === true && certificateThumbprintMatches(introspection, presented);
        res.writeHead(allowed ? 200 : 401, { 'content-type': 'application/json' }).end(JSON.stringify({ allowed }));
      })().catch(() => res.writeHead(500).end());
    });
    await new Promise<void>((resolve) => resourceServer.listen(0, '127.0.0.1', resolve));
    try {
      const url = `https://127.0.0.1:${(resourceServer.address() as AddressInfo).port}/orders`;
      const call = (credential?: Credential) =>
        tlsRequest(url, { headers: { authorization: `Bearer ${token}` }, ca: pki.ca, cert: credential?.cert, key: credential?.key });
      expect((await call(pki.billing)).status).to.equal(200);
      expect((await call(pki.intruder)).status).to.equal(401);
      expect((await call(pki.forgedBilling)).status, 'same subject, other key').to.equal(401);
      expect((await call(undefined)).status).to.equal(401);
    } finally {
      await new Promise((resolve) => resourceServer.close(resolve));
    }
  });

  it('refuses invalid mutual TLS registrations with field-level 422s', async () => {
    const attempts = [
      { name: 'no subject', authMethod: 'tls_client_auth' },
      { name: 'two subjects', authMethod: 'tls_client_auth', tlsClientAuth: { subjectDn: 'CN=a', sanDns: 'a.example' } },
      { name: 'subject without tls_client_auth', authMethod: 'private_key_jwt', tlsClientAuth: { subjectDn: 'CN=a' } },
      { name: 'self-signed without keys', authMethod: 'self_signed_tls_client_auth' },
    ];
    for (const attempt of attempts) {
      const response = await adminApi('POST', `/tenants/${DEFAULT_TENANT_ID}/clients`, { grantTypes: ['client_credentials'], ...attempt });
      expect(response.status, `${attempt.name}: ${response.text}`).to.equal(422);
      expect(response.headers['content-type']).to.match(/problem\+json/);
    }
  });
});
