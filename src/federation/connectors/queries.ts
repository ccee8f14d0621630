// The connectors tables. Functions taking a TenantTransaction run inside withTenant (row-level
// security confines them to the tenant); the e-mail-domain look-ups at the end run in the platform
// context, because home-realm discovery happens before the tenant is known (see migration 023).
import type { Knex } from 'knex';
import type { Database } from '../../store/database.ts';
import type { TenantTransaction } from '../../store/tenant-scope.ts';
import type { ConnectorKind } from '../connector.ts';
import type { ConnectorSettings } from './settings.ts';

export interface ConnectorRow {
  id: string;
  tenant_id: string;
  name: string;
  display_name: string;
  kind: ConnectorKind;
  enabled: boolean;
  settings: ConnectorSettings;
  secrets_sealed: string;
  jit_provisioning: boolean;
  trust_email: boolean;
  version: number;
  created_at: Date;
  updated_at: Date;
}

export interface RoleMappingRow {
  connector_id: string;
  upstream_group: string;
  role_id: string;
}

type Writable = Pick<ConnectorRow, 'display_name' | 'enabled' | 'settings' | 'secrets_sealed' | 'jit_provisioning' | 'trust_email'>;

function jsonSettings<T extends { settings?: ConnectorSettings }>(row: T): Omit<T, 'settings'> & { settings?: string } {
  const { settings, ...rest } = row;
  return settings === undefined ? rest : { ...rest, settings: JSON.stringify(settings) };
}

export const connectorQueries = {
  list(trx: TenantTransaction, tenantId: string): Promise<ConnectorRow[]> {
    return trx('connectors').where({ tenant_id: tenantId }).orderBy([{ column: 'display_name' }, { column: 'name' }]);
  },

  find(trx: TenantTransaction, tenantId: string, id: string, options: { forUpdate?: boolean } = {}): Promise<ConnectorRow | undefined> {
    const query = trx('connectors').where({ tenant_id: tenantId, id }).first();
    return options.forUpdate ? query.forUpdate() : query;
  },

  findByName(trx: TenantTransaction, tenantId: string, name: string): Promise<ConnectorRow | undefined> {
    return trx('connectors').where({ tenant_id: tenantId, name }).first();
  },

  // What the sign-in page lists: enabled connectors by display name, without settings or secrets.
  listEnabled(trx: TenantTransaction, tenantId: string): Promise<Array<Pick<ConnectorRow, 'id' | 'name' | 'display_name' | 'kind'>>> {
    return trx('connectors').where({ tenant_id: tenantId, enabled: true }).orderBy([{ column: 'display_name' }, { column: 'name' }]).select('id', 'name', 'display_name', 'kind');
  },

  async insert(trx: TenantTransaction, row: Omit<ConnectorRow, 'version' | 'created_at' | 'updated_at'>): Promise<ConnectorRow> {
    const [created] = await trx('connectors').insert(jsonSettings(row)).returning('*');
    return created;
  },

  // Only at the version the caller read; undefined otherwise.
  async update(trx: TenantTransaction, tenantId: string, id: string, version: number, changes: Partial<Writable>, at: Date): Promise<ConnectorRow | undefined> {
    const [updated] = await trx('connectors')
      .where({ tenant_id: tenantId, id, version })
      .update({ ...jsonSettings(changes), version: trx.raw('version + 1'), updated_at: at })
      .returning('*');
    return updated;
  },

  // Marks a change of what belongs to the connector (its role mappings) whatever the version.
  async touch(trx: TenantTransaction, tenantId: string, id: string, at: Date): Promise<ConnectorRow | undefined> {
    const [updated] = await trx('connectors').where({ tenant_id: tenantId, id }).update({ version: trx.raw('version + 1'), updated_at: at }).returning('*');
    return updated;
  },

  async remove(trx: TenantTransaction, tenantId: string, id: string): Promise<boolean> {
    return (await trx('connectors').where({ tenant_id: tenantId, id }).delete(['id'])).length > 0;
  },

  async domainsOf(trx: TenantTransaction, tenantId: string, connectorIds: string[]): Promise<Array<{ connector_id: string; domain: string }>> {
    if (!connectorIds.length) return [];
    return trx('connector_email_domains').where({ tenant_id: tenantId }).whereIn('connector_id', connectorIds).orderBy('domain').select('connector_id', 'domain');
  },

  async replaceDomains(trx: TenantTransaction, tenantId: string, connectorId: string, domains: string[]): Promise<void> {
    await trx('connector_email_domains').where({ tenant_id: tenantId, connector_id: connectorId }).delete();
    if (domains.length) await trx('connector_email_domains').insert(domains.map((domain) => ({ domain, tenant_id: tenantId, connector_id: connectorId })));
  },

  async mappingsOf(trx: TenantTransaction, tenantId: string, connectorIds: string[]): Promise<RoleMappingRow[]> {
    if (!connectorIds.length) return [];
    return trx('connector_role_mappings')
      .where({ tenant_id: tenantId })
      .whereIn('connector_id', connectorIds)
      .orderBy([{ column: 'upstream_group' }, { column: 'role_id' }])
      .select('connector_id', 'upstream_group', 'role_id');
  },

  async replaceMappings(trx: TenantTransaction, tenantId: string, connectorId: string, mappings: Array<{ group: string; roleId: string }>): Promise<void> {
    await trx('connector_role_mappings').where({ tenant_id: tenantId, connector_id: connectorId }).delete();
    if (mappings.length) {
      await trx('connector_role_mappings').insert(mappings.map((mapping) => ({ tenant_id: tenantId, connector_id: connectorId, upstream_group: mapping.group, role_id: mapping.roleId })));
    }
  },

  async grantsOf(trx: TenantTransaction, tenantId: string, connectorId: string, userId: string): Promise<string[]> {
    const rows: Array<{ role_id: string }> = await trx('connector_role_grants').where({ tenant_id: tenantId, connector_id: connectorId, user_id: userId }).select('role_id');
    return rows.map((row) => row.role_id);
  },

  async recordGrant(trx: TenantTransaction, tenantId: string, connectorId: string, userId: string, roleId: string): Promise<void> {
    await trx('connector_role_grants').insert({ tenant_id: tenantId, connector_id: connectorId, user_id: userId, role_id: roleId }).onConflict(['connector_id', 'user_id', 'role_id']).ignore();
  },

  async forgetGrant(trx: TenantTransaction, tenantId: string, connectorId: string, userId: string, roleId: string): Promise<void> {
    await trx('connector_role_grants').where({ tenant_id: tenantId, connector_id: connectorId, user_id: userId, role_id: roleId }).delete();
  },
};

