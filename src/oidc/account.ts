import type { FindAccount } from 'oidc-provider';
import type { User, UserService } from '../users/service.ts';

import { isUuid } from '../ids.ts';
import { userOfRequest } from './request-user.ts';

// The standard claims of a user (OpenID Connect Core 5.1); oidc-provider releases those the
// granted scopes and claims requests allow. Absent values are left out, never sent as null.
export function standardClaims(user: User): Record<string, unknown> {
  const claims: Record<string, unknown> = {
    sub: user.id,
    tenant_id: user.tenantId,
    email: user.email,
    email_verified: user.emailVerified,
    phone_number: user.phoneNumber,
    phone_number_verified: user.phoneNumber ? user.phoneNumberVerified : undefined,
    name: user.name,
    given_name: user.givenName,
    family_name: user.familyName,
    middle_name: user.middleName,
    nickname: user.nickname,
    preferred_username: user.username,
    picture: user.picture,
    website: user.website,
    gender: user.gender,
    birthdate: user.birthdate,
    zoneinfo: user.zoneinfo,
    locale: user.locale,
    updated_at: Math.floor(user.updatedAt.getTime() / 1000),
  };
  return Object.fromEntries(Object.entries(claims).filter(([, value]) => value !== null && value !== undefined));
}

// Only active, non-deleted users are found: a suspended or deleted user's refresh tokens, userinfo
// calls and sessions are refused from the moment the change commits.
// rolesOf: the names of the roles the user holds in their tenant, direct and inherited, released
// as the `roles` claim with the `roles` scope (what a downstream provider maps to its own roles).
export function createAccountFinder(users: UserService, rolesOf?: (tenantId: string, userId: string) => Promise<string[]>): FindAccount {
  return async (ctx, sub) => {
    if (!isUuid(sub)) return undefined;
    const user = await userOfRequest(ctx, users, sub);
    if (!user) return undefined;
    return {
      accountId: user.id,
      async claims(_use, scope) {
        const claims = standardClaims(user);
        if (rolesOf && typeof scope === 'string' && scope.split(' ').includes('roles')) claims.roles = await rolesOf(user.tenantId, user.id);
        return claims as { sub: string };
      },
    };
  };
}
