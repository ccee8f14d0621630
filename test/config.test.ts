// loadConfig(env) and the instance secrets, through their public functions, plus the two start-up
// refusals an operator sees first, through the real command line.
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ConfigError, loadConfig } from '../src/config.ts';
import { resolveInstanceSecrets } from '../src/security/instance-secrets.ts';
import { idp, type Run } from './helpers/cli.ts';

const KEK = randomBytes(32).toString('base64');
const COOKIE_KEY = randomBytes(32).toString('base64url');
const PG = 'postgres://idp@127.0.0.1:1/idp';

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

// One line, naming the variable right after the prefix.
function expectRejected(env: Record<string, string>, variable: string): void {
  const { message } = configError(env);
  expect(message, message).to.match(new RegExp(`^invalid configuration: ${variable} \\S`));
  expect(message).to.not.include('\n');
}

describe('configuration: loadConfig(env)', () => {
  it('defaults to the embedded mode with production-safe values', () => {
    const config = loadConfig({});
    expect(config.embedded).to.deep.equal({ database: true, hotStore: true });
    expect(config.issuer).to.equal('http://localhost:3000');
    expect(config.port).to.equal(3000);
    expect(config.host).to.equal('0.0.0.0');
    expect(config.trustedProxies).to.deep.equal([]);
    expect(config.database).to.deep.equal({ url: undefined, poolMax: 10, dataDir: './data' });
    expect(config.redis).to.deep.equal({ urls: undefined, keyPrefix: 'idp:' });
    expect(config.keyEncryptionKey).to.equal(undefined);
    expect(config.cookieKeys).to.equal(undefined);
    expect(config.signingAlg).to.equal('RS256');
    expect(config.ttl).to.deep.equal({
      accessToken: 3600,
      clientCredentials: 600,
      idToken: 3600,
      refreshToken: 14 * 24 * 3600,
      session: 14 * 24 * 3600,
      grant: 14 * 24 * 3600,
      interaction: 3600,
      authorizationCode: 60,
    });
    expect(config.argon2).to.deep.equal({ memoryCost: 19456, timeCost: 2, parallelism: 1 });
    expect(config.logLevel).to.equal('info');
  });

  it('treats an empty variable as unset', () => {
    const config = loadConfig({ PORT: '', DATABASE_URL: '', REDIS_URL: '', ISSUER: '' });
    expect(config.port).to.equal(3000);
    expect(config.issuer).to.equal('http://localhost:3000');
    expect(config.embedded).to.deep.equal({ database: true, hotStore: true });
  });

  it('reads only the env object it is given, not process.env', () => {
    const saved = process.env.PORT;
    process.env.PORT = '4321';
    try {
      expect(loadConfig({}).port).to.equal(3000);
    } finally {
      if (saved === undefined) delete process.env.PORT;
      else process.env.PORT = saved;
    }
  });

  it('leaves the embedded mode with DATABASE_URL and REDIS_URL, and types every value', () => {
    const config = loadConfig({
      ISSUER: 'https://id.example.com/tenant-a',
      PORT: '8443',
      TRUSTED_PROXIES: '10.0.0.0/8, 192.168.0.1',
      DATABASE_URL: 'postgresql://idp:secret@db.internal:5432/idp',
      DATABASE_POOL_MAX: '25',
      REDIS_URL: 'rediss://cache.internal:6380',
      KEY_ENCRYPTION_KEY: KEK,
      COOKIE_KEYS: `${COOKIE_KEY},${'o'.repeat(32)}`,
      SIGNING_ALG: 'EdDSA',
      ACCESS_TOKEN_TTL: '900',
    });
    expect(config.embedded).to.deep.equal({ database: false, hotStore: false });
    expect(config.issuer).to.equal('https://id.example.com/tenant-a');
    expect(config.port).to.equal(8443);
    expect(config.trustedProxies).to.deep.equal(['10.0.0.0/8', '192.168.0.1']);
    expect(config.database.url).to.equal('postgresql://idp:secret@db.internal:5432/idp');
    expect(config.database.poolMax).to.equal(25);
    expect(config.redis.urls).to.deep.equal(['rediss://cache.internal:6380']);
    expect(config.keyEncryptionKey).to.be.instanceOf(Buffer);
    expect(config.keyEncryptionKey!.equals(Buffer.from(KEK, 'base64'))).to.equal(true);
    expect(config.cookieKeys).to.deep.equal([COOKIE_KEY, 'o'.repeat(32)]);
    expect(config.signingAlg).to.equal('EdDSA');
    expect(config.ttl.accessToken).to.equal(900);
  });

  it('turns a comma-separated REDIS_URL into a cluster seed list', () => {
    const config = loadConfig({ REDIS_URL: 'redis://10.0.0.1:7000,redis://10.0.0.2:7001, redis://10.0.0.3:7002' });
    expect(config.redis.urls).to.deep.equal(['redis://10.0.0.1:7000', 'redis://10.0.0.2:7001', 'redis://10.0.0.3:7002']);
    expect(config.embedded.hotStore).to.equal(false);
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379' }).redis.urls).to.deep.equal(['redis://127.0.0.1:6379']);
  });

  const wrong: Array<[string, string]> = [
    ['ISSUER', 'http://localhost:3000/'],
    ['ISSUER', 'https://id.example.com/realm/'],
    ['ISSUER', 'not a url'],
    ['ISSUER', 'localhost:3000'],
    ['ISSUER', 'ftp://id.example.com'],
    ['ISSUER', 'https://id.example.com?tenant=a'],
    ['ISSUER', 'https://id.example.com#top'],
    ['PORT', '65536'],
    ['PORT', '-1'],
    ['PORT', 'abc'],
    ['PORT', '80.5'],
    ['DATABASE_URL', 'mysql://idp@db/idp'],
    ['DATABASE_URL', 'db.internal:5432'],
    ['DATABASE_POOL_MAX', '0'],
    ['REDIS_URL', 'localhost:6379'],
    ['REDIS_URL', 'redis://'],
    ['REDIS_URL', 'http://cache.internal:6379'],
    ['REDIS_URL', 'redis://cache.internal:port'],
    ['REDIS_URL', 'redis://a:7000,,redis://b:7001'],
    ['REDIS_URL', 'redis://a:7000,b:7001'],
    ['KEY_ENCRYPTION_KEY', 'c2hvcnQ='],
    ['KEY_ENCRYPTION_KEY', Buffer.alloc(16, 7).toString('base64')],
    ['KEY_ENCRYPTION_KEY', Buffer.alloc(33, 7).toString('base64')],
    ['KEY_ENCRYPTION_KEY', Buffer.alloc(32, 7).toString('hex')],
    ['COOKIE_KEYS', 'too-short'],
    ['COOKIE_KEYS', `${'k'.repeat(32)},short`],
    ['SIGNING_ALG', 'HS256'],
    ['SIGNING_ALG', 'rs256'],
    ['ACCESS_TOKEN_TTL', '0'],
    ['ACCESS_TOKEN_TTL', 'one hour'],
    ['ACCESS_TOKEN_TTL', '-60'],
    ['REFRESH_TOKEN_TTL', '1.5'],
    ['SESSION_TTL', '0'],
    ['AUTHORIZATION_CODE_TTL', 'abc'],
    ['ID_TOKEN_TTL', ' '],
    ['PURGE_INTERVAL', '0'],
    ['ARGON2_MEMORY_KIB', '1024'],
    ['LOG_LEVEL', 'verbose'],
  ];
  for (const [variable, value] of wrong) {
    it(`rejects ${variable}=${JSON.stringify(value)} with one line naming ${variable}`, () => {
      expectRejected({ [variable]: value }, variable);
    });
  }

  it('reports only the first wrong variable when several are wrong, still on one line', () => {
    const { message } = configError({ PORT: 'abc', SIGNING_ALG: 'none', ACCESS_TOKEN_TTL: '0' });
    expect(message.split('\n')).to.have.length(1);
    expect(message).to.match(/^invalid configuration: (PORT|SIGNING_ALG|ACCESS_TOKEN_TTL) /);
  });

  it('does not echo a rejected secret back in the message', () => {
    const notQuiteAKey = randomBytes(31).toString('base64');
    const { message } = configError({ KEY_ENCRYPTION_KEY: notQuiteAKey });
    expect(message).to.not.include(notQuiteAKey);
  });
});

