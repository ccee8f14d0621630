// Device sessions: which provider sessions a user is signed in with (browser, OS, address, last
// activity), and ending one or all others. The provider session is the truth; this table is its
// readable index, written when a sign-in completes and touched when the session is used again.
// Ending one destroys the provider session and revokes the grants made in it, so the apps signed
// in through it lose their refresh and access tokens too.
import { randomUUID } from 'node:crypto';
import type { Database } from '../store/database.ts';
import type { HotStore } from '../store/hot-store.ts';
import { withTenant } from '../store/tenant-scope.ts';
import { NotFoundError } from '../errors.ts';
import { isUuid } from '../ids.ts';
import { purgeSessionRows, sessionQueries, type UserSessionRow } from './queries.ts';
import { deviceLabels } from './device.ts';
import type { AuditService } from '../audit/service.ts';
import type { OutboxService } from '../outbox/service.ts';
import { originOf, type ChangeOrigin } from '../audit/origin.ts';

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

// The tenant's `policies.sessions` (src/tenants/policies.ts).
export interface SessionPolicy {
  idleTimeoutSeconds?: number;
  absoluteLifetimeSeconds?: number;
  rememberMeLifetimeSeconds?: number;
  maxConcurrent?: number;
  onLimit: 'refuse' | 'end_oldest';
}

export type SessionExpiry = 'idle' | 'absolute';

// Who ended sessions and why: recorded (session.revoke + session.revoked) in the transaction that
// marks the rows ended, so a sign-out and its record exist together or not at all.
export interface SessionRevocation {
  origin: ChangeOrigin;
  // The session.revoked event's reason.
  reason: string;
  // Kept in the audit entry beside the session id.
  details: Record<string, unknown>;
}

// An administrator's (or the command line's) revocation through the admin API or CLI.
export function revokedByAdmin(origin: ChangeOrigin | undefined): SessionRevocation {
  return { origin: origin ?? {}, reason: 'admin', details: { via: 'admin' } };
}

export interface LoginAdmission {
  // The sign-in may complete; false: the concurrent-session limit refuses it.
  allowed: boolean;
  // A persistent session cookie (remember me), or one that ends with the browser.
  remember: boolean;
  // How many sessions of the user were ended to make room (end_oldest).
  ended: number;
}

export interface TenantSessionQuery {
  userId?: string;
  clientId?: string;
  ip?: string;
  createdAfter?: Date;
  lastActiveAfter?: Date;
  limit?: number;
  after?: { createdAt: Date; id: string };
}

// Written at most this often per session (a refresh every few seconds must not mean a write each).
export const TOUCH_INTERVAL_SECONDS = 60;

