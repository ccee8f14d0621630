import type { Knex } from 'knex';
import { isolateTenantTables } from './tenant-isolation.ts';

const TABLES = ['user_tokens', 'password_history'];

// The password lifecycle: single-use tokens sent by mail (password reset, e-mail verification),
// earlier password hashes (no reuse of the last N), and on users when the password was last set
// and whether it must be changed at the next sign-in (a temporary password set by an administrator).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('users', (table) => {
    table.timestamp('password_changed_at', { useTz: true });
    table.boolean('password_must_change').notNullable().defaultTo(false);
  });
  // Existing passwords count from their user's last change, not from the epoch.
  await knex.raw('UPDATE users SET password_changed_at = updated_at WHERE password_hash IS NOT NULL');

  // Only the SHA-256 digest of a token is stored: the token itself is in the mail alone. email is
  // the address a verification token was sent to, so a token cannot verify an address changed since.
  await knex.schema.createTable('user_tokens', (table) => {
    table.uuid('id').primary();
    table.uuid('tenant_id').notNullable().references('tenants.id').onDelete('CASCADE');
    table.uuid('user_id').notNullable();
    table.text('purpose').notNullable();
    table.text('token_hash').notNullable().unique();
    table.text('email');
    table.timestamp('expires_at', { useTz: true }).notNullable();
    table.timestamp('consumed_at', { useTz: true });
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.foreign(['tenant_id', 'user_id']).references(['tenant_id', 'id']).inTable('users').onDelete('CASCADE');
  });
  await knex.raw("ALTER TABLE user_tokens ADD CONSTRAINT user_tokens_purpose CHECK (purpose IN ('password_reset', 'email_verification'))");
  await knex.raw('CREATE INDEX user_tokens_user ON user_tokens (tenant_id, user_id, purpose, created_at)');
  await knex.raw('CREATE INDEX user_tokens_expires ON user_tokens (expires_at)');

  await knex.schema.createTable('password_history', (table) => {
    table.uuid('tenant_id').notNullable().references('tenants.id').onDelete('CASCADE');
    table.uuid('user_id').notNullable();
    table.text('password_hash').notNullable();
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.foreign(['tenant_id', 'user_id']).references(['tenant_id', 'id']).inTable('users').onDelete('CASCADE');
  });
  await knex.raw('CREATE INDEX password_history_user ON password_history (tenant_id, user_id, created_at)');

  await isolateTenantTables(knex, TABLES);
}
