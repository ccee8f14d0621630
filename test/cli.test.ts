// The command line as an operator uses it: `node src/main.ts ...` as a child process, on every backend.
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { forEachBackend, type BackendEnv } from './helpers/backends.ts';
import { TEST_ENV } from './helpers/instance.ts';
import { idp, type Run } from './helpers/cli.ts';
import { loadConfig } from '../src/config.ts';
import { createRuntime, type Runtime } from '../src/runtime.ts';
import { DEFAULT_TENANT_ID } from '../src/tenants/constants.ts';

const ALGS = ['RS256', 'ES256', 'EdDSA'];
// A command spins up the runtime (migrations, keys) in a fresh process: allow for several per test.
const SLOW = 120_000;

// Every run gets the test defaults (light argon2id, silent logs) under what the test passes.
const cli = (args: string[], env: Record<string, string>): Promise<Run> => idp(args, { ...TEST_ENV, ...env });

function succeeded(run: Run): void {
  expect(run.code, `exit code; stderr: ${run.stderr}`).to.equal(0);
  expect(run.stderr).to.equal('');
}

function json<T>(run: Run): T {
  succeeded(run);
  return JSON.parse(run.stdout) as T;
}

const STACK_FRAME = /^\s+at /m;

// Exit code 1 and exactly one `idp: ...` line on stderr: no usage dump, no stack.
function failedWithOneLine(run: Run, pattern: RegExp): void {
  expect(run.code, `exit code; stdout: ${run.stdout}`).to.equal(1);
  const lines = run.stderr.trimEnd().split('\n');
  expect(lines, run.stderr).to.have.length(1);
  expect(lines[0]).to.match(/^idp: \S/);
  expect(lines[0]).to.match(pattern);
  expect(run.stdout).to.equal('');
}

const sha256 = (value: string, encoding: 'hex' | 'base64url') => createHash('sha256').update(value).digest(encoding);

// Neither the secret nor any encoding of its stored digest may appear in the output.
function expectNoSecret(output: string, secret: string): void {
  expect(output).to.not.include(secret);
  expect(output).to.not.include(sha256(secret, 'hex'));
  expect(output).to.not.include(sha256(secret, 'base64url'));
}

interface ClientListEntry {
  client_id: string;
  name: string;
  first_party: boolean;
  grant_types: string[];
  auth_method: string;
}

interface CreatedClient {
  client_id: string;
  client_secret?: string;
  note?: string;
  metadata: Record<string, unknown>;
}

interface KeySummary {
  kid: string;
  alg: string;
  status: 'active' | 'next' | 'retired';
  createdAt: string;
  activatedAt: string | null;
  retiredAt: string | null;
  removeAfter: string | null;
}

interface ApiResource {
  identifier: string;
  name: string;
  scopes: string[];
  accessTokenTtl: number | null;
  signingAlg: string | null;
}

describe('command line: help and syntax', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'idp-cli-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('`help` and no command print the usage and exit 0', async () => {
    for (const args of [['help'], []]) {
      const run = await cli(args, { DATA_DIR: dir });
      succeeded(run);
      expect(run.stdout).to.match(/^usage: idp <command>/);
      for (const command of ['start', 'migrate', 'bootstrap', 'clients create', 'apis create', 'users create', 'keys list | keys rotate']) {
        expect(run.stdout).to.include(command);
      }
    }
  });

  it('an unknown command exits 1 naming it, followed by the usage, without a stack', async () => {
    const run = await cli(['frobnicate'], { DATA_DIR: dir });
    expect(run.code).to.equal(1);
    expect(run.stdout).to.equal('');
    const [first, ...rest] = run.stderr.split('\n');
    expect(first).to.equal('idp: unknown command frobnicate');
    expect(rest.join('\n')).to.include('usage: idp <command>');
    expect(run.stderr).to.not.match(STACK_FRAME);
  });

  it('an unknown option exits 1 with one line naming it', async () => {
    failedWithOneLine(await cli(['clients', 'list', '--colour'], { DATA_DIR: dir }), /--colour/);
  });

  it('a missing sub-command or required flag exits 1 with the usage, without a stack or opening the storage', async () => {
    const untouched = path.join(dir, 'untouched');
    const cases = [['keys'], ['keys', 'revoke'], ['clients'], ['clients', 'create'], ['clients', 'delete'], ['apis', 'create', '--name', 'x'], ['apis', 'delete'], ['users', 'create']];
    for (const args of cases) {
      const run = await cli(args, { DATA_DIR: untouched });
      expect(run.code, args.join(' ')).to.equal(1);
      expect(run.stderr, args.join(' ')).to.match(/^idp: \S.*\nusage: idp <command>/);
      expect(run.stderr).to.not.match(STACK_FRAME);
    }
    expect(existsSync(untouched)).to.equal(false);
  });
});

