import type { Knex } from 'knex';
import { extendSystemAdminRoles } from './system-role-permissions.ts';

// GDPR export and erasure of users and the compliance reports (docs/privacy.md): in tenants that
// exist already, the root-admin and admin system roles that change users may export and erase
// them, and those that read the audit trail may read the reports (new tenants get them from
// src/tenants/system-roles.ts).
export async function up(knex: Knex): Promise<void> {
  await extendSystemAdminRoles(knex, [['users:write', 'users:export'], ['users:write', 'users:erase'], ['audit:read', 'reports:read']]);
}
