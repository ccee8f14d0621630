import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export function sha256Hex(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

// Compares digests, so neither the length nor the content of the secret leaks through timing.
export function constantTimeEqual(a: string, b: string): boolean {
  const left = createHash('sha256').update(a).digest();
  const right = createHash('sha256').update(b).digest();
  return timingSafeEqual(left, right);
}

// For two SHA-256 hex digests, whose length is public: one comparison, no further hashing.
export function digestsEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, 'hex');
  const right = Buffer.from(b, 'hex');
  return left.length === 32 && right.length === 32 && timingSafeEqual(left, right);
}

const SEALED_VERSION = 'v1';

// AES-256-GCM with a fresh 96-bit nonce: "v1.<nonce>.<ciphertext>.<tag>", all base64url.
// `context` is bound as associated data so a sealed value cannot be moved to another row or purpose.
// The key-encryption keys: one key, or a ring with the current key first and the previous ones
// (KEY_ENCRYPTION_KEY_PREVIOUS) after it, so the key can be rotated while values sealed under the
// old one are still read. Sealing always uses the current key.
export type SealingKeys = Buffer | readonly Buffer[];

function keyList(keys: SealingKeys): readonly Buffer[] {
  return Buffer.isBuffer(keys) ? [keys] : keys;
}

export function seal(keys: SealingKeys, plaintext: string, context: string): string {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyList(keys)[0], nonce);
  cipher.setAAD(Buffer.from(context));
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return [SEALED_VERSION, nonce, ciphertext, cipher.getAuthTag()]
    .map((part) => (typeof part === 'string' ? part : part.toString('base64url')))
    .join('.');
}

function unsealWith(key: Buffer, sealed: string, context: string): string {
  const [version, nonce, ciphertext, tag] = sealed.split('.');
  if (version !== SEALED_VERSION || !nonce || !ciphertext || !tag) throw new Error('unrecognised sealed value');
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(nonce, 'base64url'));
  decipher.setAAD(Buffer.from(context));
  decipher.setAuthTag(Buffer.from(tag, 'base64url'));
  return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8');
}

// The sealed format names no key: the keys are tried in order and GCM authentication rejects a wrong one.
function open(keys: SealingKeys, sealed: string, context: string): { plaintext: string; keyIndex: number } {
  const list = keyList(keys);
  for (let keyIndex = 0; keyIndex < list.length; keyIndex++) {
    try {
      return { plaintext: unsealWith(list[keyIndex], sealed, context), keyIndex };
    } catch (error) {
      if ((error as Error).message === 'unrecognised sealed value') throw error;
    }
  }
  throw new Error('a sealed value opens with neither KEY_ENCRYPTION_KEY nor KEY_ENCRYPTION_KEY_PREVIOUS: wrong key-encryption key?');
}

export function unseal(keys: SealingKeys, sealed: string, context: string): string {
  return open(keys, sealed, context).plaintext;
}

// For re-wrapping after a key rotation: undefined when the value is already sealed under the current
// key, else the value sealed again under it. Throws when no key opens it.
export function resealUnderCurrent(keys: SealingKeys, sealed: string, context: string): string | undefined {
  const { plaintext, keyIndex } = open(keys, sealed, context);
  return keyIndex === 0 ? undefined : seal(keys, plaintext, context);
}
