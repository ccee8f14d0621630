// A bounded load test on loopback: 10,000 bad sign-ins from 200 simulated addresses (a trusted
// proxy's X-Forwarded-For), 50 at a time, each address spraying 50 of 400 identifiers (some of
// which exist, each tried from 25 addresses). Spraying blocks and lockouts turn most attempts
// away before any password check. No answer is a server error, the process stays up with its
// memory roughly flat, and a person nobody attacked still signs in afterwards.
import { expect } from 'chai';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { createFixtures } from '../helpers/fixtures.ts';
import { discover } from '../helpers/rp.ts';
import { hiddenField } from '../helpers/browser.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import { SignInDriver, type PageResult } from './sign-in.ts';
import { settledMemoryUsage } from '../helpers/memory.ts';

const ATTEMPTS = Number(process.env.LOAD_ATTEMPTS ?? 10_000);
const CONCURRENCY = 50;
const ADDRESSES = 200;
const IDENTIFIERS = 400;
const PASSWORD = 'a long enough password';

function mebibytes(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(0);
}

function addressOf(index: number): string {
  return `10.9.0.${(index % ADDRESSES) + 1}`;
}

// Each address gets a different identifier in each round (13 and 400 share no factor).
function identifierOf(index: number): string {
  return `user${(Math.floor(index / ADDRESSES) * 13 + (index % ADDRESSES)) % IDENTIFIERS}@load.test`;
}

forEachBackend('brute-force load', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let driver: SignInDriver;

  before(async function () {
    this.timeout(90_000);
    store = await backend.create();
    instance = await startInstance({ ...store.env, TRUSTED_PROXIES: '127.0.0.1/32', SPRAYING_MAX_IDENTIFIERS: '3' });
    const fixtures = await createFixtures(instance.runtime);
    driver = new SignInDriver(instance, await discover(instance.url, fixtures.web.clientId, fixtures.web.clientSecret));
    // Open sign-ins (no tenant named) follow the platform tenant's policy.
    const platform = await instance.runtime.tenants.get(DEFAULT_TENANT_ID);
    await instance.runtime.tenants.update(DEFAULT_TENANT_ID, platform.version, { policies: { ...platform.policies, lockout: { ...platform.policies.lockout, maxFailures: 5, baseLockoutSeconds: 300, delayStepMs: 2, maxDelayMs: 10 } } });
    for (let i = 0; i < IDENTIFIERS; i += 20) await instance.runtime.users.create(DEFAULT_TENANT_ID, { email: `user${i}@load.test`, password: PASSWORD, emailVerified: true });
    await instance.runtime.users.create(DEFAULT_TENANT_ID, { email: 'legit@load.test', password: PASSWORD, emailVerified: true });
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  it('survives 10,000 bad sign-ins without a server error or growing memory, and the legitimate user still signs in', async function () {
    // About 16 s per backend on a loaded 2-core machine (docs/login-experience.md).
    this.timeout(180_000);
    // One sign-in page per worker, posted to again and again from changing addresses.
    const pages: PageResult[] = await Promise.all(Array.from({ length: CONCURRENCY }, () => driver.open()));
    const statuses = new Map<number, number>();
    let next = 0;
    async function worker(page: PageResult, until: number): Promise<void> {
      const uid = page.html.match(/action="\/interaction\/([\w-]+)\//)![1];
      const action = new URL(`/interaction/${uid}/login`, instance.url);
      const csrf = hiddenField(page.html, 'csrf');
      while (next < until) {
        const index = next++;
        const response = await page.browser.fetch(action, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': addressOf(index) },
          body: new URLSearchParams({ csrf, identifier: identifierOf(index), password: `guess-${index}` }).toString(),
        });
        await response.arrayBuffer();
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      }
    }
    const started = Date.now();
    // The first fifth warms up pools, caches and the embedded database's memory; growth is
    // measured over the rest, each figure after a full garbage collection (garbage the collector
    // has not reached yet is not growth). The live JavaScript heap and the memory held outside it
    // (buffers, the embedded database) are the leak witnesses; RSS bounds the rest (V8's free
    // pages, the allocator's arenas).
    await Promise.all(pages.map((page) => worker(page, ATTEMPTS / 5)));
    const before = await settledMemoryUsage();
    await Promise.all(pages.map((page) => worker(page, ATTEMPTS)));
    const after = await settledMemoryUsage();
    const seconds = (Date.now() - started) / 1000;
    console.log(`      ${ATTEMPTS} attempts in ${seconds.toFixed(1)} s; statuses ${JSON.stringify(Object.fromEntries(statuses))}; RSS ${mebibytes(before.rss)} -> ${mebibytes(after.rss)} MiB; heap used ${mebibytes(before.heapUsed)} -> ${mebibytes(after.heapUsed)} MiB of ${mebibytes(before.heapTotal)} -> ${mebibytes(after.heapTotal)}; external ${mebibytes(before.external)} -> ${mebibytes(after.external)} MiB`);

    expect([...statuses.values()].reduce((a, b) => a + b, 0)).to.equal(ATTEMPTS);
    expect([...statuses.keys()].filter((status) => status >= 500), 'server errors').to.deep.equal([]);
    expect([...statuses.keys()].every((status) => [400, 401, 429].includes(status))).to.equal(true);
    expect(statuses.get(429) ?? 0, 'lockouts and spraying blocks').to.be.greaterThan(ATTEMPTS * 0.8);
    expect(after.heapUsed - before.heapUsed, 'JavaScript heap growth').to.be.below(64 * 2 ** 20);
    expect(after.external - before.external, 'memory held outside the heap').to.be.below(64 * 2 ** 20);
    expect(after.rss - before.rss, 'RSS growth').to.be.below(200 * 2 ** 20);

    const start = await driver.open({ ip: '192.0.2.10' });
    const password = await driver.submit(start, '/identify', { identifier: 'legit@load.test' });
    expect(password.status).to.equal(200);
    expect((await driver.submit(password, '/login', { password: PASSWORD })).status).to.equal(303);
  });
});
