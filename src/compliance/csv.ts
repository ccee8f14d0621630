// A report as CSV: a header of the report's columns, then one RFC 4180 row per item, cells
// quoted and guarded against spreadsheet formulas by the audit export's csvCell.
import { csvCell } from '../audit/export.ts';

export function reportCsv(columns: readonly string[], rows: ReadonlyArray<Record<string, unknown>>): string {
  const lines = [columns.join(','), ...rows.map((row) => columns.map((column) => csvCell(row[column])).join(','))];
  return `${lines.join('\r\n')}\r\n`;
}
