import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ConfigError, type Config } from '../config.ts';

export interface InstanceSecrets {
  keyEncryptionKey: Buffer;
  cookieKeys: string[];
  // True when the secrets were generated into the data directory (embedded default only).
  generated: boolean;
}

// With a PostgreSQL server the secrets must come from the environment: several instances share them.
// The embedded default generates them once into the data directory (mode 0600) so `npm start` just works.
export function resolveInstanceSecrets(config: Config): InstanceSecrets {
  if (config.keyEncryptionKey && config.cookieKeys) {
    return { keyEncryptionKey: config.keyEncryptionKey, cookieKeys: config.cookieKeys, generated: false };
  }
  if (!config.embedded.database) {
    const missing = config.keyEncryptionKey ? 'COOKIE_KEYS' : 'KEY_ENCRYPTION_KEY';
    throw new ConfigError(`invalid configuration: ${missing} is required when DATABASE_URL is set`);
  }
  const file = path.resolve(config.database.dataDir, 'instance-secrets.json');
  let stored: { keyEncryptionKey: string; cookieKeys: string[] };
  if (existsSync(file)) {
    stored = JSON.parse(readFileSync(file, 'utf8'));
  } else {
    mkdirSync(path.dirname(file), { recursive: true });
    stored = {
      keyEncryptionKey: randomBytes(32).toString('base64'),
      cookieKeys: [randomBytes(32).toString('base64url')],
    };
    writeFileSync(file, JSON.stringify(stored, null, 2), { mode: 0o600 });
  }
  return {
    keyEncryptionKey: config.keyEncryptionKey ?? Buffer.from(stored.keyEncryptionKey, 'base64'),
    cookieKeys: config.cookieKeys ?? stored.cookieKeys,
    generated: true,
  };
}
