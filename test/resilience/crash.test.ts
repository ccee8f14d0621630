// kill -9 under a bounded load: a provider child process serves user creations (admin API) and
// full logins (code + PKCE, each giving a session and a refresh token) from a few parallel loops;
// it is killed with SIGKILL mid-load and started again on the same storage. Every write that was
// answered with success is there afterwards: the users with their audit entries, the sessions and
// the refresh tokens; nothing else is beyond what was in flight at the kill; the audit chain verifies.
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as oidc from 'openid-client';
import { pino } from 'pino';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { freePort, TEST_ENV } from '../helpers/instance.ts';
import { idp } from '../helpers/cli.ts';
import { clientCredentialsToken, createFixtures, USER, type Fixtures } from '../helpers/fixtures.ts';
import { Browser } from '../helpers/browser.ts';
import { authorizeWithLogin, discover, loginWithCode } from '../helpers/rp.ts';
import { loadConfig } from '../../src/config.ts';
import { createRuntime } from '../../src/runtime.ts';
import { ADMIN_API_PERMISSIONS } from '../../src/tenants/system-roles.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// The load is bounded: it stops at the kill, and at these counts at the latest.
const MAX_USERS = 150;
const MAX_LOGINS = 30;
// The kill comes once this much was acknowledged, with requests of every kind still in flight.
const KILL_AFTER = { users: 12, logins: 3 };

interface Child {
  process: ChildProcess;
  output: () => string;
  exited: Promise<void>;
}