export interface SessionServiceDependencies {
  db: Database;
  policy(tenantId: string): Promise<SessionPolicy>;
  // The longest any provider session lives (ttl.Session): a row idle longer is gone for sure.
  maxSessionSeconds: number;
  // The clock every policy decision uses (tests move it).
  now?: () => Date;
  // Revokes every grant made in the provider session (its tokens die) but keeps the session.
  revokeProviderSessionGrants(sid: string): Promise<void>;
  // The account the provider session with this uid belongs to, while it exists and has not expired.
  providerSessionAccount(sid: string): Promise<string | undefined>;
  // Destroys the provider session with this uid and revokes every grant made in it.
  endProviderSession(sid: string): Promise<void>;
  // Spares the database a touch already made this minute (by any instance).
  hot?: Pick<HotStore, 'get' | 'set'>;
  // An administrator's revocation is recorded (session.revoke, session.revoked) with the rows it ends.
  audit: Pick<AuditService, 'record'>;
  outbox: Pick<OutboxService, 'enqueue'>;
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

// Which limit, if any, a session has passed at `now`.
export function expiryOf(session: { createdAt: Date; lastActiveAt: Date }, policy: SessionPolicy, now: Date): SessionExpiry | undefined {
  const at = now.getTime();
  if (policy.absoluteLifetimeSeconds && at - session.createdAt.getTime() >= policy.absoluteLifetimeSeconds * 1000) return 'absolute';
  if (policy.idleTimeoutSeconds && at - session.lastActiveAt.getTime() >= policy.idleTimeoutSeconds * 1000) return 'idle';
  return undefined;
}

// How long the provider session (and a remembered cookie) may live from `now`: the deployment's
// session TTL, shortened by the tenant's remember-me lifetime and what is left of its absolute one.
export function sessionTtlSeconds(policy: SessionPolicy, maxSeconds: number, createdAt: Date | undefined, now: Date): number {
  let ttl = maxSeconds;
  if (policy.rememberMeLifetimeSeconds) ttl = Math.min(ttl, policy.rememberMeLifetimeSeconds);
  if (policy.absoluteLifetimeSeconds) {
    const age = createdAt ? Math.floor((now.getTime() - createdAt.getTime()) / 1000) : 0;
    ttl = Math.min(ttl, policy.absoluteLifetimeSeconds - age);
  }
  return Math.max(1, ttl);
}

const seconds = (value: number) => value * 1000;

// Without an idle or absolute limit no session expires early: its row need not be read.
const hasTimeLimits = (policy: SessionPolicy) => Boolean(policy.idleTimeoutSeconds || policy.absoluteLifetimeSeconds);

export function createSessionService(deps: SessionServiceDependencies) {
  const { db } = deps;
  const now = deps.now ?? (() => new Date());

  // The row's own condition (last active over a minute ago) decides. The hot store remembers when
  // a touch or a sign-in last wrote the row (on the service's clock), so touches within the minute after it skip
  // the transaction; a hot store that fails lets the query through.
  const touchKey = (sid: string) => `session-touch:{${sid}}`;
  async function writtenWithinMinute(sid: string, at: Date): Promise<boolean> {
    const written = deps.hot ? await deps.hot.get(touchKey(sid)).catch(() => null) : null;
    return written !== null && at.getTime() - Number(written) < seconds(TOUCH_INTERVAL_SECONDS);
  }

  async function rememberWritten(sid: string, at: Date): Promise<void> {
    await deps.hot?.set(touchKey(sid), String(at.getTime()), TOUCH_INTERVAL_SECONDS * 2).catch(() => {});
  }

  // The tenant's policy, and the session's row and passed limit when the policy has time limits.
  async function limitState(tenantId: string, sid: string | undefined) {
    const policy = await deps.policy(tenantId);
    const row = sid && isUuid(tenantId) && hasTimeLimits(policy) ? await withTenant(db, tenantId, (trx) => sessionQueries.findOpenBySidAnyUser(trx, tenantId, sid)) : undefined;
    return { policy, row, expiry: row ? expiryOf(toSession(row), policy, now()) : undefined };
  }

  function notFound(id: string): NotFoundError {
    return new NotFoundError(`no active session ${String(id).slice(0, 64)} of this user`);
  }

  const service = {
    // A sign-in or authorization completed in provider session `sid`.
    async record(signIn: SessionSignIn): Promise<void> {
      if (!isUuid(signIn.tenantId) || !isUuid(signIn.userId) || !signIn.sid) return;
      const labels = deviceLabels(signIn.userAgent);
      const at = now();
      const wrote = await withTenant(db, signIn.tenantId, (trx) =>
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
          created_at: at,
          last_active_at: at,
        }, new Date(at.getTime() - seconds(TOUCH_INTERVAL_SECONDS))),
      );
      // The row was just made active: the code redemption that follows need not touch it again.
      if (wrote) await rememberWritten(signIn.sid, at);
    },

    // The session was used again (a token refreshed or a code redeemed under it).
    async touch(tenantId: string, sid: string): Promise<void> {
      if (!isUuid(tenantId) || !sid) return;
      const at = now();
      if (await writtenWithinMinute(sid, at)) return;
      const staleBefore = new Date(at.getTime() - seconds(TOUCH_INTERVAL_SECONDS));
      const wrote = await withTenant(db, tenantId, (trx) => sessionQueries.touch(trx, tenantId, sid, at, staleBefore));
      if (wrote) await rememberWritten(sid, at);
    },

    // The provider session `sid` ended elsewhere (a revocation): its row leaves the active lists.
    async ended(tenantId: string, sid: string): Promise<void> {
      if (!isUuid(tenantId) || !sid) return;
      await withTenant(db, tenantId, async (trx) => {
        const row = await sessionQueries.findOpenBySidAnyUser(trx, tenantId, sid);
        if (row) await sessionQueries.markEnded(trx, tenantId, [row.id], now());
      });
    },

    // The user's sessions the provider still holds, most recently active first. Rows whose
    // provider session expired or ended elsewhere (sign-out) are marked ended on the way.
    async listActive(tenantId: string, userId: string): Promise<DeviceSession[]> {
      if (!isUuid(tenantId) || !isUuid(userId)) return [];
      const rows = await withTenant(db, tenantId, (trx) => sessionQueries.listOpen(trx, tenantId, userId));
      const owners = await Promise.all(rows.map((row) => deps.providerSessionAccount(row.sid)));
      const gone = rows.filter((_row, index) => owners[index] !== userId);
      if (gone.length) {
        await withTenant(db, tenantId, (trx) => sessionQueries.markEnded(trx, tenantId, gone.map((row) => row.id), now()));
      }
      const live = rows.filter((_row, index) => owners[index] === userId);
      // Sessions past the tenant's idle or absolute limit end here too (with their tokens).
      const policy = await deps.policy(tenantId);
      const at = now();
      const expired = live.filter((row) => expiryOf(toSession(row), policy, at));
      await endRows(tenantId, expired);
      return live.filter((row) => !expired.includes(row)).map(toSession);
    },