// Platform context: across tenants, before any tenant is known.
export const domainQueries = {
  // Which of these domains another connector (of any tenant) holds already.
  async takenElsewhere(db: Database | Knex.Transaction, domains: string[], connectorId: string | undefined): Promise<string[]> {
    if (!domains.length) return [];
    const query = db('connector_email_domains').whereIn('domain', domains).select('domain');
    if (connectorId) query.whereNot({ connector_id: connectorId });
    return (await query).map((row: { domain: string }) => row.domain);
  },

  // The enabled connector of an active tenant that claims the domain.
  findEnabled(db: Database, domain: string): Promise<{ tenant_id: string; name: string } | undefined> {
    return db('connector_email_domains as d')
      .join('connectors as c', function () {
        this.on('c.id', '=', 'd.connector_id').andOn('c.tenant_id', '=', 'd.tenant_id');
      })
      .join('tenants as t', 't.id', 'd.tenant_id')
      .where({ 'd.domain': domain, 'c.enabled': true, 't.status': 'active' })
      .first('d.tenant_id', 'c.name');
  },
};

// Re-wrapping the sealed secrets after a key-encryption key rotation: platform context, all tenants.
export const sealedSecretQueries = {
  page(trx: Knex.Transaction, after: string | undefined, limit: number): Promise<Array<Pick<ConnectorRow, 'tenant_id' | 'id' | 'secrets_sealed'>>> {
    const query = trx('connectors').orderBy('id').limit(limit).forUpdate().select('tenant_id', 'id', 'secrets_sealed');
    return after === undefined ? query : query.where('id', '>', after);
  },

  // The secrets are the same, only sealed anew: no version change, so no edit in flight conflicts.
  async replace(trx: Knex.Transaction, tenantId: string, id: string, sealed: string): Promise<void> {
    await trx('connectors').where({ tenant_id: tenantId, id }).update({ secrets_sealed: sealed });
  },
};
