import type { Database } from '../store/database.ts';

export interface ClientRow {
  client_id: string;
  secret_sha256: string | null;
  metadata: Record<string, unknown>;
  first_party: boolean;
  created_at: Date;
  updated_at: Date;
}

export function clientQueries(db: Database) {
  return {
    find(clientId: string): Promise<ClientRow | undefined> {
      return db('clients').where({ client_id: clientId }).first();
    },
    list(): Promise<ClientRow[]> {
      return db('clients').select('*').orderBy('created_at', 'asc');
    },
    insert(row: Pick<ClientRow, 'client_id' | 'secret_sha256' | 'metadata' | 'first_party'>) {
      return db('clients').insert({ ...row, metadata: JSON.stringify(row.metadata) });
    },
    async delete(clientId: string): Promise<boolean> {
      return (await db('clients').where({ client_id: clientId }).delete(['client_id'])).length > 0;
    },
  };
}
