// The optional IP allow-list of a key: addresses and CIDR ranges, IPv4 and IPv6, checked with
// node:net's BlockList. An IPv4 client seen through an IPv6 socket (::ffff:a.b.c.d) counts as IPv4.
import { BlockList, isIP } from 'node:net';

export const MAX_ALLOWED_IPS = 50;

// Why an entry is not an address or range, else undefined.
export function allowListProblem(entry: string): string | undefined {
  const [address, prefix, ...rest] = entry.split('/');
  const family = isIP(address);
  if (!family || rest.length) return 'must be an IPv4 or IPv6 address or CIDR range, such as 203.0.113.0/24 or 2001:db8::/32';
  if (prefix === undefined) return undefined;
  const bits = Number(prefix);
  if (!/^[0-9]{1,3}$/.test(prefix) || bits > (family === 4 ? 32 : 128)) return `the prefix length must be 0 to ${family === 4 ? 32 : 128}`;
  return undefined;
}

export function buildAllowList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address, prefix] = entry.split('/');
    const type = isIP(address) === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(prefix), type);
  }
  return list;
}

export function allows(list: BlockList, ip: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  const address = mapped ? mapped[1] : ip;
  const family = isIP(address);
  if (!family) return false;
  return list.check(address, family === 4 ? 'ipv4' : 'ipv6');
}
