// Compliance reports of a tenant for administrators, as JSON (default) or CSV (?format=csv, or
// Accept: text/csv): failed sign-ins per day, lockouts, MFA adoption by role, privileged actions,
// dormant accounts.
import { z } from 'zod';
import type { Context } from 'koa';
import { route, type RouteDefinition, type RouteResult } from '../route-table.ts';
import { tenantParams, timestamp } from '../schemas.ts';
import { EARLIEST_INSTANT } from '../../store/instant.ts';
import type { ApiServices } from '../services.ts';
import { reportCsv } from '../../compliance/csv.ts';
import { ValidationError } from '../../errors.ts';

const DAY_MS = 86_400_000;
const DEFAULT_RANGE_DAYS = 30;
const MAX_RANGE_DAYS = 366;

const format = z.enum(['json', 'csv']).optional();
const rangeQuery = z.object({ from: timestamp.optional(), to: timestamp.optional(), format }).strict();
const formatQuery = z.object({ format }).strict();
const dormantQuery = z.object({ days: z.coerce.number().int().min(1).max(3650).default(90), format }).strict();

// Default: the last 30 days up to `to` (now), never before the earliest instant the database
// holds; at most a year.
function range(query: { from?: string; to?: string }): { from: Date; to: Date } {
  const to = query.to ? new Date(query.to) : new Date();
  const from = query.from ? new Date(query.from) : new Date(Math.max(to.getTime() - DEFAULT_RANGE_DAYS * DAY_MS, EARLIEST_INSTANT.getTime()));
  if (from >= to) throw new ValidationError('invalid time range', { 'query.to': 'must be later than from' });
  if (to.getTime() - from.getTime() > MAX_RANGE_DAYS * DAY_MS) throw new ValidationError('invalid time range', { 'query.from': `the range may span at most ${MAX_RANGE_DAYS} days` });
  return { from, to };
}

function wantsCsv(ctx: Context, requested: 'json' | 'csv' | undefined): boolean {
  if (requested) return requested === 'csv';
  return ctx.accepts('application/json', 'text/csv') === 'text/csv';
}

function answer(ctx: Context, requested: 'json' | 'csv' | undefined, report: { report: string; tenantId: string; columns: readonly string[]; rows: Array<Record<string, unknown>> }): RouteResult {
  ctx.set('Cache-Control', 'no-store');
  ctx.vary('Accept');
  if (!wantsCsv(ctx, requested)) return { body: report };
  ctx.type = 'text/csv; charset=utf-8';
  ctx.set('Content-Disposition', `attachment; filename="${report.report}-${report.tenantId}.csv"`);
  return { body: reportCsv(report.columns, report.rows) };
}

const responses = { 200: 'The report (application/json, or text/csv)', 404: 'No such tenant', 422: 'Invalid parameters' };

export function reportRoutes({ compliance, tenants }: ApiServices): RouteDefinition[] {
  // The reports over a time range differ only in what they read.
  type RangedReport = 'failedLogins' | 'lockouts' | 'privilegedActions';
  const ranged = (name: string, summary: string, report: RangedReport) =>
    route({
      method: 'get', path: `/tenants/:tenantId/reports/${name}`, tag: 'reports', summary, permission: 'reports:read', tenantRule: 'tenant',
      params: tenantParams, query: rangeQuery, responses,
      async handler({ params, query, ctx }) {
        await tenants.get(params.tenantId);
        const { from, to } = range(query);
        return answer(ctx, query.format, await compliance[report](params.tenantId, from, to));
      },
    });
  return [
    ranged('failed-logins', 'Refused passwords and second-factor codes per UTC day (from / to, default the last 30 days)', 'failedLogins'),
    ranged('lockouts', 'Lockouts (security.lockout) in the range, newest first', 'lockouts'),
    route({
      method: 'get', path: '/tenants/:tenantId/reports/mfa-adoption', tag: 'reports', summary: 'Per role: members (direct or inherited), members with an active second factor, ratio', permission: 'reports:read', tenantRule: 'tenant',
      params: tenantParams, query: formatQuery, responses,
      async handler({ params, query, ctx }) {
        await tenants.get(params.tenantId);
        return answer(ctx, query.format, await compliance.mfaAdoption(params.tenantId));
      },
    }),
    ranged('privileged-actions', 'Administrative changes, exports, erasures and impersonations in the range, newest first', 'privilegedActions'),
    route({
      method: 'get', path: '/tenants/:tenantId/reports/dormant-accounts', tag: 'reports', summary: 'Users without a sign-in for `days` days (default 90), the longest idle first', permission: 'reports:read', tenantRule: 'tenant',
      params: tenantParams, query: dormantQuery, responses,
      async handler({ params, query, ctx }) {
        await tenants.get(params.tenantId);
        return answer(ctx, query.format, await compliance.dormantAccounts(params.tenantId, query.days));
      },
    }),
  ];
}
