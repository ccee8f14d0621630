// Builds the Koa router of the admin API from the route table: authentication, permission and
// tenant checks, input validation, versions (ETag / If-Match) and problem+json errors.
import { ifMatchVersion } from './if-match.ts';
import Router from '@koa/router';
import { parsedBody, refuseUnstorableText } from '../http/body.ts';
import type { Context } from 'koa';
import type { z } from 'zod';
import { ForbiddenError, ValidationError, fieldErrors } from '../errors.ts';
import { jsonApiErrors, problem } from '../http/errors.ts';
import { jsonDepthLimit } from '../http/json-limits.ts';
import { changeOrigin, holds, type Principal } from './principal.ts';
import type { RouteDefinition } from './route-table.ts';

export const API_PREFIX = '/api/v1';

export interface ApiRouterOptions {
  routes: RouteDefinition[];
  resolvePrincipal(ctx: Context): Promise<Principal>;
  // Refuses a principal whose tenant's IP rules do not admit the request's address (throws).
  checkAddress?(ctx: Context, principal: Principal): Promise<void>;
  publicRoutes?: (router: Router) => void;
}

function parse<T>(schema: z.ZodType<T> | undefined, value: unknown, where: string): T {
  if (!schema) return undefined as T;
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new ValidationError(`invalid ${where}`, fieldErrors(where, parsed.error.issues));
}

export function apiRouter(options: ApiRouterOptions): Router {
  const router = new Router({ prefix: API_PREFIX });

  router.use(jsonApiErrors());
  router.use(parsedBody({ enableTypes: ['json'], jsonLimit: '64kb', jsonStrict: true, encoding: 'utf-8' }));
  router.use(jsonDepthLimit());
  options.publicRoutes?.(router);

  for (const definition of options.routes) {
    router[definition.method](definition.path, async (ctx) => {
      if (['post', 'put', 'patch'].includes(definition.method) && definition.body && !ctx.is('application/json')) {
        return problem(ctx, 415, 'unsupported-media-type', 'send the body as application/json');
      }
      const principal = await options.resolvePrincipal(ctx);
      await options.checkAddress?.(ctx, principal);
      if (!holds(principal, definition.permission)) throw new ForbiddenError(`this needs the permission ${definition.permission}`);
      const tenantId = ctx.params.tenantId;
      if (definition.tenantRule === 'platform' && !principal.platform) throw new ForbiddenError('only platform administrators may do this');
      if (definition.tenantRule === 'tenant' && tenantId !== principal.tenantId && !principal.platform) {
        throw new ForbiddenError('you may act only on your own tenant');
      }
      refuseUnstorableText({ ...ctx.params }, 'path');
      refuseUnstorableText({ ...ctx.query }, 'query');
      const body = (ctx.request as { body?: unknown }).body;
      const ifMatch = ifMatchVersion(ctx);
      if (definition.requiresVersion && ifMatch === undefined) {
        return problem(ctx, 428, 'version-required', 'send If-Match with the ETag of the version you read, so concurrent edits are not overwritten');
      }
      const result = await definition.handler({
        params: parse(definition.params, ctx.params, 'path'),
        query: parse(definition.query, { ...ctx.query }, 'query'),
        body: parse(definition.body, body, 'body'),
        principal,
        origin: changeOrigin(principal, ctx),
        ifMatch,
        ctx,
      });
      if (result.version !== undefined) ctx.set('ETag', `"${result.version}"`);
      if (result.location) ctx.set('Location', result.location);
      ctx.status = result.status ?? (result.body === undefined ? 204 : 200);
      if (result.body !== undefined) ctx.body = result.body;
    });
  }
  return router;
}
