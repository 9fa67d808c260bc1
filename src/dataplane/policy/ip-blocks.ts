/**
 * IP addresses and CIDR blocks as Istio's policies write them (ipBlocks, source.ip, destination.ip).
 */

/**
 * An address as four 32-bit words (IPv4 uses only w[3]). IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are
 * stored as IPv4, so "10.0.0.0/8" matches a dual-stack socket's "::ffff:10.1.2.3". IPv4 and IPv6 blocks never
 * match the other family (as in Envoy/ztunnel): "::/0" does not match 10.1.2.3 nor its mapped form.
 */
export interface ParsedIp { v4: boolean; w: [number, number, number, number] }
export interface Cidr { v4: boolean; w: [number, number, number, number]; prefix: number }

/** Bounded caches: the same few addresses and blocks are seen again and again. */
const CACHE_MAX_ENTRIES = 10_000;
const ipCache = new Map<string, ParsedIp | null>();
const cidrCache = new Map<string, Cidr | null>();

export function parseIpCached(s: string): ParsedIp | null {
  let ip = ipCache.get(s);
  if (ip === undefined) {
    ip = parseIp(s);
    if (ipCache.size >= CACHE_MAX_ENTRIES) ipCache.clear();
    ipCache.set(s, ip);
  }
  return ip;
}

export function parseCidrCached(s: string): Cidr | null {
  let c = cidrCache.get(s);
  if (c === undefined) {
    c = parseCidr(s);
    if (cidrCache.size >= CACHE_MAX_ENTRIES) cidrCache.clear();
    cidrCache.set(s, c);
  }
  return c;
}

/** Parses an IPv4 or IPv6 address (zone id dropped); null when invalid. Exported for tests. */
export function parseIp(s: string): ParsedIp | null {
  if (s.includes(':')) {
    const w = parseIpv6(s);
    if (!w) return null;
    if (w[0] === 0 && w[1] === 0 && w[2] === 0xffff) return { v4: true, w: [0, 0, 0, w[3]] };
    return { v4: false, w };
  }
  const v4 = parseIpv4(s);
  return v4 === null ? null : { v4: true, w: [0, 0, 0, v4] };
}

/** "a.b.c.d" or "a.b.c.d/n", "x::y" or "x::y/n"; host bits are cleared. Null when invalid. Exported for tests. */
export function parseCidr(s: string): Cidr | null {
  const slash = s.indexOf('/');
  const addr = parseIp(slash < 0 ? s : s.slice(0, slash));
  if (!addr) return null;
  const mapped = addr.v4 && s.includes(':');
  const maxPrefix = addr.v4 && !mapped ? 32 : 128;
  let prefix = maxPrefix;
  if (slash >= 0) {
    const p = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p)) return null;
    prefix = Number(p);
    if (prefix > maxPrefix) return null;
  }
  let v4 = addr.v4;
  const w: [number, number, number, number] = [...addr.w];
  if (mapped) {
    // ::ffff:a.b.c.d/n is the IPv4 block a.b.c.d/(n-96); a shorter prefix reaches beyond the mapped range
    // and stays an IPv6 block.
    if (prefix >= 96) prefix -= 96;
    else { v4 = false; w[2] = 0xffff; }
  }
  const base = v4 ? 96 : 0;
  for (let i = 0; i < 4; i++) w[i] = (w[i]! & wordMask(base + prefix - i * 32)) >>> 0;
  return { v4, w, prefix };
}

/** Mask for the word covering bits [i*32, i*32+32) given `bits` prefix bits left counted from that word's start. */
function wordMask(bits: number): number {
  if (bits >= 32) return 0xffffffff;
  if (bits <= 0) return 0;
  return (0xffffffff << (32 - bits)) >>> 0;
}

export function cidrContains(c: Cidr, ip: ParsedIp): boolean {
  if (c.v4 !== ip.v4) return false;
  const base = c.v4 ? 96 : 0;
  for (let i = c.v4 ? 3 : 0; i < 4; i++) {
    const m = wordMask(base + c.prefix - i * 32);
    if (m === 0) return true;
    if (((ip.w[i]! & m) >>> 0) !== c.w[i]) return false;
  }
  return true;
}

function parseIpv4(s: string): number | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    n = n * 256 + v;
  }
  return n >>> 0;
}

function parseIpv6(input: string): [number, number, number, number] | null {
  let s = input;
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const groups = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    const items = part.split(':');
    for (let i = 0; i < items.length; i++) {
      const g = items[i]!;
      if (i === items.length - 1 && g.includes('.')) {
        const v4 = parseIpv4(g);
        if (v4 === null) return null;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  if (!head) return null;
  let all: number[];
  if (halves.length === 2) {
    const tail = groups(halves[1]!);
    if (!tail) return null;
    // A dotted IPv4 part may only end the address.
    if (halves[0]!.includes('.')) return null;
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return null;
    all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  } else {
    all = head;
    if (all.length !== 8) return null;
  }
  return [
    ((all[0]! << 16) | all[1]!) >>> 0,
    ((all[2]! << 16) | all[3]!) >>> 0,
    ((all[4]! << 16) | all[5]!) >>> 0,
    ((all[6]! << 16) | all[7]!) >>> 0,
  ];
}
