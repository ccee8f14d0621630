import type { Knex } from 'knex';

// Fixed here for ever: src/tenants/constants.ts refers to the same id.
const DEFAULT_TENANT_ID = '00000000-0000-4000-8000-000000000001';

// Tenants, and users becoming tenant-scoped with profile claims, status and custom attributes.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('tenants', (table) => {
    table.uuid('id').primary();
    table.text('slug').notNullable();
    table.text('display_name').notNullable();
    table.specificType('email_domains', 'text[]').notNullable().defaultTo('{}');
    table.text('status').notNullable().defaultTo('active');
    table.jsonb('policies').notNullable().defaultTo('{}');
    table.jsonb('user_attribute_schema').notNullable().defaultTo('{}');
    table.boolean('self_registration').notNullable().defaultTo(false);
    table.boolean('platform').notNullable().defaultTo(false);
    table.integer('version').notNullable().defaultTo(1);
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('CREATE UNIQUE INDEX tenants_slug ON tenants (lower(slug))');
  await knex.raw("ALTER TABLE tenants ADD CONSTRAINT tenants_status CHECK (status IN ('active', 'disabled'))");
  await knex.raw('CREATE UNIQUE INDEX tenants_one_platform ON tenants (platform) WHERE platform');
  await knex('tenants').insert({ id: DEFAULT_TENANT_ID, slug: 'default', display_name: 'Default', platform: true });

  await knex.schema.alterTable('users', (table) => {
    table.uuid('tenant_id').references('tenants.id').onDelete('CASCADE');
    table.text('status').notNullable().defaultTo('active');
    table.text('status_reason');
    table.timestamp('deleted_at', { useTz: true });
    for (const claim of ['given_name', 'family_name', 'middle_name', 'nickname', 'picture', 'website', 'gender', 'birthdate', 'zoneinfo', 'locale', 'phone_number']) {
      table.text(claim);
    }
    table.boolean('phone_number_verified').notNullable().defaultTo(false);
    table.jsonb('custom_attributes').notNullable().defaultTo('{}');
    table.integer('version').notNullable().defaultTo(1);
  });
  await knex('users').update({ tenant_id: DEFAULT_TENANT_ID });
  await knex.raw('ALTER TABLE users ALTER COLUMN tenant_id SET NOT NULL');
  await knex.raw("ALTER TABLE users ADD CONSTRAINT users_status CHECK (status IN ('active', 'suspended', 'deactivated'))");
  await knex.raw('DROP INDEX users_email');
  await knex.raw('DROP INDEX users_username');
  await knex.raw('CREATE UNIQUE INDEX users_tenant_email ON users (tenant_id, lower(email)) WHERE deleted_at IS NULL');
  await knex.raw('CREATE UNIQUE INDEX users_tenant_username ON users (tenant_id, lower(username)) WHERE username IS NOT NULL AND deleted_at IS NULL');
  // Keyset pagination: (created_at, id) within a tenant.
  await knex.raw('CREATE INDEX users_tenant_created ON users (tenant_id, created_at, id)');

  // Machine clients (service accounts) belong to a tenant; interactive clients may be shared.
  await knex.schema.alterTable('clients', (table) => {
    table.uuid('tenant_id').references('tenants.id').onDelete('CASCADE');
  });
}
