// The one place that reads the environment. Everything else receives a typed Config.
import { z } from 'zod';

const signingAlgs = ['RS256', 'ES256', 'EdDSA'] as const;
export type SigningAlg = (typeof signingAlgs)[number];

const positiveSeconds = z.coerce.number().int().positive();

const base64Key = (bytes: number) =>
  z.string().refine((value) => Buffer.from(value, 'base64').length === bytes, {
    message: `must be ${bytes} bytes, base64-encoded`,
  });

const schema = z.object({
  ISSUER: z.url().refine((value) => !value.endsWith('/') && !/[?#]/.test(value), {
    message: 'must be an absolute URL without a trailing slash, query or fragment',
  }),
  PORT: z.coerce.number().int().min(0).max(65535),
  HOST: z.string().min(1),
  TRUSTED_PROXIES: z.string(),
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL').optional(),
  DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(200),
  DATA_DIR: z.string().min(1),
  REDIS_URL: z
    .string()
    .regex(/^(rediss?:\/\/[^,]+)(,rediss?:\/\/[^,]+)*$/, 'must be redis://host:port or a comma-separated list of them')
    .optional(),
  REDIS_KEY_PREFIX: z.string(),
  KEY_ENCRYPTION_KEY: base64Key(32).optional(),
  COOKIE_KEYS: z
    .string()
    .refine((value) => value.split(',').every((key) => key.trim().length >= 32), {
      message: 'must be a comma-separated list of keys of at least 32 characters each',
    })
    .optional(),
  SIGNING_ALG: z.enum(signingAlgs),
  ACCESS_TOKEN_TTL: positiveSeconds,
  CLIENT_CREDENTIALS_TTL: positiveSeconds,
  ID_TOKEN_TTL: positiveSeconds,
  REFRESH_TOKEN_TTL: positiveSeconds,
  SESSION_TTL: positiveSeconds,
  GRANT_TTL: positiveSeconds,
  INTERACTION_TTL: positiveSeconds,
  AUTHORIZATION_CODE_TTL: positiveSeconds,
  ARGON2_MEMORY_KIB: z.coerce.number().int().min(8192),
  ARGON2_ITERATIONS: z.coerce.number().int().min(1),
  ARGON2_PARALLELISM: z.coerce.number().int().min(1),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  PURGE_INTERVAL: positiveSeconds,
});

// Defaults are production-safe; the embedded default relaxes only what it announces at start-up.
const defaults: Record<string, string> = {
  ISSUER: 'http://localhost:3000',
  PORT: '3000',
  HOST: '0.0.0.0',
  TRUSTED_PROXIES: '',
  DATABASE_POOL_MAX: '10',
  DATA_DIR: './data',
  REDIS_KEY_PREFIX: 'idp:',
  SIGNING_ALG: 'RS256',
  ACCESS_TOKEN_TTL: '3600',
  CLIENT_CREDENTIALS_TTL: '600',
  ID_TOKEN_TTL: '3600',
  REFRESH_TOKEN_TTL: String(14 * 24 * 3600),
  SESSION_TTL: String(14 * 24 * 3600),
  GRANT_TTL: String(14 * 24 * 3600),
  INTERACTION_TTL: '3600',
  AUTHORIZATION_CODE_TTL: '60',
  // OWASP's first argon2id recommendation: m=19 MiB, t=2, p=1.
  ARGON2_MEMORY_KIB: '19456',
  ARGON2_ITERATIONS: '2',
  ARGON2_PARALLELISM: '1',
  LOG_LEVEL: 'info',
  PURGE_INTERVAL: '300',
};

export interface Config {
  issuer: string;
  port: number;
  host: string;
  trustedProxies: string[];
  database: { url?: string; poolMax: number; dataDir: string };
  redis: { urls?: string[]; keyPrefix: string };
  keyEncryptionKey?: Buffer;
  cookieKeys?: string[];
  signingAlg: SigningAlg;
  ttl: {
    accessToken: number;
    clientCredentials: number;
    idToken: number;
    refreshToken: number;
    session: number;
    grant: number;
    interaction: number;
    authorizationCode: number;
  };
  argon2: { memoryCost: number; timeCost: number; parallelism: number };
  logLevel: string;
  purgeIntervalSeconds: number;
  // True when PostgreSQL or Redis is replaced by the embedded stores.
  embedded: { database: boolean; hotStore: boolean };
}

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const input: Record<string, string | undefined> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    input[key] = value === undefined || value === '' ? defaults[key] : value;
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const variable = String(issue.path[0]);
    throw new ConfigError(`invalid configuration: ${variable} ${issue.message}`);
  }
  const c = parsed.data;
  return {
    issuer: c.ISSUER,
    port: c.PORT,
    host: c.HOST,
    trustedProxies: splitList(c.TRUSTED_PROXIES),
    database: { url: c.DATABASE_URL, poolMax: c.DATABASE_POOL_MAX, dataDir: c.DATA_DIR },
    redis: { urls: c.REDIS_URL ? splitList(c.REDIS_URL) : undefined, keyPrefix: c.REDIS_KEY_PREFIX },
    keyEncryptionKey: c.KEY_ENCRYPTION_KEY ? Buffer.from(c.KEY_ENCRYPTION_KEY, 'base64') : undefined,
    cookieKeys: c.COOKIE_KEYS ? splitList(c.COOKIE_KEYS) : undefined,
    signingAlg: c.SIGNING_ALG,
    ttl: {
      accessToken: c.ACCESS_TOKEN_TTL,
      clientCredentials: c.CLIENT_CREDENTIALS_TTL,
      idToken: c.ID_TOKEN_TTL,
      refreshToken: c.REFRESH_TOKEN_TTL,
      session: c.SESSION_TTL,
      grant: c.GRANT_TTL,
      interaction: c.INTERACTION_TTL,
      authorizationCode: c.AUTHORIZATION_CODE_TTL,
    },
    argon2: { memoryCost: c.ARGON2_MEMORY_KIB, timeCost: c.ARGON2_ITERATIONS, parallelism: c.ARGON2_PARALLELISM },
    logLevel: c.LOG_LEVEL,
    purgeIntervalSeconds: c.PURGE_INTERVAL,
    embedded: { database: !c.DATABASE_URL, hotStore: !c.REDIS_URL },
  };
}

function splitList(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
}
