// The one way access ends: a session ended server-side, a password change or reset, a suspension,
// a deletion, a refresh token presented again. Each ends the sessions concerned, revokes the grants
// behind them with everything they issued (refresh tokens, opaque access tokens, codes) in both
// stores, puts the JWT access tokens still valid under those grants on a deny list by `jti` until
// they expire, tells the clients that registered a back-channel logout URI, and publishes the
// revocation for resource servers that hold connections open.
//
// JWT access tokens are not stored, so each one's `jti` and `exp` are recorded under its grant in
// the hot store when it is issued; revoking the grant copies them to the deny list.
import type Provider from 'oidc-provider';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { Logger } from 'pino';
import type { HotStore } from '../store/hot-store.ts';
import type { Database } from '../store/database.ts';
import type { RevocationBus, RevocationEvent } from '../events/revocation-bus.ts';
import { revocationEvent } from '../events/revocation-bus.ts';
import { accountPayloads } from './durable-payloads.ts';
import { revokeGrantEverywhere } from './adapter.ts';

// Why access ended: logged, and chooses the event resource servers receive.
export type RevocationReason =
  | 'session_ended'
  | 'password_changed'
  | 'password_reset'
  | 'suspended'
  | 'deactivated'
  | 'deleted'
  | 'refresh_token_reuse'
  | 'grant_revoked'
  | 'access_revoked';

export interface RevokeUserOptions {
  // Known to the caller (the user's tenant), for the published events.
  tenantId?: string;
  // The session the change came from stays (a password change by the signed-in person).
  keepSessionUid?: string;
}

export interface GrantContext {
  reason: RevocationReason;
  tenantId?: string;
  userId?: string;
  clientIds?: string[];
}

export interface RevocationDependencies {
  db: Database;
  hot: HotStore;
  log: Logger;
  adapterFor(model: string): Adapter;
  // The running provider (for signing back-channel logout tokens); undefined before it is built.
  provider(): Provider | undefined;
  // The tenant of an active user, for events when the caller did not say.
  tenantOf?(userId: string): Promise<string | undefined>;
  bus?: RevocationBus;
  // Told of every provider session this module ends (the device-session list marks it ended).
  onSessionEnded?(tenantId: string, sessionUid: string): Promise<void>;
  now?: () => number;
}

const SESSION_LOGOUT_REASONS = new Set<RevocationReason>(['session_ended', 'password_changed', 'password_reset', 'access_revoked']);
const USER_BLOCKED_REASONS = new Set<RevocationReason>(['suspended', 'deactivated', 'deleted']);

export const revocationKeys = {
  // The JWT access tokens issued under a grant: members `<jti> <exp>`.
  grantJwts: (grantId: string) => `revocation:grant-jwts:{${grantId}}`,
  // JWT access tokens of a user issued under no grant (token exchange): members `<jti> <exp>`.
  userJwts: (userId: string) => `revocation:user-jwts:{${userId}}`,
  deniedJti: (jti: string) => `revocation:denied-jti:{${jti}}`,
};

// oidc-provider's Client signs and sends the logout token (the same call its end_session makes).
interface BackchannelClient {
  backchannelLogoutUri?: string;
  backchannelLogout(sub: string, sid: string | undefined): Promise<void>;
}

interface ClientSession {
  clientId: string;
  sid?: string;
  grantId?: string;
}

