/**
 * Trace context on the wire: W3C Trace Context (`traceparent`, `tracestate`) and Zipkin's B3 (the `x-b3-*` headers
 * and the single `b3` header), read strictly from a request and written onto the request sent upstream, plus the
 * `x-request-id` Envoy adds when a request has none. Pure functions over header maps; nothing here throws on any
 * header value: a malformed value counts as absent.
 */
import { randomFillSync, randomUUID } from 'node:crypto';

/** Header values as Node's http/http2 servers give them. */
export type HeaderValue = string | string[] | number | undefined;
export type Headers = Readonly<Record<string, HeaderValue>>;

/** Every header this module reads as trace context: the proxy removes them from the upstream request and writes its own. */
export const TRACE_HEADER_NAMES = [
  'traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags',
] as const;

/** A tracestate longer than this (W3C's recommended propagation limit) is dropped rather than forwarded. */
export const MAX_TRACESTATE_CHARS = 512;
/** W3C's limit on tracestate list members. */
export const MAX_TRACESTATE_MEMBERS = 32;
/** A received x-request-id is kept when it is 1..128 visible ASCII characters; otherwise one is generated. */
export const MAX_REQUEST_ID_CHARS = 128;

/** What a request's headers say about its trace. */
export interface IncomingTrace {
  /** Where the context came from; "none" when the request carries no (valid) trace ids. */
  format: 'w3c' | 'b3' | 'b3-single' | 'none';
  /** 32 lower-case hex; a 64-bit B3 trace id is left-padded with zeros. Absent with format "none". */
  traceId?: string;
  /** The caller's span (16 hex): the parent of the waypoint's server span. */
  parentSpanId?: string;
  /** The caller's sampling decision, when it made one (B3 may carry ids without one, or a decision without ids). */
  sampled?: boolean;
  /** B3 debug (x-b3-flags: 1, or "d" in b3): sampled, and said so upstream. */
  debug: boolean;
  /** tracestate to pass on (only with a valid traceparent). */
  traceState?: string;
  /** The B3 trace id was 64 bits: B3 headers upstream keep 16 hex digits. */
  traceId64: boolean;
}

