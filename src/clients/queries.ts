import type { Knex } from 'knex';
import type { Database } from '../store/database.ts';
import { storableText } from '../store/text.ts';

export interface ClientRow {
  client_id: string;
  secret_sha256: string | null;
  metadata: Record<string, unknown>;
  first_party: boolean;
  tenant_id: string | null;
  created_at: Date;
  updated_at: Date;
}

// On the database, or inside a transaction (a change and its audit entry commit together).
export function clientQueries(db: Database | Knex.Transaction) {
  return {
    async find(clientId: string): Promise<ClientRow | undefined> {
      if (!storableText(clientId)) return undefined;
      return db('clients').where({ client_id: clientId }).first();
    },
    list(tenantId?: string): Promise<ClientRow[]> {
      const query = db('clients').select('*').orderBy('created_at', 'asc');
      if (tenantId) query.where({ tenant_id: tenantId });
      return query;
    },
    insert(row: Pick<ClientRow, 'client_id' | 'secret_sha256' | 'metadata' | 'first_party' | 'tenant_id'>) {
      return db('clients').insert({ ...row, metadata: JSON.stringify(row.metadata) });
    },
    findForUpdate(clientId: string): Promise<ClientRow | undefined> {
      return db('clients').where({ client_id: clientId }).forUpdate().first();
    },
    async replaceSecret(clientId: string, secretSha256: string): Promise<void> {
      await db('clients').where({ client_id: clientId }).update({ secret_sha256: secretSha256, updated_at: db.fn.now() });
    },
    async delete(clientId: string): Promise<boolean> {
      return (await db('clients').where({ client_id: clientId }).delete(['client_id'])).length > 0;
    },
  };
}
