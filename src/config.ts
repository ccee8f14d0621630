// The one place that reads the environment. Everything else receives a typed Config.
import path from 'node:path';
import { z } from 'zod';

const signingAlgs = ['RS256', 'ES256', 'EdDSA'] as const;
export type SigningAlg = (typeof signingAlgs)[number];

// Whole decimal numbers only: no signs, exponents, hex or blanks, so a typo cannot pass as a number.
const wholeNumber = (min: number, max: number, message: string) =>
  z
    .string()
    .trim()
    .regex(/^[0-9]+$/, message)
    .transform(Number)
    .refine((value) => value >= min && value <= max, message);

const positiveSeconds = wholeNumber(1, Number.MAX_SAFE_INTEGER, 'must be a positive whole number of seconds');

function isUrl(value: string, protocols: string[]): boolean {
  try {
    const url = new URL(value);
    return protocols.includes(url.protocol) && url.hostname !== '';
  } catch {
    return false;
  }
}

const base64Key = (bytes: number) =>
  z.string().refine((value) => Buffer.from(value, 'base64').length === bytes, {
    message: `must be ${bytes} bytes, base64-encoded`,
  });

const schema = z.object({
  ISSUER: z.string().refine((value) => isUrl(value, ['https:', 'http:']) && !value.endsWith('/') && !/[?#]/.test(value), {
    message: 'must be an absolute http(s) URL without a trailing slash, query or fragment',
  }),
  PORT: wholeNumber(0, 65535, 'must be a port number from 0 to 65535'),
  HOST: z.string().min(1),
  TRUSTED_PROXIES: z.string(),
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL').optional(),
  DATABASE_POOL_MAX: wholeNumber(1, 200, 'must be a whole number from 1 to 200'),
  DATA_DIR: z.string().min(1),
  REDIS_URL: z
    .string()
    .refine((value) => value.split(',').every((item) => isUrl(item.trim(), ['redis:', 'rediss:'])), {
      message: 'must be redis://host:port or a comma-separated list of them',
    })
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
  REFRESH_TOKEN_REUSE_GRACE_SECONDS: wholeNumber(0, 300, 'must be a whole number of seconds from 0 to 300'),
  ARGON2_MEMORY_KIB: wholeNumber(8192, Number.MAX_SAFE_INTEGER, 'must be a whole number of KiB, at least 8192'),
  ARGON2_ITERATIONS: wholeNumber(1, Number.MAX_SAFE_INTEGER, 'must be a whole number, at least 1'),
  ARGON2_PARALLELISM: wholeNumber(1, Number.MAX_SAFE_INTEGER, 'must be a whole number, at least 1'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  PURGE_INTERVAL: positiveSeconds,
  OUTBOUND_ALLOW_PRIVATE_NETWORK: z.enum(['true', 'false'], { message: 'must be true or false' }),
  MAIL_SMTP_URL: z
    .string()
    .refine((value) => isUrl(value, ['smtp:', 'smtps:']), { message: 'must be an smtp:// or smtps:// URL, such as smtps://user:password@mail.example.com' })
    .optional(),
  MAIL_FROM: z.string().trim().min(3).max(320).refine((value) => !/[\r\n]/.test(value), { message: 'must be one line' }),
  MAIL_OUTBOX_DIR: z.string().min(1).optional(),
  MAIL_OUTBOX_PAGE: z.enum(['true', 'false'], { message: 'must be true or false' }),
  EVENTS_STREAM_MAX_LENGTH: wholeNumber(1000, 100_000_000, 'must be a whole number of entries from 1000 to 100000000'),
  EVENTS_RETENTION: positiveSeconds,
  WEBHOOK_MAX_ATTEMPTS: wholeNumber(1, 50, 'must be a whole number from 1 to 50'),
  WEBHOOK_TIMEOUT: wholeNumber(1, 60, 'must be a whole number of seconds from 1 to 60'),
  METRICS_TOKEN: z.string().trim().min(32, 'must be at least 32 characters (a random bearer token)').optional(),
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
  // Parallel refreshes of one app within this many seconds are not taken for a stolen token.
  REFRESH_TOKEN_REUSE_GRACE_SECONDS: '5',
  // OWASP's first argon2id recommendation: m=19 MiB, t=2, p=1.
  ARGON2_MEMORY_KIB: '19456',
  ARGON2_ITERATIONS: '2',
  ARGON2_PARALLELISM: '1',
  LOG_LEVEL: 'info',
  PURGE_INTERVAL: '300',
  OUTBOUND_ALLOW_PRIVATE_NETWORK: 'false',
  MAIL_FROM: '"Identity" <no-reply@localhost>',
  MAIL_OUTBOX_PAGE: 'false',
  EVENTS_STREAM_MAX_LENGTH: '100000',
  EVENTS_RETENTION: String(7 * 24 * 3600),
  WEBHOOK_MAX_ATTEMPTS: '8',
  WEBHOOK_TIMEOUT: '10',
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
  // A rotated-out refresh token its own client presents again within this many seconds is served
  // (parallel refreshes); later, reuse revokes the grant. 0: no grace.
  refreshTokenReuseGraceSeconds: number;
  argon2: { memoryCost: number; timeCost: number; parallelism: number };
  logLevel: string;
  purgeIntervalSeconds: number;
  // Lets outgoing calls (back-channel logout, jwks_uri) reach loopback and private addresses.
  // Off by default: it is the provider's SSRF protection.
  outboundAllowPrivateNetwork: boolean;
  // Mail goes out through SMTP when smtpUrl is set; otherwise into files in outboxDir (and the
  // /outbox page), so the embedded default shows its mail without a mail server.
  // outboxPage: serve /outbox beyond the embedded default (MAIL_OUTBOX_PAGE=true).
  mail: { smtpUrl?: string; from: string; outboxDir: string; outboxPage: boolean };
  // Events for other services (docs/events.md): the Redis stream is trimmed to about
  // streamMaxLength entries; published events and their webhook deliveries are kept
  // retentionSeconds; a webhook delivery is dead-lettered after webhookMaxAttempts failures.
  events: { streamMaxLength: number; retentionSeconds: number; webhookMaxAttempts: number; webhookTimeoutSeconds: number };
  // GET /metrics answers only a bearer of this token; unset, /metrics does not exist (docs/operations.md).
  metricsToken?: string;
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
    refreshTokenReuseGraceSeconds: c.REFRESH_TOKEN_REUSE_GRACE_SECONDS,
    argon2: { memoryCost: c.ARGON2_MEMORY_KIB, timeCost: c.ARGON2_ITERATIONS, parallelism: c.ARGON2_PARALLELISM },
    logLevel: c.LOG_LEVEL,
    purgeIntervalSeconds: c.PURGE_INTERVAL,
    outboundAllowPrivateNetwork: c.OUTBOUND_ALLOW_PRIVATE_NETWORK === 'true',
    mail: { smtpUrl: c.MAIL_SMTP_URL, from: c.MAIL_FROM, outboxDir: c.MAIL_OUTBOX_DIR ?? path.join(c.DATA_DIR, 'outbox'), outboxPage: c.MAIL_OUTBOX_PAGE === 'true' },
    events: { streamMaxLength: c.EVENTS_STREAM_MAX_LENGTH, retentionSeconds: c.EVENTS_RETENTION, webhookMaxAttempts: c.WEBHOOK_MAX_ATTEMPTS, webhookTimeoutSeconds: c.WEBHOOK_TIMEOUT },
    embedded: { database: !c.DATABASE_URL, hotStore: !c.REDIS_URL },
    metricsToken: c.METRICS_TOKEN,
  };
}

function splitList(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
}
