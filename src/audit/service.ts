// The audit trail's API for every other domain: record an event (inside the caller's transaction,
// so the event and the change it records commit or fail together), list and export a tenant's
// entries, erase a person, verify the chains.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { Database } from '../store/database.ts';
import { withTenant } from '../store/tenant-scope.ts';
import { isUuid } from '../ids.ts';
import { entryHash } from './chain.ts';
import { maskDetails } from './mask.ts';
import { auditQueries, type EntryFilter, type ListedRow, type SubjectType } from './queries.ts';
import { verifyChains, type VerifyReport } from './verify.ts';

export type { SubjectType } from './queries.ts';
export type Outcome = 'success' | 'failure';

export interface AuditPerson {
  type: SubjectType;
  id: string;
  email?: string;
  name?: string;
}

export interface AuditEvent {
  tenantId: string;
  // Dotted, domain first: auth.login, admin.user.update, apikey.rotate ...
  type: string;
  outcome: Outcome;
  actor?: AuditPerson;
  // A person (user or client), or a non-personal reference: a client id, role id, key id.
  target?: AuditPerson | { ref: string };
  // Masked before it is stored: no secrets, no personal data (see mask.ts).
  details?: Record<string, unknown>;
  context?: { ip?: string; userAgent?: string };
}

export interface ListFilter {
  // Exact, or a prefix when it ends with "." or "*" ("auth." or "auth.*").
  type?: string;
  // The user or client id of the actor / target (a target also matches its reference).
  actor?: string;
  target?: string;
  outcome?: Outcome;
  from?: Date;
  to?: Date;
  // Any of these types: each exact, or a prefix when it ends with "." or "*".
  anyType?: string[];
  // Leaves out what a person did to themselves (actor and target the same person).
  notSelf?: boolean;
}

// Entries of one type and outcome on one UTC day (YYYY-MM-DD).
export interface DailyCount {
  day: string;
  type: string;
  outcome: Outcome;
  count: number;
}

export interface ListedPerson {
  type: SubjectType;
  id: string | null;
  email: string | null;
  name: string | null;
  erased: boolean;
}

export interface AuditEntry {
  id: string;
  seq: number;
  occurredAt: string;
  type: string;
  outcome: Outcome;
  actor: ListedPerson | null;
  target: ListedPerson | null;
  targetRef: string | null;
  details: Record<string, unknown>;
  context: { ip: string | null; userAgent: string | null } | null;
  hash: string;
}

export interface AuditPage {
  items: AuditEntry[];
  // The seq to continue below; undefined on the last page.
  nextBefore?: number;
}

export interface AuditService {
  record(trx: Knex.Transaction | undefined, event: AuditEvent): Promise<{ id: string; seq: number }>;
  list(tenantId: string, filter: ListFilter, before: number | undefined, limit: number): Promise<AuditPage>;
  // Every matching entry, newest first, fetched page by page (for exports).
  all(tenantId: string, filter: ListFilter): AsyncGenerator<AuditEntry>;
  // With the caller's transaction, the erasure commits or rolls back with the caller's change.
  erase(tenantId: string, subjectType: SubjectType, subjectId: string, trx?: Knex.Transaction): Promise<{ people: number; contexts: number }>;
  // What the trail shows of a person it knows (not erased): their e-mail and name, if recorded.
  knownPerson(tenantId: string, subjectType: SubjectType, subjectId: string): Promise<{ email?: string; name?: string } | undefined>;
  // Counts per UTC day in [from, to) of the given (type, outcome) pairs, for reports.
  dailyCounts(tenantId: string, kinds: Array<{ type: string; outcome: Outcome }>, from: Date, to: Date): Promise<DailyCount[]>;
  verify(tenantId?: string): Promise<VerifyReport>;
}

const TYPE = /^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$/;
const EXPORT_PAGE = 500;

function isPerson(target: AuditEvent['target']): target is AuditPerson {
  return Boolean(target && 'type' in target);
}

function display(person: AuditPerson): Record<string, string> {
  return Object.fromEntries(Object.entries({ email: person.email, name: person.name }).filter(([, value]) => typeof value === 'string' && value)) as Record<string, string>;
}

function listedPerson(type: SubjectType | null, subject: string | null, shown: Record<string, string> | null): ListedPerson | null {
  if (!type) return null;
  const erased = subject === null;
  return { type, id: subject, email: erased ? null : (shown?.email ?? null), name: erased ? null : (shown?.name ?? null), erased };
}

function present(row: ListedRow): AuditEntry {
  return {
    id: row.id,
    seq: Number(row.seq),
    occurredAt: new Date(row.occurred_at).toISOString(),
    type: row.type,
    outcome: row.outcome as Outcome,
    actor: listedPerson(row.actor_type, row.actor_subject, row.actor_display),
    target: listedPerson(row.target_type, row.target_subject, row.target_display),
    targetRef: row.target_ref,
    details: (row.details ?? {}) as Record<string, unknown>,
    context: row.ip === null && row.user_agent === null ? null : { ip: row.ip, userAgent: row.user_agent },
    hash: row.hash,
  };
}

