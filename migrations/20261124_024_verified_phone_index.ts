import type { Knex } from 'knex';

// Sign-in with a code sent to a phone looks the person up by verified number in the tenant.
export async function up(knex: Knex): Promise<void> {
  await knex.raw('CREATE INDEX users_verified_phone ON users (tenant_id, phone_number) WHERE phone_number_verified AND deleted_at IS NULL');
}