describe('configuration: instance secrets', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'idp-config-'));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses to run with DATABASE_URL but no KEY_ENCRYPTION_KEY, naming the variable', () => {
    const config = loadConfig({ DATABASE_URL: PG, COOKIE_KEYS: COOKIE_KEY, DATA_DIR: dir });
    expect(() => resolveInstanceSecrets(config))
      .to.throw(ConfigError)
      .with.property('message')
      .that.matches(/KEY_ENCRYPTION_KEY is required when DATABASE_URL is set/);
    expect(existsSync(path.join(dir, 'instance-secrets.json'))).to.equal(false);
  });

  it('refuses to run with DATABASE_URL and neither secret, naming KEY_ENCRYPTION_KEY', () => {
    const config = loadConfig({ DATABASE_URL: PG, DATA_DIR: dir });
    expect(() => resolveInstanceSecrets(config)).to.throw(ConfigError, /KEY_ENCRYPTION_KEY/);
  });

  it('refuses to run with DATABASE_URL but no COOKIE_KEYS, naming the variable', () => {
    const config = loadConfig({ DATABASE_URL: PG, KEY_ENCRYPTION_KEY: KEK, DATA_DIR: dir });
    expect(() => resolveInstanceSecrets(config))
      .to.throw(ConfigError)
      .with.property('message')
      .that.matches(/COOKIE_KEYS is required when DATABASE_URL is set/);
    expect(existsSync(path.join(dir, 'instance-secrets.json'))).to.equal(false);
  });

  it('takes both secrets from the environment when given, writing nothing', () => {
    const config = loadConfig({ DATABASE_URL: PG, KEY_ENCRYPTION_KEY: KEK, COOKIE_KEYS: COOKIE_KEY, DATA_DIR: dir });
    const secrets = resolveInstanceSecrets(config);
    expect(secrets.generated).to.equal(false);
    expect(secrets.keyEncryptionKey.equals(Buffer.from(KEK, 'base64'))).to.equal(true);
    expect(secrets.cookieKeys).to.deep.equal([COOKIE_KEY]);
    expect(existsSync(path.join(dir, 'instance-secrets.json'))).to.equal(false);
  });

  it('in embedded mode generates the secrets once into DATA_DIR (mode 0600) and reuses them', () => {
    const dataDir = path.join(dir, 'nested', 'data');
    const config = loadConfig({ DATA_DIR: dataDir });
    const first = resolveInstanceSecrets(config);
    const file = path.join(dataDir, 'instance-secrets.json');
    expect(existsSync(file)).to.equal(true);
    expect(statSync(file).mode & 0o777).to.equal(0o600);
    expect(first.generated).to.equal(true);
    expect(first.keyEncryptionKey).to.have.length(32);
    expect(first.cookieKeys).to.have.length(1);
    expect(first.cookieKeys[0]).to.have.length.of.at.least(32);

    const stored = JSON.parse(readFileSync(file, 'utf8')) as { keyEncryptionKey: string; cookieKeys: string[] };
    expect(Buffer.from(stored.keyEncryptionKey, 'base64').equals(first.keyEncryptionKey)).to.equal(true);
    expect(stored.cookieKeys).to.deep.equal(first.cookieKeys);

    const before = readFileSync(file, 'utf8');
    const second = resolveInstanceSecrets(loadConfig({ DATA_DIR: dataDir }));
    expect(second.keyEncryptionKey.equals(first.keyEncryptionKey)).to.equal(true);
    expect(second.cookieKeys).to.deep.equal(first.cookieKeys);
    expect(readFileSync(file, 'utf8')).to.equal(before);
    expect(statSync(file).mode & 0o777).to.equal(0o600);
  });

  it('gives each embedded data directory its own secrets', () => {
    const a = resolveInstanceSecrets(loadConfig({ DATA_DIR: path.join(dir, 'a') }));
    const b = resolveInstanceSecrets(loadConfig({ DATA_DIR: path.join(dir, 'b') }));
    expect(a.keyEncryptionKey.equals(b.keyEncryptionKey)).to.equal(false);
    expect(a.cookieKeys).to.not.deep.equal(b.cookieKeys);
  });

  it('in embedded mode prefers a KEY_ENCRYPTION_KEY from the environment over a generated one', () => {
    const secrets = resolveInstanceSecrets(loadConfig({ DATA_DIR: dir, KEY_ENCRYPTION_KEY: KEK }));
    expect(secrets.keyEncryptionKey.equals(Buffer.from(KEK, 'base64'))).to.equal(true);
    expect(secrets.cookieKeys).to.have.length(1);
  });
});

