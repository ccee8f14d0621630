// Units under the abuse protection: the shared rate limiter (its per-process insurance when Redis
// is unreachable), CIDR parsing for IPv4 and IPv6, and the client address behind trusted proxies.
import { expect } from 'chai';
import net from 'node:net';
import { createRateLimiter } from '../../src/security/rate-limiter.ts';
import { createLeasedRateLimiter } from '../../src/security/leased-rate-limiter.ts';
import { MemoryHotStore } from '../../src/store/memory-hot-store.ts';
import { RedisHotStore } from '../../src/store/redis-hot-store.ts';
import { addressList, isCidr, parseCidr } from '../../src/security/cidr.ts';
import { clientAddressResolver } from '../../src/security/client-ip.ts';
import { loadConfig, ConfigError } from '../../src/config.ts';
import { createRateLimits } from '../../src/security/rate-limits.ts';
import { pino } from 'pino';

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('rate limiter', () => {
  it('allows the configured points, then refuses with Retry-After, telling the first refusal apart', async () => {
    const limiter = createRateLimiter(new MemoryHotStore(), { name: 'unit', points: 2, durationSeconds: 30 });
    expect((await limiter.consume('k')).allowed).to.equal(true);
    expect((await limiter.consume('k')).remaining).to.equal(0);
    const first = await limiter.consume('k');
    expect(first).to.include({ allowed: false, firstRefusal: true });
    expect(first.retryAfterSeconds).to.be.within(1, 30);
    expect(await limiter.consume('k')).to.include({ allowed: false, firstRefusal: false });
    expect((await limiter.consume('other')).allowed).to.equal(true);
    await limiter.reset('k');
    expect((await limiter.consume('k')).allowed).to.equal(true);
  });

  it('still answers from its per-process insurance when Redis is unreachable', async () => {
    const hot = new RedisHotStore({ urls: [`redis://127.0.0.1:${await closedPort()}`], keyPrefix: 'unit:' });
    try {
      const limiter = createRateLimiter(hot, { name: 'insured', points: 2, durationSeconds: 30 });
      const decisions = [];
      for (let i = 0; i < 3; i += 1) decisions.push(await limiter.consume('k'));
      expect(decisions.map((decision) => decision.allowed)).to.deep.equal([true, true, false]);
      expect(decisions[2].firstRefusal).to.equal(true);
    } finally {
      await hot.close().catch(() => {});
    }
  });
});

describe('leased rate limiter', () => {
  // The shared limiter, counting how often it is asked.
  function countedShared(points: number) {
    const shared = createRateLimiter(new MemoryHotStore(), { name: 'leased-unit', points, durationSeconds: 60 });
    const asked: number[] = [];
    return {
      asked,
      limiter: { ...shared, consume: (key: string, cost = 1) => (asked.push(cost), shared.consume(key, cost)) },
    };
  }

  it('spends leases taken from the shared count in memory, and answers a look without spending from a lease that holds points', async () => {
    const { asked, limiter } = countedShared(1000);
    const leased = createLeasedRateLimiter(limiter);
    for (let i = 0; i < 6; i += 1) expect((await leased.consume('client')).allowed).to.equal(true);
    expect(asked, 'leases of 1, 2 and 4 points').to.deep.equal([1, 2, 4]);
    const look = await leased.consume('client', 0);
    expect(look.allowed).to.equal(true);
    expect(look.remaining).to.be.greaterThan(0);
    expect(asked, 'the look cost no round trip: the lease holds a point').to.have.length(3);
    await leased.consume('client');
    expect(await leased.consume('client', 0)).to.include({ allowed: true });
    expect(asked, 'with the lease spent, the look asks the shared count').to.deep.equal([1, 2, 4, 0]);
    await leased.consume('client');
    expect(asked.at(-1), 'the next lease is twice the last').to.equal(8);
  });

  it('never admits more than the budget, and asks the shared count when no lease holds points', async () => {
    const { asked, limiter } = countedShared(3);
    const leased = createLeasedRateLimiter(limiter);
    const decisions = [];
    for (let i = 0; i < 5; i += 1) decisions.push(await leased.consume('ip'));
    expect(decisions.map((decision) => decision.allowed)).to.deep.equal([true, true, true, false, false]);
    expect(decisions.filter((decision) => decision.firstRefusal)).to.have.length(1);
    const before = asked.length;
    expect((await leased.consume('ip', 0)).allowed).to.equal(false);
    expect(asked.length, 'a spent window is asked again, without spending').to.equal(before + 1);
    expect(asked.at(-1)).to.equal(0);
  });
});