export function createRevocation(deps: RevocationDependencies) {
  const { hot, log } = deps;
  const nowSeconds = () => Math.floor((deps.now?.() ?? Date.now()) / 1000);

  async function publish(events: RevocationEvent[]): Promise<void> {
    if (!deps.bus || !events.length) return;
    try {
      await Promise.all(events.map((event) => deps.bus!.publish(event)));
    } catch (error) {
      log.warn({ err: error }, 'could not publish revocation events');
    }
  }

  // Copies the still-valid JWTs recorded under a key to the deny list, each until its own expiry.
  async function denyRecordedJwts(key: string): Promise<string[]> {
    const members = await hot.setMembers(key);
    const now = nowSeconds();
    const live = members
      .map((member) => member.split(' '))
      .map(([jti, exp]) => ({ jti, exp: Number(exp) }))
      .filter(({ jti, exp }) => jti && Number.isFinite(exp) && exp > now);
    await Promise.all(live.map(({ jti, exp }) => hot.set(revocationKeys.deniedJti(jti), '1', exp - now)));
    await hot.delete(key);
    return live.map(({ jti }) => jti);
  }

  async function revokeGrantQuietly(grantId: string): Promise<string[]> {
    let denied: string[] = [];
    try {
      denied = await denyRecordedJwts(revocationKeys.grantJwts(grantId));
    } catch (error) {
      // The grant must still go: its refresh tokens are what an attacker keeps longest.
      log.error({ err: error, grantId }, 'could not put the access tokens of a revoked grant on the deny list');
    }
    await revokeGrantEverywhere(deps.adapterFor, grantId);
    return denied;
  }

  async function withTenantOf(context: GrantContext): Promise<GrantContext> {
    if (context.tenantId || !context.userId || !deps.tenantOf) return context;
    return { ...context, tenantId: await deps.tenantOf(context.userId).catch(() => undefined) };
  }

  function tokenEvents(jtis: string[], context: Omit<GrantContext, 'reason'>): RevocationEvent[] {
    return jtis.map((jti) => revocationEvent({ type: 'token.revoked', jti, tenantId: context.tenantId, userId: context.userId, clientIds: context.clientIds }));
  }

  function clientSessionsOf(session: AdapterPayload): ClientSession[] {
    const authorizations = (session.authorizations ?? {}) as Record<string, { sid?: unknown; grantId?: unknown }>;
    return Object.entries(authorizations).map(([clientId, authorization]) => ({
      clientId,
      sid: typeof authorization.sid === 'string' ? authorization.sid : undefined,
      grantId: typeof authorization.grantId === 'string' ? authorization.grantId : undefined,
    }));
  }

  // OpenID Connect Back-Channel Logout 1.0: a signed logout token to every client of the session
  // that registered a URI. Waited for (each delivery times out after 2.5 s), never fatal.
  async function backchannelLogout(accountId: string, clients: ClientSession[]): Promise<void> {
    const provider = deps.provider();
    if (!provider || !clients.length) return;
    await Promise.all(
      clients.map(async ({ clientId, sid }) => {
        try {
          const client = (await provider.Client.find(clientId)) as BackchannelClient | undefined;
          if (!client?.backchannelLogoutUri) return;
          await client.backchannelLogout(accountId, sid);
        } catch (error) {
          log.warn({ err: { message: (error as Error).message }, clientId }, 'back-channel logout delivery failed');
        }
      }),
    );
  }

  // Ends one provider session (its payload as stored): grants, tokens, the session, then tells
  // its clients. Returns the events to publish.
  async function endSessionPayload(session: AdapterPayload, reason: RevocationReason, tenantId?: string): Promise<RevocationEvent[]> {
    const accountId = session.accountId as string | undefined;
    const clients = clientSessionsOf(session);
    const denied = await Promise.all(clients.filter((client) => client.grantId).map((client) => revokeGrantQuietly(client.grantId!)));
    if (session.jti) await deps.adapterFor('Session').destroy(session.jti as string);
    if (tenantId && typeof session.uid === 'string') {
      await deps.onSessionEnded?.(tenantId, session.uid).catch((error) => log.warn({ err: error }, 'could not mark a device session ended'));
    }
    if (accountId) await backchannelLogout(accountId, clients);
    const events = tokenEvents(denied.flat(), { tenantId, userId: accountId });
    if (SESSION_LOGOUT_REASONS.has(reason)) {
      for (const client of clients) {
        events.push(revocationEvent({ type: 'session.revoked', tenantId, userId: accountId, sessionId: client.sid, clientIds: [client.clientId] }));
      }
    }
    return events;
  }

  const revocation = {
    // At issuance of a JWT access token of a user: under its grant, or (token exchange, no grant)
    // under the user, whose revocation denies it.
    async recordAccessToken(token: { grantId?: string; accountId?: string; jti: string; exp: number }): Promise<void> {
      const key = token.grantId ? revocationKeys.grantJwts(token.grantId) : token.accountId ? revocationKeys.userJwts(token.accountId) : undefined;
      if (!key || !token.jti || !token.exp) return;
      const ttl = token.exp - nowSeconds();
      if (ttl <= 0) return;
      try {
        await hot.addToSet(key, `${token.jti} ${token.exp}`, ttl);
      } catch (error) {
        // Issuing still works without the hot store; such a token can only expire, not be revoked.
        log.warn({ err: error }, 'could not record an issued JWT access token for revocation');
      }
    },

    async isDenied(jti: unknown): Promise<boolean> {
      if (typeof jti !== 'string' || !jti) return false;
      return (await hot.get(revocationKeys.deniedJti(jti))) !== null;
    },

    // One grant with all it issued; the JWTs it issued go on the deny list.
    async revokeGrant(grantId: string, context: GrantContext): Promise<void> {
      const denied = await revokeGrantQuietly(grantId);
      await publish(tokenEvents(denied, await withTenantOf(context)));
    },

    // The JWTs of a grant oidc-provider itself revoked (RP-initiated logout, the revocation
    // endpoint, refresh token reuse); the library removed the stored models already.
    async denyJwtsOfRevokedGrant(grantId: string, context: GrantContext): Promise<void> {
      const denied = await denyRecordedJwts(revocationKeys.grantJwts(grantId));
      context = await withTenantOf(context);
      const events = tokenEvents(denied, context);
      // A stolen refresh token is news even when the grant issued no JWT: its tokens are gone.
      if (!events.length && context.reason === 'refresh_token_reuse') {
        events.push(revocationEvent({ type: 'token.revoked', tenantId: context.tenantId, userId: context.userId, clientIds: context.clientIds }));
      }
      await publish(events);
    },

    // Ends one provider session by its uid (stable for the session's life).
    async revokeSession(sessionUid: string, reason: RevocationReason = 'session_ended', options: { tenantId?: string } = {}): Promise<void> {
      const session = await deps.adapterFor('Session').findByUid(sessionUid);
      if (!session?.jti) return;
      const accountId = session.accountId as string | undefined;
      const tenantId = options.tenantId ?? (accountId ? await deps.tenantOf?.(accountId) : undefined);
      const events = await endSessionPayload(session, reason, tenantId);
      log.info({ event: 'session.revoked', reason, userId: accountId }, 'session ended');
      await publish(events);
    },

    // Ends everything a user holds: every session (but `keepSessionUid`), every grant with its
    // tokens, and refresh tokens outliving their session (offline access).
    async revokeUser(userId: string, reason: RevocationReason = 'access_revoked', options: RevokeUserOptions = {}): Promise<void> {
      const tenantId = options.tenantId ?? (await deps.tenantOf?.(userId));
      const rows = await accountPayloads(deps.db, userId);
      const sessions = await Promise.all(rows.filter((row) => row.model === 'Session').map((row) => deps.adapterFor('Session').find(row.id)));
      const kept = sessions.find((session) => session && options.keepSessionUid && session.uid === options.keepSessionUid);
      const keptGrants = new Set(kept ? clientSessionsOf(kept).map((client) => client.grantId) : []);

      const events: RevocationEvent[] = [];
      for (const session of sessions) {
        if (!session || session === kept) continue;
        events.push(...(await endSessionPayload(session, reason, tenantId)));
      }
      // Grants and refresh tokens not (or no longer) reachable from a live session.
      const grantIds = new Set<string>();
      for (const row of rows) {
        if (row.model === 'Session') continue;
        if (row.grantId && !keptGrants.has(row.grantId)) grantIds.add(row.grantId);
      }
      const denied = await Promise.all([...grantIds].map((grantId) => revokeGrantQuietly(grantId)));
      denied.push(await denyRecordedJwts(revocationKeys.userJwts(userId)).catch((error) => {
        log.error({ err: error }, 'could not put the exchanged access tokens of a user on the deny list');
        return [];
      }));
      events.push(...tokenEvents(denied.flat(), { tenantId, userId }));
      const leftovers = rows.filter((row) => (row.model === 'Session' && !sessions.some((session) => session?.jti === row.id)) || (row.model === 'RefreshToken' && !row.grantId));
      await Promise.all(leftovers.map((row) => deps.adapterFor(row.model).destroy(row.id)));

      if (USER_BLOCKED_REASONS.has(reason)) events.push(revocationEvent({ type: 'user.suspended', tenantId, userId }));
      log.info({ event: 'user.access_revoked', reason, userId, keptSession: Boolean(kept) }, 'access of a user revoked');
      await publish(events);
    },
  };

  return revocation;
}

export type Revocation = ReturnType<typeof createRevocation>;
