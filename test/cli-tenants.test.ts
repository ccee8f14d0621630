// CLI parity for the operator tasks of a fresh install: a tenant, its admin, a role assignment.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TEST_ENV } from './helpers/instance.ts';
import { idp } from './helpers/cli.ts';

describe('command line: tenants, their admins and roles', function () {
  this.timeout(120_000);
  let env: Record<string, string>;

  before(() => {
    env = { ...TEST_ENV, DATA_DIR: mkdtempSync(path.join(tmpdir(), 'idp-cli-tenants-')) };
  });
  after(() => rmSync(env.DATA_DIR, { recursive: true, force: true }));

  it('creates a tenant, an admin in it and assigns a further role', async () => {
    const tenant = await idp(['tenants', 'create', '--slug', 'acme', '--name', 'Acme', '--domain', 'acme.example'], env);
    expect(tenant.code, tenant.stderr).to.equal(0);
    const tenantId = JSON.parse(tenant.stdout).id;

    const admin = await idp(['users', 'create', '--tenant', 'acme', '--email', 'boss@acme.example', '--role', 'admin'], { ...env, IDP_PASSWORD: 'a long enough password' });
    expect(admin.code, admin.stderr).to.equal(0);
    expect(JSON.parse(admin.stdout)).to.include({ tenantId, email: 'boss@acme.example' });

    const assigned = await idp(['roles', 'assign', '--tenant', 'acme', '--role', 'agent', '--user', 'boss@acme.example'], env);
    expect(assigned.code, assigned.stderr).to.equal(0);
    expect(JSON.parse(assigned.stdout).roles).to.deep.equal(['admin', 'agent']);

    const listed = await idp(['tenants', 'list'], env);
    expect(JSON.parse(listed.stdout).map((t: { slug: string }) => t.slug)).to.include.members(['default', 'acme']);
  });

  it('refuses unknown tenants, roles and duplicate slugs with one line', async () => {
    for (const args of [
      ['tenants', 'create', '--slug', 'acme', '--name', 'Again'],
      ['users', 'create', '--tenant', 'nowhere', '--email', 'x@example.com'],
      ['roles', 'assign', '--tenant', 'acme', '--role', 'nope', '--user', 'boss@acme.example'],
      ['roles', 'assign', '--tenant', 'acme', '--role', 'agent', '--user', 'nobody@acme.example'],
    ]) {
      const run = await idp(args, { ...env, IDP_PASSWORD: 'a long enough password' });
      expect(run.code, args.join(' ')).to.equal(1);
      expect(run.stderr.trim().split('\n'), args.join(' ')).to.have.length(1);
      expect(run.stderr).to.match(/^idp: /);
    }
  });
});
