// Which tenant a sign-in goes to. A tenant-bound client or the `tenant` parameter fixes it; "your
// organization" picks it on the page; otherwise the password is tried in every tenant the
// identifier could belong to (tenants claiming its e-mail domain, tenants where it is a member),
// and only where it is right does the tenant show. No page tells whether an identifier exists.
import { NotFoundError } from '../errors.ts';
import { DEFAULT_TENANT_ID } from '../tenants/constants.ts';
import type { Tenant } from '../tenants/service.ts';
import type { User } from '../users/service.ts';
import type { InteractionDependencies, Step } from './step.ts';

// A tenant id no tenant has: an unknown identifier still costs one password verification.
const NO_TENANT = '00000000-0000-4000-8000-000000000000';

// Prompt reasons that only ask for more assurance: the signed-in person adds a factor instead of
// signing in from scratch.
const STEP_UP_REASONS = new Set(['acr_step_up', 'essential_acr', 'essential_acrs']);

export function createTenantSelection(deps: Pick<InteractionDependencies, 'tenants' | 'users'>) {
  async function tenantOrNothing(id: string): Promise<Tenant | undefined> {
    try {
      return await deps.tenants.get(id);
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  async function candidateTenants(step: Step, identifier: string): Promise<string[]> {
    if (step.requested.kind === 'unknown') return [];
    if (step.requested.kind === 'fixed') return [step.requested.tenantId];
    if (step.state.tenantId) return [step.state.tenantId];
    const at = identifier.lastIndexOf('@');
    const domain = at > 0 ? identifier.slice(at + 1).toLowerCase() : '';
    const [byDomain, byMembership] = await Promise.all([
      domain ? deps.tenants.findByEmailDomain(domain) : Promise.resolve([]),
      deps.users.tenantsOfIdentifier(identifier),
    ]);
    return [...new Set([...byDomain.map((tenant) => tenant.id), ...byMembership])];
  }

  return {
    // The tenant the pages are for, once known: the signed-in person's, the fixed one, or the
    // organization picked on the page.
    knownTenant(step: Step): Promise<Tenant | undefined> {
      const id = step.state.user?.tenantId ?? (step.requested.kind === 'fixed' ? step.requested.tenantId : step.state.tenantId);
      return id ? tenantOrNothing(id) : Promise.resolve(undefined);
    },

    // The active users of active tenants this identifier and password sign in as. The
    // verifications run side by side, and at least one always runs.
    async authenticate(step: Step, identifier: string, password: string): Promise<User[]> {
      const tenantIds = await candidateTenants(step, identifier);
      const tried = tenantIds.length ? tenantIds : [NO_TENANT];
      const users = (await Promise.all(tried.map((tenantId) => deps.users.authenticate(identifier, password, tenantId)))).filter((user) => user !== undefined);
      const tenants = await Promise.all(users.map((user) => tenantOrNothing(user.tenantId)));
      return users.filter((_user, index) => tenants[index]?.status === 'active');
    },

    // Where "create an account" registers: the known tenant, or the platform tenant while the
    // tenant is open; only when that tenant allows self-registration.
    async registrationTenant(step: Step): Promise<Tenant | undefined> {
      if (step.requested.kind === 'unknown') return undefined;
      const tenant = step.tenant ?? (step.requested.kind === 'open' && !step.state.tenantId ? await tenantOrNothing(DEFAULT_TENANT_ID) : undefined);
      return tenant && tenant.status === 'active' && tenant.selfRegistration ? tenant : undefined;
    },

    // Someone signed in is asked to sign in again (max_age, prompt=login): the password page for
    // the same account, once; "use another account" is still offered.
    async offerReauthentication(step: Step): Promise<boolean> {
      const { session } = step.interaction;
      if (step.state.reauthenticationOffered || step.state.identifier || !session?.accountId) return false;
      step.state.reauthenticationOffered = true;
      const user = await deps.users.findById(session.accountId);
      if (!user || (step.requested.kind === 'fixed' && step.requested.tenantId !== user.tenantId)) return true;
      step.state.identifier = user.username ?? user.email;
      if (step.requested.kind === 'open') step.state.tenantId = user.tenantId;
      return true;
    },

    // A signed-in person whose session only lacks assurance continues as themselves.
    async resumeForStepUp(step: Step): Promise<boolean> {
      const { session, prompt } = step.interaction;
      if (!session?.accountId || !prompt.reasons.length || !prompt.reasons.every((reason) => STEP_UP_REASONS.has(reason))) return false;
      const user = await deps.users.findById(session.accountId);
      if (!user) return false;
      step.state.user = { tenantId: user.tenantId, userId: user.id };
      step.state.amr = session.amr?.length ? [...session.amr] : ['pwd'];
      return true;
    },
  };
}
