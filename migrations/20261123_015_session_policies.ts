import type { Knex } from 'knex';

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

  for (const [from, to] of [['users:read', 'sessions:read'], ['users:write', 'sessions:write']]) {
    await knex.raw(
      `INSERT INTO role_permissions (tenant_id, role_id, api_identifier, permission)
       SELECT rp.tenant_id, rp.role_id, rp.api_identifier, ?
         FROM role_permissions rp JOIN roles r ON r.id = rp.role_id
        WHERE r.system AND r.name IN ('root-admin', 'admin') AND rp.permission = ?
       ON CONFLICT DO NOTHING`,
      [to, from],
    );
  }
}
