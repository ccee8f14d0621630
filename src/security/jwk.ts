// Members of a JWK that hold private or symmetric key material (RFC 7518 section 6).
export const PRIVATE_JWK_MEMBERS: readonly string[] = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

export function privateMembersOf(jwk: object): string[] {
  return Object.keys(jwk).filter((member) => PRIVATE_JWK_MEMBERS.includes(member));
}

export function publicPartOf<T extends object>(jwk: T): Partial<T> {
  return Object.fromEntries(Object.entries(jwk).filter(([member]) => !PRIVATE_JWK_MEMBERS.includes(member))) as Partial<T>;
}
