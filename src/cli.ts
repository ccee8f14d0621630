// The command line: start, migrate, bootstrap, clients, apis, users, keys (run through main.ts).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig, type Config } from './config.ts';
import { createRuntime, type Runtime } from './runtime.ts';
import { startServer } from './server.ts';
import { exitGracefullyOnSignals } from './ops/shutdown.ts';
import { closeDatabase, createDatabase, migrateToLatest } from './store/database.ts';
import { CLIENT_AUTH_METHODS, ClientWithoutSecretError, type ClientAuthMethod } from './clients/service.ts';
import { randomToken } from './security/crypto.ts';
import { SUPPORTED_ALGS } from './keys/service.ts';
import { DEFAULT_TENANT_ID } from './tenants/constants.ts';
import { isUuid } from './ids.ts';
import { originOf } from './audit/origin.ts';

const usage = `usage: idp <command>

  start                          run the provider
  migrate                        apply database migrations
  bootstrap                      create the first admin user and first clients (once)
  clients create --name N [--redirect-uri U]... [--post-logout-redirect-uri U]...
                 [--grant-type G]... [--auth-method M] [--scope S] [--first-party]
                 [--backchannel-logout-uri U] [--client-id ID] [--jwks-uri U | --jwks-file F]
                 [--tenant SLUG] [--certificate-bound]
                 [--tls-subject-dn DN | --tls-san-dns D | --tls-san-ip IP | --tls-san-email E | --tls-san-uri U]
  clients list | clients rotate-secret <client_id> | clients delete <client_id>
  apis create --identifier URI --name N --scope S... [--ttl SECONDS] [--alg RS256|ES256|EdDSA]
  apis list | apis delete <identifier>
  tenants create --slug S --name N [--domain D]... | tenants list
  roles assign [--tenant SLUG] --role NAME... (--user EMAIL|ID | --client CLIENT_ID)
  users create [--tenant SLUG] --email E [--username U] [--name N] [--role NAME]... [--admin]   (password from IDP_PASSWORD or generated)
  keys list | keys rotate
  keys rewrap                    seal every stored secret again under the current KEY_ENCRYPTION_KEY
  audit verify [--tenant SLUG|ID]   check the audit chains; exits 1 naming the first broken entry`;

type Flags = Record<string, string | boolean | string[] | undefined>;

const flagOptions = {
  name: { type: 'string' },
  'redirect-uri': { type: 'string', multiple: true },
  'post-logout-redirect-uri': { type: 'string', multiple: true },
  'grant-type': { type: 'string', multiple: true },
  'auth-method': { type: 'string' },
  scope: { type: 'string', multiple: true },
  'first-party': { type: 'boolean' },
  'backchannel-logout-uri': { type: 'string' },
  'jwks-uri': { type: 'string' },
  'jwks-file': { type: 'string' },
  'client-id': { type: 'string' },
  identifier: { type: 'string' },
  ttl: { type: 'string' },
  alg: { type: 'string' },
  email: { type: 'string' },
  username: { type: 'string' },
  admin: { type: 'boolean' },
  json: { type: 'boolean' },
  tenant: { type: 'string' },
  slug: { type: 'string' },
  domain: { type: 'string', multiple: true },
  role: { type: 'string', multiple: true },
  user: { type: 'string' },
  client: { type: 'string' },
  'certificate-bound': { type: 'boolean' },
  'tls-subject-dn': { type: 'string' },
  'tls-san-dns': { type: 'string' },
  'tls-san-ip': { type: 'string' },
  'tls-san-email': { type: 'string' },
  'tls-san-uri': { type: 'string' },
} as const;

// Wrong syntax: the message is followed by the usage text.
class UsageError extends Error {}
// A well-formed command that cannot be carried out: the message alone, on one line.
class CommandError extends Error {}

function print(value: unknown, asJson: boolean): void {
  if (asJson || typeof value !== 'string') console.log(JSON.stringify(value, null, 2));
  else console.log(value);
}

async function withRuntime<T>(config: Config, work: (runtime: Runtime) => Promise<T>): Promise<T> {
  const runtime = await createRuntime(config, { log: undefined });
  try {
    return await work(runtime);
  } finally {
    await runtime.close();
  }
}