    // Every device session recorded for the user, ended ones with their end, newest first.
    async history(tenantId: string, userId: string, limit = 1000): Promise<Array<DeviceSession & { endedAt: Date | null }>> {
      if (!isUuid(tenantId) || !isUuid(userId)) return [];
      const rows = await withTenant(db, tenantId, (trx) => sessionQueries.listAll(trx, tenantId, userId, limit));
      return rows.map((row) => ({ ...toSession(row), endedAt: row.ended_at ? new Date(row.ended_at) : null }));
    },

    // Signs the user out of one session: the provider session and its grants go, the row is ended.
    // With `revokedBy` the revocation is recorded with the row's end; without, nothing is (the
    // tenant's limits ending a session are no one's act).
    async end(tenantId: string, userId: string, sessionId: string, revokedBy?: SessionRevocation): Promise<void> {
      if (!isUuid(tenantId) || !isUuid(userId) || !isUuid(sessionId)) throw notFound(sessionId);
      const row = await withTenant(db, tenantId, (trx) => sessionQueries.findOpen(trx, tenantId, userId, sessionId));
      if (!row) throw notFound(sessionId);
      await endRows(tenantId, [row], revokedBy);
    },

    // Signs the user out everywhere but in the session they act from, named by its row id or its
    // provider session uid (the row may be missing or written late: record() is best effort, so
    // the uid alone must be enough to keep it); returns how many sessions ended.
    async endAllExcept(tenantId: string, userId: string, keep: { sessionId?: string; sid?: string }, revokedBy?: SessionRevocation): Promise<number> {
      if (!isUuid(tenantId) || !isUuid(userId)) return 0;
      const rows = await withTenant(db, tenantId, (trx) => sessionQueries.listOpen(trx, tenantId, userId));
      const others = rows.filter((row) => row.id !== keep.sessionId && row.sid !== keep.sid);
      await endRows(tenantId, others, revokedBy);
      return others.length;
    },

    // Signs the user out everywhere, the session they act from included (named by its provider
    // session uid too, in case its row is missing); returns how many ended.
    async endAll(tenantId: string, userId: string, current: { sid?: string } = {}, revokedBy?: SessionRevocation): Promise<number> {
      if (!isUuid(tenantId) || !isUuid(userId)) return 0;
      const rows = await withTenant(db, tenantId, (trx) => sessionQueries.listOpen(trx, tenantId, userId));
      if (current.sid && !rows.some((row) => row.sid === current.sid) && (await deps.providerSessionAccount(current.sid)) === userId) {
        await deps.endProviderSession(current.sid);
      }
      await endRows(tenantId, rows, revokedBy);
      return rows.length;
    },

    // What the tenant's policy says of the provider session `sid` now: how long it may still live
    // (ttl.Session) and which limit, if any, it has passed. A session without a row (record() is
    // best effort) is judged by the provider's own expiry alone.
    async limits(tenantId: string, sid: string | undefined): Promise<{ ttlSeconds: number; expiry?: SessionExpiry }> {
      const { policy, row, expiry } = await limitState(tenantId, sid);
      return { ttlSeconds: sessionTtlSeconds(policy, deps.maxSessionSeconds, row ? new Date(row.created_at) : undefined, now()), expiry };
    },

    // Ends the provider session `sid` (and its tokens) when it passed a limit; says whether it did.
    async endIfExpired(tenantId: string, sid: string): Promise<SessionExpiry | undefined> {
      if (!isUuid(tenantId) || !sid) return undefined;
      const { row, expiry } = await limitState(tenantId, sid);
      if (row && expiry) await endRows(tenantId, [row]);
      return expiry;
    },

