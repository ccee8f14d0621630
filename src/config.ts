// The one place that reads the environment. Everything else receives a typed Config.
import path from 'node:path';
import { z } from 'zod';
import { isCidr } from './security/cidr.ts';

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

// A rate limit: "<requests>/<seconds>" (600/60: 600 requests a minute), or "off".
const rateLimit = z
  .string()
  .trim()
  .regex(/^(off|[1-9][0-9]{0,8}\/[1-9][0-9]{0,7})$/, 'must be <requests>/<seconds>, such as 600/60, or off')
  .transform((value): RateLimitSetting | undefined => {
    if (value === 'off') return undefined;
    const [points, durationSeconds] = value.split('/').map(Number);
    return { points, durationSeconds };
  });

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
  TRUSTED_PROXIES: z.string().refine((value) => splitList(value).every(isCidr), { message: 'must be a comma-separated list of IP addresses or CIDR ranges' }),
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
  KEY_ENCRYPTION_KEY_PREVIOUS: z
    .string()
    .refine((value) => splitList(value).every((key) => Buffer.from(key, 'base64').length === 32), {
      message: 'must be a comma-separated list of base64-encoded 32-byte keys',
    })
    .optional(),
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
  // How long one request to an upstream identity provider (discovery, token, userinfo) may take.
  FEDERATION_TIMEOUT: wholeNumber(1, 60, 'must be a whole number of seconds from 1 to 60'),
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
  CAPTCHA_PROVIDER: z.enum(['pow', 'turnstile', 'hcaptcha', 'recaptcha']),
  CAPTCHA_SITE_KEY: z.string().trim().min(1).max(200).optional(),
  CAPTCHA_SECRET: z.string().trim().min(1).max(500).optional(),
  CAPTCHA_VERIFY_URL: z.string().refine((value) => isUrl(value, ['https:', 'http:']), { message: 'must be an absolute http(s) URL' }).optional(),
  CAPTCHA_AFTER_FAILURES: wholeNumber(0, 1000, 'must be a whole number from 0 to 1000'),
  CAPTCHA_AFTER_IP_FAILURES: wholeNumber(0, 100_000, 'must be a whole number from 0 to 100000'),
  CAPTCHA_POW_DIFFICULTY: wholeNumber(1, 32, 'must be a whole number of bits from 1 to 32'),
  SPRAYING_MAX_IDENTIFIERS: wholeNumber(0, 100_000, 'must be a whole number from 0 to 100000'),
  SPRAYING_WINDOW: positiveSeconds,
  SPRAYING_BLOCK: positiveSeconds,
  LOGIN_IDENTIFIER_LIMIT: wholeNumber(1, 100_000, 'must be a whole number from 1 to 100000'),
  RESET_IDENTIFIER_LIMIT: wholeNumber(1, 100_000, 'must be a whole number from 1 to 100000'),
  IDENTIFIER_LIMIT_WINDOW: positiveSeconds,
  RATE_LIMIT_LOGIN_PER_IP: rateLimit,
  RATE_LIMIT_OTP_PER_IP: rateLimit,
  RATE_LIMIT_REGISTRATION_PER_IP: rateLimit,
  RATE_LIMIT_PASSWORD_RESET_PER_IP: rateLimit,
  RATE_LIMIT_TOKEN_PER_IP: rateLimit,
  RATE_LIMIT_TOKEN_PER_CLIENT: rateLimit,
  RATE_LIMIT_INTROSPECTION_PER_IP: rateLimit,
  RATE_LIMIT_REVOCATION_PER_IP: rateLimit,
  RATE_LIMIT_OTP_SEND_PER_DESTINATION: rateLimit,
  RATE_LIMIT_OTP_SEND_PER_IP: rateLimit,
  OTP_CODE_TTL_SECONDS: wholeNumber(30, 3600, 'must be a whole number of seconds from 30 to 3600'),
  OTP_RESEND_COOLDOWN_SECONDS: wholeNumber(0, 3600, 'must be a whole number of seconds from 0 to 3600'),
  OTP_PROVIDER_TIMEOUT: wholeNumber(1, 60, 'must be a whole number of seconds from 1 to 60'),
  SMS_PROVIDER_URL: z.string().refine((value) => isUrl(value, ['https:', 'http:']), { message: 'must be an absolute http(s) URL' }).optional(),
  SMS_PROVIDER_AUTHORIZATION: z.string().trim().min(1).max(2000).refine((value) => !/[\r\n]/.test(value), { message: 'must be one line' }).optional(),
  SMS_FROM: z.string().trim().min(1).max(64).optional(),
  SMS_PROVIDER_FORMAT: z.enum(['json', 'form'], { message: 'must be json or form' }),
  WHATSAPP_API_URL: z.string().refine((value) => isUrl(value, ['https:', 'http:']) && !/[?#]/.test(value), { message: 'must be an absolute http(s) URL without a query or fragment' }),
  WHATSAPP_PHONE_NUMBER_ID: z.string().trim().regex(/^[0-9]{1,32}$/, 'must be the numeric phone number id from Meta').optional(),
  WHATSAPP_ACCESS_TOKEN: z.string().trim().min(1).max(4000).refine((value) => !/[\r\n]/.test(value), { message: 'must be one line' }).optional(),
  WHATSAPP_TEMPLATE_NAME: z.string().trim().regex(/^[a-z0-9_]{1,512}$/, 'must be a template name: lowercase letters, digits and _').optional(),
  WHATSAPP_TEMPLATE_LANGUAGE: z.string().trim().regex(/^[a-z]{2,3}(?:_[A-Z]{2})?$/, 'must be a template language code, such as en or en_US'),
  REQUEST_TIMEOUT: wholeNumber(1, 600, 'must be a whole number of seconds from 1 to 600'),
  API_KEY_ENVIRONMENT: z.string().regex(/^[a-z0-9]{1,16}$/, 'must be 1 to 16 lowercase letters or digits, such as live or test'),
  API_KEY_RATE_LIMIT: wholeNumber(1, 1_000_000, 'must be a whole number of requests from 1 to 1000000'),
  API_KEY_RATE_WINDOW: wholeNumber(1, 86400, 'must be a whole number of seconds from 1 to 86400'),
  API_KEY_USAGE_FLUSH_INTERVAL: wholeNumber(1, 86400, 'must be a whole number of seconds from 1 to 86400'),
  API_KEY_CACHE_TTL: wholeNumber(1, 300, 'must be a whole number of seconds from 1 to 300'),
  TLS_CERT_FILE: z.string().min(1).optional(),
  TLS_KEY_FILE: z.string().min(1).optional(),
  MTLS_CLIENT_CA_FILE: z.string().min(1).optional(),
  MTLS_CERTIFICATE_HEADER: z.string().regex(/^[A-Za-z0-9-]{1,100}$/, 'must be an HTTP header name').optional(),
  MTLS_ENDPOINT_ALIASES_URL: z.string().refine((value) => isUrl(value, ['https:']) && !value.endsWith('/') && !/[?#]/.test(value), {
    message: 'must be an absolute https URL without a trailing slash, query or fragment',
  }).optional(),
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
  FEDERATION_TIMEOUT: '10',
  CAPTCHA_PROVIDER: 'pow',
  CAPTCHA_AFTER_FAILURES: '3',
  CAPTCHA_AFTER_IP_FAILURES: '20',
  CAPTCHA_POW_DIFFICULTY: '18',
  SPRAYING_MAX_IDENTIFIERS: '10',
  SPRAYING_WINDOW: '600',
  SPRAYING_BLOCK: '900',
  LOGIN_IDENTIFIER_LIMIT: '30',
  RESET_IDENTIFIER_LIMIT: '5',
  IDENTIFIER_LIMIT_WINDOW: '900',
  // Per client address (or client) and window; docs/security.md explains each.
  RATE_LIMIT_LOGIN_PER_IP: '300/60',
  RATE_LIMIT_OTP_PER_IP: '30/300',
  RATE_LIMIT_REGISTRATION_PER_IP: '20/3600',
  RATE_LIMIT_PASSWORD_RESET_PER_IP: '20/900',
  RATE_LIMIT_TOKEN_PER_IP: '1200/60',
  RATE_LIMIT_TOKEN_PER_CLIENT: '1200/60',
  RATE_LIMIT_INTROSPECTION_PER_IP: '6000/60',
  RATE_LIMIT_REVOCATION_PER_IP: '600/60',
  // One-time codes (docs/one-time-codes.md): sends per phone number or address, and per client address.
  RATE_LIMIT_OTP_SEND_PER_DESTINATION: '5/3600',
  RATE_LIMIT_OTP_SEND_PER_IP: '30/600',
  OTP_CODE_TTL_SECONDS: '300',
  OTP_RESEND_COOLDOWN_SECONDS: '30',
  OTP_PROVIDER_TIMEOUT: '10',
  SMS_PROVIDER_FORMAT: 'json',
  WHATSAPP_API_URL: 'https://graph.facebook.com/v21.0',
  WHATSAPP_TEMPLATE_LANGUAGE: 'en',
  REQUEST_TIMEOUT: '30',
  API_KEY_ENVIRONMENT: 'live',
  API_KEY_RATE_LIMIT: '1000',
  API_KEY_RATE_WINDOW: '60',
  API_KEY_USAGE_FLUSH_INTERVAL: '60',
  API_KEY_CACHE_TTL: '30',
};

export interface RateLimitSetting {
  points: number;
  durationSeconds: number;
}

// undefined: that limit is off.
export interface RateLimitSettings {
  loginPerIp?: RateLimitSetting;
  otpPerIp?: RateLimitSetting;
  registrationPerIp?: RateLimitSetting;
  passwordResetPerIp?: RateLimitSetting;
  tokenPerIp?: RateLimitSetting;
  tokenPerClient?: RateLimitSetting;
  introspectionPerIp?: RateLimitSetting;
  revocationPerIp?: RateLimitSetting;
  otpSendPerDestination?: RateLimitSetting;
  otpSendPerIp?: RateLimitSetting;
}

export interface SignInProtectionConfig {
  // The challenge shown once a sign-in looks suspicious: pow (built in, no third party) or a
  // hosted widget checked through the provider's siteverify (verifyUrl overrides its address).
  captcha: { provider: 'pow' | 'turnstile' | 'hcaptcha' | 'recaptcha'; siteKey?: string; secret?: string; verifyUrl?: string; afterFailures: number; afterIpFailures: number; powDifficulty: number };
  // One address failing for more than maxIdentifiers distinct identifiers within windowSeconds is
  // kept from signing in for blockSeconds (0 identifiers: off).
  spraying: { maxIdentifiers: number; windowSeconds: number; blockSeconds: number };
  // Attempts per identifier per windowSeconds, whoever makes them: sign-ins and reset requests.
  identifierLimits: { login: number; reset: number; windowSeconds: number };
}

export interface Config {
  issuer: string;
  port: number;
  host: string;
  trustedProxies: string[];
  database: { url?: string; poolMax: number; dataDir: string };
  redis: { urls?: string[]; keyPrefix: string };
  keyEncryptionKey?: Buffer;
  // Earlier key-encryption keys, still tried when opening sealed values (key rotation).
  previousKeyEncryptionKeys: Buffer[];
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
  federation: { timeoutMs: number };
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
  // Sign-in abuse protection (docs/login-experience.md, "Brute-force, lockout and CAPTCHA").
  signInProtection: SignInProtectionConfig;
  // Requests per client address / client and window on the abuse-prone endpoints (docs/security.md).
  rateLimits: RateLimitSettings;
  // A request still unanswered after this long gets 503 (docs/security.md).
  requestTimeoutSeconds: number;
  // API keys (docs/api-keys.md): the environment named in every key, the default per-key rate
  // limit (requests per window), how often usage moves from the hot store to PostgreSQL, and how
  // long an instance keeps a verified key in memory (changes reach every instance at once anyway).
  apiKeys: { environment: string; rateLimit: number; rateWindowSeconds: number; usageFlushIntervalSeconds: number; cacheSeconds: number };
  // Served over HTTPS itself (PEM files); client certificates are asked for, never required.
  tls?: { certFile: string; keyFile: string };
  // Mutual TLS (RFC 8705, docs/machine-to-machine.md): the CAs trusted to issue tls_client_auth
  // certificates; the header a trusted proxy forwards the client certificate in; the origin of the
  // mTLS endpoint aliases published in discovery.
  mtls: { clientCaFile?: string; certificateHeader?: string; endpointAliasesUrl?: string };
  // One-time codes by e-mail, SMS and WhatsApp (docs/one-time-codes.md). sms / whatsapp are set
  // when their provider is configured.
  oneTimeCodes: OneTimeCodeConfig;
  // True when PostgreSQL or Redis is replaced by the embedded stores.
  embedded: { database: boolean; hotStore: boolean };
}

export class ConfigError extends Error {}

export interface OneTimeCodeConfig {
  codeTtlSeconds: number;
  resendCooldownSeconds: number;
  providerTimeoutSeconds: number;
  sms?: { url: string; authorization?: string; from?: string; format: 'json' | 'form' };
  whatsapp?: { apiUrl: string; phoneNumberId: string; accessToken: string; templateName: string; templateLanguage: string };
}

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
  if (c.CAPTCHA_PROVIDER !== 'pow' && (!c.CAPTCHA_SITE_KEY || !c.CAPTCHA_SECRET)) {
    throw new ConfigError(`invalid configuration: CAPTCHA_SITE_KEY and CAPTCHA_SECRET are required with CAPTCHA_PROVIDER=${c.CAPTCHA_PROVIDER}`);
  }
  if (Boolean(c.TLS_CERT_FILE) !== Boolean(c.TLS_KEY_FILE)) {
    throw new ConfigError(`invalid configuration: ${c.TLS_CERT_FILE ? 'TLS_KEY_FILE' : 'TLS_CERT_FILE'} must be set with ${c.TLS_CERT_FILE ? 'TLS_CERT_FILE' : 'TLS_KEY_FILE'}`);
  }
  const whatsappSettings = [c.WHATSAPP_PHONE_NUMBER_ID, c.WHATSAPP_ACCESS_TOKEN, c.WHATSAPP_TEMPLATE_NAME];
  if (whatsappSettings.some(Boolean) && !whatsappSettings.every(Boolean)) {
    throw new ConfigError('invalid configuration: WHATSAPP_PHONE_NUMBER_ID, WHATSAPP_ACCESS_TOKEN and WHATSAPP_TEMPLATE_NAME must be set together');
  }
  return {
    issuer: c.ISSUER,
    port: c.PORT,
    host: c.HOST,
    trustedProxies: splitList(c.TRUSTED_PROXIES),
    database: { url: c.DATABASE_URL, poolMax: c.DATABASE_POOL_MAX, dataDir: c.DATA_DIR },
    redis: { urls: c.REDIS_URL ? splitList(c.REDIS_URL) : undefined, keyPrefix: c.REDIS_KEY_PREFIX },
    keyEncryptionKey: c.KEY_ENCRYPTION_KEY ? Buffer.from(c.KEY_ENCRYPTION_KEY, 'base64') : undefined,
    previousKeyEncryptionKeys: c.KEY_ENCRYPTION_KEY_PREVIOUS ? splitList(c.KEY_ENCRYPTION_KEY_PREVIOUS).map((key) => Buffer.from(key, 'base64')) : [],
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
    federation: { timeoutMs: c.FEDERATION_TIMEOUT * 1000 },
    mail: { smtpUrl: c.MAIL_SMTP_URL, from: c.MAIL_FROM, outboxDir: c.MAIL_OUTBOX_DIR ?? path.join(c.DATA_DIR, 'outbox'), outboxPage: c.MAIL_OUTBOX_PAGE === 'true' },
    events: { streamMaxLength: c.EVENTS_STREAM_MAX_LENGTH, retentionSeconds: c.EVENTS_RETENTION, webhookMaxAttempts: c.WEBHOOK_MAX_ATTEMPTS, webhookTimeoutSeconds: c.WEBHOOK_TIMEOUT },
    embedded: { database: !c.DATABASE_URL, hotStore: !c.REDIS_URL },
    metricsToken: c.METRICS_TOKEN,
    signInProtection: {
      captcha: {
        provider: c.CAPTCHA_PROVIDER,
        siteKey: c.CAPTCHA_SITE_KEY,
        secret: c.CAPTCHA_SECRET,
        verifyUrl: c.CAPTCHA_VERIFY_URL,
        afterFailures: c.CAPTCHA_AFTER_FAILURES,
        afterIpFailures: c.CAPTCHA_AFTER_IP_FAILURES,
        powDifficulty: c.CAPTCHA_POW_DIFFICULTY,
      },
      spraying: { maxIdentifiers: c.SPRAYING_MAX_IDENTIFIERS, windowSeconds: c.SPRAYING_WINDOW, blockSeconds: c.SPRAYING_BLOCK },
      identifierLimits: { login: c.LOGIN_IDENTIFIER_LIMIT, reset: c.RESET_IDENTIFIER_LIMIT, windowSeconds: c.IDENTIFIER_LIMIT_WINDOW },
    },
    rateLimits: {
      loginPerIp: c.RATE_LIMIT_LOGIN_PER_IP,
      otpPerIp: c.RATE_LIMIT_OTP_PER_IP,
      registrationPerIp: c.RATE_LIMIT_REGISTRATION_PER_IP,
      passwordResetPerIp: c.RATE_LIMIT_PASSWORD_RESET_PER_IP,
      tokenPerIp: c.RATE_LIMIT_TOKEN_PER_IP,
      tokenPerClient: c.RATE_LIMIT_TOKEN_PER_CLIENT,
      introspectionPerIp: c.RATE_LIMIT_INTROSPECTION_PER_IP,
      revocationPerIp: c.RATE_LIMIT_REVOCATION_PER_IP,
      otpSendPerDestination: c.RATE_LIMIT_OTP_SEND_PER_DESTINATION,
      otpSendPerIp: c.RATE_LIMIT_OTP_SEND_PER_IP,
    },
    requestTimeoutSeconds: c.REQUEST_TIMEOUT,
    apiKeys: { environment: c.API_KEY_ENVIRONMENT, rateLimit: c.API_KEY_RATE_LIMIT, rateWindowSeconds: c.API_KEY_RATE_WINDOW, usageFlushIntervalSeconds: c.API_KEY_USAGE_FLUSH_INTERVAL, cacheSeconds: c.API_KEY_CACHE_TTL },
    tls: c.TLS_CERT_FILE && c.TLS_KEY_FILE ? { certFile: c.TLS_CERT_FILE, keyFile: c.TLS_KEY_FILE } : undefined,
    mtls: { clientCaFile: c.MTLS_CLIENT_CA_FILE, certificateHeader: c.MTLS_CERTIFICATE_HEADER?.toLowerCase(), endpointAliasesUrl: c.MTLS_ENDPOINT_ALIASES_URL },
    oneTimeCodes: {
      codeTtlSeconds: c.OTP_CODE_TTL_SECONDS,
      resendCooldownSeconds: c.OTP_RESEND_COOLDOWN_SECONDS,
      providerTimeoutSeconds: c.OTP_PROVIDER_TIMEOUT,
      sms: c.SMS_PROVIDER_URL ? { url: c.SMS_PROVIDER_URL, authorization: c.SMS_PROVIDER_AUTHORIZATION, from: c.SMS_FROM, format: c.SMS_PROVIDER_FORMAT } : undefined,
      whatsapp:
        c.WHATSAPP_PHONE_NUMBER_ID && c.WHATSAPP_ACCESS_TOKEN && c.WHATSAPP_TEMPLATE_NAME
          ? { apiUrl: c.WHATSAPP_API_URL, phoneNumberId: c.WHATSAPP_PHONE_NUMBER_ID, accessToken: c.WHATSAPP_ACCESS_TOKEN, templateName: c.WHATSAPP_TEMPLATE_NAME, templateLanguage: c.WHATSAPP_TEMPLATE_LANGUAGE }
          : undefined,
    },
  };
}

function splitList(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
}
