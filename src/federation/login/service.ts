// Sign-in through a tenant's upstream connector, from the button to a local user: start sends the
// browser upstream; finish takes the callback (state bound to the pending sign-in, the upstream's
// answer verified by the upstream client); resolve finds who that is here. An upstream identity
// is linked to a local account only when it was linked before, or after the person proves control
// of the local account (password or e-mail code, handled by the sign-in pages) — never because the
// e-mail addresses match. A new person is created only when the connector provisions just in time,
// and only with an e-mail address the upstream verified.
import type { Database } from '../../store/database.ts';
import { withTenant } from '../../store/tenant-scope.ts';
import type { AuditService, AuditPerson } from '../../audit/service.ts';
import type { RequestContext } from '../../audit/origin.ts';
import type { UserService, User } from '../../users/service.ts';
import type { IdentityLinkService } from '../../account/identities/service.ts';
import { ConflictError } from '../../errors.ts';
import { UpstreamError, type ConnectorKind, type ConnectorWithSecrets, type UpstreamFailure, type UpstreamProfile } from '../connector.ts';
import type { UpstreamClient } from '../upstream/index.ts';
import type { PendingSignIns } from './pending-sign-ins.ts';

// What the sign-in needs of the connectors domain (src/federation/connectors/service.ts).
export interface ConnectorDirectory {
  listForLogin(tenantId: string): Promise<Array<{ id: string; name: string; displayName: string; kind: ConnectorKind }>>;
  findForLogin(tenantId: string, name: string): Promise<ConnectorWithSecrets | undefined>;
  findByEmailDomain(domain: string): Promise<{ tenantId: string; connectorName: string } | undefined>;
  applyRoleMappings(tenantId: string, userId: string, connectorId: string, groups: string[], origin?: { actor?: AuditPerson; context?: RequestContext }): Promise<{ granted: string[]; revoked: string[] }>;
}

export interface FederatedSignInDependencies {
  db: Database;
  connectors: ConnectorDirectory;
  upstream: UpstreamClient;
  users: Pick<UserService, 'list' | 'create' | 'findById'>;
  identities: Pick<IdentityLinkService, 'findUser' | 'link' | 'linkIn'>;
  audit: Pick<AuditService, 'record'>;
  pending: PendingSignIns;
}

// Why a finished upstream sign-in does not lead to a local user by itself.
export type LocalRefusal = 'unverified_email' | 'no_email' | 'no_account';
export type SignInFailure = UpstreamFailure | LocalRefusal;

// The upstream sign-in finished, as the sign-in pages carry it on (kept in the login state).
export interface FederatedIdentity {
  connectorId: string;
  connectorName: string;
  connectorDisplayName: string;
  profile: UpstreamProfile;
}

export type Resolution =
  | { kind: 'user'; userId: string; provisioned: boolean }
  // An account with this verified address exists: the person proves it is theirs before linking.
  | { kind: 'link'; userId: string; email: string; hasPassword: boolean }
  | { kind: 'refused'; reason: LocalRefusal };

const MAX_NAME = 200;

function emailDomainOf(identifier: string): string | undefined {
  const at = identifier.lastIndexOf('@');
  if (at < 1 || at === identifier.length - 1) return undefined;
  return identifier.slice(at + 1).toLowerCase();
}