    // Called when a sign-in is about to complete in the browser's provider session `priorSid`
    // (undefined when the browser has none). Continuing an open session of the same user is not a
    // new session; one past its limits starts again with its old tokens revoked. A new session
    // meets the concurrent-session limit: refused, or the oldest sessions end to make room.
    async admitLogin(input: { tenantId: string; userId: string; priorSid?: string; priorAccountId?: string }): Promise<LoginAdmission> {
      const { tenantId, userId } = input;
      const policy = await deps.policy(tenantId);
      const remember = policy.rememberMeLifetimeSeconds !== 0;
      if (input.priorSid && input.priorAccountId === userId) {
        const prior = await withTenant(db, tenantId, (trx) => sessionQueries.findOpenBySid(trx, tenantId, userId, input.priorSid!));
        if (prior) {
          if (expiryOf(toSession(prior), policy, now())) {
            await deps.revokeProviderSessionGrants(prior.sid);
            await withTenant(db, tenantId, (trx) => sessionQueries.restart(trx, tenantId, prior.id, now()));
          }
          return { allowed: true, remember, ended: 0 };
        }
      }
      if (!policy.maxConcurrent) return { allowed: true, remember, ended: 0 };
      const active = await service.listActive(tenantId, userId);
      const excess = active.length - policy.maxConcurrent + 1;
      if (excess <= 0) return { allowed: true, remember, ended: 0 };
      if (policy.onLimit === 'refuse') return { allowed: false, remember, ended: 0 };
      const oldest = [...active].sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime()).slice(0, excess);
      const rows = await withTenant(db, tenantId, (trx) => sessionQueries.listOpen(trx, tenantId, userId));
      await endRows(tenantId, rows.filter((row) => oldest.some((session) => session.id === row.id)));
      return { allowed: true, remember, ended: oldest.length };
    },

    // A tenant's active sessions (open, within the tenant's limits), filtered, in keyset pages.
    async listTenant(tenantId: string, query: TenantSessionQuery): Promise<{ items: Array<DeviceSession & { userId: string }>; total: number; nextCursor?: { createdAt: Date; id: string } }> {
      if (!isUuid(tenantId)) return { items: [], total: 0 };
      const limit = Math.min(Math.max(query.limit ?? 50, 1), 200);
      const filter = await activeFilter(tenantId, query);
      const [rows, total] = await withTenant(db, tenantId, async (trx) => [
        await sessionQueries.listTenant(trx, tenantId, filter, limit + 1, query.after),
        await sessionQueries.countTenant(trx, tenantId, filter),
      ] as const);
      const page = rows.slice(0, limit).map((row) => ({ ...toSession(row), userId: row.user_id }));
      const last = page[page.length - 1];
      return { items: page, total, nextCursor: rows.length > limit && last ? { createdAt: last.createdAt, id: last.id } : undefined };
    },

    async countTenant(tenantId: string, query: TenantSessionQuery): Promise<number> {
      if (!isUuid(tenantId)) return 0;
      const filter = await activeFilter(tenantId, query);
      return withTenant(db, tenantId, (trx) => sessionQueries.countTenant(trx, tenantId, filter));
    },

    // The bounded cleanup: ended rows, and rows idle longer than any provider session lives.
    purge(batchSize?: number, maxBatches?: number): Promise<number> {
      return purgeSessionRows(db, new Date(now().getTime() - seconds(deps.maxSessionSeconds)), batchSize, maxBatches);
    },

    // The open session row of a provider session, for telling "this device" apart.
    async findBySid(tenantId: string, userId: string, sid: string): Promise<DeviceSession | undefined> {
      if (!isUuid(tenantId) || !isUuid(userId) || !sid) return undefined;
      const row = await withTenant(db, tenantId, (trx) => sessionQueries.findOpenBySid(trx, tenantId, userId, sid));
      return row && toSession(row);
    },
  };

  // The provider session first: if that fails the row stays open and the user can try again.
  async function endRows(tenantId: string, rows: UserSessionRow[], revocation?: SessionRevocation): Promise<void> {
    if (!rows.length) return;
    for (const row of rows) await deps.endProviderSession(row.sid);
    await withTenant(db, tenantId, async (trx) => {
      await sessionQueries.markEnded(trx, tenantId, rows.map((row) => row.id), now());
      if (!revocation) return;
      for (const row of rows) {
        const userId = row.user_id;
        await deps.audit.record(trx, { tenantId, type: 'session.revoke', outcome: 'success', ...originOf(revocation.origin), target: { type: 'user', id: userId }, details: { sessionId: row.id, ...revocation.details } });
        await deps.outbox.enqueue(trx, { tenantId, type: 'session.revoked', data: { userId, sessionId: row.id, reason: revocation.reason } });
      }
    });
  }

  async function activeFilter(tenantId: string, query: TenantSessionQuery) {
    const policy = await deps.policy(tenantId);
    const at = now().getTime();
    const idle = Math.min(deps.maxSessionSeconds, policy.idleTimeoutSeconds ?? Infinity);
    return {
      userId: query.userId,
      clientId: query.clientId,
      ip: query.ip,
      createdAfter: query.createdAfter,
      lastActiveAfter: query.lastActiveAfter,
      activeSince: new Date(at - seconds(idle)),
      createdSince: policy.absoluteLifetimeSeconds ? new Date(at - seconds(policy.absoluteLifetimeSeconds)) : undefined,
    };
  }

  return service;
}

export type SessionService = ReturnType<typeof createSessionService>;