async function start(config: Config): Promise<void> {
  const runtime = await createRuntime(config, { serve: true });
  const { log } = runtime;
  if (config.embedded.database || config.embedded.hotStore) {
    log.warn(
      {
        database: config.embedded.database ? `PGlite in ${config.database.dataDir}/pglite` : 'PostgreSQL',
        hotStore: config.embedded.hotStore ? 'in-process' : 'Redis',
        generatedSecrets: runtime.secrets.generated,
      },
      'running on the embedded default: single instance, for development and evaluation; set DATABASE_URL and REDIS_URL for production',
    );
  }
  const running = await startServer(runtime);
  log.info({ issuer: config.issuer, listening: `${config.host}:${running.server.address() && (running.server.address() as { port: number }).port}` }, 'identity provider started');
  exitGracefullyOnSignals(running, runtime, log);
}

// Each command checks its input before it opens the storage, so a typo never waits on (or locks) it.
// A client's public keys for private_key_jwt: a JWK Set, public members only.
function readJwksFile(file: string): { keys: unknown[] } {
  let parsed: { keys?: unknown };
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new CommandError(`--jwks-file: cannot read a JSON Web Key Set from ${file}: ${(error as Error).message}`);
  }
  if (!Array.isArray(parsed.keys)) throw new CommandError('--jwks-file must hold a JSON Web Key Set ({"keys": [...]})');
  return { keys: parsed.keys };
}

async function clientsCommand(config: Config, action: string | undefined, args: string[], flags: Flags): Promise<void> {
  switch (action) {
    case 'create': {
      if (typeof flags.name !== 'string') throw new UsageError('clients create needs --name');
      const name = flags.name;
      const authMethod = (flags['auth-method'] as string | undefined) ?? 'client_secret_basic';
      if (!CLIENT_AUTH_METHODS.includes(authMethod as ClientAuthMethod)) {
        throw new CommandError(`--auth-method must be one of ${CLIENT_AUTH_METHODS.join(', ')}`);
      }
      const clientId = flags['client-id'] as string | undefined;
      const jwks = flags['jwks-file'] ? readJwksFile(flags['jwks-file'] as string) : undefined;
      const tlsClientAuth = {
        subjectDn: flags['tls-subject-dn'] as string | undefined,
        sanDns: flags['tls-san-dns'] as string | undefined,
        sanIp: flags['tls-san-ip'] as string | undefined,
        sanEmail: flags['tls-san-email'] as string | undefined,
        sanUri: flags['tls-san-uri'] as string | undefined,
      };
      const subjects = Object.values(tlsClientAuth).filter(Boolean).length;
      if (authMethod === 'tls_client_auth' && subjects !== 1) {
        throw new CommandError('tls_client_auth needs exactly one of --tls-subject-dn, --tls-san-dns, --tls-san-ip, --tls-san-email, --tls-san-uri');
      }
      if (authMethod !== 'tls_client_auth' && subjects) throw new CommandError('--tls-subject-dn and --tls-san-* go with --auth-method tls_client_auth');
      return withRuntime(config, async ({ clients, tenants }) => {
        if (clientId && (await clients.get(clientId))) throw new CommandError(`a client with client_id ${clientId} exists`);
        // A machine client acts for a tenant, so roles of that tenant can be assigned to it.
        const tenantId = flags.tenant === undefined ? undefined : await tenantIdFor(tenants, flags.tenant);
        const { client, clientSecret } = await clients.create({
          clientId,
          tenantId,
          tlsClientAuth,
          certificateBoundAccessTokens: flags['certificate-bound'] ? true : undefined,
          name,
          redirectUris: flags['redirect-uri'] as string[] | undefined,
          postLogoutRedirectUris: flags['post-logout-redirect-uri'] as string[] | undefined,
          grantTypes: flags['grant-type'] as string[] | undefined,
          authMethod: authMethod as ClientAuthMethod,
          scope: (flags.scope as string[] | undefined)?.join(' '),
          firstParty: Boolean(flags['first-party']),
          backchannelLogoutUri: flags['backchannel-logout-uri'] as string | undefined,
          jwksUri: flags['jwks-uri'] as string | undefined,
          jwks,
        });
        print({ client_id: client.clientId, client_secret: clientSecret, note: clientSecret ? 'the secret is shown only once' : undefined, metadata: client.metadata }, true);
      });
    }
    case 'list':
      return withRuntime(config, async ({ clients }) => {
        print((await clients.list()).map((c) => ({ client_id: c.clientId, name: c.metadata.client_name, first_party: c.firstParty, grant_types: c.metadata.grant_types, auth_method: c.metadata.token_endpoint_auth_method })), true);
      });
    case 'delete': {
      const clientId = args[0];
      if (!clientId) throw new UsageError('clients delete needs a client_id');
      return withRuntime(config, async ({ clients }) => {
        if (!(await clients.delete(clientId))) throw new CommandError(`no client ${clientId}`);
        print(`deleted client ${clientId}`, false);
      });
    }
    case 'rotate-secret': {
      const clientId = args[0];
      if (!clientId) throw new UsageError('clients rotate-secret needs a client_id');
      return withRuntime(config, async ({ clients }) => {
        try {
          const clientSecret = await clients.rotateSecret(clientId);
          if (!clientSecret) throw new CommandError(`no client ${clientId}`);
          print({ client_id: clientId, client_secret: clientSecret, note: 'the secret is shown only once; the old one no longer works' }, true);
        } catch (error) {
          if (error instanceof ClientWithoutSecretError) throw new CommandError(error.message);
          throw error;
        }
      });
    }
    default:
      throw new UsageError('clients takes create, list, rotate-secret or delete');
  }
}

