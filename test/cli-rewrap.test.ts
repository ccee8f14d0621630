// Key-encryption key rotation as an operator does it (docs/operations.md): values sealed under key A
// stay usable with KEY_ENCRYPTION_KEY=B and KEY_ENCRYPTION_KEY_PREVIOUS=A, `idp keys rewrap` seals
// them again under B, after which B alone is enough and A alone is refused.
import { expect } from 'chai';
import { createHmac, randomBytes } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { forEachBackend, type BackendEnv } from './helpers/backends.ts';
import { freePort, startInstance, TEST_ENV, type Instance } from './helpers/instance.ts';
import { idp, type Run } from './helpers/cli.ts';
import { API, clientCredentialsToken, createFixtures } from './helpers/fixtures.ts';
import { startReceiver, type ReceivedRequest, type Receiver } from './webhooks/receiver.ts';
import { currentTotpCode } from '../src/mfa/totp.ts';
import { DEFAULT_TENANT_ID } from '../src/tenants/constants.ts';

const SLOW = 180_000;
const KEY_A = randomBytes(32).toString('base64');
const KEY_B = randomBytes(32).toString('base64');
const CONNECTOR_SECRET = 'upstream-client-secret-' + randomBytes(8).toString('hex');

// Standard Webhooks verification, from the specification.
function signedWith(secret: string, request: ReceivedRequest): boolean {
  const expected = createHmac('sha256', Buffer.from(secret.replace(/^whsec_/, ''), 'base64'))
    .update(`${request.headers['webhook-id']}.${request.headers['webhook-timestamp']}.${request.body}`)
    .digest('base64');
  return String(request.headers['webhook-signature']).split(' ').includes(`v1,${expected}`);
}

