import type { Knex } from 'knex';
import { extendSystemAdminRoles } from './system-role-permissions.ts';

// The audit trail (issue 8): one hash chain per tenant in audit_entries, which the database itself
// keeps append-only (a trigger refuses UPDATE, DELETE and TRUNCATE, also for the owner, and the
// privileges are revoked). People are referenced by a pseudonym (audit_people.id), and the request
// context with personal data (address, user agent) lives outside the hash in audit_entry_context,
// so an erasure blanks the person without breaking the chain. No foreign key to tenants: the trail
// outlives a deleted tenant.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('audit_people', (table) => {
    table.uuid('id').primary();
    table.uuid('tenant_id').notNullable();
    table.text('subject_type').notNullable();
    // Null once erased: the pseudonym stays, the person is gone.
    table.text('subject_id');
    table.jsonb('display').notNullable().defaultTo('{}');
    table.timestamp('erased_at', { useTz: true });
    table.unique(['tenant_id', 'subject_type', 'subject_id']);
  });
  await knex.raw("ALTER TABLE audit_people ADD CONSTRAINT audit_people_subject_type CHECK (subject_type IN ('user', 'client', 'system'))");

  await knex.schema.createTable('audit_entries', (table) => {
    table.uuid('tenant_id').notNullable();
    table.bigInteger('seq').notNullable();
    table.uuid('id').notNullable().unique();
    table.timestamp('occurred_at', { useTz: true }).notNullable();
    table.text('type').notNullable();
    table.text('outcome').notNullable();
    table.uuid('actor_id').references('audit_people.id');
    table.uuid('target_id').references('audit_people.id');
    table.text('target_ref');
    table.jsonb('details').notNullable().defaultTo('{}');
    table.text('prev_hash').notNullable();
    table.text('hash').notNullable();
    table.primary(['tenant_id', 'seq']);
  });
  await knex.raw("ALTER TABLE audit_entries ADD CONSTRAINT audit_entries_outcome CHECK (outcome IN ('success', 'failure'))");
  await knex.raw('CREATE INDEX audit_entries_type ON audit_entries (tenant_id, type, seq)');
  await knex.raw('CREATE INDEX audit_entries_actor ON audit_entries (tenant_id, actor_id, seq) WHERE actor_id IS NOT NULL');
  await knex.raw('CREATE INDEX audit_entries_target ON audit_entries (tenant_id, target_id, seq) WHERE target_id IS NOT NULL');
  await knex.raw('CREATE INDEX audit_entries_occurred ON audit_entries (tenant_id, occurred_at)');

  await knex.schema.createTable('audit_entry_context', (table) => {
    table.uuid('tenant_id').notNullable();
    table.bigInteger('seq').notNullable();
    table.text('ip');
    table.text('user_agent');
    table.primary(['tenant_id', 'seq']);
    table.foreign(['tenant_id', 'seq']).references(['tenant_id', 'seq']).inTable('audit_entries');
  });

  await knex.schema.createTable('audit_chain_heads', (table) => {
    table.uuid('tenant_id').primary();
    table.bigInteger('last_seq').notNullable();
    table.text('last_hash').notNullable();
  });

  await knex.raw(`CREATE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'audit_entries is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END $$`);
  await knex.raw(`CREATE TRIGGER audit_entries_no_change BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()`);
  await knex.raw(`CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only()`);
  await knex.raw('REVOKE UPDATE, DELETE, TRUNCATE ON audit_entries FROM PUBLIC, idp_tenant');

  // The tenant role: append and read its own tenant's rows; never change an entry.
  const grants: Record<string, string> = {
    audit_entries: 'SELECT, INSERT',
    audit_people: 'SELECT, INSERT, UPDATE',
    audit_entry_context: 'SELECT, INSERT, DELETE',
    audit_chain_heads: 'SELECT, INSERT, UPDATE',
  };
  for (const [table, privileges] of Object.entries(grants)) {
    await knex.raw(`GRANT ${privileges} ON ${table} TO idp_tenant`);
    await knex.raw(`ALTER TABLE ${table} ENABLE ROW LEVEL SECURITY`);
    await knex.raw(`CREATE POLICY ${table}_tenant_isolation ON ${table} TO idp_tenant
      USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
      WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)`);
  }

  // Tenants that already exist: whoever may read users may read the audit trail (new tenants get
  // audit:read from src/tenants/system-roles.ts).
  await extendSystemAdminRoles(knex, [['users:read', 'audit:read']]);
}
