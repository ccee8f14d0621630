import type { Knex } from 'knex';

// Tenant selection at login looks an e-mail or username up across all tenants.
export async function up(knex: Knex): Promise<void> {
  await knex.raw('CREATE INDEX users_email_normalized ON users (email_normalized) WHERE deleted_at IS NULL');
  await knex.raw('CREATE INDEX users_username_normalized ON users (username_normalized) WHERE username_normalized IS NOT NULL AND deleted_at IS NULL');
}

