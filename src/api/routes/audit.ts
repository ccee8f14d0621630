// The audit trail for administrators: a tenant's entries, newest first, filtered, in keyset
// pages, and the same as a streamed JSON Lines or CSV export.
import { z } from 'zod';
import { route, type RouteDefinition } from '../route-table.ts';
import { tenantParams, timestamp } from '../schemas.ts';
import type { ApiServices } from '../services.ts';
import type { ListFilter } from '../../audit/service.ts';
import { exportStream } from '../../audit/export.ts';
import { ValidationError } from '../../errors.ts';

const filters = {
  type: z.string().regex(/^[a-z0-9_.*-]{1,128}$/, 'an event type such as auth.login, or a prefix such as auth.').optional(),
  actor: z.string().min(1).max(256).optional(),
  target: z.string().min(1).max(256).optional(),
  outcome: z.enum(['success', 'failure']).optional(),
  from: timestamp.optional(),
  to: timestamp.optional(),
};
const listQuery = z.object({ ...filters, limit: z.coerce.number().int().min(1).max(200).default(50), cursor: z.string().max(128).optional() }).strict();
const exportQuery = z.object({ ...filters, format: z.enum(['jsonl', 'csv']).default('jsonl') }).strict();

// An opaque cursor: the seq the next page continues below.
function encodeCursor(seq: number): string {
  return Buffer.from(JSON.stringify({ before: seq })).toString('base64url');
}

function decodeCursor(cursor: string): number {
  try {
    const { before } = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { before?: unknown };
    if (Number.isSafeInteger(before) && (before as number) > 0) return before as number;
  } catch {
    // falls through to the validation error
  }
  throw new ValidationError('invalid cursor', { 'query.cursor': 'not a cursor this API returned' });
}

function listFilter(query: { type?: string; actor?: string; target?: string; outcome?: 'success' | 'failure'; from?: string; to?: string }): ListFilter {
  const from = query.from ? new Date(query.from) : undefined;
  const to = query.to ? new Date(query.to) : undefined;
  if (from && to && from >= to) throw new ValidationError('invalid time range', { 'query.to': 'must be later than from' });
  return { type: query.type, actor: query.actor, target: query.target, outcome: query.outcome, from, to };
}

export function auditRoutes({ audit, tenants }: ApiServices): RouteDefinition[] {
  return [
    route({
      method: 'get', path: '/tenants/:tenantId/audit', tag: 'audit', summary: 'Audit entries of a tenant, newest first (filters combine; type takes a prefix ending in "."; keyset pages)', permission: 'audit:read', tenantRule: 'tenant',
      params: tenantParams, query: listQuery, responses: { 200: 'A page of entries and the cursor of the next', 404: 'No such tenant', 422: 'Invalid filter or cursor' },
      async handler({ params, query }) {
        await tenants.get(params.tenantId);
        const before = query.cursor ? decodeCursor(query.cursor) : undefined;
        const page = await audit.list(params.tenantId, listFilter(query), before, query.limit);
        return { body: { items: page.items, nextCursor: page.nextBefore ? encodeCursor(page.nextBefore) : null } };
      },
    }),
    route({
      method: 'get', path: '/tenants/:tenantId/audit/export', tag: 'audit', summary: 'Every matching audit entry of a tenant, newest first, streamed as JSON Lines or CSV', permission: 'audit:read', tenantRule: 'tenant',
      params: tenantParams, query: exportQuery, responses: { 200: 'The entries (application/x-ndjson or text/csv)', 404: 'No such tenant', 422: 'Invalid filter or format' },
      async handler({ params, query, ctx }) {
        await tenants.get(params.tenantId);
        const body = await exportStream(audit.all(params.tenantId, listFilter(query)), query.format);
        ctx.type = query.format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8';
        ctx.set('Content-Disposition', `attachment; filename="audit-${params.tenantId}.${query.format}"`);
        return { body };
      },
    }),
  ];
}
