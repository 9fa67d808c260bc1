/**
 * IP addresses and CIDR blocks as Istio's policies write them (`ipBlocks`, `source.ip`, `destination.ip`), matched
 * with Node's `net.BlockList`.
 *
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is its IPv4 address, so "10.0.0.0/8" matches a dual-stack socket's
 * "::ffff:10.1.2.3", and "::ffff:10.0.0.0/104" is the IPv4 block 10.0.0.0/8. IPv4 and IPv6 blocks never match the
 * other family (as in Envoy and ztunnel): "::/0" matches neither 10.1.2.3 nor its mapped form, although BlockList
 * alone would say it does, so each family has its own list.
 */
import { BlockList, SocketAddress, isIP } from 'node:net';

export type IpFamily = 'ipv4' | 'ipv6';

/** An address in canonical text (lowercase, compressed IPv6; zone id dropped), IPv4-mapped ones as IPv4. */
export interface IpAddress { family: IpFamily; address: string }

/** A block: `address`/`prefix` of one family (host bits may be set; they never count). */
export interface IpBlock extends IpAddress { prefix: number }

/** Bounded: the same few addresses are seen again and again. */
const CACHE_MAX_ENTRIES = 10_000;
const addressCache = new Map<string, IpAddress | null>();
const MAPPED_PREFIX = '::ffff:';

/** Parses an IPv4 or IPv6 address (zone id dropped); null when invalid. */
export function parseIpAddress(s: string): IpAddress | null {
  let parsed = addressCache.get(s);
  if (parsed !== undefined) return parsed;
  parsed = parseUncached(s);
  if (addressCache.size >= CACHE_MAX_ENTRIES) addressCache.clear();
  addressCache.set(s, parsed);
  return parsed;
}

function parseUncached(s: string): IpAddress | null {
  const bare = s.includes('%') ? s.slice(0, s.indexOf('%')) : s;
  const v = isIP(bare);
  if (v === 4) return { family: 'ipv4', address: bare };
  if (v !== 6) return null;
  const canonical = new SocketAddress({ address: bare, family: 'ipv6' }).address;
  if (canonical.startsWith(MAPPED_PREFIX) && isIP(canonical.slice(MAPPED_PREFIX.length)) === 4) {
    return { family: 'ipv4', address: canonical.slice(MAPPED_PREFIX.length) };
  }
  return { family: 'ipv6', address: canonical };
}

/** "a.b.c.d", "a.b.c.d/n", "x::y" or "x::y/n"; null when invalid (bad address, prefix past the family's width). */
export function parseIpBlock(s: string): IpBlock | null {
  const slash = s.indexOf('/');
  const text = slash < 0 ? s : s.slice(0, slash);
  const addr = parseIpAddress(text);
  if (!addr) return null;
  const mapped = addr.family === 'ipv4' && text.includes(':');
  const width = addr.family === 'ipv4' && !mapped ? 32 : 128;
  let prefix = width;
  if (slash >= 0) {
    const p = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p)) return null;
    prefix = Number(p);
    if (prefix > width) return null;
  }
  if (!mapped) return { ...addr, prefix };
  // ::ffff:a.b.c.d/n is the IPv4 block a.b.c.d/(n-96); a shorter prefix reaches beyond the mapped range and stays
  // an IPv6 block.
  if (prefix >= 96) return { ...addr, prefix: prefix - 96 };
  return { family: 'ipv6', address: `${MAPPED_PREFIX}${addr.address}`, prefix };
}

/**
 * The blocks of one policy field. Invalid blocks are left out: they never match (so an entry whose only field is
 * an invalid ipBlocks list matches nothing; Istio's validation rejects them before they get here).
 */
export class IpBlocks {
  private readonly lists: Record<IpFamily, BlockList | undefined> = { ipv4: undefined, ipv6: undefined };

  constructor(blocks: readonly string[]) {
    for (const b of blocks) {
      const block = parseIpBlock(b);
      if (!block) continue;
      (this.lists[block.family] ??= new BlockList()).addSubnet(block.address, block.prefix, block.family);
    }
  }

  /** Whether `ip` (text as a socket reports it) falls in one of the blocks of its own family. */
  has(ip: string): boolean {
    const addr = parseIpAddress(ip);
    if (!addr) return false;
    const list = this.lists[addr.family];
    return list !== undefined && list.check(addr.address, addr.family);
  }
}
