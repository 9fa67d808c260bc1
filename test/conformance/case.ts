/**
 * The shape of a conformance case and what a case works with: a fresh H2Peer connection to the server under
 * test, the target's request headers, and verdict helpers that watch what comes back.
 *
 * The outcomes a case accepts are the RFC's: a connection error is a GOAWAY with the expected code or the
 * connection closing (GOAWAY is a SHOULD); a stream error is RST_STREAM with the expected code, or the same as
 * a connection error (an endpoint MAY treat a stream error as a connection error, RFC 9113 §5.4). Stricter than
 * the suite these cases are modelled on in one respect: a GOAWAY or RST_STREAM with a different code fails (the
 * suite keeps waiting and passes if the connection then closes; such failures are marked `lenient`).
 */
import type { HeaderList } from '../../src/hbone/h2/hpack.js';
import { FrameType, Flag, codeName } from '../../src/hbone/h2/frames.js';
import {
  H2Peer,
  H2PeerClosedError,
  H2PeerTimeoutError,
  describeFrame,
  headerValue,
  parseGoaway,
  type PeerEvent,
  type PeerTlsOptions,
  type ReceivedFrame,
} from '../helpers/h2-peer.js';

/** A server under test. */
export interface ServerTarget {
  /** Shown in tables ("HBONE server", "node:http2"). */
  name: string;
  host: string;
  port: number;
  /** TLS (ALPN h2, client certificate) when set; plaintext HTTP/2 otherwise. */
  tls?: PeerTlsOptions;
  /** `:authority` of ordinary requests (GET, POST, ...). */
  authority: string;
  /**
   * A CONNECT target the server accepts and relays to an upstream that writes GREETING as soon as it is
   * connected, then echoes what it gets. Cases that need DATA from the server (flow control) use it, because a
   * CONNECT-only server sends no response body to a GET.
   */
  connectAuthority: string;
}

/** What the upstream behind `connectAuthority` writes first; at least 16 bytes (flow-control cases need 5). */
export const GREETING = 'hello from the conformance upstream\n';

/**
 * `lenient`: a failure that h2spec would count as a pass (a GOAWAY or RST_STREAM with another error code,
 * followed by the connection closing), so counts can be compared with published h2spec numbers.
 */
export type Verdict = { pass: boolean; detail: string; skip?: boolean; lenient?: boolean };

/** Where a rule lives, for grouping failures in reports. */
export type Area =
  | 'preface' | 'frame format' | 'frame size' | 'header blocks' | 'stream states' | 'stream ids' | 'concurrency'
  | 'PRIORITY' | 'error handling' | 'extensions' | 'DATA' | 'HEADERS' | 'RST_STREAM' | 'SETTINGS' | 'PING'
  | 'GOAWAY' | 'WINDOW_UPDATE' | 'flow control' | 'CONTINUATION' | 'error codes' | 'message exchange'
  | 'malformed requests' | 'header values' | 'server push' | 'CONNECT rules' | 'HPACK'
  | 'client: server push' | 'client: stream ids' | 'client: responses' | 'client: frame size' | 'client: flow control'
  | 'client: SETTINGS' | 'client: header blocks' | 'client: connection';

export interface ServerCase {
  /** "<group>/<section>/<n>", e.g. "http2/6.5.3/2" (h2spec's numbering for its groups). */
  id: string;
  group: 'generic' | 'http2' | 'hpack' | 'connect' | 'fields';
  /** The rule's section, e.g. "RFC 9113 §6.5.3". */
  rfc: string;
  area: Area;
  description: string;
  /** The outcomes that pass, in words. */
  expect: string;
  /**
   * Whether the rule binds a CONNECT-only server. `adapted` says how the case differs from the suite's
   * original to make it apply (e.g. a CONNECT stream where the suite reads a GET's response body).
   */
  connectOnly: { applies: true; adapted?: string } | { applies: false; why: string };
  run(ctx: CaseContext): Promise<Verdict>;
}

export interface CaseContext {
  readonly peer: H2Peer;
  readonly target: ServerTarget;
  readonly timeoutMs: number;
  /** The server's SETTINGS from the handshake (empty before it). */
  readonly serverSettings: Map<number, number>;
  /** The opening exchange: preface, our SETTINGS (INITIAL_WINDOW_SIZE 65535), theirs, both ACKs. */
  handshake(): Promise<void>;
  /** `:method`, `:scheme`, `:path` "/", `:authority` (the suite's "common headers"). */
  request(method?: string): HeaderList;
  /** `:method` CONNECT, `:authority` connectAuthority. */
  connect(): HeaderList;
  /** The server's SETTINGS_MAX_FRAME_SIZE (16384 unless it said otherwise). */
  maxFrameSize(): number;
}

/** What the verdict helpers need: a peer to watch and how long to wait (a CaseContext is one). */
export type Watcher = Pick<CaseContext, 'peer' | 'timeoutMs'>;

