// Upstream identities (a Google or corporate OIDC account) linked to a user of a tenant: the
// federation connectors link them at sign-in, the person lists and removes them on the account
// pages. One upstream subject belongs to at most one user per tenant.
import { randomUUID } from 'node:crypto';
import type { Database } from '../../store/database.ts';
import { withTenant, type TenantTransaction } from '../../store/tenant-scope.ts';
import { ConflictError, NotFoundError, ValidationError } from '../../errors.ts';
import { isUuid } from '../../ids.ts';
import { identityQueries, type IdentityRow } from './queries.ts';
import { userQueries } from '../../users/queries.ts';

export interface LinkedIdentity {
  id: string;
  connector: string;
  subject: string;
  email: string | null;
  linkedAt: Date;
}

export interface IdentityToLink {
  connector: string;
  subject: string;
  email?: string | null;
}

const MAX_TEXT = 255;

function toIdentity(row: IdentityRow): LinkedIdentity {
  return { id: row.id, connector: row.connector, subject: row.subject, email: row.email, linkedAt: new Date(row.linked_at) };
}

function checkText(value: unknown, field: string, fields: Record<string, string>): string {
  if (typeof value !== 'string' || !value.trim()) fields[field] = 'required';
  else if (value.length > MAX_TEXT) fields[field] = `at most ${MAX_TEXT} characters`;
  return value as string;
}

export function createIdentityLinkService(options: { db: Database }) {
  const { db } = options;

  function notFound(id: string): NotFoundError {
    return new NotFoundError(`no linked identity ${String(id).slice(0, 64)} of this user`);
  }

  return {
    async list(tenantId: string, userId: string): Promise<LinkedIdentity[]> {
      if (!isUuid(tenantId) || !isUuid(userId)) return [];
      return (await withTenant(db, tenantId, (trx) => identityQueries.list(trx, tenantId, userId))).map(toIdentity);
    },

    // The user an upstream subject is linked to in this tenant, if any.
    async findUser(tenantId: string, connector: string, subject: string): Promise<string | undefined> {
      if (!isUuid(tenantId)) return undefined;
      return (await withTenant(db, tenantId, (trx) => identityQueries.findBySubject(trx, tenantId, connector, subject)))?.user_id;
    },

    async link(tenantId: string, userId: string, identity: IdentityToLink): Promise<LinkedIdentity> {
      if (!isUuid(tenantId) || !isUuid(userId)) throw new NotFoundError('no such user in this tenant');
      return withTenant(db, tenantId, (trx) => this.linkIn(trx, tenantId, userId, identity));
    },

    // Links inside the caller's tenant-scoped transaction (a user created for the identity with it).
    async linkIn(trx: TenantTransaction, tenantId: string, userId: string, identity: IdentityToLink): Promise<LinkedIdentity> {
      const fields: Record<string, string> = {};
      const connector = checkText(identity.connector, 'connector', fields);
      const subject = checkText(identity.subject, 'subject', fields);
      if (identity.email != null) checkText(identity.email, 'email', fields);
      if (Object.keys(fields).length) throw new ValidationError('invalid identity', fields);
      try {
        const row = await identityQueries.insert(trx, { id: randomUUID(), tenant_id: tenantId, user_id: userId, connector, subject, email: identity.email ?? null });
        return toIdentity(row);
      } catch (error) {
        if ((error as { code?: string }).code === '23505') throw new ConflictError('this upstream identity is already linked to a user of this tenant');
        throw error;
      }
    },

    // Removes a linked identity unless it is the user's last way to sign in (no password, no other
    // identity). Check and delete run in one transaction holding the user's row, so a concurrent
    // removal or password removal cannot leave the user with no way in.
    async removeUnlessLastSignIn(tenantId: string, userId: string, id: string): Promise<void> {
      if (!isUuid(tenantId) || !isUuid(userId) || !isUuid(id)) throw notFound(id);
      await withTenant(db, tenantId, async (trx) => {
        const user = await userQueries.find(trx, tenantId, userId, { forUpdate: true });
        if (!user) throw new NotFoundError('no such user in this tenant');
        const linked = await identityQueries.list(trx, tenantId, userId);
        if (!linked.some((identity) => identity.id === id)) throw notFound(id);
        if (!user.has_password && linked.length === 1) throw new ConflictError('this is your only way to sign in: set a password before removing it');
        await identityQueries.delete(trx, tenantId, userId, id);
      });
    },

    // Every identity linked through a connector that is being deleted, in its transaction.
    unlinkConnector(trx: TenantTransaction, tenantId: string, connectorId: string): Promise<number> {
      return identityQueries.deleteByConnector(trx, tenantId, connectorId);
    },

    async remove(tenantId: string, userId: string, id: string): Promise<void> {
      if (!isUuid(tenantId) || !isUuid(userId) || !isUuid(id)) throw notFound(id);
      const removed = await withTenant(db, tenantId, (trx) => identityQueries.delete(trx, tenantId, userId, id));
      if (!removed) throw notFound(id);
    },
  };
}

export type IdentityLinkService = ReturnType<typeof createIdentityLinkService>;
