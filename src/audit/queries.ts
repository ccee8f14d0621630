// The audit tables. Appends and reads take a transaction from withTenant (row-level security
// confines it to the tenant; the explicit tenant_id filters are there for the indexes); the chain
// walk of verify runs in the platform context, across tenants.
import type { Knex } from 'knex';
import type { TenantTransaction } from '../store/tenant-scope.ts';
import type { Database } from '../store/database.ts';
import { GENESIS_HASH } from './chain.ts';

export type SubjectType = 'user' | 'client' | 'system';

export interface EntryRow {
  tenant_id: string;
  seq: string | number;
  id: string;
  occurred_at: Date;
  type: string;
  outcome: string;
  actor_id: string | null;
  target_id: string | null;
  target_ref: string | null;
  details: unknown;
  prev_hash: string;
  hash: string;
}

export interface ListedRow extends EntryRow {
  actor_type: SubjectType | null;
  actor_subject: string | null;
  actor_display: Record<string, string> | null;
  target_type: SubjectType | null;
  target_subject: string | null;
  target_display: Record<string, string> | null;
  ip: string | null;
  user_agent: string | null;
}

export interface EntryFilter {
  type?: string;
  typePrefix?: string;
  actor?: string;
  target?: string;
  outcome?: 'success' | 'failure';
  from?: Date;
  to?: Date;
  // Any of these types (exact) or type prefixes; combined with the other filters.
  anyType?: { exact: string[]; prefixes: string[] };
  // Leaves out entries whose actor is also their target (a person acting on themselves).
  notSelf?: boolean;
}

export interface DailyCountRow {
  day: string;
  type: string;
  outcome: string;
  count: string | number;
}

const ENTRY_COLUMNS = ['tenant_id', 'seq', 'id', 'occurred_at', 'type', 'outcome', 'actor_id', 'target_id', 'target_ref', 'details', 'prev_hash', 'hash'];

const likeEscape = (value: string) => value.replace(/[\\%_]/g, (char) => `\\${char}`);

