// The admin API is declared as data: one entry per route with its permission, its tenant rule and
// the schemas of its input. The router, the OpenAPI document and the isolation test all read this
// one table, so none of them can drift from the others.
import type { Context } from 'koa';
import type { z } from 'zod';
import type { Principal } from './principal.ts';
import type { KnownOrigin } from '../audit/origin.ts';

export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

// platform: only principals of the platform tenant; tenant: the :tenantId in the path must be the
// principal's own tenant (platform principals may act on any tenant).
export type TenantRule = 'platform' | 'tenant';

export interface RouteInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  principal: Principal;
  // The principal as the audit trail records the changes it makes.
  origin: KnownOrigin;
  // The version the caller read (If-Match), for optimistic concurrency.
  ifMatch?: number;
  ctx: Context;
}

export interface RouteResult {
  status?: number;
  body?: unknown;
  // Sets the ETag; a versioned resource's PUT/PATCH must send it back as If-Match.
  version?: number;
  location?: string;
}

export interface RouteDefinition<P = any, Q = any, B = any> {
  method: Method;
  path: string;
  summary: string;
  tag: string;
  permission: string;
  tenantRule: TenantRule;
  params?: z.ZodType<P>;
  query?: z.ZodType<Q>;
  body?: z.ZodType<B>;
  // Requires If-Match with the current version (writes to versioned resources).
  requiresVersion?: boolean;
  responses: Record<number, string>;
  handler(input: RouteInput<P, Q, B>): Promise<RouteResult>;
}

export function route<P, Q, B>(definition: RouteDefinition<P, Q, B>): RouteDefinition<P, Q, B> {
  return definition;
}

// "/tenants/:tenantId/users/:userId" -> "/tenants/{tenantId}/users/{userId}"
export function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z]+)/g, '{$1}');
}
