import type { Knex } from 'knex';

// `policies.allowedIpRanges` was accepted but never enforced; the tenant IP rules (021_ip_rules,
// docs/security.md) are what restricts sign-ins. Dropping the key changes no behaviour.
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`UPDATE tenants SET policies = policies - 'allowedIpRanges' WHERE policies -> 'allowedIpRanges' IS NOT NULL`);
}
