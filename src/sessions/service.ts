// Device sessions: which provider sessions a user is signed in with (browser, OS, address, last
// activity), and ending one or all others. The provider session is the truth; this table is its
// readable index, written when a sign-in completes and touched when the session is used again.
// Ending one destroys the provider session and revokes the grants made in it, so the apps signed
// in through it lose their refresh and access tokens too.
import { randomUUID } from 'node:crypto';
import type { Database } from '../store/database.ts';
import { withTenant } from '../store/tenant-scope.ts';
import { NotFoundError } from '../errors.ts';
import { isUuid } from '../ids.ts';
import { sessionQueries, type UserSessionRow } from './queries.ts';
import { deviceLabels } from './device.ts';

export interface DeviceSession {
  id: string;
  // The provider Session's uid; internal, never shown.
  sid: string;
  clientIds: string[];
  userAgent: string | null;
  browser: string | null;
  os: string | null;
  device: string | null;
  ip: string | null;
  amr: string[];
  createdAt: Date;
  lastActiveAt: Date;
}

export interface SessionSignIn {
  tenantId: string;
  userId: string;
  sid: string;
  clientId?: string;
  userAgent?: string;
  ip?: string;
  amr?: string[];
}

export interface SessionServiceDependencies {
  db: Database;
  // The account the provider session with this uid belongs to, while it exists and has not expired.
  providerSessionAccount(sid: string): Promise<string | undefined>;
  // Destroys the provider session with this uid and revokes every grant made in it.
  endProviderSession(sid: string): Promise<void>;
}

const MAX_IP = 64;
const MAX_AMR = 8;

function toSession(row: UserSessionRow): DeviceSession {
  return {
    id: row.id,
    sid: row.sid,
    clientIds: row.client_ids ?? [],
    userAgent: row.user_agent,
    browser: row.browser,
    os: row.os,
    device: row.device,
    ip: row.ip,
    amr: row.amr ?? [],
    createdAt: new Date(row.created_at),
    lastActiveAt: new Date(row.last_active_at),
  };
}

export function createSessionService(deps: SessionServiceDependencies) {
  const { db } = deps;

  function notFound(id: string): NotFoundError {
    return new NotFoundError(`no active session ${String(id).slice(0, 64)} of this user`);
  }

  const service = {
    // A sign-in or authorization completed in provider session `sid`.
    async record(signIn: SessionSignIn): Promise<void> {
      if (!isUuid(signIn.tenantId) || !isUuid(signIn.userId) || !signIn.sid) return;
      const labels = deviceLabels(signIn.userAgent);
      await withTenant(db, signIn.tenantId, (trx) =>
        sessionQueries.upsert(trx, {
          id: randomUUID(),
          tenant_id: signIn.tenantId,
          user_id: signIn.userId,
          sid: signIn.sid,
          client_ids: signIn.clientId ? [signIn.clientId] : [],
          user_agent: labels.userAgent,
          browser: labels.browser,
          os: labels.os,
          device: labels.device,
          ip: signIn.ip ? signIn.ip.slice(0, MAX_IP) : null,
          amr: (signIn.amr ?? []).filter((value) => typeof value === 'string').slice(0, MAX_AMR),
        }),
      );
    },

    // The session was used again (a token refreshed or a code redeemed under it).
    async touch(tenantId: string, sid: string): Promise<void> {
      if (!isUuid(tenantId) || !sid) return;
      await withTenant(db, tenantId, (trx) => sessionQueries.touch(trx, tenantId, sid));
    },

    // The user's sessions the provider still holds, most recently active first. Rows whose
    // provider session expired or ended elsewhere (sign-out) are marked ended on the way.
    async listActive(tenantId: string, userId: string): Promise<DeviceSession[]> {
      if (!isUuid(tenantId) || !isUuid(userId)) return [];
      const rows = await withTenant(db, tenantId, (trx) => sessionQueries.listOpen(trx, tenantId, userId));
      const owners = await Promise.all(rows.map((row) => deps.providerSessionAccount(row.sid)));
      const gone = rows.filter((_row, index) => owners[index] !== userId);
      if (gone.length) {
        await withTenant(db, tenantId, (trx) => sessionQueries.markEnded(trx, tenantId, gone.map((row) => row.id)));
      }
      return rows.filter((_row, index) => owners[index] === userId).map(toSession);
    },

    // Signs the user out of one session: the provider session and its grants go, the row is ended.
    async end(tenantId: string, userId: string, sessionId: string): Promise<void> {
      if (!isUuid(tenantId) || !isUuid(userId) || !isUuid(sessionId)) throw notFound(sessionId);
      const row = await withTenant(db, tenantId, (trx) => sessionQueries.findOpen(trx, tenantId, userId, sessionId));
      if (!row) throw notFound(sessionId);
      await endRows(tenantId, [row]);
    },

    // Signs the user out everywhere but in the session they act from, named by its row id or its
    // provider session uid (the row may be missing or written late: record() is best effort, so
    // the uid alone must be enough to keep it); returns how many sessions ended.
    async endAllExcept(tenantId: string, userId: string, keep: { sessionId?: string; sid?: string }): Promise<number> {
      if (!isUuid(tenantId) || !isUuid(userId)) return 0;
      const rows = await withTenant(db, tenantId, (trx) => sessionQueries.listOpen(trx, tenantId, userId));
      const others = rows.filter((row) => row.id !== keep.sessionId && row.sid !== keep.sid);
      await endRows(tenantId, others);
      return others.length;
    },

    // The open session row of a provider session, for telling "this device" apart.
    async findBySid(tenantId: string, userId: string, sid: string): Promise<DeviceSession | undefined> {
      if (!isUuid(tenantId) || !isUuid(userId) || !sid) return undefined;
      const row = await withTenant(db, tenantId, (trx) => sessionQueries.findOpenBySid(trx, tenantId, userId, sid));
      return row && toSession(row);
    },
  };

  // The provider session first: if that fails the row stays open and the user can try again.
  async function endRows(tenantId: string, rows: UserSessionRow[]): Promise<void> {
    for (const row of rows) await deps.endProviderSession(row.sid);
    await withTenant(db, tenantId, (trx) => sessionQueries.markEnded(trx, tenantId, rows.map((row) => row.id)));
  }

  return service;
}

export type SessionService = ReturnType<typeof createSessionService>;
