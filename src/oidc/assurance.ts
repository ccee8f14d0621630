// Authentication assurance: the acr values this provider issues and how they rank. A client asks
// for a level with acr_values (or an essential acr claim); a session below it signs in again, and
// the login pages then require what the level needs.
export const ACR_PASSWORD = 'urn:idp:acr:pwd';
export const ACR_MFA = 'urn:idp:acr:mfa';
export const ACR_VALUES = [ACR_PASSWORD, ACR_MFA] as const;

const LEVELS: Record<string, number> = { [ACR_PASSWORD]: 1, [ACR_MFA]: 2 };

export function acrLevel(acr: unknown): number {
  return typeof acr === 'string' ? (LEVELS[acr] ?? 0) : 0;
}

// The lowest known level among the requested values (acr_values lists acceptable ones); 0 when
// nothing known was asked for.
export function requiredAcrLevel(acrValues: unknown): number {
  if (typeof acrValues !== 'string') return 0;
  const levels = acrValues.split(/\s+/).map(acrLevel).filter((level) => level > 0);
  return levels.length ? Math.min(...levels) : 0;
}

// The level an authorization request needs: from acr_values, or from an essential acr claim
// request (OIDC Core 5.5.1.1), whichever is higher.
export function requestedAcrLevel(params: Record<string, unknown>): number {
  let level = requiredAcrLevel(params.acr_values);
  if (typeof params.claims === 'string') {
    try {
      const acr = (JSON.parse(params.claims) as { id_token?: { acr?: { essential?: boolean; value?: unknown; values?: unknown } } }).id_token?.acr;
      if (acr?.essential) {
        const values = Array.isArray(acr.values) ? acr.values : [acr.value];
        level = Math.max(level, requiredAcrLevel(values.filter((value) => typeof value === 'string').join(' ')));
      }
    } catch {
      // oidc-provider has already refused a malformed claims parameter.
    }
  }
  return level;
}

// What a finished sign-in proved: RFC 8176 method references and the matching acr.
export function assuranceOf(amr: readonly string[]): { acr: string; amr: string[] } {
  return { acr: amr.includes('mfa') ? ACR_MFA : ACR_PASSWORD, amr: [...amr] };
}
