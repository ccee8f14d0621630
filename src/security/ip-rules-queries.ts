// The tenant_ip_rules table; every query runs in the tenant's scope (row-level security).
import type { Knex } from 'knex';

export interface IpRulesRow {
  tenant_id: string;
  rules: unknown;
  version: number;
  updated_at: Date;
}

export const ipRulesQueries = {
  find(trx: Knex.Transaction, tenantId: string): Promise<IpRulesRow | undefined> {
    return trx('tenant_ip_rules').where({ tenant_id: tenantId }).first();
  },
  async insert(trx: Knex.Transaction, tenantId: string, rules: unknown): Promise<IpRulesRow> {
    const [row] = await trx('tenant_ip_rules').insert({ tenant_id: tenantId, rules: JSON.stringify(rules), version: 1 }).returning('*');
    return row;
  },
  async update(trx: Knex.Transaction, tenantId: string, version: number, rules: unknown): Promise<IpRulesRow | undefined> {
    const [row] = await trx('tenant_ip_rules')
      .where({ tenant_id: tenantId, version })
      .update({ rules: JSON.stringify(rules), version: version + 1, updated_at: trx.fn.now() })
      .returning('*');
    return row;
  },
};
