// One user lookup per request. While oidc-provider handles one request it asks about the same user
// several times (findAccount, the token's RBAC claims, the session policy, session tracking); the
// answer cannot change meaningfully within a request, so the first lookup serves the others.
import type { User, UserService } from '../users/service.ts';

const lookupsPerRequest = new WeakMap<object, Map<string, Promise<User | undefined>>>();

export function userOfRequest(ctx: object | undefined, users: Pick<UserService, 'findById'>, userId: string): Promise<User | undefined> {
  if (!ctx) return users.findById(userId);
  let lookups = lookupsPerRequest.get(ctx);
  if (!lookups) lookupsPerRequest.set(ctx, (lookups = new Map()));
  let lookup = lookups.get(userId);
  if (!lookup) lookups.set(userId, (lookup = users.findById(userId)));
  return lookup;
}
