// Upstream sign-ins under way: what the callback needs to finish one (the interaction it belongs
// to, the connector, and the PKCE verifier, nonce and state sent upstream), kept server-side in
// the hot store under the state and taken exactly once, so a callback cannot be replayed.
import type { HotStore } from '../../store/hot-store.ts';
import type { UpstreamTransaction } from '../upstream/index.ts';

export interface PendingSignIn {
  uid: string;
  tenantId: string;
  connectorId: string;
  connectorName: string;
  transaction: UpstreamTransaction;
}

const PREFIX = 'federation:pending:';

export function pendingSignIns(hot: HotStore, ttlSeconds: number) {
  return {
    save(pending: PendingSignIn): Promise<void> {
      return hot.set(PREFIX + pending.transaction.state, JSON.stringify(pending), ttlSeconds);
    },
    // The first caller for a state gets it; a replayed or parallel callback gets nothing.
    async take(state: string): Promise<PendingSignIn | undefined> {
      if (!(await hot.setIfAbsent(`${PREFIX}taken:${state}`, '1', ttlSeconds))) return undefined;
      const stored = await hot.get(PREFIX + state);
      if (!stored) return undefined;
      await hot.delete(PREFIX + state);
      return JSON.parse(stored) as PendingSignIn;
    },
  };
}

export type PendingSignIns = ReturnType<typeof pendingSignIns>;
