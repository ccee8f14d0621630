// The roles every tenant starts with, and what each may do through the admin API.
export const ADMIN_API_PERMISSIONS = [
  'tenants:read',
  'tenants:write',
  'users:read',
  'users:write',
  'sessions:read',
  'sessions:write',
  'webhooks:read',
  'webhooks:write',
  'roles:read',
  'roles:write',
  'clients:read',
  'clients:write',
  'apis:read',
  'apis:write',
  'rbac:check',
  'users:impersonate',
  'audit:read',
  'apikeys:read',
  'apikeys:write',
  // GDPR export and erasure of a user, compliance reports (docs/privacy.md).
  'users:export',
  'users:erase',
  'reports:read',
  // Upstream identity provider connectors of a tenant (docs/federation.md).
  'connectors:read',
  'connectors:write',
] as const;

export type AdminPermission = (typeof ADMIN_API_PERMISSIONS)[number];

// Obtaining tokens as another user (token exchange): no system role holds it, not even the
// platform's root-admin; a tenant grants it explicitly through a role of its own.
export const IMPERSONATION_PERMISSION = 'users:impersonate' satisfies AdminPermission;

export function systemRoleDefinitions(adminApi: string, platform: boolean) {
  const grant = (...permissions: AdminPermission[]) => permissions.map((permission) => ({ api: adminApi, permission }));
  const tenantAdmin = grant('tenants:read', 'users:read', 'users:write', 'sessions:read', 'sessions:write', 'webhooks:read', 'webhooks:write', 'roles:read', 'roles:write', 'clients:read', 'clients:write', 'apis:read', 'rbac:check', 'audit:read', 'apikeys:read', 'apikeys:write', 'users:export', 'users:erase', 'reports:read', 'connectors:read', 'connectors:write');
  return [
    // In the platform tenant, root-admin manages every tenant and the APIs.
    { name: 'root-admin', description: platform ? 'Manages the platform: every tenant, API and client' : 'Full control of this tenant', permissions: platform ? grant(...ADMIN_API_PERMISSIONS.filter((permission) => permission !== IMPERSONATION_PERMISSION)) : [...tenantAdmin, ...grant('tenants:write')] },
    { name: 'admin', description: 'Manages users, roles and clients of this tenant', permissions: tenantAdmin },
    { name: 'agent', description: 'Reads users of this tenant', permissions: grant('users:read') },
    { name: 'staff', description: 'A member of staff', permissions: [] },
    { name: 'client', description: 'A customer', permissions: [] },
  ];
}
