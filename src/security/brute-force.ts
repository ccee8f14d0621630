// Brute-force protection of password sign-in, per identifier and per address + identifier.
//
// Every attempt at an identifier is counted before the password is checked (parallel requests
// cannot slip past the count); a success forgets the count. Failures earn a small, bounded delay;
// the policy's maxFailures in a row lock the identifier for baseLockoutSeconds, doubling with each
// further lockout up to maxLockoutSeconds; the permanentAfterLockouts-th lockout is permanent and
// kept durably on the account (account_lockouts) until an administrator lifts it.
//
// Identifiers are counted whether an account has them or not, under the same keys and with the
// same answers: only a digest of "scope + identifier" is kept, where the scope is the tenant named
// before the password was checked, or "open". Whether an account exists is looked up only after the
// answer, in the background, when a permanent lockout must be written to it.
import type { Logger } from 'pino';
import type { Database } from '../store/database.ts';
import type { HotStore } from '../store/hot-store.ts';
import { withTenant } from '../store/tenant-scope.ts';
import type { AuditPerson, AuditService } from '../audit/service.ts';
import type { OutboxService } from '../outbox/service.ts';
import type { ChangeOrigin } from '../audit/origin.ts';
import type { UserService, User } from '../users/service.ts';
import type { TenantService } from '../tenants/service.ts';
import type { LockoutPolicy } from '../tenants/policies.ts';
import { DEFAULT_TENANT_ID } from '../tenants/constants.ts';
import { isUuid } from '../ids.ts';
import { sha256Hex } from './crypto.ts';
import { countSecurityEvent } from '../ops/metrics.ts';
import { lockoutQueries } from './brute-force-queries.ts';

export const OPEN_SCOPE = 'open';
// How long the hot store remembers a permanent lockout; for an account it is also durable.
const PERMANENT_MARKER_SECONDS = 30 * 86_400;

// One sign-in attempt: the identifier as typed, where it is tried, and from which address.
export interface SignInSubject {
  // A tenant id named before the password was checked, or OPEN_SCOPE.
  scope: string;
  identifier: string;
  ip: string;
}

export interface LockState {
  permanent: boolean;
  // Seconds until a temporary lockout ends.
  retryAfterSeconds?: number;
}

export type AttemptVerdict = { kind: 'allowed'; attempt: number } | { kind: 'locked'; lock: LockState };

export interface FailureOutcome {
  // Wait this long before answering.
  delayMs: number;
  // This failure locked the identifier.
  lockout?: { number: number; seconds?: number; permanent: boolean };
  // Failures in a row of this address at this identifier, and of this address overall.
  addressIdentifierFailures: number;
  addressFailures: number;
}

export interface BruteForceDependencies {
  db: Database;
  hot: HotStore;
  tenants: Pick<TenantService, 'policies'>;
  users: Pick<UserService, 'list' | 'get' | 'tenantsOfIdentifier'>;
  audit: Pick<AuditService, 'record'>;
  outbox: Pick<OutboxService, 'enqueue'>;
  log?: Logger;
}

interface StoredLock {
  // Epoch milliseconds; null for a permanent lockout.
  until: number | null;
  number: number;
}

export function normaliseIdentifier(identifier: string): string {
  return identifier.trim().toLowerCase();
}

export function identifierDigest(scope: string, identifier: string): string {
  return sha256Hex(`${scope}\n${normaliseIdentifier(identifier)}`);
}

export function addressDigest(ip: string): string {
  return sha256Hex(`ip\n${ip}`).slice(0, 32);
}

