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

async function* lines(first: IteratorResult<AuditEntry>, rest: AsyncIterator<AuditEntry>, format: ExportFormat): AsyncGenerator<string> {
  try {
    if (format === 'csv') yield `${CSV_COLUMNS.join(',')}\r\n`;
    for (let next = first; !next.done; next = await rest.next()) yield format === 'csv' ? csvRow(next.value) : `${JSON.stringify(next.value)}\n`;
  } finally {
    await rest.return?.();
  }
}

// The first entry is read before the stream is handed over, so a query that fails at once (bad
// input, the database away) rejects here, while the status can still say so. A failure later, once
// the headers are out, errors the stream: Koa's pipeline destroys the response and reports the error
// (logged by the app), and the client sees a chunked body cut off without its last chunk.
export async function exportStream(entries: AsyncIterable<AuditEntry>, format: ExportFormat): Promise<Readable> {
  const iterator = entries[Symbol.asyncIterator]();
  const first = await iterator.next();
  return Readable.from(lines(first, iterator, format), { objectMode: false });
}
