/**
 * The waypoint's access log: one pino line per request with fixed field names, the same names the ztunnel's
 * connection lines use for the two ends (`src.*`, `dst.*`, `bytes_sent`, `bytes_recv`, `duration_ms`), plus the
 * request's own (method, authority, path, status, response_flags, route, attempts, ...). See README "Waypoint access
 * log" for the field table.
 *
 * What a client chooses (path, authority, method, user agent, request id) is cut to a bound and its control
 * characters escaped, so one request cannot write a huge line or forge terminal output or a second line.
 */
import type { RequestRecord } from './request-record.js';
import { formatResponseFlags } from './response-flags.js';

/** A logged path longer than this (after escaping) is cut and ends with "…". */
export const DEFAULT_ACCESS_LOG_PATH_MAX_CHARS = 1024;
/** Bound for the other client-chosen fields (authority, method, user agent, request id, error detail). */
export const ACCESS_LOG_FIELD_MAX_CHARS = 256;
/** The message of every access-log line. */
export const ACCESS_LOG_MSG = 'request complete';

export interface AccessLogOptions {
  /** Used when the record has none (the RequestTrace's ids). */
  traceId?: string;
  requestId?: string;
  /** Default DEFAULT_ACCESS_LOG_PATH_MAX_CHARS. */
  pathMaxChars?: number;
  /** Also put the request as Istio's default text format would show it in a `line` field (default false). */
  istioLine?: boolean;
}

/** Characters that are escaped: C0 controls, DEL, C1 controls, and the Unicode line/paragraph separators. */
const NEEDS_ESCAPE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/**
 * `s` with control characters written as `\xNN` (`\uNNNN` above 0xff), cut to at most `max` characters (an escape is
 * never cut in half); a cut string ends with "…" (counted in `max`).
 */
export function boundedText(s: string, max: number): string {
  if (s.length <= max && !NEEDS_ESCAPE.test(s)) return s;
  let out = '';
  let fit = 0; // length of `out` at the last piece boundary that leaves room for the "…"
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let piece: string;
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) piece = `\\x${c.toString(16).padStart(2, '0')}`;
    else if (c === 0x2028 || c === 0x2029) piece = `\\u${c.toString(16)}`;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) { piece = s.slice(i, i + 2); i++; } // a surrogate pair stays whole
    else piece = s[i]!;
    out += piece;
    if (out.length <= max - 1) fit = out.length;
    if (out.length > max) return out.slice(0, fit) + '…';
  }
  return out;
}

/** The fields of one access-log line (pino merges them into the JSON line; absent values are left out). */
export function formatAccessLog(r: RequestRecord, opts: AccessLogOptions = {}): Record<string, unknown> {
  const pathMax = opts.pathMaxChars ?? DEFAULT_ACCESS_LOG_PATH_MAX_CHARS;
  const f = ACCESS_LOG_FIELD_MAX_CHARS;
  const fields: Record<string, unknown> = {
    'src.addr': r.source.address,
    'src.workload': r.source.workload,
    'src.namespace': r.source.namespace,
    'src.identity': r.source.principal,
    'dst.service': r.destination.serviceHost ?? r.destination.service,
    'dst.workload': r.destination.workload,
    'dst.namespace': r.destination.namespace,
    'dst.identity': r.destination.principal,
    upstream: r.upstream,
    upstream_cluster: r.upstreamCluster,
    method: boundedText(r.method, 32),
    authority: boundedText(r.authority, f),
    path: boundedText(r.path, pathMax),
    protocol: r.grpc ? `${r.protocol} gRPC` : r.protocol,
    status: r.status,
    grpc_status: r.grpcStatus,
    response_flags: formatResponseFlags(r.responseFlags),
    duration_ms: roundMs(r.durationMs),
    bytes_sent: r.responseBytes,
    bytes_recv: r.requestBytes,
    route: r.route,
    attempts: r.attempts,
    policy: r.policy,
    audit: r.audited && r.audited.length > 0 ? r.audited.join(',') : undefined,
    trace_id: r.traceId ?? opts.traceId,
    request_id: (r.requestId ?? opts.requestId) === undefined ? undefined : boundedText((r.requestId ?? opts.requestId)!, f),
    user_agent: r.userAgent === undefined ? undefined : boundedText(r.userAgent, f),
    error: r.error === undefined ? undefined : boundedText(r.error, f),
  };
  if (opts.istioLine) fields.line = istioTextLine(r, pathMax, opts.requestId);
  return fields;
}

/**
 * The request as Envoy's (and Istio's) default text access-log format shows it:
 * `[START] "METHOD PATH PROTOCOL" CODE FLAGS DETAILS - "-" BYTES_RECEIVED BYTES_SENT DURATION - "-" "USER-AGENT"
 * "REQUEST-ID" "AUTHORITY" "UPSTREAM_HOST" UPSTREAM_CLUSTER - - DOWNSTREAM_REMOTE - ROUTE`, "-" for what is unknown
 * (fields the waypoint does not track are always "-"). Quoted fields have `"` escaped as `\x22`.
 */
export function istioTextLine(r: RequestRecord, pathMax = DEFAULT_ACCESS_LOG_PATH_MAX_CHARS, requestId?: string): string {
  const q = (s: string | undefined, max = ACCESS_LOG_FIELD_MAX_CHARS) => `"${s === undefined || s === '' ? '-' : boundedText(s, max).replaceAll('"', '\\x22')}"`;
  const d = (s: string | number | undefined) => (s === undefined || s === '' ? '-' : String(s).replaceAll(' ', '_'));
  const detail = r.error === undefined ? undefined : boundedText(r.error, ACCESS_LOG_FIELD_MAX_CHARS);
  return [
    `[${new Date(r.startMs).toISOString()}]`,
    `"${boundedText(r.method, 32).replaceAll('"', '\\x22')} ${boundedText(r.path, pathMax).replaceAll('"', '\\x22')} ${r.protocol}"`,
    String(r.status), formatResponseFlags(r.responseFlags), d(detail), '-', '"-"',
    String(r.requestBytes), String(r.responseBytes), String(Math.round(r.durationMs)), '-', '"-"',
    q(r.userAgent), q(r.requestId ?? requestId), q(r.authority), q(r.upstream), d(r.upstreamCluster), '-', '-',
    d(r.source.address), '-', d(r.route),
  ].join(' ');
}

function roundMs(ms: number): number {
  return Number.isFinite(ms) && ms > 0 ? Math.round(ms * 1000) / 1000 : 0;
}
