import type { Knex } from 'knex';
import { extendSystemAdminRoles } from './system-role-permissions.ts';
import { isolateTenantTables } from './tenant-isolation.ts';

const TABLES = ['outbox_events', 'webhook_endpoints', 'webhook_deliveries'];

// Events for other services. outbox_events is written in the transaction of the change it tells
// of (the transactional outbox); a worker publishes each row to the Redis stream and fans it out to
// one webhook_deliveries row per matching endpoint. seq orders the rows for publishing; id is the
// event id consumers deduplicate by. No foreign key to tenants: an event may outlive its tenant
// until it is delivered. users.last_login_at is kept by the in-process consumer of
// auth.login.success.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('outbox_events', (table) => {
    table.uuid('id').primary();
    table.bigIncrements('seq', { primaryKey: false }).unique();
    table.uuid('tenant_id').notNullable();
    table.text('type').notNullable();
    table.jsonb('data').notNullable();
    table.timestamp('created_at', { useTz: true }).notNullable();
    table.timestamp('published_at', { useTz: true });
  });
  await knex.raw('CREATE INDEX outbox_events_unpublished ON outbox_events (seq) WHERE published_at IS NULL');
  await knex.raw('CREATE INDEX outbox_events_published ON outbox_events (published_at) WHERE published_at IS NOT NULL');

  await knex.schema.createTable('webhook_endpoints', (table) => {
    table.uuid('id').primary();
    table.uuid('tenant_id').notNullable().references('tenants.id').onDelete('CASCADE');
    table.text('url').notNullable();
    table.text('description');
    table.specificType('event_types', 'text[]').notNullable();
    table.boolean('enabled').notNullable().defaultTo(true);
    // The signing secret, AES-256-GCM under the instance's key-encryption key.
    table.text('secret_sealed').notNullable();
    table.integer('version').notNullable().defaultTo(1);
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.unique(['tenant_id', 'id']);
  });
  await knex.raw('CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, created_at) WHERE enabled');

  await knex.schema.createTable('webhook_deliveries', (table) => {
    table.uuid('id').primary();
    table.uuid('tenant_id').notNullable();
    table.uuid('endpoint_id').notNullable();
    table.uuid('event_id').notNullable().references('outbox_events.id').onDelete('CASCADE');
    table.text('status').notNullable().defaultTo('pending');
    table.integer('attempts').notNullable().defaultTo(0);
    table.timestamp('next_attempt_at', { useTz: true }).notNullable();
    table.timestamp('last_attempt_at', { useTz: true });
    table.integer('last_status_code');
    table.text('last_error');
    table.timestamp('delivered_at', { useTz: true });
    table.timestamp('created_at', { useTz: true }).notNullable();
    table.foreign(['tenant_id', 'endpoint_id']).references(['tenant_id', 'id']).inTable('webhook_endpoints').onDelete('CASCADE');
    table.unique(['endpoint_id', 'event_id']);
  });
  await knex.raw("ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_status CHECK (status IN ('pending', 'delivered', 'dead'))");
  await knex.raw("CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending'");
  await knex.raw('CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (tenant_id, endpoint_id, created_at, id)');
  await knex.raw('CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id)');

  await knex.raw('ALTER TABLE users ADD COLUMN last_login_at timestamptz');

  await isolateTenantTables(knex, TABLES);
  // The tenant role writes events in its own transactions; the identity needs the sequence.
  await knex.raw("DO $$ BEGIN EXECUTE format('GRANT USAGE ON SEQUENCE %s TO idp_tenant', pg_get_serial_sequence('outbox_events', 'seq')); END $$");

  // Tenants that already exist: the system roles that read or change users manage webhooks too
  // (new tenants get webhooks:read / webhooks:write from src/tenants/system-roles.ts).
  await extendSystemAdminRoles(knex, [['users:read', 'webhooks:read'], ['users:write', 'webhooks:write']]);
}