/** The context of one upstream attempt: what the request sent upstream carries. */
export interface OutgoingTrace {
  traceId: string;
  /** The attempt's (client) span. */
  spanId: string;
  /** The waypoint's server span: the client span's parent. */
  parentSpanId: string;
  sampled: boolean;
  debug: boolean;
  traceState?: string;
  traceId64: boolean;
  /** Also write the single `b3` header (when the request came with one). */
  b3Single: boolean;
}

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const B3_TRACE_ID = /^(?:[0-9a-f]{16}|[0-9a-f]{32})$/;
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const TRACESTATE_MEMBER = /^(?:[a-z0-9][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;
const ZERO32 = '0'.repeat(32);
const ZERO16 = '0'.repeat(16);

/** One header value as a single string; a repeated header (an array) counts as malformed for single-valued headers. */
function single(v: HeaderValue): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** A traceparent value: version 00 exactly, or a later version's first four fields (W3C Trace Context §3.2). */
export function parseTraceparent(value: HeaderValue): { traceId: string; spanId: string; sampled: boolean } | undefined {
  const s = single(value)?.trim();
  if (!s || s.length < 55) return undefined;
  const head = s.length === 55 ? s : s[55] === '-' ? s.slice(0, 55) : undefined;
  if (!head) return undefined;
  const m = TRACEPARENT.exec(head);
  if (!m) return undefined;
  const [, version, traceId, spanId, flags] = m as unknown as [string, string, string, string, string];
  if (version === 'ff' || (version === '00' && s.length !== 55)) return undefined;
  if (traceId === ZERO32 || spanId === ZERO16) return undefined;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1 };
}

/** tracestate to forward: list members well formed, at most 32 and 512 characters; otherwise none. */
export function parseTracestate(value: HeaderValue): string | undefined {
  const joined = typeof value === 'string' ? value : Array.isArray(value) ? value.join(',') : undefined;
  if (joined === undefined || joined.length > MAX_TRACESTATE_CHARS) return undefined;
  const members = joined.split(',').map((m) => m.trim()).filter((m) => m !== '');
  if (members.length === 0 || members.length > MAX_TRACESTATE_MEMBERS) return undefined;
  const keys = new Set<string>();
  for (const m of members) {
    if (!TRACESTATE_MEMBER.test(m)) return undefined;
    const key = m.slice(0, m.indexOf('='));
    if (keys.has(key)) return undefined;
    keys.add(key);
  }
  return members.join(',');
}

function b3Sampled(v: string | undefined): boolean | undefined {
  if (v === '1' || v === 'true') return true;
  if (v === '0' || v === 'false') return false;
  return undefined;
}

function padTraceId(id: string): string {
  return id.length === 16 ? ZERO16 + id : id;
}

function validB3Ids(traceId: string | undefined, spanId: string | undefined): boolean {
  return traceId !== undefined && spanId !== undefined && B3_TRACE_ID.test(traceId) && HEX16.test(spanId)
    && padTraceId(traceId) !== ZERO32 && spanId !== ZERO16;
}

/** The single `b3` header: `{trace}-{span}[-{0|1|d}[-{parent}]]`, or a bare `0` / `1` / `d`. */
function parseB3Single(value: HeaderValue): IncomingTrace | undefined {
  const s = single(value)?.trim();
  if (!s) return undefined;
  if (s === '0' || s === '1' || s === 'd') {
    return { format: 'none', sampled: s !== '0', debug: s === 'd', traceId64: false };
  }
  const parts = s.split('-');
  if (parts.length < 2 || parts.length > 4) return undefined;
  const [traceId, spanId, flag, parent] = parts;
  if (!validB3Ids(traceId, spanId)) return undefined;
  if (flag !== undefined && flag !== '0' && flag !== '1' && flag !== 'd') return undefined;
  if (parent !== undefined && (!HEX16.test(parent) || parent === ZERO16)) return undefined;
  return {
    format: 'b3-single', traceId: padTraceId(traceId!), parentSpanId: spanId, traceId64: traceId!.length === 16,
    sampled: flag === undefined ? undefined : flag !== '0', debug: flag === 'd',
  };
}

/** The `x-b3-*` headers. Ids must come as a valid pair; a decision alone (x-b3-sampled / x-b3-flags) still counts. */
function parseB3Multi(h: Headers): IncomingTrace | undefined {
  const debug = single(h['x-b3-flags'])?.trim() === '1';
  const sampled = debug ? true : b3Sampled(single(h['x-b3-sampled'])?.trim());
  const traceId = single(h['x-b3-traceid'])?.trim();
  const spanId = single(h['x-b3-spanid'])?.trim();
  if (validB3Ids(traceId, spanId)) {
    return { format: 'b3', traceId: padTraceId(traceId!), parentSpanId: spanId, sampled, debug, traceId64: traceId!.length === 16 };
  }
  if (sampled !== undefined) return { format: 'none', sampled, debug, traceId64: false };
  return undefined;
}

/**
 * The trace context of a request. W3C `traceparent` wins when valid (its `tracestate` is kept); otherwise the single
 * `b3` header, then the `x-b3-*` headers. A sampling decision without ids (B3 `0`/`1`/`d`) is kept with format
 * "none". Never throws.
 */
export function parseIncomingTrace(h: Headers): IncomingTrace {
  const tp = parseTraceparent(h['traceparent']);
  if (tp) {
    return {
      format: 'w3c', traceId: tp.traceId, parentSpanId: tp.spanId, sampled: tp.sampled, debug: false,
      traceState: parseTracestate(h['tracestate']), traceId64: false,
    };
  }
  const b3 = h['b3'] !== undefined ? parseB3Single(h['b3']) : undefined;
  if (b3?.traceId) return b3;
  const multi = parseB3Multi(h);
  if (multi?.traceId) return multi;
  return b3 ?? multi ?? { format: 'none', debug: false, traceId64: false };
}

/** The trace headers of a request sent upstream: W3C (`traceparent`, `tracestate`) and B3 (`x-b3-*`, and `b3` if asked). */
export function outgoingTraceHeaders(t: OutgoingTrace): Record<string, string> {
  const b3TraceId = t.traceId64 ? t.traceId.slice(16) : t.traceId;
  const out: Record<string, string> = {
    traceparent: `00-${t.traceId}-${t.spanId}-${t.sampled ? '01' : '00'}`,
    'x-b3-traceid': b3TraceId,
    'x-b3-spanid': t.spanId,
    'x-b3-parentspanid': t.parentSpanId,
  };
  // Debug implies sampled; B3 says not to send both.
  if (t.debug) out['x-b3-flags'] = '1';
  else out['x-b3-sampled'] = t.sampled ? '1' : '0';
  if (t.traceState) out.tracestate = t.traceState;
  if (t.b3Single) out.b3 = `${b3TraceId}-${t.spanId}-${t.debug ? 'd' : t.sampled ? '1' : '0'}-${t.parentSpanId}`;
  return out;
}

/** The request's x-request-id: the received one when well formed (1..128 visible ASCII), else a new UUID v4. */
export function requestIdOf(h: Headers): { id: string; generated: boolean } {
  const v = single(h['x-request-id']);
  if (v !== undefined && REQUEST_ID.test(v)) return { id: v, generated: false };
  return { id: randomUUID(), generated: true };
}

// Random ids come from a pool refilled 4 KiB at a time (one getrandom call per ~170 requests).
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

function randomHex(bytes: number): string {
  for (;;) {
    if (poolAt + bytes > pool.length) {
      randomFillSync(pool);
      poolAt = 0;
    }
    const hex = pool.toString('hex', poolAt, poolAt + bytes);
    poolAt += bytes;
    if (!/^0+$/.test(hex)) return hex; // all-zero ids are invalid in both formats
  }
}

/** A new 128-bit trace id (32 hex, never all zeros). */
export function newTraceId(): string {
  return randomHex(16);
}

/** A new 64-bit span id (16 hex, never all zeros). */
export function newSpanId(): string {
  return randomHex(8);
}

export { HEX16, HEX32 };
