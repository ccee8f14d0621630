const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// Ids of users, tenants and roles are UUIDs; anything else is refused before it reaches a query.
export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}
