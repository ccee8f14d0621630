// The oidc-provider adapter contract, run unchanged against every backend, for a model of each
// kind: hot-store models and durable (PostgreSQL-backed, cached) models.
import { expect } from 'chai';
import { randomBytes, randomUUID } from 'node:crypto';
import type { Adapter } from 'oidc-provider';
import { pino } from 'pino';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { TEST_ENV } from '../helpers/instance.ts';
import { loadConfig } from '../../src/config.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { revokeGrantEverywhere } from '../../src/oidc/adapter.ts';
import { purgeExpiredPayloads } from '../../src/oidc/durable-payloads.ts';

const now = () => Math.floor(Date.now() / 1000);
// Refresh token ids have their own length (see model-storage.ts); other models take any id.
const newId = (model: string) => (model === 'RefreshToken' ? randomBytes(48).toString('base64url') : randomUUID());
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

forEachBackend('oidc adapter contract', (backend) => {
  let store: BackendEnv;
  let runtime: Runtime;
  const adapter = (model: string): Adapter => runtime.providerHost.adapterFor(model);

  before(async () => {
    store = await backend.create();
    runtime = await createRuntime(loadConfig({ ...TEST_ENV, ...store.env }), { log: pino({ level: 'silent' }) });
  });
  after(async () => {
    await runtime?.close();
    await store?.cleanup();
  });

  for (const model of ['AuthorizationCode', 'RefreshToken', 'Session', 'Grant', 'Interaction', 'AccessToken']) {
    describe(model, () => {
      it('upserts, finds and destroys', async () => {
        const id = newId(model);
        const payload = { jti: id, kind: model, exp: now() + 60, accountId: 'someone', clientId: 'app' };
        expect(await adapter(model).find(id)).to.equal(undefined);
        await adapter(model).upsert(id, payload, 60);
        expect(await adapter(model).find(id)).to.deep.include(payload);
        await adapter(model).upsert(id, { ...payload, accountId: 'changed' }, 60);
        expect((await adapter(model).find(id))?.accountId).to.equal('changed');
        await adapter(model).destroy(id);
        expect(await adapter(model).find(id)).to.equal(undefined);
      });

    });
  }

  it('stops finding records after their expiry, and the purge job removes expired durable rows', async () => {
    const models = ['AuthorizationCode', 'RefreshToken', 'Session', 'Grant', 'Interaction', 'AccessToken'];
    const ids = models.map(newId);
    await Promise.all(models.map((model, i) => adapter(model).upsert(ids[i], { jti: ids[i], exp: now() + 1 }, 1)));
    for (const [i, model] of models.entries()) expect(await adapter(model).find(ids[i]), model).to.not.equal(undefined);
    await sleep(2100);
    for (const [i, model] of models.entries()) expect(await adapter(model).find(ids[i]), model).to.equal(undefined);
    expect(await purgeExpiredPayloads(runtime.db)).to.be.at.least(3);
    const left = await runtime.db('oidc_payloads').whereIn('id', ids).count<{ count: string }[]>({ count: '*' });
    expect(Number(left[0].count)).to.equal(0);
  });

  for (const model of ['AuthorizationCode', 'RefreshToken']) {
    it(`${model}: consume is visible to every later find`, async () => {
      const id = newId(model);
      await adapter(model).upsert(id, { jti: id, exp: now() + 60, grantId: 'g' }, 60);
      expect((await adapter(model).find(id))?.consumed).to.equal(undefined);
      await Promise.all([adapter(model).consume(id), adapter(model).consume(id)]);
      const consumed = (await adapter(model).find(id))?.consumed;
      expect(consumed).to.be.a('number');
      expect(Math.abs(Number(consumed) - now())).to.be.lessThan(5);
    });
  }

  it('finds a Session by uid and an interaction-less DeviceCode by user code', async () => {
    const sessionId = randomUUID();
    const uid = randomUUID();
    await adapter('Session').upsert(sessionId, { jti: sessionId, uid, exp: now() + 60, accountId: 'a' }, 60);
    expect((await adapter('Session').findByUid(uid))?.jti).to.equal(sessionId);
    expect(await adapter('Session').findByUid('unknown-uid')).to.equal(undefined);

    const deviceCodeId = randomUUID();
    await adapter('DeviceCode').upsert(deviceCodeId, { jti: deviceCodeId, userCode: 'ABCD-EFGH', exp: now() + 60 }, 60);
    expect((await adapter('DeviceCode').findByUserCode('ABCD-EFGH'))?.jti).to.equal(deviceCodeId);
    expect(await adapter('DeviceCode').findByUserCode('ZZZZ-ZZZZ')).to.equal(undefined);
  });

  it('revokeByGrantId removes only that grant’s records of that model', async () => {
    const grantId = randomUUID();
    const other = randomUUID();
    const code = randomUUID();
    const otherCode = randomUUID();
    await adapter('AuthorizationCode').upsert(code, { jti: code, grantId, exp: now() + 60 }, 60);
    await adapter('AuthorizationCode').upsert(otherCode, { jti: otherCode, grantId: other, exp: now() + 60 }, 60);
    await adapter('AuthorizationCode').revokeByGrantId(grantId);
    expect(await adapter('AuthorizationCode').find(code)).to.equal(undefined);
    expect(await adapter('AuthorizationCode').find(otherCode)).to.not.equal(undefined);
  });

  it('revoking a grant everywhere reaches every model in both stores', async () => {
    const grantId = randomUUID();
    const ids: Record<string, string> = {};
    for (const model of ['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']) {
      ids[model] = newId(model);
      await adapter(model).upsert(ids[model], { jti: ids[model], grantId, exp: now() + 60 }, 60);
    }
    await adapter('Grant').upsert(grantId, { jti: grantId, exp: now() + 60, accountId: 'a', clientId: 'c' }, 60);
    await revokeGrantEverywhere((model) => adapter(model), grantId);
    for (const [model, id] of Object.entries(ids)) expect(await adapter(model).find(id), model).to.equal(undefined);
    expect(await adapter('Grant').find(grantId)).to.equal(undefined);
  });

  it('rules out a refresh token by the length of its value, before any lookup', async () => {
    const id = newId('RefreshToken');
    await adapter('RefreshToken').upsert(id, { jti: id, exp: now() + 60 }, 60);
    expect(await adapter('RefreshToken').find(id)).to.not.equal(undefined);
    expect(await adapter('RefreshToken').find(id.slice(0, 43))).to.equal(undefined);
  });

  // Statements the database runs while `work` runs.
  async function statementsDuring(work: () => Promise<unknown>): Promise<string[]> {
    const statements: string[] = [];
    const listener = (query: { sql: string }) => statements.push(query.sql);
    runtime.db.on('query', listener);
    try {
      await work();
    } finally {
      runtime.db.off('query', listener);
    }
    return statements;
  }

  it('reads a refresh token with its grant: the grant lookup after it costs no statement, once', async () => {
    const grantId = randomUUID();
    const id = newId('RefreshToken');
    await adapter('Grant').upsert(grantId, { jti: grantId, exp: now() + 60, accountId: 'a', clientId: 'c' }, 60);
    await adapter('RefreshToken').upsert(id, { jti: id, grantId, exp: now() + 60, accountId: 'a' }, 60);
    await flushHotStore(runtime);
    const statements = await statementsDuring(async () => {
      expect((await adapter('RefreshToken').find(id))?.grantId).to.equal(grantId);
      expect((await adapter('Grant').find(grantId))?.accountId).to.equal('a');
    });
    expect(statements, statements.join('\n')).to.have.length(1);
    await flushHotStore(runtime);
    expect(await statementsDuring(() => adapter('Grant').find(grantId)), 'a second lookup reads again').to.have.length(1);
    // A grant destroyed between the two lookups is gone, not served from the token's read.
    await adapter('RefreshToken').find(id);
    await adapter('Grant').destroy(grantId);
    expect(await adapter('Grant').find(grantId)).to.equal(undefined);
  });

  it('commits a rotation, the consumption of the old refresh token and the store of the new one, in one statement', async () => {
    const grantId = randomUUID();
    const [old, rotated] = [newId('RefreshToken'), newId('RefreshToken')];
    await adapter('RefreshToken').upsert(old, { jti: old, grantId, exp: now() + 60 }, 60);
    const statements = await statementsDuring(async () => {
      await adapter('RefreshToken').consume(old);
      await adapter('RefreshToken').upsert(rotated, { jti: rotated, grantId, exp: now() + 60 }, 60);
    });
    expect(statements, statements.join('\n')).to.have.length(1);
    expect((await adapter('RefreshToken').find(old))?.consumed).to.be.a('number');
    expect((await adapter('RefreshToken').find(rotated))?.consumed).to.equal(undefined);
  });

  it('answers concurrent lookups from one statement, each with its own record', async () => {
    const ids = Array.from({ length: 20 }, () => newId('RefreshToken'));
    await Promise.all(ids.map((id, i) => adapter('RefreshToken').upsert(id, { jti: id, exp: now() + 60, accountId: `user-${i}` }, 60)));
    let found: Array<{ accountId?: unknown } | undefined | void> = [];
    const statements = await statementsDuring(async () => {
      found = await Promise.all([...ids, newId('RefreshToken')].map((id) => adapter('RefreshToken').find(id)));
    });
    expect(statements).to.have.length(1);
    expect(found.map((payload) => payload?.accountId)).to.deep.equal([...ids.map((_, i) => `user-${i}`), undefined]);
  });

  it('fails only the store the database refuses when it shares a statement with others', async () => {
    const [good, bad] = [randomUUID(), randomUUID()];
    const outcomes = await Promise.allSettled([
      adapter('Session').upsert(good, { jti: good, exp: now() + 60, accountId: 'a' }, 60),
      // PostgreSQL's jsonb refuses a NUL character.
      adapter('Session').upsert(bad, { jti: bad, exp: now() + 60, accountId: 'a\u0000b' }, 60),
    ]);
    expect(outcomes.map((outcome) => outcome.status)).to.deep.equal(['fulfilled', 'rejected']);
    await flushHotStore(runtime);
    expect((await adapter('Session').find(good))?.accountId).to.equal('a');
    expect(await adapter('Session').find(bad)).to.equal(undefined);
  });

  it('finds a stored Session by its uid from the cache, and a replaced one’s uid leads to the new record', async () => {
    const uid = randomUUID();
    const first = randomUUID();
    await adapter('Session').upsert(first, { jti: first, uid, exp: now() + 60, accountId: 'a' }, 60);
    const statements = await statementsDuring(async () => expect((await adapter('Session').findByUid(uid))?.jti).to.equal(first));
    expect(statements, statements.join('\n')).to.deep.equal([]);
    // A new sign-in in the same browser session: a new record under the same uid.
    const second = randomUUID();
    await adapter('Session').destroy(first);
    await adapter('Session').upsert(second, { jti: second, uid, exp: now() + 60, accountId: 'b' }, 60);
    expect((await adapter('Session').findByUid(uid))?.accountId).to.equal('b');
    await flushHotStore(runtime);
    expect((await adapter('Session').findByUid(uid))?.jti, 'from PostgreSQL once the cache is gone').to.equal(second);
  });

  it('serves durable records from PostgreSQL when the hot store has lost them', async () => {
    const id = newId('RefreshToken');
    await adapter('RefreshToken').upsert(id, { jti: id, exp: now() + 600, accountId: 'a' }, 600);
    await adapter('RefreshToken').consume(id);
    await flushHotStore(runtime);
    const found = await adapter('RefreshToken').find(id);
    expect(found?.accountId).to.equal('a');
    expect(found?.consumed, 'consumption survives the flush').to.be.a('number');
  });
});

async function flushHotStore(runtime: Runtime): Promise<void> {
  const hot = runtime.hot as { clear?: () => void; client?: { keys(pattern: string): Promise<string[]>; del(...keys: string[]): Promise<number> } };
  if (hot.clear) return hot.clear();
  const prefix = runtime.config.redis.keyPrefix;
  const { flushRedisPrefix } = await import('../helpers/backends.ts');
  await flushRedisPrefix(prefix);
}
