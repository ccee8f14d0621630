// Machine clients from the command line: a tls_client_auth client bound to a tenant, with
// certificate-bound tokens, that can then be given the tenant's roles.
import { expect } from 'chai';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { TEST_ENV } from '../helpers/instance.ts';
import { idp, type Run } from '../helpers/cli.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';

const SLOW = 120_000;

function output<T>(run: Run): T {
  expect(run.code, run.stderr).to.equal(0);
  return JSON.parse(run.stdout) as T;
}

forEachBackend('machine clients on the command line', (backend) => {
  let store: BackendEnv;
  let env: Record<string, string>;

  before(async () => {
    store = await backend.create();
    // A deployment behind a proxy that forwards client certificates: mutual TLS is offered.
    env = { ...TEST_ENV, ...store.env, MTLS_CERTIFICATE_HEADER: 'X-Client-Cert', TRUSTED_PROXIES: '10.0.0.5' };
  });
  after(async () => {
    await store?.cleanup();
  });

  it('registers a tls_client_auth client in a tenant and assigns it a role', async function () {
    this.timeout(SLOW);
    const created = output<{ client_id: string; client_secret?: string; metadata: Record<string, unknown> }>(
      await idp(
        ['clients', 'create', '--tenant', 'default', '--name', 'Billing', '--grant-type', 'client_credentials', '--auth-method', 'tls_client_auth', '--tls-subject-dn', 'CN=billing.service,O=Acme,C=DE'],
        env,
      ),
    );
    expect(created.client_secret).to.equal(undefined);
    expect(created.metadata).to.include({
      token_endpoint_auth_method: 'tls_client_auth',
      tls_client_auth_subject_dn: 'CN=billing.service,O=Acme,C=DE',
      tls_client_certificate_bound_access_tokens: true,
    });
    const assigned = output<{ tenantId: string; roles: string[] }>(await idp(['roles', 'assign', '--tenant', 'default', '--role', 'admin', '--client', created.client_id], env));
    expect(assigned).to.deep.include({ tenantId: DEFAULT_TENANT_ID, roles: ['admin'] });
  });
});
