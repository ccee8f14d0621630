import type { Knex } from 'knex';
import { extendSystemAdminRoles } from './system-role-permissions.ts';
import { isolateTenantTables } from './tenant-isolation.ts';

const TABLES = ['connectors', 'connector_email_domains', 'connector_role_mappings', 'connector_role_grants'];

// Upstream identity provider connectors of a tenant (src/federation/connectors, docs/federation.md).
// The non-secret configuration is JSON in `settings`; the client secret and the private key of
// private_key_jwt are sealed together in `secrets_sealed` (AES-256-GCM under the key-encryption
// key, bound to tenant and connector). Role mappings turn upstream groups into roles of the
// tenant; connector_role_grants remembers which assignments a mapping made, so a later sign-in
// takes back only those.
//
// connector_email_domains serves home-realm discovery, which runs before the tenant is known. Like
// the tenants table (read by slug or e-mail domain with the connecting role), the look-up runs in
// the platform context, which row-level security does not confine; the admin side writes the
// rows in its tenant-scoped transaction, under the same policy as every tenant table. The primary
// key makes a domain belong to at most one connector in the whole deployment.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('connectors', (table) => {
    table.uuid('id').primary();
    table.uuid('tenant_id').notNullable().references('tenants.id').onDelete('CASCADE');
    table.text('name').notNullable();
    table.text('display_name').notNullable();
    table.text('kind').notNullable();
    table.boolean('enabled').notNullable().defaultTo(true);
    table.jsonb('settings').notNullable();
    table.text('secrets_sealed').notNullable();
    table.boolean('jit_provisioning').notNullable().defaultTo(false);
    table.boolean('trust_email').notNullable().defaultTo(false);
    table.integer('version').notNullable().defaultTo(1);
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.unique(['tenant_id', 'name']);
    table.unique(['tenant_id', 'id']);
  });
  await knex.raw("ALTER TABLE connectors ADD CONSTRAINT connectors_kind CHECK (kind IN ('oidc', 'oauth2', 'genesys'))");

  await knex.schema.createTable('connector_email_domains', (table) => {
    table.text('domain').primary();
    table.uuid('tenant_id').notNullable();
    table.uuid('connector_id').notNullable();
    table.foreign(['tenant_id', 'connector_id']).references(['tenant_id', 'id']).inTable('connectors').onDelete('CASCADE');
  });
  await knex.raw('CREATE INDEX connector_email_domains_connector ON connector_email_domains (tenant_id, connector_id)');

  await knex.schema.createTable('connector_role_mappings', (table) => {
    table.uuid('tenant_id').notNullable();
    table.uuid('connector_id').notNullable();
    table.text('upstream_group').notNullable();
    table.uuid('role_id').notNullable().references('roles.id').onDelete('CASCADE');
    table.primary(['connector_id', 'upstream_group', 'role_id']);
    table.foreign(['tenant_id', 'connector_id']).references(['tenant_id', 'id']).inTable('connectors').onDelete('CASCADE');
  });
  await knex.raw('CREATE INDEX connector_role_mappings_tenant ON connector_role_mappings (tenant_id, connector_id)');

  await knex.schema.createTable('connector_role_grants', (table) => {
    table.uuid('tenant_id').notNullable();
    table.uuid('user_id').notNullable();
    table.uuid('connector_id').notNullable();
    table.uuid('role_id').notNullable().references('roles.id').onDelete('CASCADE');
    table.timestamp('granted_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.primary(['connector_id', 'user_id', 'role_id']);
    table.foreign(['tenant_id', 'connector_id']).references(['tenant_id', 'id']).inTable('connectors').onDelete('CASCADE');
    table.foreign(['tenant_id', 'user_id']).references(['tenant_id', 'id']).inTable('users').onDelete('CASCADE');
  });
  await knex.raw('CREATE INDEX connector_role_grants_user ON connector_role_grants (tenant_id, user_id)');

  await isolateTenantTables(knex, TABLES);
  // Tenants that already exist: the system roles that manage clients manage connectors too (new
  // tenants get connectors:read / connectors:write from src/tenants/system-roles.ts).
  await extendSystemAdminRoles(knex, [['clients:read', 'connectors:read'], ['clients:write', 'connectors:write']]);
}
