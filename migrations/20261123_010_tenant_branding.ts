import type { Knex } from 'knex';

// Per-tenant branding of the login and account pages.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tenants', (table) => {
    table.jsonb('branding').notNullable().defaultTo('{}');
  });
}
