// The built-in proof-of-work challenge: no third party, works offline. The server hands out a
// challenge it signed (HMAC) with a difficulty, an expiry and the sign-in it belongs to; the page
// finds a number whose SHA-256 over "<challenge>:<number>" starts with that many zero bits (a
// same-origin script, views/assets/pow-challenge.js); the server checks the work in one hash and
// accepts each challenge once (hot-store setIfAbsent). It costs a browser a second or two and a
// bot that much per attempt, while the server spends microseconds.
import { createHash, createHmac } from 'node:crypto';
import type { HotStore } from '../../store/hot-store.ts';
import { constantTimeEqual, randomToken, sha256Hex } from '../crypto.ts';

export const POW_CHALLENGE_SECONDS = 600;
const MAX_CHALLENGE = 400;
const SOLUTION = /^[0-9]{1,15}$/;

interface Payload {
  // A fresh value per challenge, the difficulty in bits, the expiry (epoch seconds), and a digest
  // of what the challenge is bound to (the sign-in).
  n: string;
  d: number;
  e: number;
  b: string;
}

export function leadingZeroBits(digest: Buffer): number {
  let bits = 0;
  for (const byte of digest) {
    if (byte === 0) {
      bits += 8;
      continue;
    }
    return bits + Math.clz32(byte) - 24;
  }
  return bits;
}

// What a solver (the page's script, or a test) computes.
export function powDigest(challenge: string, solution: string): Buffer {
  return createHash('sha256').update(`${challenge}:${solution}`).digest();
}

export function solveProofOfWork(challenge: string, difficulty: number): string {
  for (let counter = 0; ; counter++) {
    if (leadingZeroBits(powDigest(challenge, String(counter))) >= difficulty) return String(counter);
  }
}

export function createProofOfWork(options: { key: string; hot: HotStore; difficulty: number }) {
  const { hot, difficulty } = options;
  const key = createHmac('sha256', options.key).update('captcha proof-of-work').digest();
  const mac = (payload: string) => createHmac('sha256', key).update(payload).digest('base64url');
  const bindingDigest = (binding: string) => sha256Hex(`pow\n${binding}`).slice(0, 32);

  return {
    difficulty,
    issue(binding: string): string {
      const payload: Payload = { n: randomToken(12), d: difficulty, e: Math.floor(Date.now() / 1000) + POW_CHALLENGE_SECONDS, b: bindingDigest(binding) };
      const encoded = Buffer.from(JSON.stringify(payload)).toString('base64url');
      return `${encoded}.${mac(encoded)}`;
    },

    async verify(challenge: string | undefined, solution: string | undefined, binding: string): Promise<boolean> {
      if (!challenge || !solution || challenge.length > MAX_CHALLENGE || !SOLUTION.test(solution)) return false;
      const [encoded, signature, ...rest] = challenge.split('.');
      if (!encoded || !signature || rest.length || !constantTimeEqual(signature, mac(encoded))) return false;
      let payload: Payload;
      try {
        payload = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8')) as Payload;
      } catch {
        return false;
      }
      const now = Math.floor(Date.now() / 1000);
      if (typeof payload.e !== 'number' || payload.e <= now || payload.b !== bindingDigest(binding) || typeof payload.d !== 'number') return false;
      // A challenge signed before the difficulty was raised still needs today's work.
      if (leadingZeroBits(powDigest(challenge, solution)) < Math.max(payload.d, difficulty)) return false;
      return hot.setIfAbsent(`captcha:pow:${sha256Hex(challenge)}`, '1', payload.e - now + 1);
    },
  };
}

export type ProofOfWork = ReturnType<typeof createProofOfWork>;
