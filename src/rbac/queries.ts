// RBAC tables. Every function takes a tenant-scoped transaction: row-level security confines it.
import type { TenantTransaction } from '../store/tenant-scope.ts';

export interface RoleRow {
  id: string;
  tenant_id: string;
  name: string;
  description: string;
  system: boolean;
  version: number;
  created_at: Date;
  updated_at: Date;
}

export interface GrantedPermission {
  api_identifier: string;
  permission: string;
}

export const rbacQueries = {
  listRoles(trx: TenantTransaction): Promise<RoleRow[]> {
    return trx('roles').select('*').orderBy('name');
  },
  findRole(trx: TenantTransaction, id: string): Promise<RoleRow | undefined> {
    return trx('roles').where({ id }).first();
  },
  findRoleByName(trx: TenantTransaction, name: string): Promise<RoleRow | undefined> {
    return trx('roles').whereRaw('lower(name) = ?', [name.toLowerCase()]).first();
  },
  insertRole(trx: TenantTransaction, row: Pick<RoleRow, 'id' | 'tenant_id' | 'name' | 'description' | 'system'>) {
    return trx('roles').insert(row);
  },
  async updateRole(trx: TenantTransaction, id: string, expectedVersion: number, changes: Partial<Pick<RoleRow, 'name' | 'description'>>) {
    const [row] = await trx('roles')
      .where({ id, version: expectedVersion })
      .update({ ...changes, version: trx.raw('version + 1'), updated_at: trx.fn.now() }, '*');
    return row as RoleRow | undefined;
  },
  // With expectedVersion, only at the version the caller read.
  async deleteRole(trx: TenantTransaction, id: string, expectedVersion?: number): Promise<boolean> {
    const query = trx('roles').where({ id });
    if (expectedVersion !== undefined) query.andWhere({ version: expectedVersion });
    return (await query.delete(['id'])).length > 0;
  },
  permissionsOf(trx: TenantTransaction, roleId: string): Promise<GrantedPermission[]> {
    return trx('role_permissions').where({ role_id: roleId }).select('api_identifier', 'permission').orderBy(['api_identifier', 'permission']);
  },
  async replacePermissions(trx: TenantTransaction, tenantId: string, roleId: string, permissions: GrantedPermission[]) {
    await trx('role_permissions').where({ role_id: roleId }).delete();
    if (permissions.length) {
      await trx('role_permissions').insert(permissions.map((p) => ({ tenant_id: tenantId, role_id: roleId, ...p })));
    }
  },
  includedRoles(trx: TenantTransaction, roleId: string): Promise<string[]> {
    return trx('role_inheritance').where({ role_id: roleId }).pluck('included_role_id');
  },
  // True when `from` reaches `to` through inclusions (or is it).
  async reaches(trx: TenantTransaction, from: string, to: string): Promise<boolean> {
    const result = await trx.raw(
      `WITH RECURSIVE reach(id) AS (
         SELECT ?::uuid
         UNION
         SELECT ri.included_role_id FROM role_inheritance ri JOIN reach ON ri.role_id = reach.id)
       SELECT 1 AS found FROM reach WHERE id = ?::uuid LIMIT 1`,
      [from, to],
    );
    return result.rows.length > 0;
  },
  // True when the inclusion is new.
  async addInclusion(trx: TenantTransaction, tenantId: string, roleId: string, includedRoleId: string): Promise<boolean> {
    const rows = await trx('role_inheritance').insert({ tenant_id: tenantId, role_id: roleId, included_role_id: includedRoleId }).onConflict(['role_id', 'included_role_id']).ignore().returning(['role_id']);
    return rows.length > 0;
  },
  async removeInclusion(trx: TenantTransaction, roleId: string, includedRoleId: string): Promise<boolean> {
    return (await trx('role_inheritance').where({ role_id: roleId, included_role_id: includedRoleId }).delete(['role_id'])).length > 0;
  },
  // True when the assignment is new.
  async assign(trx: TenantTransaction, tenantId: string, roleId: string, subjectType: string, subjectId: string): Promise<boolean> {
    const rows = await trx('role_assignments').insert({ tenant_id: tenantId, role_id: roleId, subject_type: subjectType, subject_id: subjectId }).onConflict(['role_id', 'subject_type', 'subject_id']).ignore().returning(['role_id']);
    return rows.length > 0;
  },
  async unassign(trx: TenantTransaction, roleId: string, subjectType: string, subjectId: string): Promise<boolean> {
    return (await trx('role_assignments').where({ role_id: roleId, subject_type: subjectType, subject_id: subjectId }).delete(['role_id'])).length > 0;
  },
  async forgetSubject(trx: TenantTransaction, subjectType: string, subjectId: string): Promise<void> {
    await trx('role_assignments').where({ subject_type: subjectType, subject_id: subjectId }).delete();
  },
  directRoles(trx: TenantTransaction, subjectType: string, subjectId: string): Promise<RoleRow[]> {
    return trx('roles').join('role_assignments', 'roles.id', 'role_assignments.role_id')
      .where({ 'role_assignments.subject_type': subjectType, 'role_assignments.subject_id': subjectId })
      .select('roles.*').orderBy('roles.name');
  },
  // Every role a subject holds, directly or through inclusion, with the permissions they carry.
  async effective(trx: TenantTransaction, subjectType: string, subjectId: string): Promise<Array<{ name: string; api_identifier: string | null; permission: string | null }>> {
    const result = await trx.raw(
      `WITH RECURSIVE held(role_id) AS (
         SELECT role_id FROM role_assignments WHERE subject_type = ? AND subject_id = ?
         UNION
         SELECT ri.included_role_id FROM role_inheritance ri JOIN held ON ri.role_id = held.role_id)
       SELECT r.name, rp.api_identifier, rp.permission
         FROM held JOIN roles r ON r.id = held.role_id
         LEFT JOIN role_permissions rp ON rp.role_id = held.role_id`,
      [subjectType, subjectId],
    );
    return result.rows;
  },
  // Every (role, user) pair where the user holds the role, directly or through an assigned role
  // that includes it (transitively).
  async holders(trx: TenantTransaction, tenantId: string): Promise<Array<{ role_id: string; user_id: string }>> {
    const result = await trx.raw(
      `WITH RECURSIVE closure(assigned_id, held_id) AS (
         SELECT id, id FROM roles WHERE tenant_id = ?
         UNION
         SELECT closure.assigned_id, ri.included_role_id FROM role_inheritance ri JOIN closure ON ri.role_id = closure.held_id)
       SELECT DISTINCT closure.held_id AS role_id, ra.subject_id AS user_id
         FROM closure JOIN role_assignments ra ON ra.role_id = closure.assigned_id
        WHERE ra.tenant_id = ? AND ra.subject_type = 'user'`,
      [tenantId, tenantId],
    );
    return result.rows;
  },
  // Serialises inheritance changes within a tenant, so two concurrent edits cannot form a cycle.
  lockTenantRoles(trx: TenantTransaction, tenantId: string) {
    return trx.raw('SELECT pg_advisory_xact_lock(hashtext(?))', [`rbac:${tenantId}`]);
  },
};

// The ids of the users who hold the named role in this tenant, directly or through inclusion: those
// assigned any role whose inclusion closure contains it. A subquery (nothing runs until it is
// embedded), for other domains to filter by role without reading these tables themselves:
//   trx('users').whereIn('id', usersHoldingRole(trx, tenantId, 'admin'))
export function usersHoldingRole(trx: TenantTransaction, tenantId: string, roleName: string) {
  return trx
    .withRecursive(
      'role_holders',
      ['role_id'],
      trx.raw(
        `SELECT id FROM roles WHERE tenant_id = ? AND lower(name) = lower(?)
         UNION
         SELECT ri.role_id FROM role_inheritance ri JOIN role_holders rh ON ri.included_role_id = rh.role_id`,
        [tenantId, roleName],
      ),
    )
    .from('role_assignments')
    .where({ tenant_id: tenantId, subject_type: 'user' })
    .whereIn('role_id', trx.select('role_id').from('role_holders'))
    // Subject ids are text; a user's is a UUID. Anything else can name no user.
    .select(trx.raw("CASE WHEN subject_id ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN subject_id::uuid END AS user_id"));
}
