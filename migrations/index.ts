// Migrations are listed here rather than discovered on disk, so the same list runs under type stripping,
// in tests and in the CLI. Forward-only: never edit one that has shipped, add a new one.
import type { Knex } from 'knex';
import * as oidcPayloads from './20261123_001_oidc_payloads.ts';
import * as signingKeys from './20261123_002_signing_keys.ts';
import * as clients from './20261123_003_clients.ts';
import * as users from './20261123_004_users.ts';
import * as apiResources from './20261123_005_api_resources.ts';
import * as tenants from './20261123_006_tenants.ts';
import * as rbac from './20261123_007_rbac.ts';
import * as rowLevelSecurity from './20261123_008_row_level_security.ts';
import * as usersLookup from './20261123_009_users_lookup.ts';
import * as tenantBranding from './20261123_010_tenant_branding.ts';
import * as mfa from './20261123_011_mfa.ts';
import * as credentials from './20261123_012_credentials.ts';
import * as userSessions from './20261123_013_user_sessions.ts';
import * as usersIdentifierIndex from './20261123_014_users_identifier_index.ts';
import * as sessionPolicies from './20261123_015_session_policies.ts';
import * as auditTrail from './20261123_016_audit_trail.ts';
import * as outbox from './20261123_017_outbox.ts';
import * as privacyPermissions from './20261123_018_privacy_permissions.ts';
import * as apiKeys from './20261123_019_api_keys.ts';
import * as ipRules from './20261123_021_ip_rules.ts';
import * as accountLockouts from './20261123_022_account_lockouts.ts';
import * as connectors from './20261124_023_connectors.ts';
import * as verifiedPhoneIndex from './20261124_024_verified_phone_index.ts';
import * as dropAllowedIpRanges from './20261124_025_drop_allowed_ip_ranges.ts';

interface Migration {
  up(knex: Knex): Promise<void>;
  down?(knex: Knex): Promise<void>;
}

const migrations: Record<string, Migration> = {
  '20261123_001_oidc_payloads': oidcPayloads,
  '20261123_002_signing_keys': signingKeys,
  '20261123_003_clients': clients,
  '20261123_004_users': users,
  '20261123_005_api_resources': apiResources,
  '20261123_006_tenants': tenants,
  '20261123_007_rbac': rbac,
  '20261123_008_row_level_security': rowLevelSecurity,
  '20261123_009_users_lookup': usersLookup,
  '20261123_010_tenant_branding': tenantBranding,
  '20261123_011_mfa': mfa,
  '20261123_012_credentials': credentials,
  '20261123_013_user_sessions': userSessions,
  '20261123_014_users_identifier_index': usersIdentifierIndex,
  '20261123_015_session_policies': sessionPolicies,
  '20261123_016_audit_trail': auditTrail,
  '20261123_017_outbox': outbox,
  '20261123_018_privacy_permissions': privacyPermissions,
  '20261123_019_api_keys': apiKeys,
  '20261123_021_ip_rules': ipRules,
  '20261123_022_account_lockouts': accountLockouts,
  '20261124_023_connectors': connectors,
  '20261124_024_verified_phone_index': verifiedPhoneIndex,
  '20261124_025_drop_allowed_ip_ranges': dropAllowedIpRanges,
};

export const migrationSource: Knex.MigrationSource<string> = {
  async getMigrations() {
    return Object.keys(migrations);
  },
  getMigrationName(name) {
    return name;
  },
  async getMigration(name) {
    const migration = migrations[name];
    return { up: migration.up, down: migration.down ?? (async () => { throw new Error('migrations are forward-only'); }) };
  },
};
