import type { Knex } from 'knex';
import { extendSystemAdminRoles } from './system-role-permissions.ts';
import { isolateTenantTables } from './tenant-isolation.ts';

const TABLES = ['api_keys', 'api_key_usage'];

// API keys of a tenant (src/apikeys). A key string is shown once; a row keeps its public id (the
// lookup key, unique across tenants because verification does not know the tenant yet) and the
// SHA-256 of its secret. A rotation adds a row and gives the old one an end (expires_at) and a
// successor (replaced_by). Usage per day is aggregated in the hot store and flushed here.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('api_keys', (table) => {
    table.uuid('id').primary();
    table.uuid('tenant_id').notNullable().references('tenants.id').onDelete('CASCADE');
    table.text('public_id').notNullable().unique();
    table.text('environment').notNullable();
    table.text('secret_sha256').notNullable();
    table.text('name').notNullable();
    table.text('owner_type').notNullable();
    table.text('owner_id').notNullable();
    // [{ api, permission }]: a subset of the owner's permissions when the key was made.
    table.jsonb('permissions').notNullable();
    table.specificType('allowed_ips', 'text[]');
    table.integer('rate_limit');
    table.timestamp('expires_at', { useTz: true });
    table.timestamp('revoked_at', { useTz: true });
    table.uuid('replaced_by');
    table.text('created_by_type');
    table.text('created_by_id');
    table.timestamp('created_at', { useTz: true }).notNullable();
    table.timestamp('last_used_at', { useTz: true });
    table.text('last_used_ip');
    table.unique(['tenant_id', 'id']);
  });
  await knex.raw("ALTER TABLE api_keys ADD CONSTRAINT api_keys_owner_type CHECK (owner_type IN ('user', 'client'))");
  await knex.raw('CREATE INDEX api_keys_tenant_created ON api_keys (tenant_id, created_at DESC, id DESC)');
  await knex.raw('CREATE INDEX api_keys_owner ON api_keys (tenant_id, owner_type, owner_id)');

  await knex.schema.createTable('api_key_usage', (table) => {
    table.uuid('tenant_id').notNullable();
    table.uuid('key_id').notNullable();
    table.date('day').notNullable();
    table.bigInteger('requests').notNullable();
    table.primary(['key_id', 'day']);
    table.foreign(['tenant_id', 'key_id']).references(['tenant_id', 'id']).inTable('api_keys').onDelete('CASCADE');
  });

  await isolateTenantTables(knex, TABLES);
  // Tenants that already exist: the system roles that read or change users manage API keys too
  // (new tenants get apikeys:read / apikeys:write from src/tenants/system-roles.ts).
  await extendSystemAdminRoles(knex, [['users:read', 'apikeys:read'], ['users:write', 'apikeys:write']]);
}
