// What one sign-in has established so far, kept server-side (hot store) under the interaction's
// uid, which oidc-provider binds to this browser's interaction cookie. Nothing here is trusted from
// the form: a step reads what earlier steps proved, and a step's form is accepted only while that
// step is the one the sign-in is waiting for (`awaiting`).
import type { HotStore } from '../store/hot-store.ts';
import type { FederatedIdentity } from '../federation/login/service.ts';

export interface AuthenticatedCandidate {
  tenantId: string;
  userId: string;
}

export type AwaitedStep = 'second-factor' | 'second-factor-enrolment' | 'password-change' | 'email-verification' | 'federation-link';

export interface LoginState {
  // A tenant picked on this page ("your organization"); a fixed tenant comes from the request.
  tenantId?: string;
  identifier?: string;
  // The password was right in several tenants: the person picks one.
  candidates?: AuthenticatedCandidate[];
  // Set once the first factor is done.
  user?: AuthenticatedCandidate;
  amr: string[];
  // The password was typed in this sign-in (not carried over from a session being stepped up).
  passwordEntered?: boolean;
  passwordChanged?: boolean;
  awaiting?: AwaitedStep;
  // The signed-in person was offered to sign in again as themselves (max_age, prompt=login).
  reauthenticationOffered?: boolean;
  // An upstream connector said who this is (src/interactions/federation.ts) ...
  federated?: FederatedIdentity;
  // ... and a local account with that verified address waits for proof before it is linked.
  federationLink?: { userId: string; email: string; hasPassword: boolean };
}

export function emptyLoginState(): LoginState {
  return { amr: [] };
}

const PREFIX = 'login:';

export function loginStateStore(hot: HotStore, ttlSeconds: number) {
  return {
    async load(uid: string): Promise<LoginState> {
      const stored = await hot.get(PREFIX + uid);
      return stored ? (JSON.parse(stored) as LoginState) : emptyLoginState();
    },
    save(uid: string, state: LoginState): Promise<void> {
      return hot.set(PREFIX + uid, JSON.stringify(state), ttlSeconds);
    },
    clear(uid: string): Promise<void> {
      return hot.delete(PREFIX + uid);
    },
  };
}

export type LoginStateStore = ReturnType<typeof loginStateStore>;
