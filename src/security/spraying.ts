// Password spraying: one address trying a few passwords against many accounts stays under every
// per-identifier limit. Each address's failed sign-ins are counted per distinct identifier (digests
// only) in a fixed window; more than maxIdentifiers distinct ones block the address's sign-ins for
// blockSeconds, and it stays "suspicious" (a CAPTCHA is asked) for as long again afterwards.
import type { HotStore } from '../store/hot-store.ts';
import type { SignInProtectionConfig } from '../config.ts';
import { addressDigest } from './brute-force.ts';
import { countSecurityEvent } from '../ops/metrics.ts';

export interface SprayingBlock {
  retryAfterSeconds: number;
}

const keys = {
  seen: (ip: string, identifierDigest: string) => `spray:seen:${addressDigest(ip)}:${identifierDigest.slice(0, 32)}`,
  distinct: (ip: string) => `spray:distinct:${addressDigest(ip)}`,
  blocked: (ip: string) => `spray:blocked:${addressDigest(ip)}`,
  suspicious: (ip: string) => `suspicious-ip:${addressDigest(ip)}`,
};

// Marks an address whose sign-ins must pass a CAPTCHA for a while (spraying, or another limit
// the address ran into). Exported for the per-address rate limits.
export async function markSuspiciousAddress(hot: HotStore, ip: string, seconds: number): Promise<void> {
  await hot.set(keys.suspicious(ip), '1', seconds);
}

export async function isSuspiciousAddress(hot: HotStore, ip: string): Promise<boolean> {
  return (await hot.get(keys.suspicious(ip))) !== null;
}

export function createSprayingDetector(hot: HotStore, config: SignInProtectionConfig['spraying']) {
  const { maxIdentifiers, windowSeconds, blockSeconds } = config;
  return {
    // The address's block, while it lasts.
    async blocked(ip: string): Promise<SprayingBlock | undefined> {
      if (maxIdentifiers === 0) return undefined;
      const until = await hot.get(keys.blocked(ip));
      const remaining = until ? Number(until) - Date.now() : 0;
      if (remaining <= 0) return undefined;
      countSecurityEvent('spraying_refusal');
      return { retryAfterSeconds: Math.max(1, Math.ceil(remaining / 1000)) };
    },

    // A failed sign-in of this address at this identifier: true when it just crossed the line.
    async failed(ip: string, identifierDigest: string): Promise<boolean> {
      if (maxIdentifiers === 0) return false;
      if (!(await hot.setIfAbsent(keys.seen(ip, identifierDigest), '1', windowSeconds))) return false;
      const distinct = await hot.increment(keys.distinct(ip), windowSeconds);
      if (distinct !== maxIdentifiers + 1) return false;
      await hot.set(keys.blocked(ip), String(Date.now() + blockSeconds * 1000), blockSeconds);
      await markSuspiciousAddress(hot, ip, blockSeconds * 2);
      countSecurityEvent('spraying_detected');
      return true;
    },
  };
}

export type SprayingDetector = ReturnType<typeof createSprayingDetector>;
