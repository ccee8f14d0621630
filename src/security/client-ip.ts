// The client's address as this provider sees it: the socket's peer, unless that peer is one of the
// TRUSTED_PROXIES. Then X-Forwarded-For is read from the right (the hop the proxy itself added)
// leftwards, skipping further trusted proxies; the first address that is not one is the client.
// Everything left of it was written by the client and proves nothing.
import { isIP } from 'node:net';
import { addressList, normalizeAddress, type AddressList } from './cidr.ts';

export interface ClientAddressResolver {
  // True when the socket peer may speak for the client (X-Forwarded-* headers are honoured).
  trusts(peer: string): boolean;
  resolve(peer: string, forwardedFor: string | undefined): string;
}

export function clientAddressResolver(trustedProxies: readonly string[]): ClientAddressResolver {
  const trusted: AddressList = addressList(trustedProxies);
  const trusts = (peer: string) => trusted.size > 0 && trusted.has(peer);
  return {
    trusts,
    resolve(peer, forwardedFor) {
      const socketAddress = normalizeAddress(peer);
      if (!forwardedFor || !trusts(socketAddress)) return socketAddress;
      const hops = forwardedFor.split(',').map((hop) => normalizeAddress(stripPort(hop.trim())));
      let client = socketAddress;
      for (let index = hops.length - 1; index >= 0; index -= 1) {
        // A malformed hop ends the chain of trust: the last good address is the best we know.
        if (isIP(hops[index]) === 0) break;
        client = hops[index];
        if (!trusted.has(client)) break;
      }
      return client;
    },
  };
}

// "[2001:db8::1]:443" and "192.0.2.1:443" (some proxies append the port) to the bare address.
function stripPort(hop: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(hop);
  if (bracketed) return bracketed[1];
  const v4WithPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(hop);
  return v4WithPort ? v4WithPort[1] : hop;
}
