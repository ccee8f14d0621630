import type { Knex } from 'knex';

// A first users table: enough for password login and the bootstrap admin.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('users', (table) => {
    table.uuid('id').primary();
    table.text('email').notNullable();
    table.text('username');
    table.text('password_hash');
    table.text('name');
    table.boolean('email_verified').notNullable().defaultTo(false);
    table.boolean('is_admin').notNullable().defaultTo(false);
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('CREATE UNIQUE INDEX users_email ON users (lower(email))');
  await knex.raw('CREATE UNIQUE INDEX users_username ON users (lower(username)) WHERE username IS NOT NULL');
}
