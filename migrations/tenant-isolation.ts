import type { Knex } from 'knex';

// For a new tenant-scoped table: the tenant role (see 008_row_level_security) may use it, and
// row-level security confines that role to the rows of the tenant set for the transaction.
export async function isolateTenantTables(knex: Knex, tables: readonly string[]): Promise<void> {
  for (const table of tables) {
    await knex.raw(`GRANT SELECT, INSERT, UPDATE, DELETE ON ${table} TO idp_tenant`);
    await knex.raw(`ALTER TABLE ${table} ENABLE ROW LEVEL SECURITY`);
    await knex.raw(`CREATE POLICY ${table}_tenant_isolation ON ${table} TO idp_tenant
      USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
      WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)`);
  }
}
