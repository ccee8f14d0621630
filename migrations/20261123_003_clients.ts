import type { Knex } from 'knex';

// OAuth clients. `metadata` is the client's registered metadata without its secret;
// the secret is kept only as its SHA-256.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('clients', (table) => {
    table.text('client_id').primary();
    table.text('secret_sha256');
    table.jsonb('metadata').notNullable();
    table.boolean('first_party').notNullable().defaultTo(false);
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
}
