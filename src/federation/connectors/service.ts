// A tenant's upstream identity provider connectors: administered through the admin API, read by
// the sign-in. Secrets (client secret, private key) are sealed under the key-encryption key, bound
// to tenant and connector, and never leave this service except to the sign-in (findForLogin).
// Every read and write runs tenant-scoped under row-level security, except the e-mail-domain
// look-up of home-realm discovery, which runs before the tenant is known (see migration 023).
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { z } from 'zod';
import type { Database } from '../../store/database.ts';
import type { HotStore } from '../../store/hot-store.ts';
import { withTenant, type TenantTransaction } from '../../store/tenant-scope.ts';
import { BroadcastCache } from '../../store/local-cache.ts';
import { seal, sha256Hex, unseal, type SealingKeys } from '../../security/crypto.ts';
import { rewrapAll, type RewrapReport } from '../../security/rewrap.ts';
import { isUuid } from '../../ids.ts';
import { ConflictError, fieldErrors, NotFoundError, ValidationError, VersionMismatchError } from '../../errors.ts';
import type { AuditService } from '../../audit/service.ts';
import { originOf, type ChangeOrigin } from '../../audit/origin.ts';
import { changeDetails } from '../../audit/mask.ts';
import type { RbacService } from '../../rbac/service.ts';
import type { Connector, ConnectorKind, ConnectorSecrets, ConnectorWithSecrets, RoleMapping } from '../connector.ts';
import { connectorQueries, domainQueries, sealedSecretQueries, type ConnectorRow, type RoleMappingRow } from './queries.ts';
import { checkSettings, effectiveSettings, normalizeDomains, type ConnectorSettings, type SettingsDraft } from './settings.ts';
import { acceptSigningKey, generateSigningKey, publicJwkOf } from './signing-key.ts';
import { CONNECTOR_NAME, createConnectorSchema, roleMappingsSchema, updateConnectorSchema, type CreateConnectorInput, type UpdateConnectorInput } from './schemas.ts';

// What the admin API shows: the connector without its secrets, and whether it has a client secret.
export type AdminConnector = Connector & { hasClientSecret: boolean };

// One button on the sign-in page.
export interface LoginConnector {
  id: string;
  name: string;
  displayName: string;
  kind: ConnectorKind;
}

export interface ConnectorService {
  // Changes are recorded in the audit trail, in their transaction, as done by `origin`.
  create(tenantId: string, input: CreateConnectorInput, origin?: ChangeOrigin): Promise<AdminConnector>;
  list(tenantId: string): Promise<AdminConnector[]>;
  get(tenantId: string, id: string): Promise<AdminConnector>;
  update(tenantId: string, id: string, expectedVersion: number, patch: UpdateConnectorInput, origin?: ChangeOrigin): Promise<AdminConnector>;
  // With expectedVersion (If-Match), only at the version the caller read.
  remove(tenantId: string, id: string, origin?: ChangeOrigin, expectedVersion?: number): Promise<void>;
  // Replaces every mapping; with expectedVersion, only at that version of the connector.
  setRoleMappings(tenantId: string, id: string, mappings: RoleMapping[], origin?: ChangeOrigin, expectedVersion?: number): Promise<AdminConnector>;

  // For the sign-in. Enabled connectors of the tenant by display name (cached briefly per
  // instance; every instance drops its copy when any of them changes a connector).
  listForLogin(tenantId: string): Promise<LoginConnector[]>;
  // An enabled connector with its secrets unsealed, for the upstream client.
  findForLogin(tenantId: string, name: string): Promise<ConnectorWithSecrets | undefined>;
  // Home-realm discovery: the enabled connector of an active tenant that claims the domain.
  findByEmailDomain(domain: string): Promise<{ tenantId: string; connectorName: string } | undefined>;
  // Assigns the roles the groups map to that the user lacks, and takes back the roles this
  // connector granted before that the groups no longer map to; never a role assigned otherwise.
  // Role ids granted and revoked; each change is recorded by RBAC (role.assign / role.unassign).
  applyRoleMappings(tenantId: string, userId: string, connectorId: string, groups: string[], origin?: ChangeOrigin): Promise<{ granted: string[]; revoked: string[] }>;
  start(): Promise<void>;
  // Seals every connector's secrets again under the current key-encryption key (`idp keys rewrap`).
  rewrap(keyRing: SealingKeys): Promise<RewrapReport>;
}