export function createBruteForceProtection(deps: BruteForceDependencies) {
  const { db, hot, audit } = deps;
  const pending = new Set<Promise<void>>();

  const keys = {
    attempts: (digest: string) => `bf:attempts:${digest}`,
    lock: (digest: string) => `bf:lock:${digest}`,
    lockouts: (digest: string) => `bf:lockouts:${digest}`,
    addressIdentifier: (ip: string, digest: string) => `bf:ipid:${addressDigest(ip)}:${digest}`,
    address: (ip: string) => `bf:ip:${addressDigest(ip)}`,
  };

  function inBackground(work: () => Promise<void>): void {
    const running: Promise<void> = work()
      .catch((error) => deps.log?.error({ err: error }, 'recording a permanent lockout failed'))
      .finally(() => pending.delete(running));
    pending.add(running);
  }

  function policyTenant(scope: string): string {
    return scope !== OPEN_SCOPE && isUuid(scope) ? scope : DEFAULT_TENANT_ID;
  }

  async function policyFor(scope: string): Promise<LockoutPolicy> {
    return (await deps.tenants.policies(policyTenant(scope))).lockout;
  }

  async function lockState(digest: string): Promise<LockState | undefined> {
    const stored = await hot.get(keys.lock(digest));
    if (!stored) return undefined;
    const lock = JSON.parse(stored) as StoredLock;
    if (lock.until === null) return { permanent: true };
    const remaining = lock.until - Date.now();
    return remaining > 0 ? { permanent: false, retryAfterSeconds: Math.max(1, Math.ceil(remaining / 1000)) } : undefined;
  }

  // The live accounts an identifier names in a scope (for permanent lockouts and unlock mails).
  async function accountsOf(scope: string, identifier: string): Promise<User[]> {
    const typed = identifier.trim();
    if (!typed) return [];
    const tenantIds = scope === OPEN_SCOPE ? await deps.users.tenantsOfIdentifier(typed) : isUuid(scope) ? [scope] : [];
    const found: User[] = [];
    for (const tenantId of tenantIds) {
      for (const filter of typed.includes('@') ? [{ email: typed }, { username: typed }] : [{ username: typed }]) {
        try {
          const { items } = await deps.users.list(tenantId, { ...filter, limit: 1 });
          if (items[0] && !found.some((user) => user.id === items[0].id)) found.push(items[0]);
        } catch {
          // Not a valid filter value for this field (a username with characters no username has).
        }
      }
    }
    return found;
  }

  function lockedPerson(user: User): AuditPerson {
    return { type: 'user', id: user.id, email: user.email };
  }

  async function persistPermanent(scope: string, identifier: string, number: number, context: ChangeOrigin['context']): Promise<void> {
    for (const user of await accountsOf(scope, identifier)) {
      await withTenant(db, user.tenantId, async (trx) => {
        if (!(await lockoutQueries.lock(trx, user.tenantId, user.id, number))) return;
        await audit.record(trx, {
          tenantId: user.tenantId,
          type: 'security.lockout',
          outcome: 'success',
          target: lockedPerson(user),
          details: { permanent: true, lockoutNumber: number, scope: scope === OPEN_SCOPE ? 'open' : 'tenant' },
          context,
        });
        await deps.outbox.enqueue(trx, { tenantId: user.tenantId, type: 'user.updated', data: { userId: user.id, changed: ['lockout'] } });
      });
    }
  }

  // Every hot-store key that can hold a lockout or count of this account.
  function digestsOfAccount(user: User): string[] {
    const identifiers = [user.email, user.username].filter((value): value is string => Boolean(value));
    return [user.tenantId, OPEN_SCOPE].flatMap((scope) => identifiers.map((identifier) => identifierDigest(scope, identifier)));
  }

  return {
    policyFor,

    // The lockout of this identifier, if any (an unlock mail is sent only for a temporary one).
    lockStatus(scope: string, identifier: string): Promise<LockState | undefined> {
      return lockState(identifierDigest(scope, identifier));
    },

    // Counts the attempt before the password is checked; a locked identifier is not checked.
    async begin(subject: SignInSubject): Promise<AttemptVerdict> {
      const digest = identifierDigest(subject.scope, subject.identifier);
      const [lock, policy] = await Promise.all([lockState(digest), policyFor(subject.scope)]);
      if (lock) {
        countSecurityEvent('locked_refusal');
        return { kind: 'locked', lock };
      }
      const attempt = await hot.increment(keys.attempts(digest), policy.failureWindowSeconds);
      // Over the limit: parallel attempts raced the lockout being written; they are refused too.
      if (policy.maxFailures > 0 && attempt > policy.maxFailures) {
        countSecurityEvent('locked_refusal');
        return { kind: 'locked', lock: (await lockState(digest)) ?? { permanent: false, retryAfterSeconds: policy.baseLockoutSeconds } };
      }
      return { kind: 'allowed', attempt };
    },

    // The password was wrong (or the identifier unknown: the same path).
    async failed(subject: SignInSubject, attempt: number, context: ChangeOrigin['context']): Promise<FailureOutcome> {
      const digest = identifierDigest(subject.scope, subject.identifier);
      const policy = await policyFor(subject.scope);
      const [addressIdentifierFailures, addressFailures] = await Promise.all([
        hot.increment(keys.addressIdentifier(subject.ip, digest), policy.failureWindowSeconds),
        hot.increment(keys.address(subject.ip), policy.failureWindowSeconds),
      ]);
      const failures = Math.max(attempt, addressIdentifierFailures);
      const delayMs = Math.min(policy.delayStepMs * Math.max(0, failures - 1), policy.maxDelayMs);
      const outcome: FailureOutcome = { delayMs, addressIdentifierFailures, addressFailures };
      if (policy.maxFailures === 0 || attempt !== policy.maxFailures) return outcome;

      const number = await hot.increment(keys.lockouts(digest), policy.lockoutMemorySeconds);
      const permanent = policy.permanentAfterLockouts > 0 && number >= policy.permanentAfterLockouts;
      const seconds = permanent ? undefined : Math.min(policy.baseLockoutSeconds * 2 ** Math.min(number - 1, 30), policy.maxLockoutSeconds);
      const lock: StoredLock = { until: seconds === undefined ? null : Date.now() + seconds * 1000, number };
      await hot.set(keys.lock(digest), JSON.stringify(lock), seconds ?? PERMANENT_MARKER_SECONDS);
      await hot.delete(keys.attempts(digest));
      countSecurityEvent(permanent ? 'permanent_lockout' : 'lockout');
      if (permanent) inBackground(() => persistPermanent(subject.scope, subject.identifier, number, context));
      outcome.lockout = { number, seconds, permanent };
      return outcome;
    },

    // A successful sign-in forgets the failures and earlier lockouts of this identifier.
    async succeeded(subject: SignInSubject): Promise<void> {
      const digest = identifierDigest(subject.scope, subject.identifier);
      await hot.delete(keys.attempts(digest), keys.lockouts(digest), keys.addressIdentifier(subject.ip, digest));
    },

    // Failures in a row of this address at this identifier, and of this address overall.
    async failureCounts(ip: string, scope: string, identifier?: string): Promise<{ addressIdentifier: number; address: number }> {
      const [pair, address] = await Promise.all([
        identifier ? hot.get(keys.addressIdentifier(ip, identifierDigest(scope, identifier))) : Promise.resolve(null),
        hot.get(keys.address(ip)),
      ]);
      return { addressIdentifier: Number(pair ?? 0), address: Number(address ?? 0) };
    },

    // Whether an administrator must lift this account's lockout first (checked after a right
    // password, so a lost hot store does not lift a permanent lockout).
    async isPermanentlyLocked(tenantId: string, userId: string): Promise<boolean> {
      if (!isUuid(tenantId) || !isUuid(userId)) return false;
      return withTenant(db, tenantId, (trx) => lockoutQueries.isLocked(trx, tenantId, userId));
    },

    accountsOf,

    // Lifts the account's lockouts: an administrator's also the permanent one; an unlock link
    // only a temporary one ('permanent' then, nothing changed). Audited (security.unlock) with the
    // account's event, in one transaction.
    async unlock(tenantId: string, userId: string, options: { via: 'admin' | 'email'; origin?: ChangeOrigin }): Promise<'unlocked' | 'permanent'> {
      const user = await deps.users.get(tenantId, userId);
      const digests = digestsOfAccount(user);
      const locks = await Promise.all(digests.map(lockState));
      const result = await withTenant(db, tenantId, async (trx) => {
        const durable = await lockoutQueries.isLocked(trx, tenantId, userId);
        const permanent = durable || locks.some((lock) => lock?.permanent);
        if (permanent && options.via !== 'admin') return 'permanent' as const;
        if (durable) await lockoutQueries.unlock(trx, tenantId, userId);
        await audit.record(trx, {
          tenantId,
          type: 'security.unlock',
          outcome: 'success',
          actor: options.origin?.actor ?? (options.via === 'email' ? lockedPerson(user) : undefined),
          target: lockedPerson(user),
          details: { via: options.via, permanent, wasLocked: permanent || locks.some(Boolean) },
          context: options.origin?.context,
        });
        await deps.outbox.enqueue(trx, { tenantId, type: 'user.updated', data: { userId, changed: ['lockout'] } });
        return 'unlocked' as const;
      });
      if (result === 'unlocked') {
        await hot.delete(...digests.flatMap((digest) => [keys.lock(digest), keys.attempts(digest), keys.lockouts(digest)]));
        countSecurityEvent('unlock');
      }
      return result;
    },

    // Waits for background work (permanent lockouts being written); for tests and shutdown.
    async idle(): Promise<void> {
      while (pending.size) await Promise.all([...pending]);
    },
  };
}

export type BruteForceProtection = ReturnType<typeof createBruteForceProtection>;
