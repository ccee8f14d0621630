import type { Knex } from 'knex';

// Roles per tenant (a DAG through role_inheritance), their permissions on API resources, and
// their assignment to users and machine clients.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('roles', (table) => {
    table.uuid('id').primary();
    table.uuid('tenant_id').notNullable().references('tenants.id').onDelete('CASCADE');
    table.text('name').notNullable();
    table.text('description').notNullable().defaultTo('');
    table.boolean('system').notNullable().defaultTo(false);
    table.integer('version').notNullable().defaultTo(1);
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('CREATE UNIQUE INDEX roles_tenant_name ON roles (tenant_id, lower(name))');

  await knex.schema.createTable('role_permissions', (table) => {
    table.uuid('tenant_id').notNullable().references('tenants.id').onDelete('CASCADE');
    table.uuid('role_id').notNullable().references('roles.id').onDelete('CASCADE');
    table.text('api_identifier').notNullable().references('api_resources.identifier').onDelete('CASCADE');
    table.text('permission').notNullable();
    table.primary(['role_id', 'api_identifier', 'permission']);
  });

  await knex.schema.createTable('role_inheritance', (table) => {
    table.uuid('tenant_id').notNullable().references('tenants.id').onDelete('CASCADE');
    table.uuid('role_id').notNullable().references('roles.id').onDelete('CASCADE');
    table.uuid('included_role_id').notNullable().references('roles.id').onDelete('CASCADE');
    table.primary(['role_id', 'included_role_id']);
  });
  await knex.raw('ALTER TABLE role_inheritance ADD CONSTRAINT role_inheritance_not_self CHECK (role_id <> included_role_id)');

  await knex.schema.createTable('role_assignments', (table) => {
    table.uuid('tenant_id').notNullable().references('tenants.id').onDelete('CASCADE');
    table.uuid('role_id').notNullable().references('roles.id').onDelete('CASCADE');
    table.text('subject_type').notNullable();
    table.text('subject_id').notNullable();
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.primary(['role_id', 'subject_type', 'subject_id']);
  });
  await knex.raw("ALTER TABLE role_assignments ADD CONSTRAINT role_assignments_subject_type CHECK (subject_type IN ('user', 'client'))");
  await knex.raw('CREATE INDEX role_assignments_subject ON role_assignments (tenant_id, subject_type, subject_id)');
}