export function makeContext(peer: H2Peer, target: ServerTarget, timeoutMs: number): CaseContext {
  const serverSettings = new Map<number, number>();
  const scheme = target.tls === undefined ? 'http' : 'https';
  return {
    peer,
    target,
    timeoutMs,
    serverSettings,
    async handshake() {
      const remote = await peer.handshake([[0x4, 65_535]], timeoutMs);
      for (const [id, value] of remote) serverSettings.set(id, value);
    },
    request(method = 'GET') {
      return [[':method', method], [':scheme', scheme], [':path', '/'], [':authority', target.authority]];
    },
    connect() {
      return [[':method', 'CONNECT'], [':authority', target.connectAuthority]];
    },
    maxFrameSize() {
      return serverSettings.get(0x5) ?? 16_384;
    },
  };
}

/** `n` header fields "x-dummyI: xxx…" (the suite's filler for CONTINUATION and size cases). */
export function dummyHeaders(n: number, valueBytes = 1000): HeaderList {
  return Array.from({ length: n }, (_, i) => [`x-dummy${i}`, 'x'.repeat(valueBytes)] as [string, string]);
}

function pass(detail: string): Verdict {
  return { pass: true, detail };
}

function fail(detail: string): Verdict {
  return { pass: false, detail };
}

function codes(list: number[]): string {
  return list.map(codeName).join(' or ');
}

/**
 * Watches events until `judge` returns a verdict for one; a timeout or a close that `judge` did not judge
 * fails with what was seen.
 */
export async function watch(ctx: Watcher, what: string, judge: (e: PeerEvent) => Verdict | undefined, timeoutMs = ctx.timeoutMs): Promise<Verdict> {
  try {
    return await ctx.peer.waitFor(what, judge, timeoutMs);
  } catch (err) {
    if (err instanceof H2PeerTimeoutError || err instanceof H2PeerClosedError) return fail(err.message);
    throw err;
  }
}

/**
 * Watches for an error outcome: `match` says whether a frame is the error frame to judge and if so whether its
 * code is right. A wrong code fails, but the watch goes on to see whether the connection closes (h2spec's pass).
 */
async function errorOutcome(ctx: Watcher, what: string, want: number[], isErrorFrame: (f: ReceivedFrame) => number | undefined): Promise<Verdict> {
  let wrong: string | undefined;
  const v = await watch(ctx, what, (e) => {
    if (e.kind === 'closed') {
      return wrong === undefined
        ? pass(`connection closed (${e.how})`)
        : { pass: false, lenient: true, detail: `${wrong}, expected ${codes(want)} (then the connection closed)` };
    }
    const code = isErrorFrame(e.frame);
    if (code === undefined) return undefined;
    if (want.includes(code)) return wrong === undefined ? pass(describeFrame(e.frame)) : fail(`${wrong} before ${describeFrame(e.frame)}`);
    wrong ??= describeFrame(e.frame);
    return undefined;
  });
  if (!v.pass && wrong !== undefined && v.lenient !== true) return fail(`${wrong}, expected ${codes(want)}`);
  return v;
}

/** Connection error: GOAWAY with one of `want`, or the connection closed. */
export function connectionError(ctx: Watcher, want: number[]): Promise<Verdict> {
  return errorOutcome(ctx, `GOAWAY ${codes(want)} or a close`, want, (f) =>
    f.type === FrameType.GOAWAY && f.payload.length >= 8 ? parseGoaway(f.payload).code : undefined);
}

/** Stream error: RST_STREAM with one of `want` (on `streamId` when given), or a connection error with one of `want`. */
export function streamError(ctx: Watcher, want: number[], streamId?: number): Promise<Verdict> {
  return errorOutcome(ctx, `RST_STREAM ${codes(want)}${streamId === undefined ? '' : ` on stream ${streamId}`}, GOAWAY ${codes(want)} or a close`, want, (f) => {
    if (f.type === FrameType.GOAWAY && f.payload.length >= 8) return parseGoaway(f.payload).code;
    if (f.type === FrameType.RST_STREAM && f.payload.length === 4 && (streamId === undefined || f.streamId === streamId)) return f.payload.readUInt32BE(0);
    return undefined;
  });
}

/** The connection closes (a GOAWAY on the way is fine, but not enough). */
export function connectionClose(ctx: Watcher): Promise<Verdict> {
  return watch(ctx, 'the connection to close', (e) => (e.kind === 'closed' ? pass(`connection closed (${e.how})`) : undefined));
}

/** A response (HEADERS) on `streamId`; RST_STREAM on it, GOAWAY or a close first fail. */
export function headersFrame(ctx: Watcher, streamId: number): Promise<Verdict> {
  return watch(ctx, `HEADERS on stream ${streamId}`, (e) => {
    if (e.kind === 'closed') return fail(`connection closed (${e.how}) before a response on stream ${streamId}`);
    const f = e.frame;
    if (f.type === FrameType.GOAWAY) return fail(`${describeFrame(f)} before a response on stream ${streamId}`);
    if (f.type === FrameType.RST_STREAM && f.streamId === streamId) return fail(`${describeFrame(f)} instead of a response`);
    if (f.type === FrameType.HEADERS && f.streamId === streamId) return pass(describeFrame(f));
    return undefined;
  });
}

