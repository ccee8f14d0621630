// The account pages' own session: a random id in an HttpOnly cookie, the state in the hot store
// under the id's SHA-256 (a copy of the store holds no usable cookie). It lives no longer than
// ACCOUNT_SESSION_SECONDS and no longer than the provider session it came from (checked per request).
import type { Context } from 'koa';
import type { HotStore } from '../store/hot-store.ts';
import { constantTimeEqual, randomToken, sha256Hex } from '../security/crypto.ts';

export const ACCOUNT_SESSION_COOKIE = 'account_session';
const LOGIN_COOKIE = 'account_login';
export const ACCOUNT_SESSION_SECONDS = 60 * 60;
const LOGIN_SECONDS = 10 * 60;
const COOKIE_PATH = '/account';

export interface AccountSession {
  tenantId: string;
  userId: string;
  // The provider Session's uid the sign-in ran in.
  sid: string;
  // Epoch seconds of the last sign-in (for re-authentication before sensitive changes).
  authTime: number;
  amr: string[];
}

// An authorization request in flight, bound to this browser by the login cookie.
export interface PendingLogin {
  verifier: string;
  returnTo: string;
}

function cookieOptions(ctx: Context, maxAgeSeconds: number) {
  return { httpOnly: true, sameSite: 'lax' as const, secure: ctx.secure, path: COOKIE_PATH, maxAge: maxAgeSeconds * 1000, overwrite: true };
}

export function accountSessions(hot: HotStore) {
  const sessionKey = (id: string) => `account:session:${sha256Hex(id)}`;
  const loginKey = (state: string) => `account:login:${sha256Hex(state)}`;
  const loginUsedKey = (state: string) => `account:login-used:${sha256Hex(state)}`;

  return {
    async current(ctx: Context): Promise<AccountSession | undefined> {
      const id = ctx.cookies.get(ACCOUNT_SESSION_COOKIE);
      if (!id || id.length > 128) return undefined;
      const stored = await hot.get(sessionKey(id));
      return stored ? (JSON.parse(stored) as AccountSession) : undefined;
    },

    async start(ctx: Context, session: AccountSession): Promise<void> {
      await this.end(ctx);
      const id = randomToken(32);
      await hot.set(sessionKey(id), JSON.stringify(session), ACCOUNT_SESSION_SECONDS);
      ctx.cookies.set(ACCOUNT_SESSION_COOKIE, id, cookieOptions(ctx, ACCOUNT_SESSION_SECONDS));
    },

    async end(ctx: Context): Promise<void> {
      const id = ctx.cookies.get(ACCOUNT_SESSION_COOKIE);
      if (id && id.length <= 128) await hot.delete(sessionKey(id));
      ctx.cookies.set(ACCOUNT_SESSION_COOKIE, null, { path: COOKIE_PATH });
    },

    async beginLogin(ctx: Context, login: PendingLogin): Promise<string> {
      const state = randomToken(32);
      await hot.set(loginKey(state), JSON.stringify(login), LOGIN_SECONDS);
      ctx.cookies.set(LOGIN_COOKIE, state, cookieOptions(ctx, LOGIN_SECONDS));
      return state;
    },

    // The pending login for the state the callback carries, once: only in the browser that began
    // it (the cookie) and only the first time (a replayed callback finds nothing).
    async finishLogin(ctx: Context, state: unknown): Promise<PendingLogin | undefined> {
      const cookie = ctx.cookies.get(LOGIN_COOKIE);
      ctx.cookies.set(LOGIN_COOKIE, null, { path: COOKIE_PATH });
      if (typeof state !== 'string' || !cookie || state.length > 128 || !constantTimeEqual(cookie, state)) return undefined;
      const stored = await hot.get(loginKey(state));
      if (!stored || !(await hot.setIfAbsent(loginUsedKey(state), '1', LOGIN_SECONDS))) return undefined;
      await hot.delete(loginKey(state));
      return JSON.parse(stored) as PendingLogin;
    },
  };
}

export type AccountSessions = ReturnType<typeof accountSessions>;