export interface ConnectorServiceDependencies {
  db: Database;
  hot: HotStore;
  keyEncryptionKey: SealingKeys;
  rbac: Pick<RbacService, 'getRole' | 'assign' | 'unassign' | 'rolesOf'>;
  audit: Pick<AuditService, 'record'>;
  // OUTBOUND_ALLOW_PRIVATE_NETWORK: plain http upstreams on loopback (development, tests).
  allowPrivateNetwork: boolean;
  now?: () => Date;
  // Removes the identities linked through a connector, in the transaction that deletes it
  // (src/account/identities); answers how many.
  unlinkIdentities?(trx: TenantTransaction, tenantId: string, connectorId: string): Promise<number>;
}

// Who changes roles at a sign-in when the caller names nobody.
const FEDERATION_ACTOR: ChangeOrigin = { actor: { type: 'system', id: 'federation' } };

export function connectorSealContext(tenantId: string, connectorId: string): string {
  return `connectors:${tenantId}:${connectorId}`;
}

function isUniqueViolation(error: unknown): error is { code: string; constraint?: string } {
  return (error as { code?: string })?.code === '23505';
}

function parse<T>(schema: z.ZodType<T>, value: unknown, prefix = 'body'): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ValidationError('invalid connector', fieldErrors(prefix, parsed.error.issues));
  return parsed.data;
}

