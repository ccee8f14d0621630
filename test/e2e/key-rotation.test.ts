// Signing-key rotation: pre-published successor, old tokens still verifiable, every instance
// rebuilding its provider and agreeing on the JWKS, no request dropped while it happens.
import { expect } from 'chai';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { startInstance, type Instance } from '../helpers/instance.ts';
import { createFixtures, clientCredentialsToken, API, type Fixtures } from '../helpers/fixtures.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function jwks(url: string): Promise<JSONWebKeySet> {
  const response = await fetch(`${url}/jwks`);
  expect(response.status).to.equal(200);
  return (await response.json()) as JSONWebKeySet;
}

async function jwtFrom(instance: Instance, fixtures: Fixtures): Promise<string> {
  const response = await clientCredentialsToken(instance.url, fixtures.machine, { resource: API.identifier, scope: 'read' });
  expect(response.status).to.equal(200);
  return ((await response.json()) as { access_token: string }).access_token;
}

async function waitFor(condition: () => Promise<boolean>, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(50);
  }
}

forEachBackend('signing key rotation', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let fixtures: Fixtures;

  before(async () => {
    store = await backend.create();
    instance = await startInstance(store.env);
    fixtures = await createFixtures(instance.runtime);
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  it('publishes the successor key before it signs, and keeps the retired key for verification', async () => {
    const before = await jwks(instance.url);
    const rsaKeys = before.keys.filter((key) => key.alg === 'RS256');
    expect(rsaKeys, 'active + pre-published successor').to.have.length(2);
    expect(before.keys.every((key) => !('d' in key)), 'no private material published').to.equal(true);
    const successor = rsaKeys.find((key) => key.key_ops?.includes('verify'))!;

    const oldToken = await jwtFrom(instance, fixtures);
    const oldKid = decodeProtectedHeader(oldToken).kid;
    expect(oldKid).to.not.equal(successor.kid);

    await instance.runtime.keys.rotate();
    await waitFor(async () => (await jwks(instance.url)).keys.some((key) => key.kid === oldKid && key.key_ops?.includes('verify')));

    const newToken = await jwtFrom(instance, fixtures);
    expect(decodeProtectedHeader(newToken).kid, 'the pre-published successor signs now').to.equal(successor.kid);

    const after = createLocalJWKSet(await jwks(instance.url));
    await jwtVerify(oldToken, after, { issuer: instance.url, audience: API.identifier });
    await jwtVerify(newToken, after, { issuer: instance.url, audience: API.identifier });
    expect((await jwks(instance.url)).keys.filter((key) => key.alg === 'RS256'), 'retired + active + new successor').to.have.length(3);
  });

  it('drops no request while the provider is rebuilt', async () => {
    const requests = Array.from({ length: 60 }, (_, i) =>
      sleep(i * 5).then(() => clientCredentialsToken(instance.url, fixtures.machine, { resource: API.identifier, scope: 'read' })),
    );
    await sleep(50);
    await instance.runtime.keys.rotate();
    const statuses = (await Promise.all(requests)).map((response) => response.status);
    expect(new Set(statuses)).to.deep.equal(new Set([200]));
  });

  it('removes a retired key once every token it signed has expired', async () => {
    const retired = (await instance.runtime.keys.list()).filter((key) => key.status === 'retired');
    expect(retired).to.not.be.empty;
    await instance.runtime.db('signing_keys').where({ status: 'retired' }).update({ remove_after: new Date(Date.now() - 1000) });
    expect(await instance.runtime.keys.removeExpired()).to.equal(retired.length);
    await waitFor(async () => !(await jwks(instance.url)).keys.some((key) => retired.some((old) => old.kid === key.kid)));
  });

  if (backend.name.includes('PostgreSQL')) {
    it('leaves two instances publishing the same JWKS after a rotation on one of them', async () => {
      const second = await startInstance(store.env, { issuer: instance.url });
      try {
        expect(await jwks(second.url)).to.deep.equal(await jwks(instance.url));
        await second.runtime.keys.rotate();
        await waitFor(async () => JSON.stringify(await jwks(instance.url)) === JSON.stringify(await jwks(second.url)), 2000);
        const token = await jwtFrom(second, fixtures);
        await jwtVerify(token, createLocalJWKSet(await jwks(instance.url)), { issuer: instance.url, audience: API.identifier });
      } finally {
        await second.stop();
      }
    });
  }
});