forEachBackend('key-encryption key rotation (keys rewrap)', (backend) => {
  let store: BackendEnv;
  let receiver: Receiver;
  let machine: { clientId: string; clientSecret: string };
  let userId: string;
  let totpSecret: string;
  let connectorName: string;
  let webhookSecret: string;
  const secrets: string[] = [];

  const keys = (current: string, previous?: string) => ({ KEY_ENCRYPTION_KEY: current, ...(previous ? { KEY_ENCRYPTION_KEY_PREVIOUS: previous } : {}) });
  const start = (env: Record<string, string>) => startInstance({ ...store.env, ...env });
  const cli = (args: string[], env: Record<string, string>): Promise<Run> => idp(args, { ...TEST_ENV, ...store.env, ...env });

  before(async () => {
    store = await backend.create();
    receiver = await startReceiver();
  });
  after(async () => {
    await receiver?.close();
    await store?.cleanup();
  });

  // Signs a token, opens the connector's secret, checks a TOTP code at `totpAt` and signs a webhook.
  async function everythingWorks(instance: Instance, totpAt: Date): Promise<void> {
    const { runtime, url } = instance;
    const response = await clientCredentialsToken(url, machine, { resource: API.identifier, scope: 'read' });
    expect(response.status, await response.clone().text()).to.equal(200);
    const { access_token: token } = (await response.json()) as { access_token: string };
    await jwtVerify(token, createRemoteJWKSet(new URL(`${url}/jwks`)), { issuer: url, audience: API.identifier });

    const connector = await runtime.connectors.findForLogin(DEFAULT_TENANT_ID, connectorName);
    expect(connector?.secrets.clientSecret).to.equal(CONNECTOR_SECRET);

    expect(await runtime.mfa.verifyTotp(DEFAULT_TENANT_ID, userId, currentTotpCode(totpSecret, totpAt)), 'TOTP code').to.equal(true);

    const event = await runtime.outbox.enqueue(undefined, { tenantId: DEFAULT_TENANT_ID, type: 'user.created', data: { userId } });
    for (let round = 0; round < 50 && !receiver.requests.some((request) => request.headers['webhook-id'] === event.id); round++) {
      await runtime.eventWorker.drain();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const delivered = receiver.requests.find((request) => request.headers['webhook-id'] === event.id);
    expect(delivered, 'webhook delivered').to.not.equal(undefined);
    expect(signedWith(webhookSecret, delivered!), 'webhook signature').to.equal(true);
  }

  function expectNoSecrets(run: Run): void {
    for (const secret of secrets) {
      expect(run.stdout).to.not.include(secret);
      expect(run.stderr).to.not.include(secret);
    }
  }

  it('seals everything under key A', async function () {
    this.timeout(SLOW);
    const instance = await start(keys(KEY_A));
    try {
      const { runtime } = instance;
      const fixtures = await createFixtures(runtime);
      machine = fixtures.machine;
      userId = fixtures.userId;
      const enrolment = await runtime.mfa.beginTotpEnrolment(DEFAULT_TENANT_ID, userId, { accountName: 'ada', issuer: 'test' });
      totpSecret = enrolment.secret;
      // One step back, so the later checks (now, then one step ahead) each use a fresh step.
      expect(await runtime.mfa.confirmTotpEnrolment(DEFAULT_TENANT_ID, userId, currentTotpCode(totpSecret, new Date(Date.now() - 30_000)))).to.not.equal(undefined);
      connectorName = 'corp-' + randomBytes(3).toString('hex');
      await runtime.connectors.create(DEFAULT_TENANT_ID, { name: connectorName, kind: 'oidc', displayName: 'Corporate SSO', clientId: 'idp-client', clientSecret: CONNECTOR_SECRET, issuer: 'https://login.example.com' });
      const webhook = await runtime.webhooks.create(DEFAULT_TENANT_ID, { url: receiver.url, eventTypes: ['user.created'] });
      webhookSecret = webhook.secret;
      secrets.push(totpSecret, CONNECTOR_SECRET, webhookSecret, KEY_A, KEY_B);
      const connector = await runtime.connectors.findForLogin(DEFAULT_TENANT_ID, connectorName);
      expect(connector?.secrets.clientSecret).to.equal(CONNECTOR_SECRET);
    } finally {
      await instance.stop();
    }
  });

  it('with B as the key and A as previous, everything sealed under A still works', async function () {
    this.timeout(SLOW);
    const instance = await start(keys(KEY_B, KEY_A));
    try {
      await everythingWorks(instance, new Date());
    } finally {
      await instance.stop();
    }
  });

  it('`keys rewrap` seals every value again under B, prints counts per kind, and is idempotent', async function () {
    this.timeout(SLOW);
    const first = await cli(['keys', 'rewrap'], keys(KEY_B, KEY_A));
    expect(first.code, first.stderr).to.equal(0);
    expect(first.stdout).to.include('signing_key: 6 rewrapped, 0 already under the current key');
    expect(first.stdout).to.include('totp_secret: 1 rewrapped, 0 already under the current key');
    expect(first.stdout).to.include('connector_secret: 1 rewrapped, 0 already under the current key');
    expect(first.stdout).to.include('webhook_secret: 1 rewrapped, 0 already under the current key');
    expectNoSecrets(first);

    const again = await cli(['keys', 'rewrap'], keys(KEY_B, KEY_A));
    expect(again.code, again.stderr).to.equal(0);
    expect(again.stdout).to.include('signing_key: 0 rewrapped, 6 already under the current key');
    expect(again.stdout).to.include('webhook_secret: 0 rewrapped, 1 already under the current key');

    const audit = await cli(['audit', 'verify'], keys(KEY_B));
    expect(audit.code, audit.stderr).to.equal(0);
  });

  it('afterwards B alone is enough', async function () {
    this.timeout(SLOW);
    const instance = await start(keys(KEY_B));
    try {
      await everythingWorks(instance, new Date(Date.now() + 30_000));
    } finally {
      await instance.stop();
    }
  });

  it('with A alone the values are refused with a clear message, naming no secret', async function () {
    this.timeout(SLOW);
    // `idp start` opens the signing keys before it listens: it stops with one clear line.
    const port = String(await freePort());
    const started = await cli(['start'], { ...keys(KEY_A), PORT: port, HOST: '127.0.0.1', ISSUER: `http://127.0.0.1:${port}` });
    expect(started.code, started.stdout).to.equal(1);
    const lines = started.stderr.trim().split('\n');
    expect(lines, started.stderr).to.have.length(1);
    expect(lines[0]).to.match(/^idp: .*a sealed value opens with neither KEY_ENCRYPTION_KEY nor KEY_ENCRYPTION_KEY_PREVIOUS: wrong key-encryption key\?$/);

    const rewrap = await cli(['keys', 'rewrap'], keys(KEY_A));
    expect(rewrap.code).to.equal(1);
    expect(rewrap.stderr).to.match(/^idp: not readable with any key-encryption key .*KEY_ENCRYPTION_KEY/);
    expect(rewrap.stderr).to.include(`totp_secret ${userId}`);
    expect(rewrap.stderr).to.match(/signing_key \S+/);
    expect(rewrap.stderr).to.match(/connector_secret [0-9a-f-]{36}/);
    expect(rewrap.stderr).to.match(/webhook_secret [0-9a-f-]{36}/);
    expect(rewrap.stdout).to.include('signing_key: 0 rewrapped, 0 already under the current key, 6 unreadable');
    expectNoSecrets(rewrap);
  });
});