async function apisCommand(config: Config, action: string | undefined, args: string[], flags: Flags): Promise<void> {
  switch (action) {
    case 'create': {
      const { identifier, name } = flags;
      if (typeof identifier !== 'string' || typeof name !== 'string') throw new UsageError('apis create needs --identifier and --name');
      const ttl = typeof flags.ttl === 'string' ? Number(flags.ttl) : undefined;
      if (ttl !== undefined && !(/^[0-9]+$/.test(flags.ttl as string) && ttl > 0)) throw new CommandError('--ttl must be a positive whole number of seconds');
      const alg = flags.alg as string | undefined;
      if (alg !== undefined && !(SUPPORTED_ALGS as readonly string[]).includes(alg)) throw new CommandError(`--alg must be one of ${SUPPORTED_ALGS.join(', ')}`);
      return withRuntime(config, async ({ apis }) => {
        if (await apis.find(identifier)) throw new CommandError(`an API with identifier ${identifier} exists`);
        await apis.create({ identifier, name, scopes: (flags.scope as string[] | undefined) ?? [], accessTokenTtl: ttl, signingAlg: alg });
        print(await apis.find(identifier), true);
      });
    }
    case 'list':
      return withRuntime(config, async ({ apis }) => print(await apis.list(), true));
    case 'delete': {
      const identifier = args[0];
      if (!identifier) throw new UsageError('apis delete needs an identifier');
      return withRuntime(config, async ({ apis }) => {
        if (!(await apis.delete(identifier))) throw new CommandError(`no API ${identifier}`);
        print(`deleted API ${identifier}`, false);
      });
    }
    default:
      throw new UsageError('apis takes create, list or delete');
  }
}

// --tenant takes a slug; without it, the platform tenant.
async function tenantIdFor(tenants: Runtime['tenants'], slug: unknown): Promise<string> {
  if (typeof slug !== 'string') return DEFAULT_TENANT_ID;
  const tenant = await tenants.findBySlug(slug);
  if (!tenant) throw new CommandError(`no tenant with slug ${slug}`);
  return tenant.id;
}

async function roleIdsFor(rbac: Runtime['rbac'], tenantId: string, names: unknown): Promise<string[]> {
  const ids: string[] = [];
  for (const name of (names as string[] | undefined) ?? []) {
    const id = await rbac.roleIdByName(tenantId, name);
    if (!id) throw new CommandError(`no role ${name} in that tenant`);
    ids.push(id);
  }
  return ids;
}

async function tenantsCommand(config: Config, action: string | undefined, flags: Flags): Promise<void> {
  if (action === 'list') return withRuntime(config, async ({ tenants }) => print(await tenants.list(200), true));
  if (action !== 'create') throw new UsageError('tenants takes create or list');
  if (typeof flags.slug !== 'string' || typeof flags.name !== 'string') throw new UsageError('tenants create needs --slug and --name');
  await withRuntime(config, async ({ tenants }) => {
    print(await tenants.create({ slug: flags.slug as string, displayName: flags.name as string, emailDomains: flags.domain as string[] | undefined }), true);
  });
}

