/**
 * The address base of a local mesh (`--address-base 127.N.0.0`). Every loopback address the mesh uses moves into
 * 127.N.0.0/16 by taking N as its second octet: the controller's (127.N.99.1), the nodes' pool (127.N.100.0/24) and
 * every 127.a.b.c address written in the manifests (pod and node addresses, service VIPs, policy ipBlocks), which
 * become 127.N.b.c. Two meshes of the same manifests then run side by side on one machine. The lab (`strait lab`)
 * reads the same manifests in 198.18.0.0/15 instead (labAddressText). Pure: no I/O.
 */
import { isIP } from 'node:net';
import { StraitError } from '../common/errors.js';

/** The base the manifests are written for: addresses stay as written. */
export const DEFAULT_ADDRESS_BASE = '127.0.0.0';

/** A loopback IPv4 address, with an optional prefix length, standing alone (not part of a longer dotted string). */
const LOOPBACK_RE = /(?<![\w.])127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(\/\d{1,2})?(?![\w.])/g;
/** Prefixes shorter than this cover more than one base: they are left as written. */
const MIN_MOVED_PREFIX = 16;

/** The second octet N of `--address-base 127.N.0.0`; throws naming the fix otherwise. */
export function parseAddressBase(text: string): number {
  const m = /^127\.(\d{1,3})\.0\.0$/.exec(text.trim());
  const n = m ? Number(m[1]) : NaN;
  if (isIP(text.trim()) !== 4 || !(n >= 0 && n <= 255)) {
    throw new StraitError('STRAIT_ERR_CONFIG', `--address-base "${text}" is not of the form 127.N.0.0 (N from 0 to 255): the local mesh puts every address `
      + `in 127.N.0.0/16 (127.0.10.1 in the manifests becomes 127.N.10.1); write e.g. --address-base 127.1.0.0`);
  }
  return n;
}

export function formatAddressBase(n: number): string {
  return `127.${n}.0.0`;
}

/** 127.a.b.c → 127.N.b.c; anything else unchanged. */
export function relocateAddress(ip: string, n: number): string {
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m || isIP(ip) !== 4) return ip;
  return `127.${n}.${m[2]}.${m[3]}`;
}

/**
 * Moves every loopback address (and loopback CIDR of /16 or longer) in a manifest's text into the base. Text, not
 * YAML: comments, layout and documents that do not parse are kept as they are, and lines keep their numbers.
 */
export function relocateText(text: string, n: number): string {
  return translateLoopback(text, (b, c) => `127.${n}.${b}.${c}`);
}

/** The lab's range (DESIGN §7): every lab address is in it, and nothing of the lab routes outside it. */
export const LAB_NET = '198.18.0.0/15';
/** The host's own loopback address: in the lab it stays the pod's (or node's) own loopback, as in a container. */
const OWN_LOOPBACK = '127.0.0.1';

/** 127.a.b.c → 198.18.b.c (the lab's reading of a manifest address); 127.0.0.1 and anything else unchanged. */
export function labAddress(ip: string): string {
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m || isIP(ip) !== 4 || ip === OWN_LOOPBACK) return ip;
  return `198.18.${m[2]}.${m[3]}`;
}

/**
 * The lab's copy of a manifest (`strait lab`): every 127.a.b.c address (and CIDR of /16 or longer) becomes 198.18.b.c,
 * except 127.0.0.1, which stays the namespace's own loopback (a lab-command's `--bind 127.0.0.1` means what it says).
 * Text, as relocateText.
 */
export function labAddressText(text: string): string {
  return translateLoopback(text, (b, c, whole) => (whole === OWN_LOOPBACK ? whole : `198.18.${b}.${c}`));
}

function translateLoopback(text: string, to: (b: string, c: string, whole: string) => string): string {
  return text.replace(LOOPBACK_RE, (whole: string, a: string, b: string, c: string, prefix: string | undefined) => {
    if (![a, b, c].every((o) => Number(o) <= 255)) return whole;
    if (prefix !== undefined && Number(prefix.slice(1)) < MIN_MOVED_PREFIX) return whole;
    return `${to(b, c, prefix === undefined ? whole : whole.slice(0, -prefix.length))}${prefix ?? ''}`;
  });
}
