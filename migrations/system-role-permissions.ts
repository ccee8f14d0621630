import type { Knex } from 'knex';

// For a new admin API permission in tenants that already exist: the root-admin and admin system
// roles that hold `from` get `to` as well (new tenants get it from src/tenants/system-roles.ts).
export async function extendSystemAdminRoles(knex: Knex, grants: ReadonlyArray<readonly [from: string, to: string]>): Promise<void> {
  for (const [from, to] of grants) {
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
