import type { Knex } from 'knex';
import { isolateTenantTables } from './tenant-isolation.ts';

const TABLES = ['mfa_totp', 'mfa_backup_codes'];

// TOTP second factors and their backup codes, per user. The foreign keys name the tenant and the
// user together, so a row can never pair one tenant with another tenant's user, and a hard-deleted
// user (or tenant) takes its rows along.
export async function up(knex: Knex): Promise<void> {
  await knex.raw('CREATE UNIQUE INDEX users_tenant_and_id ON users (tenant_id, id)');

  // The active secret (secret_sealed, set at confirmation) and an enrolment in progress
  // (pending_secret_sealed) live side by side: a running enrolment never disables the active one.
  // last_used_step is the highest TOTP time step accepted, so a code works once.
  await knex.schema.createTable('mfa_totp', (table) => {
    table.uuid('tenant_id').notNullable().references('tenants.id').onDelete('CASCADE');
    table.uuid('user_id').notNullable();
    table.text('secret_sealed');
    table.timestamp('confirmed_at', { useTz: true });
    table.bigInteger('last_used_step');
    table.text('pending_secret_sealed');
    table.timestamp('pending_created_at', { useTz: true });
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.primary(['tenant_id', 'user_id']);
    table.foreign(['tenant_id', 'user_id']).references(['tenant_id', 'id']).inTable('users').onDelete('CASCADE');
  });
  await knex.raw('ALTER TABLE mfa_totp ADD CONSTRAINT mfa_totp_active_confirmed CHECK ((secret_sealed IS NULL) = (confirmed_at IS NULL))');

  // Only SHA-256 digests of the codes; a code is used by deleting its row.
  await knex.schema.createTable('mfa_backup_codes', (table) => {
    table.uuid('tenant_id').notNullable().references('tenants.id').onDelete('CASCADE');
    table.uuid('user_id').notNullable();
    table.text('code_hash').notNullable();
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.primary(['tenant_id', 'user_id', 'code_hash']);
    table.foreign(['tenant_id', 'user_id']).references(['tenant_id', 'id']).inTable('users').onDelete('CASCADE');
  });

  await isolateTenantTables(knex, TABLES);
}
