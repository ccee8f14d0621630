// SIGTERM on `idp start` (a real child process): new connections are refused at once, a request in
// flight is still answered, and the process then exits 0. On every backend. Also the size of the
// process's thread pool.
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { freePort, TEST_ENV } from '../helpers/instance.ts';
import { idp } from '../helpers/cli.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SLOW = 120_000;

interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function waitFor(condition: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const check = () => {
      if (condition()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(check, 50);
    };
    check();
  });
}

async function startProvider(env: Record<string, string>): Promise<Started> {
  const child = spawn(process.execPath, ['src/main.ts', 'start'], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await waitFor(() => output.includes('identity provider started') || child.exitCode !== null, 'the provider to start');
  if (child.exitCode !== null) throw new Error(`the provider did not start: ${output}`);
  return { child, output: () => output, exited };
}

function connectionRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

forEachBackend('graceful shutdown', (backend) => {
  let store: BackendEnv;
  let started: Started | undefined;

  before(async () => {
    store = await backend.create();
  });

  after(async () => {
    if (started && started.child.exitCode === null) started.child.kill('SIGKILL');
    await store?.cleanup();
  });

  it('answers the request in flight after SIGTERM, refuses new connections and exits 0', async function () {
    this.timeout(SLOW);
    const port = await freePort();
    // The thread pool (argon2id runs on it) has one thread per core, 2 to 4, unless
    // UV_THREADPOOL_SIZE says otherwise: each backend's run checks one of the two.
    const poolSetting: Record<string, string> = backend.name.startsWith('embedded') ? {} : { UV_THREADPOOL_SIZE: '3' };
    const env = { ...TEST_ENV, ...store.env, ...poolSetting, LOG_LEVEL: 'info', PORT: String(port), HOST: '127.0.0.1', ISSUER: `http://127.0.0.1:${port}` };
    const created = await idp(['clients', 'create', '--name', 'Slow service', '--grant-type', 'client_credentials', '--auth-method', 'client_secret_post'], env);
    expect(created.code, created.stderr).to.equal(0);
    const { client_id: clientId, client_secret: clientSecret } = JSON.parse(created.stdout) as { client_id: string; client_secret: string };

    started = await startProvider(env);
    const threads = readdirSync(`/proc/${started.child.pid}/task`).map((task) => readFileSync(`/proc/${started!.child.pid}/task/${task}/comm`, 'utf8').trim());
    expect(threads.filter((name) => name === 'libuv-worker')).to.have.length('UV_THREADPOOL_SIZE' in poolSetting ? 3 : Math.min(4, Math.max(2, availableParallelism())));
    // Without METRICS_TOKEN there is no /metrics on the public listener.
    expect((await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { connection: 'close' } })).status).to.equal(404);

    // A token request whose body arrives slowly: the server is inside it when SIGTERM comes.
    const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret }).toString();
    const request = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } });
    const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
      request.once('error', reject);
      request.once('response', (res) => {
        let text = '';
        res.on('data', (chunk) => (text += chunk));
        res.once('end', () => resolve({ status: res.statusCode!, body: text }));
      });
    });
    request.write(body.slice(0, 10));
    await new Promise((resolve) => setTimeout(resolve, 300));

    started.child.kill('SIGTERM');
    await waitFor(() => started!.output().includes('shutting down'), 'the shutdown to begin');
    expect(await connectionRefused(port), 'new connections are refused').to.equal(true);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(started.child.exitCode, 'still running while a request is in flight').to.equal(null);

    const finishedAt = Date.now();
    request.end(body.slice(10));
    const answered = await response;
    expect(answered.status, answered.body).to.equal(200);
    expect(JSON.parse(answered.body)).to.have.property('access_token').that.is.a('string');

    const code = await started.exited;
    expect(code, started.output()).to.equal(0);
    // It left as soon as the request was answered: not when the client's kept-alive connection
    // would have timed out (5 s), nor at the end of the grace period.
    expect(Date.now() - finishedAt).to.be.below(4000);
    expect(started.output()).to.include('"msg":"stopped"');
  });
});
