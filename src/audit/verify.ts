// Walks each tenant's chain in seq order, recomputing every hash, and names the first entry
// that does not fit: its stored hash differs from its contents (hash mismatch), it does not point
// at the entry before it (broken link), a seq is missing (gap), or the chain ends before its head
// says it does (missing tail: entries removed from the end).
import type { Database } from '../store/database.ts';
import { GENESIS_HASH, entryHash } from './chain.ts';
import { auditQueries, type EntryRow } from './queries.ts';

export type BreakReason = 'hash mismatch' | 'broken link' | 'gap' | 'missing tail';

export interface BrokenEntry {
  tenantId: string;
  seq: number;
  id: string | null;
  reason: BreakReason;
}

export interface ChainReport {
  tenantId: string;
  checked: number;
  ok: boolean;
  firstBroken?: BrokenEntry;
}

export interface VerifyReport {
  ok: boolean;
  checked: number;
  chains: ChainReport[];
  firstBroken?: BrokenEntry;
}

const PAGE = 1000;

function rowHash(row: EntryRow): string {
  return entryHash({
    tenantId: row.tenant_id,
    seq: Number(row.seq),
    id: row.id,
    occurredAt: new Date(row.occurred_at),
    type: row.type,
    outcome: row.outcome,
    actorId: row.actor_id,
    targetId: row.target_id,
    targetRef: row.target_ref,
    details: row.details,
    prevHash: row.prev_hash,
  });
}

export async function verifyChain(db: Database, tenantId: string): Promise<ChainReport> {
  let expectedSeq = 1;
  let prevHash = GENESIS_HASH;
  let checked = 0;
  const broken = (seq: number, id: string | null, reason: BreakReason): ChainReport => ({ tenantId, checked, ok: false, firstBroken: { tenantId, seq, id, reason } });
  for (;;) {
    const page = await auditQueries.chainPage(db, tenantId, expectedSeq - 1, PAGE);
    for (const row of page) {
      const seq = Number(row.seq);
      checked += 1;
      if (seq !== expectedSeq) return broken(seq, row.id, 'gap');
      if (row.prev_hash !== prevHash) return broken(seq, row.id, 'broken link');
      if (rowHash(row) !== row.hash) return broken(seq, row.id, 'hash mismatch');
      prevHash = row.hash;
      expectedSeq += 1;
    }
    if (page.length < PAGE) break;
  }
  const head = await auditQueries.head(db, tenantId);
  if (head && (Number(head.last_seq) !== expectedSeq - 1 || head.last_hash !== prevHash)) {
    return broken(expectedSeq, null, Number(head.last_seq) > expectedSeq - 1 ? 'missing tail' : 'broken link');
  }
  return { tenantId, checked, ok: true };
}

export async function verifyChains(db: Database, tenantId?: string): Promise<VerifyReport> {
  const tenants = tenantId ? [tenantId] : await auditQueries.chainTenants(db);
  const chains: ChainReport[] = [];
  for (const tenant of tenants) chains.push(await verifyChain(db, tenant));
  const firstBroken = chains.find((chain) => !chain.ok)?.firstBroken;
  return { ok: !firstBroken, checked: chains.reduce((sum, chain) => sum + chain.checked, 0), chains, ...(firstBroken ? { firstBroken } : {}) };
}
