import type { Knex } from 'knex';
import { isolateTenantTables } from './tenant-isolation.ts';

// Permanent sign-in lockouts: a row means the account stays locked until an administrator lifts
// it (temporary lockouts live in the hot store and end by themselves). Unlock links sent by mail
// are user_tokens of a new purpose.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('account_lockouts', (table) => {
    table.uuid('tenant_id').notNullable().references('tenants.id').onDelete('CASCADE');
    table.uuid('user_id').notNullable();
    // The lockouts in a row that led to this one.
    table.integer('lockout_count').notNullable();
    table.timestamp('locked_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.primary(['tenant_id', 'user_id']);
    table.foreign(['tenant_id', 'user_id']).references(['tenant_id', 'id']).inTable('users').onDelete('CASCADE');
  });
  await isolateTenantTables(knex, ['account_lockouts']);

  await knex.raw('ALTER TABLE user_tokens DROP CONSTRAINT user_tokens_purpose');
  await knex.raw("ALTER TABLE user_tokens ADD CONSTRAINT user_tokens_purpose CHECK (purpose IN ('password_reset', 'email_verification', 'account_unlock'))");
}