function typeSet(types: string[]): { exact: string[]; prefixes: string[] } {
  const prefixes = types.filter((type) => type.endsWith('.') || type.endsWith('*')).map((type) => (type.endsWith('*') ? type.slice(0, -1) : type));
  return { exact: types.filter((type) => !type.endsWith('.') && !type.endsWith('*')), prefixes };
}

function entryFilter(filter: ListFilter): EntryFilter {
  const { type, anyType, ...rest } = filter;
  const base: EntryFilter = anyType ? { ...rest, anyType: typeSet(anyType) } : rest;
  if (!type) return base;
  if (type.endsWith('*')) return { ...base, typePrefix: type.slice(0, -1) };
  if (type.endsWith('.')) return { ...base, typePrefix: type };
  return { ...base, type };
}

function checkEvent(event: AuditEvent): void {
  if (!isUuid(event.tenantId)) throw new Error('audit: tenantId must be a tenant id');
  if (!TYPE.test(event.type)) throw new Error(`audit: event type ${JSON.stringify(event.type)} is not a dotted lower-case name`);
  if (event.outcome !== 'success' && event.outcome !== 'failure') throw new Error('audit: outcome must be success or failure');
}

export function createAuditService(deps: { db: Database; now?: () => Date }): AuditService {
  const { db } = deps;
  const now = deps.now ?? (() => new Date());

  async function person(trx: Knex.Transaction, tenantId: string, who: AuditPerson): Promise<string> {
    return auditQueries.person(trx, { id: randomUUID(), tenant_id: tenantId, subject_type: who.type, subject_id: who.id, display: display(who) });
  }

  const service: AuditService = {
    async record(outer, event) {
      checkEvent(event);
      return withTenant(outer ?? db, event.tenantId, async (trx) => {
        const head = await auditQueries.lockHead(trx, event.tenantId);
        const actorId = event.actor ? await person(trx, event.tenantId, event.actor) : null;
        const targetId = isPerson(event.target) ? await person(trx, event.tenantId, event.target) : null;
        const targetRef = event.target && !isPerson(event.target) ? event.target.ref : null;
        const fields = {
          tenantId: event.tenantId,
          seq: head.lastSeq + 1,
          id: randomUUID(),
          occurredAt: now(),
          type: event.type,
          outcome: event.outcome,
          actorId,
          targetId,
          targetRef,
          // Through JSON once, so the hash covers exactly what jsonb will give back.
          details: JSON.parse(JSON.stringify(maskDetails(event.details ?? {}))) as Record<string, unknown>,
          prevHash: head.lastHash,
        };
        const hash = entryHash(fields);
        const context = event.context?.ip || event.context?.userAgent ? { ip: event.context.ip ?? null, user_agent: event.context.userAgent?.slice(0, 512) ?? null } : undefined;
        await auditQueries.append(trx, {
          tenant_id: fields.tenantId,
          seq: fields.seq,
          id: fields.id,
          occurred_at: fields.occurredAt,
          type: fields.type,
          outcome: fields.outcome,
          actor_id: actorId,
          target_id: targetId,
          target_ref: targetRef,
          details: fields.details,
          prev_hash: fields.prevHash,
          hash,
        }, context);
        return { id: fields.id, seq: fields.seq };
      });
    },

    async list(tenantId, filter, before, limit) {
      const rows = await withTenant(db, tenantId, (trx) => auditQueries.list(trx, tenantId, entryFilter(filter), limit + 1, before));
      const items = rows.slice(0, limit).map(present);
      return { items, nextBefore: rows.length > limit ? items[items.length - 1].seq : undefined };
    },

    async *all(tenantId, filter) {
      let before: number | undefined;
      do {
        const page = await service.list(tenantId, filter, before, EXPORT_PAGE);
        yield* page.items;
        before = page.nextBefore;
      } while (before !== undefined);
    },

    async erase(tenantId, subjectType, subjectId, outer) {
      return withTenant(outer ?? db, tenantId, async (trx) => {
        const ids = await auditQueries.erasePerson(trx, tenantId, subjectType, subjectId, now());
        return { people: ids.length, contexts: await auditQueries.eraseContexts(trx, tenantId, ids) };
      });
    },

    async knownPerson(tenantId, subjectType, subjectId) {
      if (!isUuid(tenantId) || typeof subjectId !== 'string' || !subjectId) return undefined;
      const shown = await withTenant(db, tenantId, (trx) => auditQueries.personDisplay(trx, tenantId, subjectType, subjectId));
      return shown && { email: shown.email, name: shown.name };
    },

    async dailyCounts(tenantId, kinds, from, to) {
      if (!kinds.length) return [];
      const rows = await withTenant(db, tenantId, (trx) => auditQueries.dailyCounts(trx, tenantId, kinds, from, to));
      return rows.map((row) => ({ day: row.day, type: row.type, outcome: row.outcome as Outcome, count: Number(row.count) }));
    },

    verify(tenantId) {
      return verifyChains(db, tenantId);
    },
  };
  return service;
}
