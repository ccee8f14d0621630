// oidc-provider's ReplayDetection.unique() finds, then saves: two requests carrying one client
// assertion at the same moment could both pass. One atomic set-if-absent on the key the adapter
// uses for the model decides instead, on every instance sharing the hot store.
import { createHash } from 'node:crypto';
import type Provider from 'oidc-provider';
import type { HotStore } from '../store/hot-store.ts';
import { hotKeys } from './model-storage.ts';

// When an assertion carries no usable exp, the library's clock-skew bound is short; keep a while.
const FALLBACK_SECONDS = 600;

export function installAtomicReplayDetection(provider: Provider, hot: HotStore): void {
  const model = provider.ReplayDetection as unknown as { unique(iss: string, jti: string, exp: number): Promise<boolean> };
  model.unique = async (iss, jti, exp) => {
    const id = createHash('sha256').update(`${iss}${jti}`).digest('base64url');
    const remaining = Number.isFinite(exp) ? exp - Math.floor(Date.now() / 1000) : FALLBACK_SECONDS;
    const record = JSON.stringify({ jti: id, iss, exp, kind: 'ReplayDetection' });
    return hot.setIfAbsent(hotKeys.record('ReplayDetection', id), record, Math.max(1, remaining));
  };
}