describe('rate limit rules', () => {
  it('counts each state-changing request against every limit of its endpoint, and nothing else', () => {
    const limits = createRateLimits({ hot: new MemoryHotStore(), settings: loadConfig({}).rateLimits, audit: { record: async () => ({ id: '', seq: 0 }) }, log: pino({ level: 'silent' }) });
    const names = (method: string, path: string) => limits.match(method, path).map(({ limiter }) => limiter.name);
    expect(names('POST', '/interaction/abc/login')).to.deep.equal(['login-per-ip']);
    expect(names('POST', '/interaction/abc/mfa')).to.deep.equal(['login-per-ip', 'otp-per-ip']);
    expect(names('POST', '/interaction/abc/mfa/backup')).to.deep.equal(['login-per-ip', 'otp-per-ip']);
    expect(names('POST', '/interaction/abc/register')).to.deep.equal(['login-per-ip', 'registration-per-ip']);
    expect(names('POST', '/account/mfa/confirm')).to.deep.equal(['otp-per-ip']);
    expect(names('POST', '/api/v1/me/mfa/totp/confirm')).to.deep.equal(['otp-per-ip']);
    expect(names('POST', '/password/forgot')).to.deep.equal(['password-reset-per-ip']);
    expect(names('POST', '/password/reset')).to.deep.equal(['password-reset-per-ip']);
    expect(names('POST', '/token')).to.deep.equal(['token-per-ip']);
    expect(names('POST', '/token/introspection')).to.deep.equal(['introspection-per-ip']);
    expect(names('POST', '/token/revocation')).to.deep.equal(['revocation-per-ip']);
    expect(limits.tokenPerClient?.name).to.equal('token-per-client');
    expect(names('GET', '/interaction/abc')).to.deep.equal([]);
    expect(names('GET', '/password/forgot')).to.deep.equal([]);
    expect(names('POST', '/api/v1/tenants')).to.deep.equal([]);
    const off = createRateLimits({ hot: new MemoryHotStore(), settings: loadConfig({ RATE_LIMIT_OTP_PER_IP: 'off', RATE_LIMIT_TOKEN_PER_CLIENT: 'off' }).rateLimits, audit: { record: async () => ({ id: '', seq: 0 }) }, log: pino({ level: 'silent' }) });
    expect(off.match('POST', '/interaction/abc/mfa').map(({ limiter }) => limiter.name)).to.deep.equal(['login-per-ip']);
    expect(off.tokenPerClient).to.equal(undefined);
  });
});

describe('CIDR ranges', () => {
  it('parses IPv4, IPv6, mapped IPv4 and bare addresses, and refuses anything else', () => {
    expect(parseCidr('10.0.0.0/8')).to.deep.equal({ address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    expect(parseCidr('2001:db8::/32')).to.deep.equal({ address: '2001:db8::', prefix: 32, family: 'ipv6' });
    expect(parseCidr('::ffff:10.0.0.0/104')).to.deep.equal({ address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    expect(parseCidr('192.0.2.7')).to.deep.equal({ address: '192.0.2.7', prefix: 32, family: 'ipv4' });
    expect(parseCidr('::1')).to.deep.equal({ address: '::1', prefix: 128, family: 'ipv6' });
    for (const bad of ['10.0.0.0/33', '2001:db8::/129', '300.1.1.1/8', 'example.com', '10.0.0.0/8/8', '10.0.0.0/-1', 'fe80::1%eth0/64', '', '10.0.0.0/ 8']) {
      expect(isCidr(bad), bad).to.equal(false);
    }
  });

  it('matches addresses of both families, IPv4 seen through IPv6 sockets included', () => {
    const list = addressList(['10.0.0.0/8', '2001:db8::/32']);
    expect(list.has('10.20.30.40')).to.equal(true);
    expect(list.has('::ffff:10.20.30.40')).to.equal(true);
    expect(list.has('11.0.0.1')).to.equal(false);
    expect(list.has('2001:db8:1::5')).to.equal(true);
    expect(list.has('2001:db9::1')).to.equal(false);
    expect(list.has('not-an-address')).to.equal(false);
  });
});

describe('client address', () => {
  const resolver = clientAddressResolver(['127.0.0.1', '10.0.0.0/8']);

  it('ignores X-Forwarded-For from a peer that is not a trusted proxy', () => {
    expect(resolver.resolve('192.0.2.9', '203.0.113.5')).to.equal('192.0.2.9');
    expect(resolver.resolve('::ffff:192.0.2.9', '203.0.113.5')).to.equal('192.0.2.9');
  });

  it('walks X-Forwarded-For from the right past trusted hops only', () => {
    expect(resolver.resolve('127.0.0.1', '203.0.113.5')).to.equal('203.0.113.5');
    // The client wrote 198.51.100.1 itself; the proxies appended the real address and their own.
    expect(resolver.resolve('::ffff:127.0.0.1', '198.51.100.1, 203.0.113.5, 10.1.2.3')).to.equal('203.0.113.5');
    expect(resolver.resolve('127.0.0.1', '[2001:db8::7]:443')).to.equal('2001:db8::7');
    expect(resolver.resolve('127.0.0.1', '203.0.113.5:51000')).to.equal('203.0.113.5');
    // A malformed hop ends the chain: the last good address stands.
    expect(resolver.resolve('127.0.0.1', '203.0.113.5, garbage, 10.1.2.3')).to.equal('10.1.2.3');
    expect(resolver.resolve('127.0.0.1', undefined)).to.equal('127.0.0.1');
  });

  it('refuses TRUSTED_PROXIES entries that are not addresses or ranges, and limits that do not parse', () => {
    expect(() => loadConfig({ TRUSTED_PROXIES: '10.0.0.1, proxy.internal' })).to.throw(ConfigError, /TRUSTED_PROXIES/);
    expect(loadConfig({ TRUSTED_PROXIES: '10.0.0.0/8, 2001:db8::/32' }).trustedProxies).to.deep.equal(['10.0.0.0/8', '2001:db8::/32']);
    expect(() => loadConfig({ RATE_LIMIT_TOKEN_PER_IP: '10 per minute' })).to.throw(ConfigError, /RATE_LIMIT_TOKEN_PER_IP/);
    const config = loadConfig({ RATE_LIMIT_TOKEN_PER_IP: '10/60', RATE_LIMIT_OTP_PER_IP: 'off' });
    expect(config.rateLimits.tokenPerIp).to.deep.equal({ points: 10, durationSeconds: 60 });
    expect(config.rateLimits.otpPerIp).to.equal(undefined);
  });
});
