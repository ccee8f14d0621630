// A tenant's audit entries as JSON Lines or CSV, produced entry by entry so an export of any size
// streams without being held in memory.
import { Readable } from 'node:stream';
import type { AuditEntry } from './service.ts';

export type ExportFormat = 'jsonl' | 'csv';

export const CSV_COLUMNS = [
  'id', 'seq', 'occurredAt', 'type', 'outcome',
  'actorType', 'actorId', 'actorEmail', 'actorName',
  'targetType', 'targetId', 'targetEmail', 'targetName', 'targetRef',
  'details', 'ip', 'userAgent', 'hash',
] as const;

// RFC 4180 quoting; a cell a spreadsheet would run as a formula gets a leading apostrophe
// (OWASP's advice against CSV injection).
export function csvCell(value: unknown): string {
  let text = value === null || value === undefined ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n']/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function csvRow(entry: AuditEntry): string {
  const cells: Record<(typeof CSV_COLUMNS)[number], unknown> = {
    id: entry.id,
    seq: entry.seq,
    occurredAt: entry.occurredAt,
    type: entry.type,
    outcome: entry.outcome,
    actorType: entry.actor?.type,
    actorId: entry.actor?.id,
    actorEmail: entry.actor?.email,
    actorName: entry.actor?.name,
    targetType: entry.target?.type,
    targetId: entry.target?.id,
    targetEmail: entry.target?.email,
    targetName: entry.target?.name,
    targetRef: entry.targetRef,
    details: entry.details,
    ip: entry.context?.ip,
    userAgent: entry.context?.userAgent,
    hash: entry.hash,
  };
  return `${CSV_COLUMNS.map((column) => csvCell(cells[column])).join(',')}\r\n`;
}

async function* lines(entries: AsyncIterable<AuditEntry>, format: ExportFormat): AsyncGenerator<string> {
  if (format === 'csv') yield `${CSV_COLUMNS.join(',')}\r\n`;
  for await (const entry of entries) yield format === 'csv' ? csvRow(entry) : `${JSON.stringify(entry)}\n`;
}

export function exportStream(entries: AsyncIterable<AuditEntry>, format: ExportFormat): Readable {
  return Readable.from(lines(entries, format), { objectMode: false });
}