/** A PING ACK echoing `data`; with `orClose`, a close passes too. A GOAWAY first fails. */
export function pingAck(ctx: Watcher, data: Buffer, orClose = false): Promise<Verdict> {
  return watch(ctx, 'PING ACK', (e) => {
    if (e.kind === 'closed') return orClose ? pass(`connection closed (${e.how})`) : fail(`connection closed (${e.how}) before the PING ACK`);
    const f = e.frame;
    if (f.type === FrameType.GOAWAY) return fail(`${describeFrame(f)} before the PING ACK`);
    if (f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0 && f.payload.equals(data)) return pass('PING(ACK) with our payload');
    return undefined;
  });
}

/** The next SETTINGS frame is an ACK. */
export function settingsAck(ctx: Watcher): Promise<Verdict> {
  return watch(ctx, 'SETTINGS ACK', (e) => {
    if (e.kind === 'closed') return fail(`connection closed (${e.how}) before the SETTINGS ACK`);
    const f = e.frame;
    if (f.type === FrameType.GOAWAY) return fail(`${describeFrame(f)} before the SETTINGS ACK`);
    if (f.type !== FrameType.SETTINGS) return undefined;
    return (f.flags & Flag.ACK) !== 0 ? pass('SETTINGS(ACK)') : undefined;
  });
}

/** The first DATA frame on `streamId` carries exactly `length` bytes. */
export function dataFrame(ctx: Watcher, streamId: number, length: number): Promise<Verdict> {
  return watch(ctx, `DATA of ${length} bytes on stream ${streamId}`, (e) => {
    if (e.kind === 'closed') return fail(`connection closed (${e.how}) before DATA on stream ${streamId}`);
    const f = e.frame;
    if (f.type === FrameType.GOAWAY) return fail(`${describeFrame(f)} before DATA on stream ${streamId}`);
    if (f.type === FrameType.RST_STREAM && f.streamId === streamId) return fail(`${describeFrame(f)} before DATA`);
    if (f.type !== FrameType.DATA || f.streamId !== streamId) return undefined;
    return f.payload.length === length ? pass(describeFrame(f)) : fail(`${describeFrame(f)}, expected ${length} bytes`);
  });
}

/** Waits for the stream to end from the server's side (HEADERS or DATA with END_STREAM); throws otherwise. */
export async function streamEnded(ctx: Watcher, streamId: number): Promise<Verdict> {
  return watch(ctx, `END_STREAM on stream ${streamId}`, (e) => {
    if (e.kind === 'closed') return fail(`connection closed (${e.how}) before stream ${streamId} ended`);
    const f = e.frame;
    if (f.type === FrameType.GOAWAY) return fail(`${describeFrame(f)} before stream ${streamId} ended`);
    if (f.type === FrameType.RST_STREAM && f.streamId === streamId) return fail(`${describeFrame(f)} before stream ${streamId} ended`);
    if ((f.type === FrameType.HEADERS || f.type === FrameType.DATA) && f.streamId === streamId && (f.flags & Flag.END_STREAM) !== 0) return pass(describeFrame(f));
    return undefined;
  });
}

/** The final response (1xx skipped) on `streamId`, or a failing verdict. */
export async function finalResponse(ctx: Watcher, streamId: number): Promise<{ headers: HeaderList; endStream: boolean } | Verdict> {
  try {
    return await ctx.peer.waitFor<{ headers: HeaderList; endStream: boolean } | Verdict>(`a response on stream ${streamId}`, (e) => {
      if (e.kind === 'closed') return fail(`connection closed (${e.how}) before a response on stream ${streamId}`);
      const f = e.frame;
      if (f.type === FrameType.GOAWAY) return fail(`${describeFrame(f)} before a response on stream ${streamId}`);
      if (f.type === FrameType.RST_STREAM && f.streamId === streamId) return fail(`${describeFrame(f)} instead of a response`);
      if (f.streamId !== streamId || f.headers === undefined || f.type === FrameType.PUSH_PROMISE) return undefined;
      const status = Number(headerValue(f.headers, ':status'));
      if (status >= 100 && status < 200) return undefined;
      // A CONTINUATION ends the block: END_STREAM is on the HEADERS frame that opened it.
      const opener = f.type === FrameType.HEADERS ? f : ctx.peer.framesSeen(FrameType.HEADERS).filter((h) => h.streamId === streamId).at(-1);
      return { headers: f.headers, endStream: opener !== undefined && (opener.flags & Flag.END_STREAM) !== 0 };
    }, ctx.timeoutMs);
  } catch (err) {
    if (err instanceof H2PeerTimeoutError || err instanceof H2PeerClosedError) return fail(err.message);
    throw err;
  }
}

export function isVerdict(x: unknown): x is Verdict {
  return typeof x === 'object' && x !== null && 'pass' in x && 'detail' in x;
}

export const verdict = { pass, fail };
