import type { FindAccount } from 'oidc-provider';
import type { UserService } from '../users/service.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function createAccountFinder(users: UserService): FindAccount {
  return async (_ctx, sub) => {
    if (!UUID.test(sub)) return undefined;
    const user = await users.findById(sub);
    if (!user) return undefined;
    return {
      accountId: user.id,
      async claims() {
        return {
          sub: user.id,
          email: user.email,
          email_verified: user.emailVerified,
          name: user.name ?? undefined,
          preferred_username: user.username ?? undefined,
        };
      },
    };
  };
}