forEachBackend('command line', (backend) => {
  let store: BackendEnv;
  let env: Record<string, string>;

  before(async () => {
    // `migrate` is tested on a store that has never been migrated.
    store = await backend.create({ unmigrated: true });
    env = store.env;
  });

  after(async () => {
    await store?.cleanup();
  });

  const run = (...args: string[]) => cli(args, env);

  // The services over the same storage, in this process, to check what the CLI stored.
  async function withRuntime<T>(work: (runtime: Runtime) => Promise<T>): Promise<T> {
    const runtime = await createRuntime(loadConfig({ ...TEST_ENV, ...env }), { log: pino({ level: 'silent' }) });
    try {
      return await work(runtime);
    } finally {
      await runtime.close();
    }
  }

  it('`migrate` applies the migrations, then says it is up to date', async function () {
    this.timeout(SLOW);
    const first = await run('migrate');
    succeeded(first);
    expect(first.stdout).to.match(/^applied: \S/);
    const second = await run('migrate');
    succeeded(second);
    expect(second.stdout.trim()).to.equal('already up to date');
    // The embedded database is released for the next process.
    if (env.DATA_DIR) expect(existsSync(path.join(env.DATA_DIR, 'pglite.lock'))).to.equal(false);
  });

  it('`bootstrap` creates an admin and two clients, shows their secrets once, and refuses a second run', async function () {
    this.timeout(SLOW);
    const out = json<{
      admin: { id: string; email: string; password: string };
      web_client: { client_id: string; client_secret: string; redirect_uri: string };
      machine_client: { client_id: string; client_secret: string; resource: string };
      note: string;
    }>(await run('bootstrap'));
    expect(out.admin.email).to.equal('admin@example.com');
    expect(out.admin.password).to.be.a('string').with.length.of.at.least(16);
    expect(out.web_client.client_secret).to.be.a('string').with.length.of.at.least(32);
    expect(out.machine_client.client_secret).to.be.a('string').with.length.of.at.least(32);
    expect(out.web_client.client_id).to.not.equal(out.machine_client.client_id);
    expect(out.note).to.match(/shown only once/);

    await withRuntime(async ({ users, clients }) => {
      expect((await users.authenticate(out.admin.email, out.admin.password, DEFAULT_TENANT_ID))?.isAdmin).to.equal(true);
      expect((await clients.providerMetadata(out.web_client.client_id))?.client_secret).to.equal(sha256(out.web_client.client_secret, 'hex'));
      expect((await clients.providerMetadata(out.machine_client.client_id))?.grant_types).to.deep.equal(['client_credentials']);
    });

    // Shown once: listing the clients later reveals neither the secrets nor their digests.
    const list = await run('clients', 'list');
    const listed = json<ClientListEntry[]>(list);
    expect(listed.map((c) => c.client_id)).to.include.members([out.web_client.client_id, out.machine_client.client_id]);
    expectNoSecret(list.stdout, out.web_client.client_secret);
    expectNoSecret(list.stdout, out.machine_client.client_secret);

    const again = await run('bootstrap');
    failedWithOneLine(again, /already bootstrapped/);
    await withRuntime(async ({ users }) => expect(await users.count()).to.equal(1));
  });

  describe('clients', () => {
    let confidential: CreatedClient;
    let publicClient: CreatedClient;

    it('`clients create` with redirect URIs prints the client_id and a secret shown once', async function () {
      this.timeout(SLOW);
      const created = await run(
        'clients', 'create', '--name', 'Portal',
        '--redirect-uri', 'https://portal.example.com/callback',
        '--redirect-uri', 'https://portal.example.com/callback2',
        '--post-logout-redirect-uri', 'https://portal.example.com/',
      );
      confidential = json<CreatedClient>(created);
      expect(confidential.client_id).to.be.a('string').that.is.not.empty;
      expect(confidential.client_secret).to.be.a('string').with.length.of.at.least(32);
      expect(confidential.note).to.match(/shown only once/);
      expect(confidential.metadata.redirect_uris).to.deep.equal(['https://portal.example.com/callback', 'https://portal.example.com/callback2']);
      expect(confidential.metadata.token_endpoint_auth_method).to.equal('client_secret_basic');
      expect(created.stdout).to.not.include(sha256(confidential.client_secret!, 'hex'));
      await withRuntime(async ({ clients }) => {
        expect((await clients.providerMetadata(confidential.client_id))?.client_secret).to.equal(sha256(confidential.client_secret!, 'hex'));
      });
    });

    it('`clients create --auth-method none` creates a public client without a secret', async function () {
      this.timeout(SLOW);
      publicClient = json<CreatedClient>(
        await run('clients', 'create', '--name', 'SPA', '--auth-method', 'none', '--redirect-uri', 'http://localhost:5173/callback', '--first-party'),
      );
      expect(publicClient).to.not.have.property('client_secret');
      expect(publicClient).to.not.have.property('note');
      expect(publicClient.metadata.token_endpoint_auth_method).to.equal('none');
      await withRuntime(async ({ clients }) => {
        const metadata = await clients.providerMetadata(publicClient.client_id);
        expect(metadata).to.not.have.property('client_secret');
        expect((await clients.get(publicClient.client_id))?.firstParty).to.equal(true);
      });
    });

    it('an invalid redirect URI exits 1 with one clear line and stores nothing', async function () {
      this.timeout(SLOW);
      failedWithOneLine(await run('clients', 'create', '--name', 'Broken', '--redirect-uri', 'not a uri'), /redirect_uris/);
      const names = json<ClientListEntry[]>(await run('clients', 'list')).map((c) => c.name);
      expect(names).to.not.include('Broken');
    });

    it('an unknown --auth-method exits 1 with one line listing the valid ones', async function () {
      this.timeout(SLOW);
      failedWithOneLine(
        await run('clients', 'create', '--name', 'Broken', '--auth-method', 'client_secret_jwt'),
        /--auth-method must be one of client_secret_basic, client_secret_post, private_key_jwt, none/,
      );
    });

    it('a --client-id that is taken exits 1 with one line, keeping the first client', async function () {
      this.timeout(SLOW);
      const first = json<CreatedClient>(await run('clients', 'create', '--name', 'Billing', '--client-id', 'billing', '--grant-type', 'client_credentials'));
      expect(first.client_id).to.equal('billing');
      const second = await run('clients', 'create', '--name', 'Impostor', '--client-id', 'billing', '--grant-type', 'client_credentials');
      failedWithOneLine(second, /billing/);
      expect(second.stderr).to.not.match(/insert into|constraint/i);
      await withRuntime(async ({ clients }) => {
        expect((await clients.providerMetadata('billing'))?.client_secret).to.equal(sha256(first.client_secret!, 'hex'));
      });
    });

    it('`clients list` shows every client without any secret or secret digest', async function () {
      this.timeout(SLOW);
      const list = await run('clients', 'list');
      const listed = json<ClientListEntry[]>(list);
      const portal = listed.find((c) => c.client_id === confidential.client_id);
      expect(portal).to.deep.equal({
        client_id: confidential.client_id,
        name: 'Portal',
        first_party: false,
        grant_types: ['authorization_code', 'refresh_token'],
        auth_method: 'client_secret_basic',
      });
      expect(listed.find((c) => c.client_id === publicClient.client_id)).to.include({ name: 'SPA', first_party: true, auth_method: 'none' });
      for (const entry of listed) {
        expect(Object.keys(entry).filter((key) => /secret|sha|hash/i.test(key)), entry.client_id).to.deep.equal([]);
      }
      expectNoSecret(list.stdout, confidential.client_secret!);
    });

    it('`clients rotate-secret <id>` prints a new secret once and replaces the old one; a client without a secret or an unknown id exits 1', async function () {
      this.timeout(SLOW);
      const rotated = await run('clients', 'rotate-secret', confidential.client_id);
      succeeded(rotated);
      const printed = json<{ client_id: string; client_secret: string }>(rotated);
      expect(printed.client_id).to.equal(confidential.client_id);
      expect(printed.client_secret).to.be.a('string').and.not.equal(confidential.client_secret);
      await withRuntime(async ({ clients }) => {
        expect((await clients.providerMetadata(confidential.client_id))?.client_secret).to.equal(sha256(printed.client_secret, 'hex'));
      });
      failedWithOneLine(await run('clients', 'rotate-secret', publicClient.client_id), /has no secret/);
      failedWithOneLine(await run('clients', 'rotate-secret', 'no-such-client'), /no client no-such-client/);
    });

    it('`clients delete <id>` removes the client; deleting an unknown id exits 1', async function () {
      this.timeout(SLOW);
      const deleted = await run('clients', 'delete', confidential.client_id);
      succeeded(deleted);
      expect(deleted.stdout.trim()).to.equal(`deleted client ${confidential.client_id}`);
      const ids = json<ClientListEntry[]>(await run('clients', 'list')).map((c) => c.client_id);
      expect(ids).to.not.include(confidential.client_id);
      expect(ids).to.include(publicClient.client_id);
      await withRuntime(async ({ clients }) => expect(await clients.providerMetadata(confidential.client_id)).to.equal(undefined));

      failedWithOneLine(await run('clients', 'delete', confidential.client_id), new RegExp(`no client ${confidential.client_id}`));
      failedWithOneLine(await run('clients', 'delete', 'no-such-client'), /no client no-such-client/);
    });
  });

  describe('apis', () => {
    const identifier = 'https://api.example.test/orders';

    it('`apis create` registers an API and prints it; `apis list` shows it', async function () {
      this.timeout(SLOW);
      const created = json<ApiResource>(
        await run('apis', 'create', '--identifier', identifier, '--name', 'Orders', '--scope', 'orders:read', '--scope', 'orders:write', '--ttl', '600', '--alg', 'ES256'),
      );
      expect(created).to.deep.equal({ identifier, name: 'Orders', scopes: ['orders:read', 'orders:write'], accessTokenTtl: 600, signingAlg: 'ES256' });
      const listed = json<ApiResource[]>(await run('apis', 'list'));
      expect(listed.find((api) => api.identifier === identifier)).to.deep.equal(created);
    });

    it('refuses a duplicate identifier, a bad --ttl and an unknown --alg with one line each', async function () {
      this.timeout(SLOW);
      const duplicate = await run('apis', 'create', '--identifier', identifier, '--name', 'Again');
      failedWithOneLine(duplicate, new RegExp(identifier));
      expect(duplicate.stderr).to.not.match(/insert into|constraint/i);
      failedWithOneLine(await run('apis', 'create', '--identifier', 'https://api.example.test/ttl', '--name', 'T', '--ttl', 'soon'), /--ttl/);
      failedWithOneLine(await run('apis', 'create', '--identifier', 'https://api.example.test/ttl', '--name', 'T', '--ttl', '0'), /--ttl/);
      failedWithOneLine(await run('apis', 'create', '--identifier', 'https://api.example.test/alg', '--name', 'A', '--alg', 'HS256'), /--alg must be one of RS256, ES256, EdDSA/);
      const listed = json<ApiResource[]>(await run('apis', 'list'));
      const ours = listed.filter((api) => api.identifier.startsWith('https://api.example.test/'));
      expect(ours.map((api) => api.identifier)).to.deep.equal([identifier]);
      expect(ours[0].name).to.equal('Orders');
    });

    it('`apis delete` removes it; deleting an unknown identifier exits 1', async function () {
      this.timeout(SLOW);
      const deleted = await run('apis', 'delete', identifier);
      succeeded(deleted);
      expect(deleted.stdout.trim()).to.equal(`deleted API ${identifier}`);
      expect(json<ApiResource[]>(await run('apis', 'list')).map((api) => api.identifier)).to.not.include(identifier);
      failedWithOneLine(await run('apis', 'delete', identifier), new RegExp(`no API ${identifier}`));
    });
  });

  describe('users', () => {
    it('`users create` takes the password from IDP_PASSWORD and never prints it', async function () {
      this.timeout(SLOW);
      const password = 'correct horse battery staple 42';
      const created = await cli(['users', 'create', '--email', 'grace@example.com', '--username', 'grace', '--name', 'Grace Hopper', '--admin'], { ...env, IDP_PASSWORD: password });
      const user = json<Record<string, unknown>>(created);
      expect(user).to.include({ email: 'grace@example.com', username: 'grace', name: 'Grace Hopper', emailVerified: true, isAdmin: true });
      expect(user.id).to.be.a('string');
      expect(user).to.not.have.property('password');
      expect(created.stdout).to.not.include(password);
      expect(created.stdout).to.not.match(/argon2|password_hash/i);
      await withRuntime(async ({ users }) => {
        expect((await users.authenticate('grace', password, DEFAULT_TENANT_ID))?.id).to.equal(user.id);
        expect(await users.authenticate('grace', 'wrong password', DEFAULT_TENANT_ID)).to.equal(undefined);
      });
    });

    it('`users create` without IDP_PASSWORD generates one and shows it once', async function () {
      this.timeout(SLOW);
      const user = json<{ id: string; password: string; isAdmin: boolean }>(await run('users', 'create', '--email', 'alan@example.com'));
      expect(user.password).to.be.a('string').with.length.of.at.least(16);
      expect(user.isAdmin).to.equal(false);
      await withRuntime(async ({ users }) => expect((await users.authenticate('alan@example.com', user.password, DEFAULT_TENANT_ID))?.id).to.equal(user.id));
    });

    it('a duplicate e-mail exits 1 with one line', async function () {
      this.timeout(SLOW);
      failedWithOneLine(await cli(['users', 'create', '--email', 'grace@example.com'], { ...env, IDP_PASSWORD: 'another long password' }), /exists/);
    });
  });

  describe('keys', () => {
    let initial: KeySummary[];

    it('`keys list` shows one active and one next key per algorithm, without private material', async function () {
      this.timeout(SLOW);
      const list = await run('keys', 'list');
      initial = json<KeySummary[]>(list);
      for (const alg of ALGS) {
        const ofAlg = initial.filter((key) => key.alg === alg);
        expect(ofAlg.map((key) => key.status).sort(), alg).to.deep.equal(['active', 'next']);
        const active = ofAlg.find((key) => key.status === 'active')!;
        expect(active.activatedAt).to.be.a('string');
        expect(active.retiredAt).to.equal(null);
        expect(ofAlg.find((key) => key.status === 'next')!.activatedAt).to.equal(null);
      }
      expect(initial).to.have.length(ALGS.length * 2);
      for (const key of initial) {
        expect(Object.keys(key).sort()).to.deep.equal(['activatedAt', 'alg', 'createdAt', 'kid', 'removeAfter', 'retiredAt', 'status']);
      }
      // No JWK members at all, private (d, p, q, dp, dq, qi) or public, and no sealed blob.
      expect(list.stdout).to.not.match(/"(d|p|q|dp|dq|qi|k|x|y|n|e)":|private|sealed|v1\./);
    });

    it('`keys rotate` promotes each next key, retires the old active one with a remove-after time, and adds a new next key', async function () {
      this.timeout(SLOW);
      const startedAt = Date.now();
      const rotated = json<KeySummary[]>(await run('keys', 'rotate'));
      const previousKids = new Set(initial.map((key) => key.kid));
      for (const alg of ALGS) {
        const oldActive = initial.find((key) => key.alg === alg && key.status === 'active')!;
        const oldNext = initial.find((key) => key.alg === alg && key.status === 'next')!;
        const ofAlg = rotated.filter((key) => key.alg === alg);
        expect(ofAlg.filter((key) => key.status === 'active').map((key) => key.kid), alg).to.deep.equal([oldNext.kid]);
        expect(ofAlg.find((key) => key.kid === oldNext.kid)!.activatedAt).to.be.a('string');

        const retired = ofAlg.find((key) => key.kid === oldActive.kid);
        expect(retired, `${alg} retired key`).to.not.equal(undefined);
        expect(retired!.status).to.equal('retired');
        expect(Date.parse(retired!.retiredAt!)).to.be.at.least(startedAt - 5000);
        expect(Date.parse(retired!.removeAfter!)).to.be.greaterThan(Date.now());

        const next = ofAlg.filter((key) => key.status === 'next');
        expect(next, alg).to.have.length(1);
        expect(previousKids.has(next[0].kid), `${alg} next key is new`).to.equal(false);
        expect(ofAlg).to.have.length(3);
      }
      const listed = json<KeySummary[]>(await run('keys', 'list'));
      const statusOf = (keys: KeySummary[]) => Object.fromEntries(keys.map((key) => [key.kid, key.status]));
      expect(statusOf(listed)).to.deep.equal(statusOf(rotated));
    });
  });
});
