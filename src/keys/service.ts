// Signing keys: generated here, sealed at rest, rotated with a pre-published successor, and kept
// for verification after retirement until every token they signed has expired.
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Database } from '../store/database.ts';
import type { HotStore } from '../store/hot-store.ts';
import { seal, unseal, type SealingKeys } from '../security/crypto.ts';
import { rewrapAll, type RewrapReport } from '../security/rewrap.ts';
import { signingKeyQueries, type KeyStatus, type SigningKeyRow } from './queries.ts';
import type { AuditService } from '../audit/service.ts';
import { originOf, type ChangeOrigin } from '../audit/origin.ts';
import { DEFAULT_TENANT_ID } from '../tenants/constants.ts';

export const SUPPORTED_ALGS = ['RS256', 'ES256', 'EdDSA'] as const;
export const KEYS_CHANGED_CHANNEL = 'keys:changed';

export interface KeyServiceOptions {
  db: Database;
  hot: HotStore;
  keyEncryptionKey: SealingKeys;
  // The longest lifetime of anything signed: a retired key is published this long after retirement.
  maxSignedTokenLifetimeSeconds: number;
  // A rotation is recorded in the platform tenant's trail, in the rotation's transaction.
  audit: Pick<AuditService, 'record'>;
}

export interface KeySummary {
  kid: string;
  alg: string;
  status: KeyStatus;
  createdAt: Date;
  activatedAt: Date | null;
  retiredAt: Date | null;
  removeAfter: Date | null;
}

export function createKeyService(options: KeyServiceOptions) {
  const { db, hot, keyEncryptionKey } = options;
  const queries = signingKeyQueries(db);
  const sealContext = (kid: string) => `signing_key:${kid}`;

  async function generate(alg: string, status: KeyStatus): Promise<Omit<SigningKeyRow, 'created_at' | 'activated_at' | 'retired_at' | 'remove_after'>> {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, modulusLength: 2048 });
    const publicJwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(publicJwk);
    const privateJwk = { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
    return {
      kid,
      alg,
      status,
      public_jwk: { ...publicJwk, kid, alg, use: 'sig' },
      private_jwk_sealed: seal(keyEncryptionKey, JSON.stringify(privateJwk), sealContext(kid)),
    };
  }

  async function announce(version: number): Promise<void> {
    try {
      await hot.publish(KEYS_CHANGED_CHANNEL, String(version));
    } catch {
      // Instances that miss the message notice the new version on their periodic check.
    }
  }

  return {
    // Makes sure every supported algorithm has an active key and a published successor.
    async ensureKeys(): Promise<boolean> {
      const existing = await queries.all();
      const missing: Array<{ alg: string; status: KeyStatus }> = [];
      for (const alg of SUPPORTED_ALGS) {
        for (const status of ['active', 'next'] as const) {
          if (!existing.some((row) => row.alg === alg && row.status === status)) missing.push({ alg, status });
        }
      }
      if (!missing.length) return false;
      const generated = await Promise.all(missing.map(({ alg, status }) => generate(alg, status)));
      const version = await db.transaction(async (trx) => {
        await queries.lock(trx);
        const current = await queries.all(trx);
        let inserted = 0;
        for (const row of generated) {
          if (current.some((other) => other.alg === row.alg && other.status === row.status)) continue;
          await queries.insert(trx, row.status === 'active' ? { ...row, activated_at: new Date() } : row);
          inserted++;
        }
        return inserted ? queries.bumpVersion(trx) : undefined;
      });
      if (version !== undefined) await announce(version);
      return version !== undefined;
    },

    // Promotes each algorithm's pre-published successor, retires the current key and
    // publishes a fresh successor.
    async rotate(origin?: ChangeOrigin): Promise<KeySummary[]> {
      const successors = await Promise.all(SUPPORTED_ALGS.map((alg) => generate(alg, 'next')));
      const removeAfter = new Date(Date.now() + options.maxSignedTokenLifetimeSeconds * 1000);
      const version = await db.transaction(async (trx) => {
        await queries.lock(trx);
        for (const successor of successors) {
          await queries.retireActive(trx, successor.alg, removeAfter);
          await queries.activateNext(trx, successor.alg);
          await queries.insert(trx, successor);
        }
        await queries.removeExpiredRetired(trx);
        const next = await queries.bumpVersion(trx);
        // Key ids are public (they are in the JWKS); the keys themselves never leave this module.
        await options.audit.record(trx, {
          tenantId: DEFAULT_TENANT_ID,
          type: 'key.rotate',
          outcome: 'success',
          ...originOf(origin),
          target: { ref: `jwks-v${next}` },
          details: { published: successors.map((successor) => ({ kid: successor.kid, alg: successor.alg })) },
        });
        return next;
      });
      await announce(version);
      return this.list();
    },

    async removeExpired(): Promise<number> {
      const removed = await queries.removeExpiredRetired();
      if (removed) {
        const version = await db.transaction((trx) => queries.bumpVersion(trx));
        await announce(version);
      }
      return removed;
    },

    async list(): Promise<KeySummary[]> {
      const rows = await queries.all();
      return rows.map((row) => ({
        kid: row.kid,
        alg: row.alg,
        status: row.status,
        createdAt: row.created_at,
        activatedAt: row.activated_at,
        retiredAt: row.retired_at,
        removeAfter: row.remove_after,
      }));
    },

    version(): Promise<number> {
      return queries.version();
    },

    // Seals every private key again under the current key-encryption key (`idp keys rewrap`).
    rewrap(keyRing: SealingKeys): Promise<RewrapReport> {
      return rewrapAll(db, keyRing, {
        kind: 'signing_key',
        page: async (trx, after, limit) =>
          (await queries.page(trx, after, limit)).map((row) => ({
            cursor: row.kid,
            values: [{ id: row.kid, sealed: row.private_jwk_sealed, context: sealContext(row.kid), save: (t, resealed) => queries.replaceSealed(t, row.kid, resealed) }],
          })),
      });
    },

    // The private JWKS for oidc-provider. Only active keys may sign (the preferred algorithm
    // first); successors and retired keys are published for verification only.
    async providerJwks(preferredAlg: string): Promise<{ version: number; jwks: { keys: JWK[] } }> {
      const [rows, version] = await Promise.all([queries.all(), queries.version()]);
      const rank = (row: SigningKeyRow) =>
        (row.status === 'active' ? 0 : 10) + (row.alg === preferredAlg ? 0 : 1) + (row.status === 'retired' ? 10 : 0);
      const keys = rows
        .filter((row) => row.status !== 'retired' || !row.remove_after || row.remove_after.getTime() > Date.now())
        .sort((a, b) => rank(a) - rank(b))
        .map((row) => {
          const jwk = JSON.parse(unseal(keyEncryptionKey, row.private_jwk_sealed, sealContext(row.kid))) as JWK;
          return row.status === 'active' ? jwk : { ...jwk, key_ops: ['verify'] };
        });
      return { version, jwks: { keys } };
    },
  };
}

export type KeyService = ReturnType<typeof createKeyService>;