function toConnector(row: ConnectorRow, domains: string[], mappings: RoleMappingRow[]): Connector {
  const { settings } = row;
  const effective = effectiveSettings(row.kind, settings);
  return {
    id: row.id,
    tenantId: row.tenant_id,
    name: row.name,
    displayName: row.display_name,
    kind: row.kind,
    enabled: row.enabled,
    clientId: settings.clientId,
    clientAuth: settings.clientAuth,
    scopes: settings.scopes,
    ...(settings.issuer !== undefined && { issuer: settings.issuer }),
    useUserinfo: settings.useUserinfo,
    ...(effective.authorizationEndpoint !== undefined && { authorizationEndpoint: effective.authorizationEndpoint }),
    ...(effective.tokenEndpoint !== undefined && { tokenEndpoint: effective.tokenEndpoint }),
    ...(effective.profileEndpoint !== undefined && { profileEndpoint: effective.profileEndpoint }),
    ...(effective.claimMapping !== undefined && { claimMapping: effective.claimMapping }),
    ...(settings.genesys !== undefined && { genesys: settings.genesys }),
    trustEmail: row.trust_email,
    jitProvisioning: row.jit_provisioning,
    emailDomains: domains,
    roleMappings: mappings.map((mapping) => ({ group: mapping.upstream_group, roleId: mapping.role_id })),
    ...(settings.clientAuth === 'private_key_jwt' && settings.publicJwk !== undefined && { publicJwk: settings.publicJwk }),
    version: row.version,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
}

// By display name as people read it, whatever the database's collation.
const collator = new Intl.Collator('en', { sensitivity: 'base', numeric: true });
function byDisplayName<T extends { display_name: string; name: string }>(rows: T[]): T[] {
  return rows.sort((a, b) => collator.compare(a.display_name, b.display_name) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function toAdmin(connector: Connector): AdminConnector {
  return { ...connector, hasClientSecret: connector.clientAuth !== 'private_key_jwt' };
}

// What the audit trail keeps of a connector: configuration only. Names are chosen so the masking
// of mask.ts (which hides anything named like a token, a key or an e-mail) leaves the
// configuration readable; the secret's digest shows that it changed and is masked itself.
function auditView(connector: Connector, secrets: ConnectorSecrets): Record<string, unknown> {
  const claims = connector.claimMapping ? Object.entries(connector.claimMapping).map(([claim, path]) => `${claim}=${path}`) : [];
  const endpoints = [
    connector.authorizationEndpoint && `authorization ${connector.authorizationEndpoint}`,
    connector.tokenEndpoint && `token ${connector.tokenEndpoint}`,
    connector.profileEndpoint && `profile ${connector.profileEndpoint}`,
  ].filter(Boolean);
  return {
    name: connector.name,
    displayName: connector.displayName,
    kind: connector.kind,
    enabled: connector.enabled,
    clientId: connector.clientId,
    clientAuth: connector.clientAuth,
    scopes: connector.scopes,
    issuer: connector.issuer ?? null,
    useUserinfo: connector.useUserinfo,
    endpoints,
    claims,
    genesys: connector.genesys ?? null,
    jitProvisioning: connector.jitProvisioning,
    upstreamAddressesTrusted: connector.trustEmail,
    domains: connector.emailDomains,
    signingKid: connector.publicJwk?.kid ?? null,
    clientSecret: secrets.clientSecret === undefined ? null : sha256Hex(secrets.clientSecret),
  };
}

function mappingsView(mappings: RoleMapping[]): Record<string, unknown> {
  return { roleMappings: mappings.map((mapping) => `${mapping.group} -> ${mapping.roleId}`).sort() };
}

function uniqueMappings(mappings: RoleMapping[]): RoleMapping[] {
  const seen = new Set<string>();
  return mappings.filter((mapping) => {
    const key = JSON.stringify([mapping.group, mapping.roleId]);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export function createConnectorService(deps: ConnectorServiceDependencies): ConnectorService {
  const { db, keyEncryptionKey, rbac, audit } = deps;
  const now = deps.now ?? (() => new Date());
  const loginCache = new BroadcastCache<{ items: LoginConnector[] }>(deps.hot, 'connectors:changed', { max: 10_000, ttlSeconds: 60 });
  // Home-realm discovery runs on every identifier typed, mostly for domains no connector has:
  // answers (misses too) are cached briefly and dropped on every instance when a domain changes.
  const domainCache = new BroadcastCache<{ found: { tenantId: string; connectorName: string } | null }>(deps.hot, 'connector-domains:changed', { max: 10_000, ttlSeconds: 60 });

  async function changed(tenantId: string, domains: string[]): Promise<void> {
    await Promise.all([loginCache.invalidate(tenantId), ...[...new Set(domains)].map((domain) => domainCache.invalidate(domain))]);
  }

  const sealSecrets = (tenantId: string, id: string, secrets: ConnectorSecrets) => seal(keyEncryptionKey, JSON.stringify(secrets), connectorSealContext(tenantId, id));
  const unsealSecrets = (row: ConnectorRow): ConnectorSecrets => JSON.parse(unseal(keyEncryptionKey, row.secrets_sealed, connectorSealContext(row.tenant_id, row.id)));

  async function record(trx: Knex.Transaction, tenantId: string, type: string, id: string, details: Record<string, unknown>, origin: ChangeOrigin | undefined): Promise<void> {
    await audit.record(trx, { tenantId, type, outcome: 'success', ...originOf(origin), target: { ref: id }, details });
  }

  async function existing(trx: TenantTransaction, tenantId: string, id: string, forUpdate = false): Promise<ConnectorRow> {
    const row = isUuid(id) ? await connectorQueries.find(trx, tenantId, id, { forUpdate }) : undefined;
    if (!row) throw new NotFoundError('no such connector in this tenant');
    return row;
  }

  async function load(trx: TenantTransaction, tenantId: string, rows: ConnectorRow[]): Promise<Connector[]> {
    const ids = rows.map((row) => row.id);
    const domains = Map.groupBy(await connectorQueries.domainsOf(trx, tenantId, ids), (row) => row.connector_id);
    const mappings = Map.groupBy(await connectorQueries.mappingsOf(trx, tenantId, ids), (row) => row.connector_id);
    return rows.map((row) => toConnector(row, (domains.get(row.id) ?? []).map((entry) => entry.domain), mappings.get(row.id) ?? []));
  }

  async function loadOne(trx: TenantTransaction, tenantId: string, row: ConnectorRow): Promise<Connector> {
    return (await load(trx, tenantId, [row]))[0];
  }

  // The secrets the client authentication needs, and nothing more: a change of method drops the
  // other method's secret.
  async function resolveSecrets(settings: ConnectorSettings, given: { clientSecret?: string; privateJwk?: Record<string, unknown> }, current: ConnectorSecrets, fields: Record<string, string>): Promise<ConnectorSecrets> {
    if (settings.clientAuth === 'private_key_jwt') {
      if (given.clientSecret !== undefined) fields['body.clientSecret'] = 'not used with private_key_jwt';
      if (given.privateJwk !== undefined) {
        const accepted = await acceptSigningKey(given.privateJwk);
        if ('problem' in accepted) {
          fields['body.privateJwk'] = accepted.problem;
          return {};
        }
        return { privateJwk: accepted.jwk };
      }
      return { privateJwk: current.privateJwk ?? (await generateSigningKey()) };
    }
    if (given.privateJwk !== undefined) fields['body.privateJwk'] = 'only used with private_key_jwt';
    const clientSecret = given.clientSecret ?? current.clientSecret;
    if (clientSecret === undefined) fields['body.clientSecret'] = `required for ${settings.clientAuth}`;
    return { clientSecret };
  }

  function withPublicKey(settings: ConnectorSettings, secrets: ConnectorSecrets): ConnectorSettings {
    const { publicJwk: _previous, ...rest } = settings;
    return secrets.privateJwk ? { ...rest, publicJwk: publicJwkOf(secrets.privateJwk) } : rest;
  }

  function checkDomains(values: string[] | undefined, fields: Record<string, string>): string[] | undefined {
    if (values === undefined) return undefined;
    const { domains, invalid } = normalizeDomains(values);
    if (invalid !== undefined) fields['body.emailDomains'] = `${invalid.slice(0, 100)} is not a domain name`;
    return domains;
  }

  async function checkDomainsFree(domains: string[] | undefined, connectorId: string | undefined): Promise<void> {
    if (!domains?.length) return;
    const taken = await domainQueries.takenElsewhere(db, domains, connectorId);
    if (taken.length) throw new ConflictError(`${taken.join(', ')} already belongs to another connector`, { 'body.emailDomains': `already used by another connector: ${taken.join(', ')}` });
  }

  // Each mapped role must be a role of this tenant (asked of RBAC, which sees only the tenant's).
  async function checkMappings(tenantId: string, mappings: RoleMapping[], prefix: string): Promise<void> {
    const fields: Record<string, string> = {};
    const known = new Map<string, boolean>();
    for (const [index, mapping] of mappings.entries()) {
      if (!known.has(mapping.roleId)) {
        known.set(
          mapping.roleId,
          await rbac.getRole(tenantId, mapping.roleId).then(
            () => true,
            (error: unknown) => {
              if (error instanceof NotFoundError) return false;
              throw error;
            },
          ),
        );
      }
      if (!known.get(mapping.roleId)) fields[`${prefix}.${index}.roleId`] = 'not a role of this tenant';
    }
    if (Object.keys(fields).length) throw new ValidationError('the role mappings name roles this tenant does not have', fields);
  }

  // A domain or name claimed between our check and our insert.
  function conflictOf(error: unknown): unknown {
    if (!isUniqueViolation(error)) return error;
    if (error.constraint?.includes('domain')) return new ConflictError('an e-mail domain already belongs to another connector', { 'body.emailDomains': 'already used by another connector' });
    return new ConflictError('a connector of that name exists in this tenant', { 'body.name': 'already taken' });
  }

  const service: ConnectorService = {
    list: (tenantId) => withTenant(db, tenantId, async (trx) => (await load(trx, tenantId, byDisplayName(await connectorQueries.list(trx, tenantId)))).map(toAdmin)),

    get: (tenantId, id) => withTenant(db, tenantId, async (trx) => toAdmin(await loadOne(trx, tenantId, await existing(trx, tenantId, id)))),

    async create(tenantId, raw, origin) {
      const input = parse(createConnectorSchema, raw);
      const { settings, fields } = checkSettings(input.kind, input, deps.allowPrivateNetwork);
      const domains = checkDomains(input.emailDomains, fields) ?? [];
      const secrets = await resolveSecrets(settings, input, {}, fields);
      if (Object.keys(fields).length) throw new ValidationError('invalid connector', fields);
      const mappings = uniqueMappings(input.roleMappings ?? []);
      await checkMappings(tenantId, mappings, 'body.roleMappings');
      await checkDomainsFree(domains, undefined);
      const id = randomUUID();
      try {
        const created = await withTenant(db, tenantId, async (trx) => {
          if (await connectorQueries.findByName(trx, tenantId, input.name)) throw new ConflictError(`a connector named ${input.name} exists in this tenant`, { 'body.name': 'already taken' });
          const row = await connectorQueries.insert(trx, {
            id,
            tenant_id: tenantId,
            name: input.name,
            display_name: input.displayName,
            kind: input.kind,
            enabled: input.enabled ?? true,
            settings: withPublicKey(settings, secrets),
            secrets_sealed: sealSecrets(tenantId, id, secrets),
            jit_provisioning: input.jitProvisioning ?? false,
            // Genesys Cloud addresses are managed by the organization's administrators, and its
            // profile has no verified flag: trusted unless the administrator says otherwise.
            trust_email: input.trustEmail ?? input.kind === 'genesys',
          });
          await connectorQueries.replaceDomains(trx, tenantId, id, domains);
          await connectorQueries.replaceMappings(trx, tenantId, id, mappings);
          const connector = await loadOne(trx, tenantId, row);
          await record(trx, tenantId, 'connector.create', id, { ...changeDetails(null, auditView(connector, secrets)), ...(mappings.length ? { roleMappings: mappingsView(mappings).roleMappings } : {}) }, origin);
          return connector;
        });
        await changed(tenantId, domains);
        return toAdmin(created);
      } catch (error) {
        throw conflictOf(error);
      }
    },

    async update(tenantId, id, expectedVersion, raw, origin) {
      const patch = parse(updateConnectorSchema, raw);
      const current = await withTenant(db, tenantId, (trx) => existing(trx, tenantId, id));
      if (current.version !== expectedVersion) throw new VersionMismatchError('the connector changed since you read it: read it again');
      const stored = current.settings;
      // undefined keeps the stored value; null takes it back to the default.
      const pick = <T>(given: T | null | undefined, fallback: T | undefined): T | null | undefined => (given !== undefined ? given : fallback);
      const draft: SettingsDraft = {
        clientId: patch.clientId ?? stored.clientId,
        clientAuth: patch.clientAuth ?? stored.clientAuth,
        scopes: patch.scopes ?? stored.scopes,
        issuer: patch.issuer ?? stored.issuer,
        useUserinfo: patch.useUserinfo ?? stored.useUserinfo,
        authorizationEndpoint: pick(patch.authorizationEndpoint, stored.authorizationEndpoint),
        tokenEndpoint: pick(patch.tokenEndpoint, stored.tokenEndpoint),
        profileEndpoint: pick(patch.profileEndpoint, stored.profileEndpoint),
        claimMapping: pick(patch.claimMapping, stored.claimMapping),
        genesys: (patch.genesys ?? stored.genesys) as SettingsDraft['genesys'],
      };
      const { settings, fields } = checkSettings(current.kind, draft, deps.allowPrivateNetwork);
      const domains = checkDomains(patch.emailDomains, fields);
      const secrets = await resolveSecrets(settings, patch, unsealSecrets(current), fields);
      if (Object.keys(fields).length) throw new ValidationError('invalid connector', fields);
      await checkDomainsFree(domains, id);
      try {
        const updated = await withTenant(db, tenantId, async (trx) => {
          const before = await loadOne(trx, tenantId, await existing(trx, tenantId, id));
          const beforeSecrets = unsealSecrets(current);
          const row = await connectorQueries.update(
            trx,
            tenantId,
            id,
            expectedVersion,
            {
              settings: withPublicKey(settings, secrets),
              secrets_sealed: sealSecrets(tenantId, id, secrets),
              ...(patch.displayName !== undefined ? { display_name: patch.displayName } : {}),
              ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
              ...(patch.jitProvisioning !== undefined ? { jit_provisioning: patch.jitProvisioning } : {}),
              ...(patch.trustEmail !== undefined ? { trust_email: patch.trustEmail } : {}),
            },
            now(),
          );
          if (!row) throw new VersionMismatchError('the connector changed since you read it: read it again');
          if (domains !== undefined) await connectorQueries.replaceDomains(trx, tenantId, id, domains);
          const after = await loadOne(trx, tenantId, row);
          await record(trx, tenantId, 'connector.update', id, changeDetails(auditView(before, beforeSecrets), auditView(after, secrets)), origin);
          return { after, domainsBefore: before.emailDomains };
        });
        // Enabling or disabling changes what discovery finds, not only a changed list.
        await changed(tenantId, [...updated.domainsBefore, ...updated.after.emailDomains]);
        return toAdmin(updated.after);
      } catch (error) {
        throw conflictOf(error);
      }
    },

    async remove(tenantId, id, origin, expectedVersion) {
      const domains = await withTenant(db, tenantId, async (trx) => {
        const row = await existing(trx, tenantId, id, true);
        if (expectedVersion !== undefined && row.version !== expectedVersion) throw new VersionMismatchError('the connector changed since you read it: read it again');
        const before = await loadOne(trx, tenantId, row);
        // Mappings, domains and the record of granted roles go with it (foreign keys); the roles
        // it granted stay with their users until an administrator takes them back. The identities
        // linked through it go too: nothing may sign in as those people through it any more.
        await connectorQueries.remove(trx, tenantId, id);
        const unlinked = (await deps.unlinkIdentities?.(trx, tenantId, id)) ?? 0;
        await record(trx, tenantId, 'connector.delete', id, { ...changeDetails(auditView(before, unsealSecrets(row)), null), ...(before.roleMappings.length ? mappingsView(before.roleMappings) : {}), unlinkedIdentities: unlinked }, origin);
        return before.emailDomains;
      });
      await changed(tenantId, domains);
    },

    async setRoleMappings(tenantId, id, raw, origin, expectedVersion) {
      const mappings = uniqueMappings(parse(roleMappingsSchema, raw, 'body.roleMappings'));
      await withTenant(db, tenantId, (trx) => existing(trx, tenantId, id));
      await checkMappings(tenantId, mappings, 'body.roleMappings');
      return withTenant(db, tenantId, async (trx) => {
        const row = await existing(trx, tenantId, id, true);
        if (expectedVersion !== undefined && row.version !== expectedVersion) throw new VersionMismatchError('the connector changed since you read it: read it again');
        const before = await loadOne(trx, tenantId, row);
        await connectorQueries.replaceMappings(trx, tenantId, id, mappings);
        const after = await loadOne(trx, tenantId, (await connectorQueries.touch(trx, tenantId, id, now()))!);
        await record(trx, tenantId, 'connector.role_mappings', id, changeDetails(mappingsView(before.roleMappings), mappingsView(after.roleMappings)), origin);
        return toAdmin(after);
      });
    },

    async listForLogin(tenantId) {
      if (!isUuid(tenantId)) return [];
      const cached = await loginCache.get(tenantId, async () => ({
        items: byDisplayName(await withTenant(db, tenantId, (trx) => connectorQueries.listEnabled(trx, tenantId))).map((row) => ({ id: row.id, name: row.name, displayName: row.display_name, kind: row.kind })),
      }));
      return cached!.items.map((item) => ({ ...item }));
    },

    async findForLogin(tenantId, name) {
      if (!isUuid(tenantId) || typeof name !== 'string' || !CONNECTOR_NAME.test(name)) return undefined;
      return withTenant(db, tenantId, async (trx) => {
        const row = await connectorQueries.findByName(trx, tenantId, name);
        if (!row?.enabled) return undefined;
        return { ...(await loadOne(trx, tenantId, row)), secrets: unsealSecrets(row) };
      });
    },

    async findByEmailDomain(domain) {
      if (typeof domain !== 'string') return undefined;
      const { domains, invalid } = normalizeDomains([domain]);
      if (invalid !== undefined || !domains.length) return undefined;
      const cached = await domainCache.get(domains[0], async () => {
        const found = await domainQueries.findEnabled(db, domains[0]);
        return { found: found ? { tenantId: found.tenant_id, connectorName: found.name } : null };
      });
      return cached?.found ?? undefined;
    },

    async applyRoleMappings(tenantId, userId, connectorId, groups, origin = FEDERATION_ACTOR) {
      const { mappings, earlier } = await withTenant(db, tenantId, async (trx) => {
        await existing(trx, tenantId, connectorId);
        return { mappings: await connectorQueries.mappingsOf(trx, tenantId, [connectorId]), earlier: await connectorQueries.grantsOf(trx, tenantId, connectorId, userId) };
      });
      const memberOf = new Set(groups);
      const desired = new Set(mappings.filter((mapping) => memberOf.has(mapping.upstream_group)).map((mapping) => mapping.role_id));
      const held = new Set((await rbac.rolesOf(tenantId, 'user', userId)).map((role) => role.id));
      const granted: string[] = [];
      const revoked: string[] = [];
      // A role the user already holds was not given by this sign-in: it is not recorded, so a
      // later sign-in never takes it back.
      for (const roleId of desired) {
        if (held.has(roleId)) continue;
        // The record first: RBAC's nested step ends the tenant scope of the transaction it joins.
        await withTenant(db, tenantId, async (trx) => {
          await connectorQueries.recordGrant(trx, tenantId, connectorId, userId, roleId);
          await rbac.assign(tenantId, roleId, 'user', userId, { trx, origin });
        });
        granted.push(roleId);
      }
      // Unassign first, then forget the grant: if the second step is lost, the next sign-in
      // finds the grant without the role and only forgets it.
      for (const roleId of earlier) {
        if (desired.has(roleId)) continue;
        try {
          await rbac.unassign(tenantId, roleId, 'user', userId, origin);
          revoked.push(roleId);
        } catch (error) {
          // An administrator took the role away already.
          if (!(error instanceof NotFoundError)) throw error;
        }
        await withTenant(db, tenantId, (trx) => connectorQueries.forgetGrant(trx, tenantId, connectorId, userId, roleId));
      }
      return { granted, revoked };
    },

    start: async () => {
      await Promise.all([loginCache.start(), domainCache.start()]);
    },

    rewrap: (keyRing) =>
      rewrapAll(db, keyRing, {
        kind: 'connector_secret',
        page: async (trx, after, limit) =>
          (await sealedSecretQueries.page(trx, after, limit)).map((row) => ({
            cursor: row.id,
            values: [{ id: row.id, sealed: row.secrets_sealed, context: connectorSealContext(row.tenant_id, row.id), save: (t, resealed) => sealedSecretQueries.replace(t, row.tenant_id, row.id, resealed) }],
          })),
      }),
  };
  return service;
}

