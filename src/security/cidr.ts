// Address ranges in CIDR notation (IPv4 and IPv6) and the lists built from them. A bare address is
// the range of that one address. IPv4 addresses seen through an IPv6 socket (::ffff:a.b.c.d) are
// compared as the IPv4 addresses they are.
import { BlockList, isIP } from 'node:net';

export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

const MAPPED_V4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

// The address in the form lists compare: IPv4-mapped IPv6 as plain IPv4, zone ids dropped.
export function normalizeAddress(address: string): string {
  const withoutZone = address.split('%')[0];
  return MAPPED_V4.exec(withoutZone)?.[1] ?? withoutZone;
}

// undefined when the text is not an address or a CIDR range.
export function parseCidr(text: string): Cidr | undefined {
  const [rawAddress, rawPrefix, ...rest] = text.trim().split('/');
  if (rest.length || rawAddress.includes('%')) return undefined;
  const mapped = MAPPED_V4.exec(rawAddress)?.[1];
  const address = mapped ?? rawAddress;
  const version = isIP(address);
  if (version === 0) return undefined;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  const max = version === 4 ? 32 : 128;
  if (rawPrefix === undefined) return { address, prefix: max, family };
  if (!/^\d{1,3}$/.test(rawPrefix)) return undefined;
  const prefix = Number(rawPrefix);
  // A mapped IPv4 range written with an IPv6 prefix (::ffff:10.0.0.0/104) is the IPv4 /8.
  if (mapped) return prefix >= 96 && prefix <= 128 ? { address, prefix: prefix - 96, family } : undefined;
  return prefix <= max ? { address, prefix, family } : undefined;
}

export function isCidr(text: string): boolean {
  return parseCidr(text) !== undefined;
}

export function formatCidr(cidr: Cidr): string {
  return `${cidr.address}/${cidr.prefix}`;
}

export interface AddressList {
  readonly size: number;
  has(address: string): boolean;
}

// Throws on an entry that is not an address or range (configuration and stored rules are
// validated before they get here).
export function addressList(entries: readonly string[]): AddressList {
  const list = new BlockList();
  for (const entry of entries) {
    const cidr = parseCidr(entry);
    if (!cidr) throw new Error(`not an IP address or CIDR range: ${entry}`);
    list.addSubnet(cidr.address, cidr.prefix, cidr.family);
  }
  return {
    size: entries.length,
    has(address: string): boolean {
      const normalized = normalizeAddress(address);
      const version = isIP(normalized);
      if (version === 0) return false;
      return list.check(normalized, version === 4 ? 'ipv4' : 'ipv6');
    },
  };
}
