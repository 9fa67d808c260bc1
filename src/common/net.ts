import { BlockList, isIP } from 'node:net';
import { StraitError } from './errors.js';

export interface HostPort {
  host: string;
  port: number;
}

/** Parses "host:port" or "[v6]:port"; port 0 means "any free port". `what` names the setting in errors. */
export function parseHostPort(value: string, what: string): HostPort {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(value) ?? /^([^:[\]]+):(\d+)$/.exec(value);
  if (!m) throw new StraitError('STRAIT_ERR_CONFIG', `${what}: "${value}" is not host:port (for IPv6 use [addr]:port)`);
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new StraitError('STRAIT_ERR_CONFIG', `${what}: port ${m[2]} is outside 0..65535`);
  return { host: m[1], port };
}

/** Strips an IPv4-mapped IPv6 prefix so "::ffff:127.0.0.5" and "127.0.0.5" are one address. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

const THIS_HOST = new BlockList();
THIS_HOST.addSubnet('127.0.0.0', 8, 'ipv4');
THIS_HOST.addSubnet('0.0.0.0', 8, 'ipv4');
THIS_HOST.addAddress('::1', 'ipv6');
THIS_HOST.addAddress('::', 'ipv6');

/**
 * Whether `ip` means "this host" to a socket connecting to it: loopback (127.0.0.0/8, ::1) or unspecified (0.0.0.0/8,
 * ::, which Linux connects to this host), IPv4-mapped forms included. No packet from another host (a pod) can
 * legitimately carry such a destination.
 */
export function isThisHostAddress(ip: string): boolean {
  const family = isIP(ip);
  if (family === 0) return false;
  return THIS_HOST.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}

export function formatHostPort(hp: HostPort): string {
  return isIP(hp.host) === 6 ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}
