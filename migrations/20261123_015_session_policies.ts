import type { Knex } from 'knex';
import { extendSystemAdminRoles } from './system-role-permissions.ts';

// Device sessions as administrators see them: a tenant's active sessions in keyset pages (oldest
// sign-in first), and the bounded cleanup of ended or long-idle rows. The tenant admin system
// roles of tenants that already exist get the new sessions:read / sessions:write permissions
// (new tenants get them from src/tenants/system-roles.ts): whoever may read or change users may
// read or end their sessions. (The admin API resource gains the two permissions at start-up,
// src/runtime.ts `apis.ensure`, before any token could carry them.)
export async function up(knex: Knex): Promise<void> {
  await knex.raw('CREATE INDEX user_sessions_tenant_page ON user_sessions (tenant_id, created_at, id) WHERE ended_at IS NULL');
  await knex.raw('CREATE INDEX user_sessions_ended ON user_sessions (ended_at) WHERE ended_at IS NOT NULL');
  await knex.raw('CREATE INDEX user_sessions_last_active ON user_sessions (last_active_at) WHERE ended_at IS NULL');

  await extendSystemAdminRoles(knex, [['users:read', 'sessions:read'], ['users:write', 'sessions:write']]);
}