async function startProvider(env: Record<string, string>): Promise<Child> {
  const child = spawn(process.execPath, ['src/main.ts', 'start'], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 30_000;
  while (!output.includes('identity provider started')) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the provider did not start: ${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the provider did not start in time: ${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { process: child, output: () => output, exited };
}

forEachBackend('kill -9 under load', (backend) => {
  let store: BackendEnv;
  let child: Child | undefined;
  let env: Record<string, string>;
  let issuer: string;
  let fixtures: Fixtures;
  let admin: { clientId: string; clientSecret: string };

  before(async function () {
    this.timeout(60_000);
    store = await backend.create();
    const port = await freePort();
    issuer = `http://127.0.0.1:${port}`;
    env = { ...TEST_ENV, ...store.env, LOG_LEVEL: 'info', PORT: String(port), HOST: '127.0.0.1', ISSUER: issuer };
    // Clients, the user and an admin API client, made before the provider runs (the embedded
    // database is one process's at a time).
    const runtime = await createRuntime(loadConfig(env), { log: pino({ level: 'silent' }) });
    try {
      fixtures = await createFixtures(runtime);
      const { client, clientSecret } = await runtime.clients.create({ name: 'Provisioning', grantTypes: ['client_credentials'], tenantId: DEFAULT_TENANT_ID });
      await runtime.rbac.assign(DEFAULT_TENANT_ID, (await runtime.rbac.roleIdByName(DEFAULT_TENANT_ID, 'root-admin'))!, 'client', client.clientId);
      admin = { clientId: client.clientId, clientSecret: clientSecret! };
    } finally {
      await runtime.close();
    }
  });

  after(async () => {
    if (child && child.process.exitCode === null && child.process.signalCode === null) {
      child.process.kill('SIGKILL');
      await child.exited;
    }
    await store?.cleanup();
  });

  async function adminToken(): Promise<string> {
    const response = await clientCredentialsToken(issuer, admin, { resource: `${issuer}/api`, scope: ADMIN_API_PERMISSIONS.join(' ') });
    expect(response.status, await response.clone().text()).to.equal(200);
    return ((await response.json()) as { access_token: string }).access_token;
  }

  it('loses nothing that was acknowledged', async function () {
    this.timeout(90_000);
    child = await startProvider(env);
    const token = await adminToken();
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);

    const ackedUsers: Array<{ id: string; email: string }> = [];
    const ackedLogins: Array<{ refreshToken: string; browser: Browser }> = [];
    let inFlightUsers = 0;
    let killed = false;
    let attempted = 0;

    const userLoop = async (loop: number) => {
      for (let n = 0; !killed && ackedUsers.length + inFlightUsers < MAX_USERS; n++) {
        const email = `load-${loop}-${n}@example.com`;
        inFlightUsers++;
        attempted++;
        try {
          const response = await fetch(`${issuer}/api/v1/tenants/${DEFAULT_TENANT_ID}/users`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ email, name: `Load ${loop} ${n}` }),
          });
          if (response.status === 201) ackedUsers.push({ id: ((await response.json()) as { id: string }).id, email });
          else if (!killed) throw new Error(`user creation answered ${response.status}: ${await response.text()}`);
        } catch (error) {
          if (!killed) throw error;
        } finally {
          inFlightUsers--;
        }
      }
    };
    const loginLoop = async () => {
      while (!killed && ackedLogins.length < MAX_LOGINS) {
        try {
          const browser = new Browser();
          const { tokens } = await loginWithCode(config, issuer, { identifier: USER.email, password: USER.password, browser });
          if (!killed) ackedLogins.push({ refreshToken: tokens.refresh_token!, browser });
        } catch (error) {
          if (!killed) throw error;
        }
      }
    };
    const kill = async () => {
      while (ackedUsers.length < KILL_AFTER.users || ackedLogins.length < KILL_AFTER.logins) {
        if (child!.process.exitCode !== null) throw new Error(`the provider exited: ${child!.output()}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      // Acknowledgements counted from here on could come from a response racing the kill; none is
      // counted after it (killed stops the loops from recording).
      killed = true;
      child!.process.kill('SIGKILL');
    };
    const loops = [userLoop(0), userLoop(1), userLoop(2), loginLoop(), loginLoop()];
    await Promise.all([kill(), ...loops]);
    await child.exited;
    const inFlightAtKill = attempted - ackedUsers.length;
    expect(ackedUsers.length).to.be.at.least(KILL_AFTER.users);

    child = await startProvider(env);
    const after = await adminToken();
    const api = (pathAndQuery: string) => fetch(`${issuer}/api/v1/tenants/${DEFAULT_TENANT_ID}${pathAndQuery}`, { headers: { authorization: `Bearer ${after}` } });

    // Every acknowledged user is there, and the stored count is the acknowledged one plus at most
    // the creations in flight at the kill (committed, but their answer never left).
    for (const user of ackedUsers) expect((await api(`/users/${user.id}`)).status, `user ${user.email}`).to.equal(200);
    const listed = (await (await api('/users?q=load-&limit=200')).json()) as { items: Array<{ id: string; email: string }> };
    const stored = listed.items.filter((item) => item.email.startsWith('load-'));
    expect(stored.length).to.be.at.least(ackedUsers.length).and.at.most(ackedUsers.length + inFlightAtKill);

    // Each stored user has its audit entry (written in the same transaction).
    const audit = (await (await api('/audit?type=user.create&limit=200')).json()) as { items: Array<{ target?: { id?: string } }> };
    const audited = new Set(audit.items.map((entry) => entry.target?.id));
    for (const user of stored) expect(audited.has(user.id), `the audit entry of ${user.email}`).to.equal(true);

    // Every acknowledged login kept its session and its refresh token.
    for (const login of ackedLogins) {
      const { code } = await authorizeWithLogin(config, issuer, { identifier: USER.email, password: USER.password, browser: login.browser, extraParams: { prompt: 'none' } });
      expect(code, 'the session survived').to.be.a('string');
      const refreshed = await oidc.refreshTokenGrant(config, login.refreshToken);
      expect(refreshed.access_token).to.be.a('string');
    }

    child.process.kill('SIGTERM');
    await child.exited;
    const verified = await idp(['audit', 'verify'], env);
    expect(verified.code, verified.stdout + verified.stderr).to.equal(0);
  });
});
