// The optional IP allow-list of a key: addresses and CIDR ranges, IPv4 and IPv6, parsed and
// matched as the tenants' IP rules are (src/security/cidr.ts).
export const MAX_ALLOWED_IPS = 50;
