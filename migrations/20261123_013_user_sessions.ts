import type { Knex } from 'knex';
import { isolateTenantTables } from './tenant-isolation.ts';

const TABLES = ['user_sessions', 'user_identities'];

// Device sessions (one row per oidc-provider Session a user signed in with, for the account
// pages' "sessions and devices") and linked upstream identities. Both are tenant-scoped under
// row-level security; the foreign keys name tenant and user together (users_tenant_and_id from
// migration 011), so a row never pairs one tenant with another tenant's user, and a hard-deleted
// user takes its rows along.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('user_sessions', (table) => {
    table.uuid('id').primary();
    table.uuid('tenant_id').notNullable().references('tenants.id').onDelete('CASCADE');
    table.uuid('user_id').notNullable();
    // The provider Session's uid: stable for the session's life (its jti changes at every login).
    table.text('sid').notNullable();
    table.specificType('client_ids', 'text[]').notNullable().defaultTo('{}');
    table.text('user_agent');
    table.text('browser');
    table.text('os');
    table.text('device');
    table.text('ip');
    table.specificType('amr', 'text[]').notNullable().defaultTo('{}');
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.timestamp('last_active_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.timestamp('ended_at', { useTz: true });
    table.foreign(['tenant_id', 'user_id']).references(['tenant_id', 'id']).inTable('users').onDelete('CASCADE');
    table.unique(['tenant_id', 'sid']);
  });
  await knex.raw('CREATE INDEX user_sessions_active ON user_sessions (tenant_id, user_id, last_active_at) WHERE ended_at IS NULL');

  await knex.schema.createTable('user_identities', (table) => {
    table.uuid('id').primary();
    table.uuid('tenant_id').notNullable().references('tenants.id').onDelete('CASCADE');
    table.uuid('user_id').notNullable();
    // The upstream connector (issue 9) and the subject it knows the person by.
    table.text('connector').notNullable();
    table.text('subject').notNullable();
    table.text('email');
    table.timestamp('linked_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.foreign(['tenant_id', 'user_id']).references(['tenant_id', 'id']).inTable('users').onDelete('CASCADE');
    table.unique(['tenant_id', 'connector', 'subject']);
  });
  await knex.raw('CREATE INDEX user_identities_user ON user_identities (tenant_id, user_id)');

  await isolateTenantTables(knex, TABLES);
}
