import type { Knex } from 'knex';

export const TENANT_ROLE = 'idp_tenant';
export const TENANT_TABLES = ['users', 'roles', 'role_permissions', 'role_inheritance', 'role_assignments'];

// Row-level security on every tenant-scoped table. Tenant-scoped work runs under the non-superuser
// role idp_tenant (SET LOCAL ROLE) with app.tenant_id set for the transaction, so a query that
// forgets its tenant filter sees nothing of another tenant. The connecting role (owner or superuser)
// is the platform context: it bypasses the policy, and only platform-level code uses it.
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${TENANT_ROLE}') THEN CREATE ROLE ${TENANT_ROLE} NOLOGIN; END IF;
  END $$`);
  await knex.raw(`DO $$ BEGIN EXECUTE format('GRANT USAGE ON SCHEMA %I TO ${TENANT_ROLE}', current_schema()); END $$`);
  for (const table of TENANT_TABLES) {
    await knex.raw(`GRANT SELECT, INSERT, UPDATE, DELETE ON ${table} TO ${TENANT_ROLE}`);
    await knex.raw(`ALTER TABLE ${table} ENABLE ROW LEVEL SECURITY`);
    await knex.raw(`CREATE POLICY ${table}_tenant_isolation ON ${table} TO ${TENANT_ROLE}
      USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
      WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)`);
  }
  // Read-only reference data the tenant role needs (foreign keys and joins).
  await knex.raw(`GRANT SELECT ON tenants, api_resources TO ${TENANT_ROLE}`);
}