async function rolesCommand(config: Config, action: string | undefined, flags: Flags): Promise<void> {
  if (action !== 'assign') throw new UsageError('roles takes assign');
  if (!flags.role || (typeof flags.user !== 'string') === (typeof flags.client !== 'string')) {
    throw new UsageError('roles assign needs --role and one of --user (e-mail or id) or --client (client_id)');
  }
  await withRuntime(config, async ({ tenants, rbac, users, clients }) => {
    const tenantId = await tenantIdFor(tenants, flags.tenant);
    const roleIds = await roleIdsFor(rbac, tenantId, flags.role);
    let subject: { type: 'user' | 'client'; id: string };
    if (typeof flags.client === 'string') {
      const client = await clients.get(flags.client);
      if (!client || client.tenantId !== tenantId) throw new CommandError(`no client ${flags.client} in that tenant`);
      subject = { type: 'client', id: client.clientId };
    } else {
      const identifier = flags.user as string;
      const user = identifier.includes('@')
        ? (await users.list(tenantId, { email: identifier, limit: 1 })).items[0]
        : await users.get(tenantId, identifier).catch(() => undefined);
      if (!user) throw new CommandError(`no user ${identifier} in that tenant`);
      subject = { type: 'user', id: user.id };
    }
    for (const roleId of roleIds) await rbac.assign(tenantId, roleId, subject.type, subject.id);
    print({ tenantId, subject, roles: (await rbac.rolesOf(tenantId, subject.type, subject.id)).map((role) => role.name) }, true);
  });
}

async function usersCommand(config: Config, action: string | undefined, flags: Flags): Promise<void> {
  if (action !== 'create') throw new UsageError('users takes create');
  if (typeof flags.email !== 'string') throw new UsageError('users create needs --email');
  const password = process.env.IDP_PASSWORD || randomToken(18);
  await withRuntime(config, async ({ users, tenants, rbac }) => {
    const tenantId = await tenantIdFor(tenants, flags.tenant);
    const roleIds = await roleIdsFor(rbac, tenantId, flags.role);
    const user = await users.create(tenantId, {
      email: flags.email as string,
      username: flags.username as string | undefined,
      name: flags.name as string | undefined,
      password,
      emailVerified: true,
      isAdmin: Boolean(flags.admin),
    });
    for (const roleId of roleIds) await rbac.assign(tenantId, roleId, 'user', user.id);
    print({ ...user, password: process.env.IDP_PASSWORD ? undefined : password }, true);
  });
}

async function keysCommand(config: Config, action: string | undefined): Promise<void> {
  if (action === 'rewrap') return rewrapCommand(config);
  if (action !== 'list' && action !== 'rotate') throw new UsageError('keys takes list, rotate or rewrap');
  await withRuntime(config, async ({ keys }) => print(action === 'list' ? await keys.list() : await keys.rotate(), true));
}

// After a key-encryption key rotation (docs/operations.md): one line per kind of sealed value. A value
// no key opens is named by kind and id (never shown) and the command exits 1; running it again is harmless.
async function rewrapCommand(config: Config): Promise<void> {
  await withRuntime(config, async ({ keyRing, keys, mfa, connectors, webhooks, audit }) => {
    const reports = [];
    for (const domain of [keys, mfa, connectors, webhooks]) reports.push(await domain.rewrap(keyRing));
    for (const report of reports) {
      print(`${report.kind}: ${report.rewrapped} rewrapped, ${report.current} already under the current key${report.failed.length ? `, ${report.failed.length} unreadable` : ''}`, false);
    }
    const failed = reports.flatMap((report) => report.failed.map((id) => `${report.kind} ${id}`));
    await audit.record(undefined, {
      tenantId: DEFAULT_TENANT_ID,
      type: 'keys.rewrap',
      outcome: failed.length ? 'failure' : 'success',
      ...originOf(undefined),
      details: { counts: Object.fromEntries(reports.map((report) => [report.kind, { rewrapped: report.rewrapped, current: report.current, unreadable: report.failed.length }])) },
    });
    if (failed.length) throw new CommandError(`not readable with any key-encryption key (KEY_ENCRYPTION_KEY, KEY_ENCRYPTION_KEY_PREVIOUS): ${failed.join(', ')}`);
  });
}

