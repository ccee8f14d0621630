// The tenant every install starts with (created by migration 006): the platform tenant, whose
// administrators manage all tenants.
export const DEFAULT_TENANT_ID = '00000000-0000-4000-8000-000000000001';
