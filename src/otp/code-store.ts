// The codes themselves, in the hot store: only an HMAC-SHA-256 of each code (under a key derived
// from the instance secret), filed under an HMAC of tenant, purpose, channel and destination, so
// neither the code nor the address or number is readable there. A code lives ttlSeconds, allows
// maxTries tries (counted before the comparison, so parallel guesses cannot slip past), and is
// consumed once: of two parallel right answers, exactly one wins the setIfAbsent.
import { createHmac, hkdfSync, randomBytes, randomInt } from 'node:crypto';
import type { HotStore } from '../store/hot-store.ts';
import { digestsEqual } from '../security/crypto.ts';

export const CODE_DIGITS = 6;

export interface CodeStoreOptions {
  ttlSeconds: number;
  maxTries: number;
}

interface StoredCode {
  id: string;
  digest: string;
}

// A key for one-time codes only, derived from the instance's key-encryption key.
export function codeKey(instanceSecret: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', instanceSecret, Buffer.alloc(0), 'idp one-time codes v1', 32));
}

export function newCode(): string {
  return String(randomInt(0, 10 ** CODE_DIGITS)).padStart(CODE_DIGITS, '0');
}

export function createCodeStore(hot: HotStore, key: Buffer, options: CodeStoreOptions) {
  const hmac = (...parts: string[]) => createHmac('sha256', key).update(parts.join('\u0000')).digest('hex');
  const codeKeyOf = (slot: string) => `otp:code:${slot}`;

  return {
    hmac,
    // The place of one code: one per tenant, purpose, channel and destination.
    slot(tenantId: string, purpose: string, channel: string, destination: string): string {
      return hmac('slot', tenantId, purpose, channel, destination);
    },

    // A new code for the slot; an earlier one stops working.
    async issue(slot: string, code: string): Promise<void> {
      const stored: StoredCode = { id: randomBytes(12).toString('base64url'), digest: hmac('code', slot, code) };
      await hot.set(codeKeyOf(slot), JSON.stringify(stored), options.ttlSeconds);
    },

    async consume(slot: string, code: string): Promise<boolean> {
      const raw = await hot.get(codeKeyOf(slot));
      if (!raw) return false;
      const stored = JSON.parse(raw) as StoredCode;
      const tries = await hot.increment(`otp:tries:${stored.id}`, options.ttlSeconds);
      if (tries > options.maxTries) return false;
      if (!/^[0-9]{6}$/.test(code) || !digestsEqual(hmac('code', slot, code), stored.digest)) return false;
      if (!(await hot.setIfAbsent(`otp:used:${stored.id}`, '1', options.ttlSeconds))) return false;
      // Tidy up unless a newer code took the slot meanwhile.
      if ((await hot.get(codeKeyOf(slot))) === raw) await hot.delete(codeKeyOf(slot));
      return true;
    },
  };
}

export type CodeStore = ReturnType<typeof createCodeStore>;