// One line per chain checked; a break names the first broken entry and exits 1.
async function auditCommand(config: Config, action: string | undefined, flags: Flags): Promise<void> {
  if (action !== 'verify') throw new UsageError('audit takes verify');
  await withRuntime(config, async ({ audit, tenants }) => {
    let tenantId: string | undefined;
    if (typeof flags.tenant === 'string') {
      tenantId = isUuid(flags.tenant) ? flags.tenant : (await tenants.findBySlug(flags.tenant))?.id;
      if (!tenantId) throw new CommandError(`no tenant with slug ${flags.tenant}`);
    }
    const report = await audit.verify(tenantId);
    for (const chain of report.chains) {
      print(chain.ok ? `tenant ${chain.tenantId}: ok, ${chain.checked} ${chain.checked === 1 ? 'entry' : 'entries'}` : `tenant ${chain.tenantId}: BROKEN at seq ${chain.firstBroken!.seq}`, false);
    }
    if (!report.chains.length) print('no audit entries yet', false);
    const broken = report.firstBroken;
    if (broken) throw new CommandError(`audit chain broken: tenant ${broken.tenantId}, seq ${broken.seq}, entry ${broken.id ?? '(none)'}: ${broken.reason}`);
  });
}

// Creates the first admin and two clients: a first-party web app and a machine client.
async function bootstrap(config: Config): Promise<void> {
  await withRuntime(config, async ({ users, clients, rbac, adminApi }) => {
    if ((await users.count()) > 0) throw new CommandError('already bootstrapped: users exist');
    const email = process.env.IDP_ADMIN_EMAIL || 'admin@example.com';
    const password = process.env.IDP_ADMIN_PASSWORD || randomToken(18);
    const admin = await users.create(DEFAULT_TENANT_ID, { email, username: 'admin', name: 'Administrator', password, emailVerified: true, isAdmin: true });
    const apiIdentifier = adminApi;
    const rootAdmin = (await rbac.roleIdByName(DEFAULT_TENANT_ID, 'root-admin'))!;
    await rbac.assign(DEFAULT_TENANT_ID, rootAdmin, 'user', admin.id);
    const web = await clients.create({
      name: 'Example web app',
      redirectUris: ['http://localhost:8080/callback'],
      postLogoutRedirectUris: ['http://localhost:8080/'],
      grantTypes: ['authorization_code', 'refresh_token'],
      firstParty: true,
    });
    const machine = await clients.create({ name: 'Example service', grantTypes: ['client_credentials'], tenantId: DEFAULT_TENANT_ID });
    await rbac.assign(DEFAULT_TENANT_ID, rootAdmin, 'client', machine.client.clientId);
    print(
      {
        admin: { id: admin.id, email, password: process.env.IDP_ADMIN_PASSWORD ? undefined : password },
        web_client: { client_id: web.client.clientId, client_secret: web.clientSecret, redirect_uri: 'http://localhost:8080/callback' },
        machine_client: { client_id: machine.client.clientId, client_secret: machine.clientSecret, resource: apiIdentifier },
        note: 'secrets and the password are shown only once',
      },
      true,
    );
  });
}

async function main(argv: string[]): Promise<void> {
  const { positionals, values } = parseArgs({ args: argv, options: flagOptions, allowPositionals: true, strict: true });
  const [command, action, ...rest] = positionals;
  if (!command || command === 'help') {
    console.log(usage);
    return;
  }
  const config = loadConfig();
  switch (command) {
    case 'start':
      return start(config);
    case 'migrate': {
      const db = createDatabase(config.database);
      try {
        const applied = await migrateToLatest(db);
        console.log(applied.length ? `applied: ${applied.join(', ')}` : 'already up to date');
      } finally {
        await closeDatabase(db);
      }
      return;
    }
    case 'bootstrap':
      return bootstrap(config);
    case 'clients':
      return clientsCommand(config, action, rest, values);
    case 'apis':
      return apisCommand(config, action, rest, values);
    case 'tenants':
      return tenantsCommand(config, action, values);
    case 'roles':
      return rolesCommand(config, action, values);
    case 'users':
      return usersCommand(config, action, values);
    case 'keys':
      return keysCommand(config, action);
    case 'audit':
      return auditCommand(config, action, values);
    default:
      throw new UsageError(`unknown command ${command}`);
  }
}

// Every failure ends as one `idp: ...` line (plus the usage text for wrong syntax), never a stack.
main(process.argv.slice(2)).catch((error) => {
  const { message, code } = (error ?? {}) as { message?: string; code?: string };
  console.error(`idp: ${(message || code || String(error)).split('\n')[0]}`);
  if (error instanceof UsageError) console.error(usage);
  process.exit(1);
});
