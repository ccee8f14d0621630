import type { Knex } from 'knex';

// APIs (resource servers) that access tokens are issued for, by resource indicator (RFC 8707).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('api_resources', (table) => {
    table.text('identifier').primary();
    table.text('name').notNullable();
    table.specificType('scopes', 'text[]').notNullable().defaultTo('{}');
    table.integer('access_token_ttl');
    table.text('signing_alg');
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
}
