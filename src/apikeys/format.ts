// The API key string: idp_<environment>_<publicId>_<secret><checksum>.
//   idp          the product, so secret scanners and people recognise a leaked key
//   environment  from API_KEY_ENVIRONMENT (live, test, ...): a test key never works in live
//   publicId     16 base62 characters (~95 bits), the lookup key; not secret
//   secret       43 base62 characters from the CSPRNG (256 bits); only its SHA-256 is stored
//   checksum     CRC-32 of everything before it, 6 base62 characters: a typo or a truncated key is
//                refused offline, before any store is asked
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';

export const KEY_PREFIX = 'idp';
const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
export const PUBLIC_ID_LENGTH = 16;
export const SECRET_LENGTH = 43;
const CHECKSUM_LENGTH = 6;
export const ENVIRONMENT_PATTERN = /^[a-z0-9]{1,16}$/;
// Far above the longest key (idp_ + 16 + _ + 16 + _ + 49); a longer string is not parsed at all.
const MAX_KEY_LENGTH = 120;
const KEY_PATTERN = new RegExp(`^${KEY_PREFIX}_([a-z0-9]{1,16})_([0-9A-Za-z]{${PUBLIC_ID_LENGTH}})_([0-9A-Za-z]{${SECRET_LENGTH}})([0-9A-Za-z]{${CHECKSUM_LENGTH}})$`);
// Cheap recognition for the admin API's Authorization header: a key, not a JWT.
const LOOKS_LIKE_KEY = new RegExp(`^${KEY_PREFIX}_[a-z0-9]{1,16}_`);

export interface ParsedKey {
  environment: string;
  publicId: string;
  secret: string;
}

// Uniform base62 by rejection sampling: bytes 248..255 would favour the first characters.
function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte >= 248) continue;
      out += ALPHABET[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

function base62(value: number, length: number): string {
  let out = '';
  for (let rest = value; out.length < length; rest = Math.floor(rest / 62)) out = ALPHABET[rest % 62] + out;
  return out;
}

function checksumOf(body: string): string {
  return base62(crc32(body), CHECKSUM_LENGTH);
}

export function generateKey(environment: string): { key: string; publicId: string; secret: string } {
  const publicId = randomBase62(PUBLIC_ID_LENGTH);
  const secret = randomBase62(SECRET_LENGTH);
  const body = `${KEY_PREFIX}_${environment}_${publicId}_${secret}`;
  return { key: body + checksumOf(body), publicId, secret };
}

export function looksLikeApiKey(value: string): boolean {
  return LOOKS_LIKE_KEY.test(value);
}

// The parts of a well-formed key whose checksum holds, else undefined. No I/O.
export function parseKey(value: string): ParsedKey | undefined {
  if (typeof value !== 'string' || value.length > MAX_KEY_LENGTH) return undefined;
  const match = KEY_PATTERN.exec(value);
  if (!match) return undefined;
  const [, environment, publicId, secret, checksum] = match;
  if (checksumOf(value.slice(0, value.length - CHECKSUM_LENGTH)) !== checksum) return undefined;
  return { environment, publicId, secret };
}

// What lists and logs may show of a key: enough to recognise it, nothing to use it.
export function maskedKey(environment: string, publicId: string): string {
  return `${KEY_PREFIX}_${environment}_${publicId}_…`;
}
