/**
 * HBONE wire details shared by both sides (Istio-compatible): TLS 1.3 + ALPN "h2", HTTP/2 CONNECT with
 * `:authority` = "ip:port" of the target, `forwarded: for="<src ip>"`, `baggage`, `traceparent`; the server
 * answers 200 and the stream carries raw TCP bytes, or a non-200 status with an optional `x-strait-reason`.
 * Pure helpers only: no sockets here.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { formatHostPort } from '../common/net.js';

/** The port every HBONE peer (ztunnel, waypoint) answers on (DESIGN §2). */
export const HBONE_PORT = 15008;
export const HBONE_ALPN = 'h2';
export const HEADER_FORWARDED = 'forwarded';
export const HEADER_BAGGAGE = 'baggage';
export const HEADER_TRACEPARENT = 'traceparent';
/**
 * Strait's own: the service address (VIP:port) the source's application asked for, when the source ztunnel sent
 * the connection to one of that service's endpoints; the destination names the service from it.
 */
export const HEADER_ORIGINAL_DST = 'x-strait-original-dst';
/** A human reason on a refusal (non-200 answer). */
export const HEADER_REASON = 'x-strait-reason';
/** Longest reason we put on the wire; longer ones are cut. */
export const MAX_REASON_CHARS = 1024;

/** HTTP/2 flow-control windows (bytes). The defaults (64 KiB) cap a stream's throughput at window / RTT. */
export const HBONE_STREAM_WINDOW_BYTES = 4 * 1024 * 1024;
export const HBONE_CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024;

export interface HboneTarget {
  /** The bare address: "10.0.0.1" or "fd00::1" (no brackets). */
  host: string;
  port: number;
}

/**
 * Parses an HBONE `:authority`: "a.b.c.d:port" or "[v6]:port", port 1..65535. Returns undefined for
 * anything else (host names, zone ids, missing or out-of-range ports): the server answers 400.
 */
export function parseAuthority(authority: string): HboneTarget | undefined {
  const m = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(authority) ?? /^([0-9.]+):(\d{1,5})$/.exec(authority);
  if (m === null) return undefined;
  const host = m[1]!;
  const v6 = authority.startsWith('[');
  if (v6 ? !isIPv6(host) : !isIPv4(host)) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host, port };
}

/** "10.0.0.1:80" or "[fd00::1]:80" (common/net.ts formats it; this is HBONE's name for it). */
export function formatAuthority(host: string, port: number): string {
  return formatHostPort({ host, port });
}

/** The `forwarded` header value for a source address: `for="10.0.0.1"` or `for="[fd00::1]"`. */
export function formatForwarded(sourceIp: string): string {
  return isIPv6(sourceIp) ? `for="[${sourceIp}]"` : `for="${sourceIp}"`;
}

/**
 * The `for` address of the first element of a `forwarded` header (RFC 7239), bare (no quotes, brackets or
 * port), or undefined when there is none or it is not an IP address ("unknown", obfuscated identifiers).
 */
export function parseForwardedFor(value: string | string[] | undefined): string | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined) return undefined;
  const first = text.split(',')[0]!;
  for (const pair of first.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0 || pair.slice(0, eq).trim().toLowerCase() !== 'for') continue;
    let v = pair.slice(eq + 1).trim();
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(v);
    if (bracketed !== null) return isIPv6(bracketed[1]!) ? bracketed[1] : undefined;
    const withPort = /^([0-9.]+):\d+$/.exec(v);
    if (withPort !== null) v = withPort[1]!;
    return isIPv4(v) || isIPv6(v) ? v : undefined;
  }
  return undefined;
}

/** A reason safe as an HTTP/2 header value: printable ASCII only, at most MAX_REASON_CHARS. */
export function sanitizeReason(reason: string): string {
  const clean = reason.replace(/[^\x20-\x7e]/g, ' ').trim();
  return clean.length > MAX_REASON_CHARS ? `${clean.slice(0, MAX_REASON_CHARS - 3)}...` : clean;
}
