import type { Knex } from 'knex';

// Case-insensitive look-ups of users by e-mail or username that can use an index under row-level
// security. A tenant-scoped query runs as idp_tenant, and PostgreSQL evaluates a condition that
// applies a non-leakproof function to a column (lower(email) = $1) only after the policy: it can
// never be an index condition, so every login and every e-mail filter scanned the whole tenant.
// A generated column compared with plain text equality (leakproof) is an index condition again.
export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE users ADD COLUMN email_normalized text GENERATED ALWAYS AS (lower(email)) STORED');
  await knex.raw('ALTER TABLE users ADD COLUMN username_normalized text GENERATED ALWAYS AS (lower(username)) STORED');
  await knex.raw('CREATE UNIQUE INDEX users_tenant_email_normalized ON users (tenant_id, email_normalized) WHERE deleted_at IS NULL');
  await knex.raw(
    'CREATE UNIQUE INDEX users_tenant_username_normalized ON users (tenant_id, username_normalized) WHERE username_normalized IS NOT NULL AND deleted_at IS NULL',
  );
  await knex.raw('DROP INDEX users_tenant_email');
  await knex.raw('DROP INDEX users_tenant_username');
}
