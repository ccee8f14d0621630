import type { Knex } from 'knex';
import { isolateTenantTables } from './tenant-isolation.ts';

// Per-tenant IP rules (docs/security.md): allow and deny lists of CIDR ranges for the sign-in, the
// admin API and API keys. One row per tenant that has rules; no row means no rules. A deleted
// tenant takes its row along.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('tenant_ip_rules', (table) => {
    table.uuid('tenant_id').primary().references('tenants.id').onDelete('CASCADE');
    table.jsonb('rules').notNullable();
    table.integer('version').notNullable().defaultTo(1);
    table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await isolateTenantTables(knex, ['tenant_ip_rules']);
}