export function createFederatedSignIn(deps: FederatedSignInDependencies) {
  const { db, connectors, upstream, users, identities, audit, pending } = deps;

  async function userByEmail(tenantId: string, email: string): Promise<User | undefined> {
    const { items } = await users.list(tenantId, { email, limit: 1 });
    return items[0];
  }

  async function provision(identity: FederatedIdentity, tenantId: string, email: string, context?: RequestContext): Promise<string> {
    const { profile } = identity;
    const name = profile.name?.trim().slice(0, MAX_NAME);
    const actor: AuditPerson = { type: 'system', id: `connector:${identity.connectorName}` };
    const user = await users.create(tenantId, { email, emailVerified: true, ...(name ? { name } : {}) }, { actor, context }, {
      inserted: async (trx, created) => {
        await identities.linkIn(trx, tenantId, created.id, { connector: identity.connectorId, subject: profile.subject, email });
      },
    });
    return user.id;
  }

  return {
    listForLogin: (tenantId: string) => connectors.listForLogin(tenantId),

    // The connector an identifier's e-mail domain belongs to (home-realm discovery).
    async discover(identifier: string): Promise<{ tenantId: string; connectorName: string } | undefined> {
      const domain = emailDomainOf(identifier);
      return domain ? connectors.findByEmailDomain(domain) : undefined;
    },

    // Where to send the browser; undefined for a connector the tenant does not have (or disabled).
    async start(request: { uid: string; tenantId: string; connectorName: string; redirectUri: string; loginHint?: string }): Promise<{ url: string; state: string } | undefined> {
      const connector = await connectors.findForLogin(request.tenantId, request.connectorName);
      if (!connector) return undefined;
      const { url, transaction } = await upstream.begin(connector, request.redirectUri, request.loginHint ? { loginHint: request.loginHint } : undefined);
      await pending.save({ uid: request.uid, tenantId: request.tenantId, connectorId: connector.id, connectorName: connector.name, transaction });
      return { url, state: transaction.state };
    },

    // The upstream's callback. `boundState` is the state this browser was given (its cookie): a
    // callback carrying another one is someone else's sign-in and is refused.
    async finish(callback: URLSearchParams, boundState: string | undefined): Promise<{ uid: string; tenantId: string; identity: FederatedIdentity } | { uid?: string; tenantId?: string; connectorName?: string; failure: UpstreamFailure; connectorDisplayName?: string }> {
      const state = callback.get('state') ?? '';
      if (!state || !boundState || state !== boundState) return { failure: 'state_mismatch' };
      const taken = await pending.take(state);
      if (!taken) return { failure: 'state_mismatch' };
      const { uid, tenantId, connectorName } = taken;
      const connector = await connectors.findForLogin(tenantId, connectorName);
      if (!connector || connector.id !== taken.connectorId) return { uid, tenantId, connectorName, failure: 'invalid_response' };
      try {
        const profile = await upstream.complete(connector, taken.transaction, callback);
        return { uid, tenantId, identity: { connectorId: connector.id, connectorName: connector.name, connectorDisplayName: connector.displayName, profile } };
      } catch (error) {
        if (!(error instanceof UpstreamError)) throw error;
        return { uid, tenantId, connectorName, connectorDisplayName: connector.displayName, failure: error.failure };
      }
    },

    // Who this upstream identity is here: linked before, to be linked after proof, created now
    // (just-in-time), or refused.
    async resolve(tenantId: string, identity: FederatedIdentity, context?: RequestContext): Promise<Resolution> {
      const { profile } = identity;
      const linked = await identities.findUser(tenantId, identity.connectorId, profile.subject);
      if (linked) return { kind: 'user', userId: linked, provisioned: false };
      const email = profile.email?.trim().toLowerCase();
      if (!email) return { kind: 'refused', reason: 'no_email' };
      if (!profile.emailVerified) return { kind: 'refused', reason: 'unverified_email' };
      const existing = await userByEmail(tenantId, email);
      if (existing) return { kind: 'link', userId: existing.id, email: existing.email, hasPassword: existing.hasPassword };
      const connector = await connectors.findForLogin(tenantId, identity.connectorName);
      if (!connector?.jitProvisioning) return { kind: 'refused', reason: 'no_account' };
      try {
        return { kind: 'user', userId: await provision(identity, tenantId, email, context), provisioned: true };
      } catch (error) {
        // Created by a parallel first sign-in of the same person a moment ago: link to it after proof.
        if (!(error instanceof ConflictError)) throw error;
        const created = await userByEmail(tenantId, email);
        if (!created) throw error;
        return { kind: 'link', userId: created.id, email: created.email, hasPassword: created.hasPassword };
      }
    },

    // The person proved control of the local account: link the upstream identity to it.
    async link(tenantId: string, userId: string, identity: FederatedIdentity, proof: 'password' | 'email_code', context?: RequestContext): Promise<void> {
      await identities.link(tenantId, userId, { connector: identity.connectorId, subject: identity.profile.subject, email: identity.profile.email ?? null });
      const person: AuditPerson = { type: 'user', id: userId };
      await withTenant(db, tenantId, (trx) =>
        audit.record(trx, { tenantId, type: 'federation.link', outcome: 'success', actor: person, target: person, details: { connector: identity.connectorName, proof }, context }),
      );
    },

    // The connector's group-to-role mapping, re-applied at every sign-in through it.
    applyRoles(tenantId: string, userId: string, identity: FederatedIdentity, context?: RequestContext) {
      const actor: AuditPerson = { type: 'system', id: `connector:${identity.connectorName}` };
      return connectors.applyRoleMappings(tenantId, userId, identity.connectorId, identity.profile.groups, { actor, context });
    },

    // A failed upstream sign-in, in the tenant's audit trail: which connector and why, never the
    // upstream's own words (they may echo codes or addresses).
    async failed(tenantId: string | undefined, connectorName: string | undefined, failure: SignInFailure, context?: RequestContext): Promise<void> {
      if (!tenantId) return;
      await audit.record(undefined, { tenantId, type: 'federation.failure', outcome: 'failure', details: { connector: connectorName ?? null, failure }, context });
    },
  };
}

export type FederatedSignIn = ReturnType<typeof createFederatedSignIn>;
