// First-party applications show no consent page. Their grant is completed as soon as the person
// is known (oidc-provider's loadExistingGrant), with exactly what the library's consent prompt
// would find missing: the requested OIDC scopes and claims, and each resource server's requested
// scopes. So a sign-in to a first-party app goes from the login form straight to the code,
// without a second trip through the interaction (the consent route still grants for them when
// consent is requested explicitly: prompt=consent, a native app, authorization_details).
import type { KoaContextWithOIDC } from 'oidc-provider';

type Grant = InstanceType<KoaContextWithOIDC['oidc']['provider']['Grant']>;

// Claims the consent prompt never asks for.
const IMPLIED_CLAIMS = new Set(['sub', 'sid', 'auth_time', 'acr', 'amr', 'iss']);

export function firstPartyGrantLoader(isFirstParty: (clientId: string) => Promise<boolean>) {
  return async function loadExistingGrant(ctx: KoaContextWithOIDC): Promise<Grant | undefined> {
    const { oidc } = ctx;
    const client = oidc.client!;
    const grantId = oidc.result?.consent?.grantId || oidc.session!.grantIdFor(client.clientId);
    const existing = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
    if (!oidc.account || !(await isFirstParty(client.clientId))) return existing;
    const grant = existing ?? new oidc.provider.Grant({ accountId: oidc.account.accountId, clientId: client.clientId });
    return completed(ctx, grant) ? ((await grant.save()), grant) : existing;
  };
}

// Adds what the request asks for and the grant lacks; says whether anything was added.
function completed(ctx: KoaContextWithOIDC, grant: Grant): boolean {
  const { oidc } = ctx;
  let added = false;
  const encounteredScopes = new Set(grant.getOIDCScopeEncountered().split(' '));
  const scopes = [...oidc.requestParamOIDCScopes].filter((scope) => !encounteredScopes.has(scope));
  if (scopes.length) {
    grant.addOIDCScope(scopes.join(' '));
    added = true;
  }
  const encounteredClaims = new Set(grant.getOIDCClaimsEncountered());
  const claims = [...oidc.requestParamClaims].filter((claim) => !encounteredClaims.has(claim) && !IMPLIED_CLAIMS.has(claim));
  if (claims.length) {
    grant.addOIDCClaims(claims);
    added = true;
  }
  for (const [indicator, resourceServer] of Object.entries(oidc.resourceServers ?? {})) {
    const encountered = new Set(grant.getResourceScopeEncountered(indicator).split(' '));
    const available = resourceServer.scopes as Set<string>;
    const missing = [...oidc.requestParamScopes].filter((scope) => available.has(scope) && !encountered.has(scope));
    if (missing.length) {
      grant.addResourceScope(indicator, missing.join(' '));
      added = true;
    }
  }
  return added;
}