export const auditQueries = {
  // Locks the tenant's chain head (made on first use) for the rest of the transaction: appends of
  // one tenant queue here, so every entry links to the one committed just before it. The no-op
  // update of the upsert takes the row lock as FOR UPDATE would, in one statement.
  async lockHead(trx: TenantTransaction, tenantId: string): Promise<{ lastSeq: number; lastHash: string }> {
    const [head] = await trx('audit_chain_heads')
      .insert({ tenant_id: tenantId, last_seq: 0, last_hash: GENESIS_HASH })
      .onConflict('tenant_id')
      .merge(['tenant_id'])
      .returning(['last_seq', 'last_hash']);
    return { lastSeq: Number(head.last_seq), lastHash: head.last_hash };
  },

  // The entry, its request context (if any) and the head moved on to it, in one statement.
  async append(trx: TenantTransaction, entry: EntryRow, context: { ip: string | null; user_agent: string | null } | undefined): Promise<void> {
    let statement = trx.with('entry', trx('audit_entries').insert({ ...entry, details: JSON.stringify(entry.details) }));
    if (context) statement = statement.with('context', trx('audit_entry_context').insert({ tenant_id: entry.tenant_id, seq: entry.seq, ...context }));
    await statement.table('audit_chain_heads').where({ tenant_id: entry.tenant_id }).update({ last_seq: entry.seq, last_hash: entry.hash });
  },

  // The pseudonym of a person; their display data (e-mail, name) refreshed when given.
  async person(trx: TenantTransaction, row: { id: string; tenant_id: string; subject_type: SubjectType; subject_id: string; display: Record<string, string> }): Promise<string> {
    const [saved] = await trx('audit_people')
      .insert({ ...row, display: JSON.stringify(row.display) })
      .onConflict(['tenant_id', 'subject_type', 'subject_id'])
      .merge({ display: trx.raw('audit_people.display || excluded.display') })
      .returning('id');
    return saved.id;
  },

  // Newest first, in keyset pages by seq.
  list(trx: TenantTransaction, tenantId: string, filter: EntryFilter, limit: number, beforeSeq?: number): Promise<ListedRow[]> {
    const query = trx('audit_entries as e')
      .leftJoin('audit_people as a', 'a.id', 'e.actor_id')
      .leftJoin('audit_people as t', 't.id', 'e.target_id')
      .leftJoin('audit_entry_context as c', function () {
        this.on('c.tenant_id', 'e.tenant_id').andOn('c.seq', 'e.seq');
      })
      .where('e.tenant_id', tenantId)
      .orderBy('e.seq', 'desc')
      .limit(limit)
      .select(
        ...ENTRY_COLUMNS.map((column) => `e.${column}`),
        'a.subject_type as actor_type', 'a.subject_id as actor_subject', 'a.display as actor_display',
        't.subject_type as target_type', 't.subject_id as target_subject', 't.display as target_display',
        'c.ip', 'c.user_agent',
      );
    if (beforeSeq !== undefined) query.where('e.seq', '<', beforeSeq);
    if (filter.type) query.where('e.type', filter.type);
    if (filter.typePrefix) query.whereRaw("e.type LIKE ? ESCAPE '\\'", [`${likeEscape(filter.typePrefix)}%`]);
    if (filter.actor) query.where('a.subject_id', filter.actor);
    if (filter.target) query.where((where) => where.where('t.subject_id', filter.target!).orWhere('e.target_ref', filter.target!));
    if (filter.outcome) query.where('e.outcome', filter.outcome);
    if (filter.from) query.where('e.occurred_at', '>=', filter.from);
    if (filter.to) query.where('e.occurred_at', '<', filter.to);
    if (filter.anyType) {
      const { exact, prefixes } = filter.anyType;
      query.where((any) => {
        if (exact.length) any.orWhereIn('e.type', exact);
        for (const prefix of prefixes) any.orWhereRaw("e.type LIKE ? ESCAPE '\\'", [`${likeEscape(prefix)}%`]);
        if (!exact.length && !prefixes.length) any.whereRaw('false');
      });
    }
    if (filter.notSelf) query.whereRaw('e.actor_id IS DISTINCT FROM e.target_id');
    return query;
  },

  // How many entries of each (type, outcome) per UTC day in [from, to), for reports.
  dailyCounts(trx: TenantTransaction, tenantId: string, kinds: Array<{ type: string; outcome: 'success' | 'failure' }>, from: Date, to: Date): Promise<DailyCountRow[]> {
    return trx('audit_entries')
      .where('tenant_id', tenantId)
      .where('occurred_at', '>=', from)
      .where('occurred_at', '<', to)
      .where((any) => {
        for (const kind of kinds) any.orWhere((one) => one.where('type', kind.type).andWhere('outcome', kind.outcome));
      })
      .groupByRaw("1, type, outcome")
      .orderByRaw('1')
      .select(trx.raw(`to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day`), 'type', 'outcome', trx.raw('count(*) AS count'));
  },

  // The display data (e-mail, name) of a person the trail knows and has not erased.
  async personDisplay(trx: TenantTransaction, tenantId: string, subjectType: SubjectType, subjectId: string): Promise<Record<string, string> | undefined> {
    const row = await trx('audit_people').where({ tenant_id: tenantId, subject_type: subjectType, subject_id: subjectId }).first('display');
    if (!row) return undefined;
    return (typeof row.display === 'string' ? JSON.parse(row.display) : row.display) ?? {};
  },

  // Blanks a person: their pseudonym stays, their identity and display data go.
  async erasePerson(trx: TenantTransaction, tenantId: string, subjectType: SubjectType, subjectId: string, now: Date): Promise<string[]> {
    const rows: Array<{ id: string }> = await trx('audit_people')
      .where({ tenant_id: tenantId, subject_type: subjectType, subject_id: subjectId })
      .update({ subject_id: null, display: '{}', erased_at: now })
      .returning('id');
    return rows.map((row) => row.id);
  },

  async eraseContexts(trx: TenantTransaction, tenantId: string, personIds: string[]): Promise<number> {
    if (!personIds.length) return 0;
    // Counted from the returned rows: drivers disagree on what a bare delete resolves to.
    const removed: Array<{ seq: string }> = await trx('audit_entry_context')
      .where('tenant_id', tenantId)
      .whereIn('seq', (sub) => sub.from('audit_entries').where('tenant_id', tenantId).where((who) => who.whereIn('actor_id', personIds).orWhereIn('target_id', personIds)).select('seq'))
      .delete()
      .returning('seq');
    return removed.length;
  },

  // Every tenant with a chain (a head, or entries whose head has gone).
  async chainTenants(db: Database): Promise<string[]> {
    const rows: Array<{ tenant_id: string }> = await db
      .select('tenant_id').from('audit_chain_heads')
      .union((union) => union.distinct('tenant_id').from('audit_entries'))
      .orderBy('tenant_id');
    return rows.map((row) => row.tenant_id);
  },

  head(db: Database | Knex.Transaction, tenantId: string): Promise<{ last_seq: string | number; last_hash: string } | undefined> {
    return db('audit_chain_heads').where({ tenant_id: tenantId }).first('last_seq', 'last_hash');
  },

  chainPage(db: Database, tenantId: string, afterSeq: number, limit: number): Promise<EntryRow[]> {
    return db('audit_entries').where('tenant_id', tenantId).where('seq', '>', afterSeq).orderBy('seq').limit(limit).select(ENTRY_COLUMNS);
  },
};