describe('configuration: refusals at start-up through the command line', () => {
  let dir: string;

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'idp-config-cli-'));
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function expectOneLine(run: Run, pattern: RegExp): void {
    expect(run.code, run.stderr).to.equal(1);
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines, run.stderr).to.have.length(1);
    expect(lines[0]).to.match(/^idp: /);
    expect(lines[0]).to.match(pattern);
    expect(run.stdout).to.equal('');
  }

  it('`start` with DATABASE_URL but no KEY_ENCRYPTION_KEY exits 1 with one line naming it', async () => {
    // The default log level: nothing may be logged before the refusal.
    const run = await idp(['start'], { DATABASE_URL: PG, DATA_DIR: dir, PORT: '0', HOST: '127.0.0.1' });
    expectOneLine(run, /KEY_ENCRYPTION_KEY/);
    expect(existsSync(path.join(dir, 'instance-secrets.json'))).to.equal(false);
  });

  it('`start` with PORT=abc exits 1 with one line naming PORT', async () => {
    const run = await idp(['start'], { PORT: 'abc', DATA_DIR: dir });
    expectOneLine(run, /^idp: invalid configuration: PORT /);
  });

  it('any command with a wrong value fails the same way before touching storage', async () => {
    const run = await idp(['keys', 'list'], { ISSUER: 'http://localhost:3000/', DATA_DIR: path.join(dir, 'untouched') });
    expectOneLine(run, /^idp: invalid configuration: ISSUER /);
    expect(existsSync(path.join(dir, 'untouched'))).to.equal(false);
  });
});
