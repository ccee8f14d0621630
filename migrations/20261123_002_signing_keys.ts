import type { Knex } from 'knex';

// Token signing keys. The private JWK is sealed with AES-256-GCM under the key-encryption key.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('signing_keys', (table) => {
    table.text('kid').primary();
    table.text('alg').notNullable();
    table.text('status').notNullable(); // next | active | retired
    table.jsonb('public_jwk').notNullable();
    table.text('private_jwk_sealed').notNullable();
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.timestamp('activated_at', { useTz: true });
    table.timestamp('retired_at', { useTz: true });
    // A retired key stays published until every token it signed has expired.
    table.timestamp('remove_after', { useTz: true });
  });
  await knex.raw("ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_status CHECK (status IN ('next', 'active', 'retired'))");
  await knex.raw("CREATE UNIQUE INDEX signing_keys_one_active_per_alg ON signing_keys (alg) WHERE status = 'active'");
  // A monotonically increasing version lets every instance notice a change it missed on pub/sub.
  await knex.schema.createTable('signing_key_version', (table) => {
    table.integer('id').primary();
    table.bigInteger('version').notNullable();
  });
  await knex('signing_key_version').insert({ id: 1, version: 0 });
}
