/**
 * A lean HTTP/2 (RFC 9113) connection for HBONE, client or server side, over an already verified TLS socket.
 * It carries what HBONE needs and nothing else: CONNECT requests, their responses, and long-lived streams of
 * DATA both ways, with SETTINGS, PING, GOAWAY, RST_STREAM, WINDOW_UPDATE and CONTINUATION handled as the
 * spec requires (server push is refused, PRIORITY checked and otherwise ignored). It interoperates with any
 * HTTP/2 peer (node:http2 / nghttp2, python-h2, Rust h2 as Istio's ztunnel uses) and replaces node:http2 on
 * the data path because that costs about twice the CPU per byte: here a DATA payload goes from the TLS
 * socket's read buffer to the stream without a copy, and DATA frames are sized so that each fills exactly
 * one TLS record.
 *
 * Port 15008 is a security boundary, so the peer is held to budgets (./limits.ts): frames that do no work,
 * streams reset before their answer, streams we had to reset for the peer's errors, replies queued behind a
 * peer that does not read, header block size; going past one ends this connection with GOAWAY.
 *
 * Invariants:
 * - only this class writes to the socket, and frames are written whole (never interleaved);
 * - the bytes in flight never exceed the peer's windows (connection and stream), and the peer is credited
 *   only for bytes a reader took (streams) or received (connection), the latter only while the bytes held for
 *   streams whose destination is full stay under limits.maxHeldBytes;
 * - every stream in #streams is open on the wire; a stream leaves it when it is closed or destroyed, and is
 *   then remembered in #closedStreams with how it closed;
 * - after a connection error nothing is read any more: GOAWAY is sent, every stream aborted, the socket ended.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import {
  CONNECTION_PREFACE,
  DEFAULT_WINDOW_BYTES,
  FRAME_HEADER_BYTES,
  Flag,
  FrameType,
  H2Code,
  H2ConnectionError,
  MAX_MAX_FRAME_SIZE,
  MAX_WINDOW_BYTES,
  MIN_MAX_FRAME_SIZE,
  Setting,
  frame,
  writeFrameHeader,
} from './frames.js';
import { HpackDecoder, HpackError, encodeHeaders, type HeaderList } from './hpack.js';
import { H2Stream, type H2Headers, type StreamOwner } from './stream.js';
import { ClosedStreams, type ClosedHow } from './closed-streams.js';
import { checkRequest, checkResponse, checkTrailers } from './headers.js';
import { DEFAULT_H2_MAX_HEADER_LIST_BYTES, FloodCounters, checkH2Limits, defaultH2Limits, type GoawayReason, type H2Limits } from './limits.js';

export interface H2Settings {
  maxConcurrentStreams?: number;
  /** Our receive window per stream. */
  initialWindowSize?: number;
  maxFrameSize?: number;
  maxHeaderListSize?: number;
}

export interface H2ConnectionOptions {
  role: 'client' | 'server';
  settings?: H2Settings;
  /** Our receive window for the whole connection (default: the protocol's 65,535). */
  connectionWindow?: number;
  /** Budgets and timeouts; each field left out takes its default from ./limits.ts. */
  limits?: Partial<H2Limits>;
}

export interface H2RemoteSettings {
  headerTableSize: number;
  enablePush: boolean;
  maxConcurrentStreams: number;
  initialWindowSize: number;
  maxFrameSize: number;
  maxHeaderListSize: number;
}

/** What the 'goawaySent' event carries: why we told the peer to go away. */
export interface GoawayInfo {
  reason: GoawayReason;
  code: number;
  message: string;
}

/** A TLS record carries at most 16 KiB of plaintext: a DATA frame of this payload plus its header fills one. */
const RECORD_ALIGNED_PAYLOAD = 16_384 - FRAME_HEADER_BYTES;
/** DATA payloads of at least this many bytes are written gathered (headers + slices) instead of copied. */
const GATHER_MIN_BYTES = 4096;
const NOOP = (): void => undefined;
const MAX_STREAM_ID = 2 ** 31 - 1;
const HEADER_NAME = /^:?[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const EMPTY = Buffer.alloc(0);
/**
 * Every this many bytes of DATA we send lets the peer send two more frames that do no work (its WINDOW_UPDATEs for
 * the stream and the connection, a bandwidth-probing PING). Counted in bytes, not frames: a peer that opens our window
 * a byte at a time makes us send 1-byte frames, and must not earn its allowance with them.
 */
const DATA_ALLOWANCE_BYTES = 8_192;

const REASON_OF_CODE: Record<number, GoawayReason> = {
  [H2Code.PROTOCOL_ERROR]: 'protocol_error',
  [H2Code.FLOW_CONTROL_ERROR]: 'flow_control_error',
  [H2Code.FRAME_SIZE_ERROR]: 'frame_size_error',
  [H2Code.COMPRESSION_ERROR]: 'compression_error',
  [H2Code.STREAM_CLOSED]: 'stream_closed',
  [H2Code.SETTINGS_TIMEOUT]: 'settings_timeout',
};

type ReadState = 'preface' | 'header' | 'data' | 'body';

export class H2Connection extends EventEmitter implements StreamOwner {
  readonly role: 'client' | 'server';
  readonly socket: Duplex;
  readonly limits: Readonly<H2Limits>;
  readonly #streams = new Map<number, H2Stream>();
  readonly #closedStreams = new ClosedStreams();
  readonly #decoder: HpackDecoder;
  readonly #localStreamWindow: number;
  readonly #localMaxFrame: number;
  readonly #localMaxStreams: number;
  readonly #connWindow: number;
  remoteSettings: H2RemoteSettings = {
    headerTableSize: 4096,
    enablePush: true,
    maxConcurrentStreams: Number.POSITIVE_INFINITY,
    initialWindowSize: DEFAULT_WINDOW_BYTES,
    maxFrameSize: MIN_MAX_FRAME_SIZE,
    maxHeaderListSize: Number.POSITIVE_INFINITY,
  };
  #sawRemoteSettings = false;
  #sendWindow = DEFAULT_WINDOW_BYTES;
  #recvWindow = DEFAULT_WINDOW_BYTES;
  #recvUnacked = 0;
  /** Sum of the streams' heldBytes: while above limits.maxHeldBytes, connection-window credit is withheld. */
  #held = 0;
  #nextStreamId: number;
  /** Highest stream id the peer opened (for GOAWAY). */
  #lastPeerStreamId = 0;
  #blocked = new Set<H2Stream>();
  #drainWanted = new Set<H2Stream>();
  #congested = false;
  #drainWaiters: Array<(err?: Error | null) => void> = [];
  #goawaySent = false;
  #goawayReceived = false;
  #destroyed = false;
  #closeEmitted = false;

  // budgets
  readonly #flood: FloodCounters;
  /** Control replies written since the socket last drained. */
  #queuedControl = 0;
  /** Reading paused because our write buffer is above limits.maxWriteQueueBytes. */
  #readPaused = false;
  /** Until the peer acknowledged our first SETTINGS (and, as a server, sent its preface). */
  #settingsTimer: NodeJS.Timeout | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  /** While a header block is unfinished. */
  #blockTimer: NodeJS.Timeout | undefined;
  /** The peer opened at least one stream (before that, limits.firstStreamTimeoutMs applies instead of idle). */
  #everOpened = false;
  /** When a stream last opened or closed (idle timeout). */
  #lastStreamChange = Date.now();

  // reader state
  #state: ReadState;
  #prefaceSeen = 0;
  readonly #hdr = Buffer.alloc(FRAME_HEADER_BYTES);
  #hdrLen = 0;
  #fLen = 0;
  #fType = 0;
  #fFlags = 0;
  #fStream = 0;
  #body: Buffer | undefined;
  #bodyLen = 0;
  #dataLeft = 0;
  #dataStream: H2Stream | undefined;
  /** A header block being continued: stream id, flags of the HEADERS frame, fragments, bytes counted. */
  #continuation: { streamId: number; endStream: boolean; selfDependent: boolean; fragments: Buffer[]; size: number } | undefined;

  constructor(socket: Duplex, opts: H2ConnectionOptions) {
    super();
    this.role = opts.role;
    this.socket = socket;
    const s = opts.settings ?? {};
    this.#localStreamWindow = s.initialWindowSize ?? DEFAULT_WINDOW_BYTES;
    this.#localMaxFrame = s.maxFrameSize ?? MIN_MAX_FRAME_SIZE;
    this.#localMaxStreams = s.maxConcurrentStreams ?? Number.POSITIVE_INFINITY;
    const maxHeaderList = s.maxHeaderListSize ?? DEFAULT_H2_MAX_HEADER_LIST_BYTES;
    this.limits = checkH2Limits({ ...defaultH2Limits(), maxHeaderBlockBytes: maxHeaderList + 1024, ...opts.limits }, 'H2Connection');
    this.#flood = new FloodCounters(this.limits.floodWindowMs);
    this.#decoder = new HpackDecoder(4096, maxHeaderList);
    this.#connWindow = opts.connectionWindow ?? DEFAULT_WINDOW_BYTES;
    this.#nextStreamId = this.role === 'client' ? 1 : 2;
    this.#state = this.role === 'server' ? 'preface' : 'header';

    const settings: Array<[number, number]> = [[Setting.ENABLE_PUSH, 0]];
    if (Number.isFinite(this.#localMaxStreams)) settings.push([Setting.MAX_CONCURRENT_STREAMS, this.#localMaxStreams]);
    if (this.#localStreamWindow !== DEFAULT_WINDOW_BYTES) settings.push([Setting.INITIAL_WINDOW_SIZE, this.#localStreamWindow]);
    if (this.#localMaxFrame !== MIN_MAX_FRAME_SIZE) settings.push([Setting.MAX_FRAME_SIZE, this.#localMaxFrame]);
    settings.push([Setting.MAX_HEADER_LIST_SIZE, maxHeaderList]);
    const payload = Buffer.allocUnsafe(6 * settings.length);
    settings.forEach(([id, value], i) => {
      payload.writeUInt16BE(id, 6 * i);
      payload.writeUInt32BE(value, 6 * i + 2);
    });
    const out: Buffer[] = [];
    if (this.role === 'client') out.push(CONNECTION_PREFACE);
    out.push(frame(FrameType.SETTINGS, 0, 0, payload));
    if (this.#connWindow > DEFAULT_WINDOW_BYTES) {
      out.push(this.#windowUpdate(0, this.#connWindow - DEFAULT_WINDOW_BYTES));
      this.#recvWindow = this.#connWindow;
    }
    this.#write(Buffer.concat(out));
    this.#settingsTimer = setTimeout(() => {
      this.#fail(H2Code.SETTINGS_TIMEOUT, `the peer did not acknowledge our SETTINGS within ${this.limits.settingsTimeoutMs} ms`);
    }, this.limits.settingsTimeoutMs);
    this.#settingsTimer.unref();
    if (this.#idleLimitMs() > 0) this.#armIdle(this.#idleLimitMs());

    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('drain', () => this.#onDrain());
    socket.on('end', () => this.#onSocketGone(undefined));
    socket.on('error', (err: Error) => this.#onSocketGone(err));
    socket.on('close', () => this.#onSocketGone(undefined));
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** True once GOAWAY was sent or received, or the connection is gone: no new streams. */
  get closed(): boolean {
    return this.#destroyed || this.#goawaySent || this.#goawayReceived;
  }

  /** Open streams. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** Client side: opens a stream with a request. Pseudo-headers (`:method`, `:authority`, ...) included. */
  request(headers: Record<string, string>, opts?: { endStream?: boolean }): H2Stream {
    if (this.role !== 'client') throw new Error('BUG: request() on a server-side HTTP/2 connection');
    if (this.closed) throw Object.assign(new Error('the HTTP/2 connection is closing or closed (GOAWAY)'), { code: 'ERR_HTTP2_GOAWAY_SESSION' });
    if (this.#nextStreamId > MAX_STREAM_ID) throw Object.assign(new Error('the HTTP/2 connection ran out of stream ids'), { code: 'ERR_HTTP2_OUT_OF_STREAMS' });
    const list: HeaderList = [];
    for (const [name, value] of Object.entries(headers)) if (name.startsWith(':')) list.push([name, value]);
    for (const [name, value] of Object.entries(headers)) if (!name.startsWith(':')) list.push([name, value]);
    for (const [name, value] of list) {
      if (!HEADER_NAME.test(name)) throw Object.assign(new Error(`invalid HTTP/2 header name "${name}" (lower case token expected)`), { code: 'ERR_INVALID_HTTP_TOKEN' });
      if (!HEADER_VALUE.test(value)) throw Object.assign(new Error(`invalid character in the value of HTTP/2 header "${name}"`), { code: 'ERR_INVALID_CHAR' });
    }
    const id = this.#nextStreamId;
    this.#nextStreamId += 2;
    const stream = new H2Stream(this, this, id, this.remoteSettings.initialWindowSize, this.#localStreamWindow);
    this.#addStream(stream);
    stream.headersSent = true;
    this.sendHeaders(stream, list, opts?.endStream === true);
    if (opts?.endStream === true) {
      stream.localEnded = true;
      stream.end();
    }
    return stream;
  }

  /** Graceful: GOAWAY now (no new streams either way), the socket ends once the open streams are done. */
  close(reason: GoawayReason = 'drain'): void {
    if (this.#destroyed) return;
    this.#sendGoaway(H2Code.NO_ERROR, '', reason);
    this.#maybeFinish();
  }

  /** Ends the connection as past a limit the owner keeps (e.g. sessions per identity): GOAWAY(ENHANCE_YOUR_CALM). */
  calm(reason: GoawayReason, message: string): void {
    this.#calm(reason, message);
  }

  /** Abrupt: every stream is aborted and the socket destroyed. */
  destroy(err?: Error): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#stopTimers();
    this.#abortStreams(err);
    this.socket.destroy();
    if (err !== undefined && this.listenerCount('error') > 0) this.emit('error', err);
    this.#emitClose();
  }

  // ---- StreamOwner ------------------------------------------------------------------------------------

  sendHeaders(stream: H2Stream, headers: HeaderList, endStream: boolean): void {
    if (this.#destroyed) return;
    if (this.role === 'server' && headers[0]?.[0] === ':status' && headers[0][1] >= '400' && !this.#countRefused()) return;
    const block = encodeHeaders(headers);
    const max = this.remoteSettings.maxFrameSize;
    const flags = endStream ? Flag.END_STREAM : 0;
    if (endStream) stream.localEnded = true;
    if (block.length <= max) {
      this.#write(frame(FrameType.HEADERS, flags | Flag.END_HEADERS, stream.id, block));
    } else {
      const parts: Buffer[] = [];
      for (let off = 0; off < block.length; off += max) {
        const piece = block.subarray(off, Math.min(off + max, block.length));
        const last = off + max >= block.length;
        parts.push(off === 0
          ? frame(FrameType.HEADERS, flags | (last ? Flag.END_HEADERS : 0), stream.id, piece)
          : frame(FrameType.CONTINUATION, last ? Flag.END_HEADERS : 0, stream.id, piece));
      }
      this.#write(Buffer.concat(parts));
    }
    if (endStream) this.#streamEndedLocally(stream);
  }

  sendData(stream: H2Stream, chunk: Buffer, endStream: boolean, cb: (err?: Error | null) => void): void {
    if (this.#destroyed) {
      cb(Object.assign(new Error('the HTTP/2 connection is gone'), { code: 'ERR_HTTP2_INVALID_SESSION' }));
      return;
    }
    if (!stream.headersSent) {
      cb(new Error('BUG: DATA before the headers on an HTTP/2 stream'));
      return;
    }
    const item = { chunk, offset: 0, end: endStream, cb };
    if (stream.queue.length > 0) {
      stream.queue.push(item);
      return;
    }
    if (this.#sendFrom(stream, item)) {
      this.#afterWrite(cb);
    } else {
      stream.queue.push(item);
      this.#blocked.add(stream);
    }
  }

  writeDirect(stream: H2Stream, chunk: Buffer, budget: number): boolean {
    this.sendData(stream, chunk, false, NOOP);
    if (this.#roomFor(stream, budget)) return true;
    stream.wantDrain = true;
    this.#drainWanted.add(stream);
    return false;
  }

  #roomFor(stream: H2Stream, budget: number): boolean {
    let queued = this.socket.writableLength;
    for (const q of stream.queue) queued += q.chunk.length - q.offset;
    return queued < budget;
  }

  /** Streams whose direct writer waits for room: 'drain' once their queue is empty and the socket drained. */
  #wakeDirectWriters(): void {
    if (this.#drainWanted.size === 0 || this.#congested) return;
    for (const stream of this.#drainWanted) {
      if (stream.queue.length > 0) continue;
      this.#drainWanted.delete(stream);
      stream.wantDrain = false;
      if (!stream.destroyed) stream.emit('drain');
    }
  }

  /** Our side resets `stream` (its holder closed or destroyed it). */
  sendReset(stream: H2Stream, code: number): void {
    this.#removeStream(stream, 'reset-sent');
    if (this.#destroyed) return;
    this.#write(this.#rstFrame(stream.id, code));
    this.#maybeFinish();
  }

  sinkReleased(stream: H2Stream): void {
    this.#held -= stream.heldBytes;
    stream.heldBytes = 0;
    this.#creditConnection();
  }

  /**
   * Connection-window credit goes back as DATA arrives (per-stream windows bound each stream's buffering), once half
   * the window is owed, unless streams whose destination is full already hold limits.maxHeldBytes.
   */
  #creditConnection(): void {
    if (this.#recvUnacked < this.#connWindow / 2 || this.#held > this.limits.maxHeldBytes || this.#destroyed) return;
    this.#write(this.#windowUpdate(0, this.#recvUnacked));
    this.#recvWindow += this.#recvUnacked;
    this.#recvUnacked = 0;
  }

  streamRead(stream: H2Stream): void {
    if (stream.recvUnacked >= this.#localStreamWindow / 2 && !stream.remoteEnded && !this.#destroyed) {
      this.#write(this.#windowUpdate(stream.id, stream.recvUnacked));
      stream.recvWindow += stream.recvUnacked;
      stream.recvUnacked = 0;
    }
  }

  streamDestroyed(stream: H2Stream): void {
    if (this.#streams.get(stream.id) === stream) this.#removeStream(stream, stream.localEnded && stream.remoteEnded ? 'ended' : 'reset-sent');
    this.#blocked.delete(stream);
    this.#drainWanted.delete(stream);
    this.#maybeFinish();
  }

  // ---- stream bookkeeping -----------------------------------------------------------------------------

  #addStream(stream: H2Stream): void {
    this.#streams.set(stream.id, stream);
    this.#lastStreamChange = Date.now();
    this.#everOpened = true;
  }

  /** Takes `stream` out of the open streams, remembering how it closed. */
  #removeStream(stream: H2Stream, how: ClosedHow): void {
    if (stream.heldBytes > 0) {
      this.#held -= stream.heldBytes;
      stream.heldBytes = 0;
      this.#creditConnection();
    }
    if (this.#streams.get(stream.id) === stream) {
      this.#streams.delete(stream.id);
      this.#closedStreams.remember(stream.id, how);
      this.#lastStreamChange = Date.now();
    }
    this.#blocked.delete(stream);
  }

  // ---- writing ----------------------------------------------------------------------------------------

  #write(buf: Buffer): void {
    if (!this.socket.write(buf)) this.#onCongested();
  }

  /** A reply the peer's frame asked for (PING/SETTINGS ACK, RST_STREAM): capped while the peer does not read. */
  #writeControl(buf: Buffer): void {
    if (this.#congested && ++this.#queuedControl > this.limits.maxQueuedControlFrames) {
      this.#calm('control_queue', `more than ${this.limits.maxQueuedControlFrames} replies (PING/SETTINGS acknowledgements, resets) queued while the peer does not read`);
      return;
    }
    this.#write(buf);
  }

  #onCongested(): void {
    this.#congested = true;
    if (!this.#readPaused && this.socket.writableLength > this.limits.maxWriteQueueBytes) {
      this.#readPaused = true;
      this.socket.pause();
    }
  }

  #afterWrite(cb: (err?: Error | null) => void): void {
    if (this.#congested) this.#drainWaiters.push(cb);
    else cb();
  }

  #onDrain(): void {
    this.#congested = false;
    this.#queuedControl = 0;
    if (this.#readPaused) {
      this.#readPaused = false;
      if (!this.#destroyed) this.socket.resume();
    }
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const cb of waiters) cb();
    this.#wakeDirectWriters();
  }

  /** Sends as much of `item` as the windows allow; true when all of it (and its END_STREAM) is out. */
  #sendFrom(stream: H2Stream, item: { chunk: Buffer; offset: number; end: boolean }): boolean {
    const remaining = item.chunk.length - item.offset;
    const n = Math.min(remaining, stream.sendWindow, this.#sendWindow);
    if (n < remaining) {
      if (n > 0) {
        this.#writeData(stream, item.chunk, item.offset, n, false);
        item.offset += n;
      }
      return false;
    }
    this.#writeData(stream, item.chunk, item.offset, n, item.end);
    item.offset += n;
    if (item.end) this.#streamEndedLocally(stream);
    return true;
  }

  /** DATA frames for chunk[offset, offset+n), END_STREAM on the last if `end`, in one socket write. */
  #writeData(stream: H2Stream, chunk: Buffer, offset: number, n: number, end: boolean): void {
    stream.sendWindow -= n;
    this.#sendWindow -= n;
    const size = Math.min(this.remoteSettings.maxFrameSize, RECORD_ALIGNED_PAYLOAD);
    const frames = n === 0 ? 1 : Math.ceil(n / size);
    this.#flood.dataSentBytes += n;
    if (n >= GATHER_MIN_BYTES) {
      // Large payloads are not copied into a new JavaScript buffer: the frame headers and slices of the chunk go
      // out as one gathered write (cork → writev), which the TLS layer joins in native memory. A fresh
      // 64 KiB JavaScript buffer per write doubled the garbage of a bulk transfer (and V8's full GCs with it).
      const headers = Buffer.allocUnsafe(frames * FRAME_HEADER_BYTES);
      const socket = this.socket;
      socket.cork();
      let ok = true;
      for (let i = 0; i < frames; i++) {
        const start = offset + i * size;
        const len = Math.min(size, n - i * size);
        const h = headers.subarray(i * FRAME_HEADER_BYTES, (i + 1) * FRAME_HEADER_BYTES);
        writeFrameHeader(h, 0, len, FrameType.DATA, end && i === frames - 1 ? Flag.END_STREAM : 0, stream.id);
        socket.write(h);
        ok = socket.write(chunk.subarray(start, start + len));
      }
      socket.uncork();
      if (!ok) this.#onCongested();
      if (end) stream.localEnded = true;
      return;
    }
    const out = Buffer.allocUnsafe(n + frames * FRAME_HEADER_BYTES);
    let w = 0;
    for (let i = 0; i < frames; i++) {
      const len = Math.min(size, n - i * size);
      writeFrameHeader(out, w, len, FrameType.DATA, end && i === frames - 1 ? Flag.END_STREAM : 0, stream.id);
      w += FRAME_HEADER_BYTES;
      chunk.copy(out, w, offset + i * size, offset + i * size + len);
      w += len;
    }
    if (end) stream.localEnded = true;
    this.#write(out);
  }

  #flushBlocked(): void {
    for (const stream of this.#blocked) {
      if (this.#sendWindow <= 0) return;
      while (stream.queue.length > 0) {
        const item = stream.queue[0]!;
        if (!this.#sendFrom(stream, item)) break;
        stream.queue.shift();
        this.#afterWrite(item.cb);
      }
      if (stream.queue.length === 0) this.#blocked.delete(stream);
    }
    this.#wakeDirectWriters();
  }

  #windowUpdate(streamId: number, increment: number): Buffer {
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32BE(increment, 0);
    return frame(FrameType.WINDOW_UPDATE, 0, streamId, payload);
  }

  #rstFrame(streamId: number, code: number): Buffer {
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32BE(code, 0);
    return frame(FrameType.RST_STREAM, 0, streamId, payload);
  }

  #sendGoaway(code: number, debug: string, reason: GoawayReason): void {
    if (this.#goawaySent || this.#destroyed) return;
    this.#goawaySent = true;
    const dbg = Buffer.from(debug, 'utf8');
    const payload = Buffer.allocUnsafe(8 + dbg.length);
    payload.writeUInt32BE(this.#lastPeerStreamId, 0);
    payload.writeUInt32BE(code, 4);
    dbg.copy(payload, 8);
    this.#write(frame(FrameType.GOAWAY, 0, 0, payload));
    const info: GoawayInfo = { reason, code, message: debug };
    this.emit('goawaySent', info);
  }

  #streamEndedLocally(stream: H2Stream): void {
    if (stream.remoteEnded) this.#closeStream(stream);
  }

  /** Both END_STREAMs exchanged: the stream is closed on the wire. */
  #closeStream(stream: H2Stream): void {
    stream.wireClosed = true;
    this.#removeStream(stream, 'ended');
    this.#maybeFinish();
  }

  /** After GOAWAY, the socket ends once no stream is left. */
  #maybeFinish(): void {
    if ((this.#goawaySent || this.#goawayReceived) && this.#streams.size === 0 && !this.#destroyed) {
      this.#destroyed = true;
      this.#stopTimers();
      this.socket.end();
      // A peer that never closes its side does not keep the socket alive for ever.
      setTimeout(() => this.socket.destroy(), 2000).unref();
      this.#emitClose();
    }
  }

  #emitClose(): void {
    if (this.#closeEmitted) return;
    this.#closeEmitted = true;
    queueMicrotask(() => this.emit('close'));
  }

  #abortStreams(err?: Error): void {
    const streams = [...this.#streams.values()];
    this.#streams.clear();
    this.#blocked.clear();
    for (const s of streams) {
      if (!s.wireClosed) {
        s.aborted = true;
        s.wireClosed = true;
      }
      s.destroy(err);
    }
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const cb of waiters) cb(Object.assign(new Error('the HTTP/2 connection is gone'), { code: 'ERR_HTTP2_INVALID_SESSION' }));
  }

  #stopTimers(): void {
    if (this.#settingsTimer !== undefined) clearTimeout(this.#settingsTimer);
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    if (this.#blockTimer !== undefined) clearTimeout(this.#blockTimer);
    this.#settingsTimer = undefined;
    this.#idleTimer = undefined;
    this.#blockTimer = undefined;
  }

  /** How long the connection may go without streams: shorter until the peer opened its first one. */
  #idleLimitMs(): number {
    const { idleTimeoutMs, firstStreamTimeoutMs } = this.limits;
    if (this.#everOpened || firstStreamTimeoutMs === 0) return idleTimeoutMs;
    return idleTimeoutMs === 0 ? firstStreamTimeoutMs : Math.min(idleTimeoutMs, firstStreamTimeoutMs);
  }

  /** One timer for the idle timeout, re-armed for what is left instead of per stream. */
  #armIdle(delayMs: number): void {
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      if (this.#destroyed || this.#goawaySent) return;
      const idleMs = this.#idleLimitMs();
      if (idleMs === 0) return;
      const quietFor = Date.now() - this.#lastStreamChange;
      if (this.#streams.size === 0 && quietFor >= idleMs) {
        this.close('idle');
        return;
      }
      this.#armIdle(this.#streams.size === 0 ? idleMs - quietFor : idleMs);
    }, delayMs);
    this.#idleTimer.unref();
  }

  #onSocketGone(err: Error | undefined): void {
    if (this.#destroyed) return; // an error after we gave up on the socket: nothing left to tell
    this.#destroyed = true;
    this.#stopTimers();
    const cause = err ?? (this.#streams.size > 0 ? Object.assign(new Error('the HTTP/2 peer closed the connection'), { code: 'ERR_HTTP2_SESSION_CLOSED' }) : undefined);
    this.#abortStreams(cause);
    this.socket.destroy();
    if (err !== undefined && this.listenerCount('error') > 0) this.emit('error', err);
    this.#emitClose();
  }

  /** A connection error: GOAWAY with the code, then everything goes. */
  #fail(code: number, message: string, reason: GoawayReason = REASON_OF_CODE[code] ?? 'internal_error'): void {
    if (this.#destroyed) return;
    const err = new H2ConnectionError(code, message, reason);
    this.#goawaySent = false;
    this.#sendGoaway(code, message.slice(0, 200), reason);
    this.#destroyed = true;
    this.#stopTimers();
    this.#abortStreams(err);
    // Nothing the peer sends from here on is looked at: stop reading (and decrypting) it, flush GOAWAY, go.
    this.socket.pause();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
    if (this.listenerCount('error') > 0) this.emit('error', err);
    this.#emitClose();
  }

  /** The peer went past a budget: GOAWAY(ENHANCE_YOUR_CALM). */
  #calm(reason: GoawayReason, message: string): void {
    this.#fail(H2Code.ENHANCE_YOUR_CALM, message, reason);
  }

  /** Counts one frame that does no useful work; false (and the connection failed) when over budget. */
  #useless(): boolean {
    const f = this.#flood;
    f.roll(Date.now());
    if (++f.useless <= this.limits.maxUselessFramesPerWindow + 2 * Math.floor(f.dataSentBytes / DATA_ALLOWANCE_BYTES)) return true;
    this.#calm('useless_frames', `more than ${this.limits.maxUselessFramesPerWindow} frames that do no work (PING, SETTINGS, PRIORITY, WINDOW_UPDATE, empty DATA/CONTINUATION, ...) within ${this.limits.floodWindowMs} ms`);
    return false;
  }

  /** A stream error because of the peer (RFC 9113 §5.4.2): RST_STREAM, counted against the peer's budget. */
  #resetStream(streamId: number, code: number): void {
    const f = this.#flood;
    f.roll(Date.now());
    if (++f.errorResets > this.limits.maxErrorResetsPerWindow) {
      this.#calm('error_resets', `more than ${this.limits.maxErrorResetsPerWindow} streams reset for the peer's protocol errors within ${this.limits.floodWindowMs} ms`);
      return;
    }
    this.#writeControl(this.#rstFrame(streamId, code));
    const stream = this.#streams.get(streamId);
    if (stream !== undefined) {
      this.#removeStream(stream, 'reset-sent');
      stream.rstCode = code;
      stream.aborted = true;
      stream.wireClosed = true;
      stream.destroy();
    } else {
      this.#closedStreams.remember(streamId, 'reset-sent');
    }
    this.#maybeFinish();
  }

  // ---- reading ----------------------------------------------------------------------------------------

  #onData(chunk: Buffer): void {
    let pos = 0;
    const len = chunk.length;
    while (pos < len && !this.#destroyed) {
      switch (this.#state) {
        case 'preface': {
          const take = Math.min(CONNECTION_PREFACE.length - this.#prefaceSeen, len - pos);
          if (chunk.compare(CONNECTION_PREFACE, this.#prefaceSeen, this.#prefaceSeen + take, pos, pos + take) !== 0) {
            this.#fail(H2Code.PROTOCOL_ERROR, 'the client did not send the HTTP/2 connection preface');
            return;
          }
          this.#prefaceSeen += take;
          pos += take;
          if (this.#prefaceSeen === CONNECTION_PREFACE.length) this.#state = 'header';
          break;
        }
        case 'header': {
          let h: Buffer;
          let at: number;
          if (this.#hdrLen === 0 && len - pos >= FRAME_HEADER_BYTES) {
            h = chunk;
            at = pos;
            pos += FRAME_HEADER_BYTES;
          } else {
            const take = Math.min(FRAME_HEADER_BYTES - this.#hdrLen, len - pos);
            chunk.copy(this.#hdr, this.#hdrLen, pos, pos + take);
            this.#hdrLen += take;
            pos += take;
            if (this.#hdrLen < FRAME_HEADER_BYTES) return;
            this.#hdrLen = 0;
            h = this.#hdr;
            at = 0;
          }
          this.#fLen = (h[at]! << 16) | (h[at + 1]! << 8) | h[at + 2]!;
          this.#fType = h[at + 3]!;
          this.#fFlags = h[at + 4]!;
          this.#fStream = h.readUInt32BE(at + 5) & 0x7fffffff;
          this.#onFrameHeader();
          break;
        }
        case 'data': {
          const take = Math.min(this.#dataLeft, len - pos);
          const piece = chunk.subarray(pos, pos + take);
          pos += take;
          this.#dataLeft -= take;
          this.#deliver(piece);
          if (this.#dataLeft === 0) this.#endDataFrame();
          break;
        }
        case 'body': {
          const body = this.#body!;
          const take = Math.min(this.#fLen - this.#bodyLen, len - pos);
          chunk.copy(body, this.#bodyLen, pos, pos + take);
          this.#bodyLen += take;
          pos += take;
          if (this.#bodyLen === this.#fLen) {
            this.#body = undefined;
            this.#state = 'header';
            this.#onFrame(body);
          }
          break;
        }
      }
    }
  }

  #onFrameHeader(): void {
    if (!this.#sawRemoteSettings && this.#fType !== FrameType.SETTINGS) {
      this.#fail(H2Code.PROTOCOL_ERROR, 'the first frame from the peer must be SETTINGS');
      return;
    }
    if (this.#fLen > this.#localMaxFrame) {
      this.#fail(H2Code.FRAME_SIZE_ERROR, `frame of ${this.#fLen} bytes is above our SETTINGS_MAX_FRAME_SIZE ${this.#localMaxFrame}`);
      return;
    }
    if (this.#continuation !== undefined && (this.#fType !== FrameType.CONTINUATION || this.#fStream !== this.#continuation.streamId)) {
      this.#fail(H2Code.PROTOCOL_ERROR, 'a header block was interrupted by another frame (CONTINUATION expected)');
      return;
    }
    if (this.#fType === FrameType.DATA && (this.#fFlags & Flag.PADDED) === 0) {
      if (this.#fLen === 0 && (this.#fFlags & Flag.END_STREAM) === 0 && !this.#useless()) return;
      if (!this.#startData(this.#fLen)) return;
      this.#dataLeft = this.#fLen;
      if (this.#fLen === 0) {
        this.#endDataFrame();
        return;
      }
      this.#state = 'data';
      return;
    }
    if (this.#fLen === 0) {
      this.#onFrame(EMPTY);
      return;
    }
    this.#body = Buffer.allocUnsafe(this.#fLen);
    this.#bodyLen = 0;
    this.#state = 'body';
  }

  /** Flow control and stream lookup for a DATA frame of `length` bytes (padding included). */
  #startData(length: number): boolean {
    const id = this.#fStream;
    if (id === 0) {
      this.#fail(H2Code.PROTOCOL_ERROR, 'DATA on stream 0');
      return false;
    }
    this.#recvWindow -= length;
    if (this.#recvWindow < 0) {
      this.#fail(H2Code.FLOW_CONTROL_ERROR, 'the peer sent more DATA than the connection window allows');
      return false;
    }
    this.#recvUnacked += length;
    this.#creditConnection();
    const stream = this.#streams.get(id);
    this.#dataStream = undefined;
    if (stream === undefined) return this.#onClosedStreamFrame(id, 'DATA');
    if (stream.remoteEnded) {
      this.#resetStream(id, H2Code.STREAM_CLOSED);
      return !this.#destroyed;
    }
    if (this.role === 'client' && !stream.responded) {
      this.#resetStream(id, H2Code.PROTOCOL_ERROR); // §8.1: DATA before the response's HEADERS
      return !this.#destroyed;
    }
    stream.recvWindow -= length;
    if (stream.recvWindow < 0) {
      this.#resetStream(id, H2Code.FLOW_CONTROL_ERROR);
      return !this.#destroyed;
    }
    this.#dataStream = stream;
    return true;
  }

  #deliver(piece: Buffer): void {
    const stream = this.#dataStream;
    if (stream === undefined || piece.length === 0) return;
    stream.recvUnacked += piece.length;
    if (stream.expectedLength !== undefined) {
      stream.receivedLength += piece.length;
      if (stream.receivedLength > stream.expectedLength) {
        this.#dataStream = undefined;
        this.#resetStream(stream.id, H2Code.PROTOCOL_ERROR); // §8.1.1: more DATA than content-length
        return;
      }
    }
    if (stream.destroyed || stream.readableEnded) return;
    const sink = stream.sink;
    if (sink !== undefined) {
      if (stream.sinkBlocked) {
        // The destination was already full: this piece waits in our memory until it drains.
        stream.heldBytes += piece.length;
        this.#held += piece.length;
      }
      if (!sink(piece)) stream.sinkBlocked = true;
      else if (!stream.sinkBlocked) this.streamRead(stream);
      return;
    }
    if (stream.push(piece)) this.streamRead(stream);
  }

  #endDataFrame(): void {
    this.#state = 'header';
    const stream = this.#dataStream;
    this.#dataStream = undefined;
    if (stream !== undefined && (this.#fFlags & Flag.END_STREAM) !== 0) this.#remoteEnd(stream);
  }

  #remoteEnd(stream: H2Stream): void {
    if (stream.remoteEnded) return;
    if (stream.expectedLength !== undefined && stream.receivedLength !== stream.expectedLength) {
      this.#resetStream(stream.id, H2Code.PROTOCOL_ERROR); // §8.1.1: less DATA than content-length
      return;
    }
    stream.remoteEnded = true;
    if (!stream.destroyed) stream.push(null);
    if (stream.localEnded) this.#closeStream(stream);
  }

  #isIdle(id: number): boolean {
    const ours = (id % 2 === 1) === (this.role === 'client');
    return ours ? id >= this.#nextStreamId : id > this.#lastPeerStreamId;
  }

  /**
   * DATA or HEADERS for a stream that is not open (RFC 9113 §5.1): idle → connection error; closed by our
   * reset (or long ago) → ignored; reset by the peer → stream error; ended both ways → connection error;
   * an id the peer skipped → connection error. False when the connection failed.
   */
  #onClosedStreamFrame(id: number, what: 'DATA' | 'HEADERS'): boolean {
    if (this.#isIdle(id)) {
      this.#fail(H2Code.PROTOCOL_ERROR, `${what} on stream ${id}, which was never opened`);
      return false;
    }
    switch (this.#closedStreams.stateOf(id)) {
      case 'reset-sent':
      case 'forgotten':
        // DATA the peer sent before it saw our reset is normal (and bounded by the connection window).
        return what === 'DATA' || this.#useless();
      case 'reset-received':
        this.#resetStream(id, H2Code.STREAM_CLOSED);
        return !this.#destroyed;
      case 'ended':
        this.#fail(H2Code.STREAM_CLOSED, `${what} on stream ${id} after both sides ended it`);
        return false;
      case 'never-opened':
        this.#fail(H2Code.PROTOCOL_ERROR, `${what} on stream ${id}, an id lower than one the peer already used`);
        return false;
    }
  }

  #onFrame(payload: Buffer): void {
    switch (this.#fType) {
      case FrameType.DATA: return this.#onPaddedData(payload);
      case FrameType.HEADERS: return this.#onHeaders(payload);
      case FrameType.PRIORITY: return this.#onPriority(payload);
      case FrameType.RST_STREAM: return this.#onRstStream(payload);
      case FrameType.SETTINGS: return this.#onSettings(payload);
      case FrameType.PUSH_PROMISE: return this.#fail(H2Code.PROTOCOL_ERROR, 'PUSH_PROMISE although we disabled server push');
      case FrameType.PING: return this.#onPing(payload);
      case FrameType.GOAWAY: return this.#onGoaway(payload);
      case FrameType.WINDOW_UPDATE: return this.#onWindowUpdate(payload);
      case FrameType.CONTINUATION: return this.#onContinuation(payload);
      default:
        this.#useless(); // unknown frame types are ignored (RFC 9113 §4.1), but not for free
        return;
    }
  }

  #onPaddedData(payload: Buffer): void {
    const padLen = payload.length > 0 ? payload[0]! : 0;
    if (payload.length === 0 || padLen >= payload.length) return this.#fail(H2Code.PROTOCOL_ERROR, 'DATA padding longer than the frame');
    if (payload.length === padLen + 1 && (this.#fFlags & Flag.END_STREAM) === 0 && !this.#useless()) return;
    if (!this.#startData(payload.length)) return;
    const stream = this.#dataStream;
    if (stream !== undefined) stream.recvUnacked += padLen + 1; // padding is consumed at once
    this.#deliver(payload.subarray(1, payload.length - padLen));
    this.#endDataFrame();
  }

  #onPriority(payload: Buffer): void {
    const id = this.#fStream;
    if (id === 0) return this.#fail(H2Code.PROTOCOL_ERROR, 'PRIORITY on stream 0');
    if (!this.#useless()) return;
    if (payload.length !== 5) return this.#resetStream(id, H2Code.FRAME_SIZE_ERROR);
    if ((payload.readUInt32BE(0) & 0x7fffffff) === id) return this.#resetStream(id, H2Code.PROTOCOL_ERROR); // §5.3.1
  }

  /** Strips padding and priority from a HEADERS payload; undefined after a connection error. */
  #headerFragment(payload: Buffer): { fragment: Buffer; selfDependent: boolean } | undefined {
    let start = 0;
    let end = payload.length;
    let selfDependent = false;
    if (this.#fFlags & Flag.PADDED) {
      const pad = payload[0] ?? 0;
      start = 1;
      end -= pad;
    }
    if (this.#fFlags & Flag.PRIORITY) {
      if (start + 5 <= payload.length) selfDependent = (payload.readUInt32BE(start) & 0x7fffffff) === this.#fStream;
      start += 5;
    }
    if (start > end) {
      this.#fail(H2Code.PROTOCOL_ERROR, 'HEADERS padding or priority longer than the frame');
      return undefined;
    }
    return { fragment: payload.subarray(start, end), selfDependent };
  }

  #onHeaders(payload: Buffer): void {
    const id = this.#fStream;
    if (id === 0) return this.#fail(H2Code.PROTOCOL_ERROR, 'HEADERS on stream 0');
    const parsed = this.#headerFragment(payload);
    if (parsed === undefined) return;
    const endStream = (this.#fFlags & Flag.END_STREAM) !== 0;
    const size = parsed.fragment.length + FRAME_HEADER_BYTES;
    if (size > this.limits.maxHeaderBlockBytes) return this.#headerBlockTooLarge();
    if ((this.#fFlags & Flag.END_HEADERS) === 0) {
      this.#continuation = { streamId: id, endStream, selfDependent: parsed.selfDependent, fragments: [Buffer.from(parsed.fragment)], size };
      // An honest peer sends a header block in one go; one left unfinished holds its bytes (and the connection).
      this.#blockTimer = setTimeout(() => {
        this.#calm('header_block_timeout', `a header block was left unfinished for ${this.limits.settingsTimeoutMs} ms`);
      }, this.limits.settingsTimeoutMs);
      this.#blockTimer.unref();
      return;
    }
    this.#onHeaderBlock(id, endStream, parsed.selfDependent, parsed.fragment);
  }

  #onContinuation(payload: Buffer): void {
    const c = this.#continuation;
    if (c === undefined) return this.#fail(H2Code.PROTOCOL_ERROR, 'CONTINUATION without a header block to continue');
    const last = (this.#fFlags & Flag.END_HEADERS) !== 0;
    if (payload.length === 0 && !last && !this.#useless()) return;
    // Each frame counts its 9 header bytes too, so that empty or tiny frames cannot extend a block for ever.
    c.size += payload.length + FRAME_HEADER_BYTES;
    if (c.size > this.limits.maxHeaderBlockBytes) return this.#headerBlockTooLarge();
    if (payload.length > 0) c.fragments.push(payload);
    if (!last) return;
    this.#continuation = undefined;
    clearTimeout(this.#blockTimer);
    this.#blockTimer = undefined;
    this.#onHeaderBlock(c.streamId, c.endStream, c.selfDependent, c.fragments.length === 1 ? c.fragments[0]! : Buffer.concat(c.fragments));
  }

  #headerBlockTooLarge(): void {
    this.#calm('header_block_size', `header block above ${this.limits.maxHeaderBlockBytes} bytes (frame headers included)`);
  }

  #onHeaderBlock(id: number, endStream: boolean, selfDependent: boolean, block: Buffer): void {
    let list: HeaderList;
    try {
      list = this.#decoder.decode(block); // always decoded: the dynamic table must stay in step
    } catch (err) {
      const msg = err instanceof HpackError ? err.message : String(err);
      return this.#fail(H2Code.COMPRESSION_ERROR, `cannot decode a header block: ${msg}`);
    }
    const existing = this.#streams.get(id);
    if (existing !== undefined) {
      if (selfDependent) return this.#resetStream(id, H2Code.PROTOCOL_ERROR);
      return this.#onStreamHeaders(existing, list, endStream);
    }
    const ours = (id % 2 === 1) === (this.role === 'client');
    if (ours) {
      if (id >= this.#nextStreamId) return this.#fail(H2Code.PROTOCOL_ERROR, `HEADERS on stream ${id}, which we never opened`);
      this.#onClosedStreamFrame(id, 'HEADERS');
      return;
    }
    if (id <= this.#lastPeerStreamId) {
      this.#onClosedStreamFrame(id, 'HEADERS');
      return;
    }
    if (this.role === 'client') return this.#fail(H2Code.PROTOCOL_ERROR, `the server opened stream ${id}`);
    this.#onNewStream(id, list, endStream, selfDependent);
  }

  /** Server side: the peer opens stream `id`. */
  #onNewStream(id: number, list: HeaderList, endStream: boolean, selfDependent: boolean): void {
    this.#lastPeerStreamId = id;
    this.#flood.roll(Date.now());
    this.#flood.opened++;
    if (this.#goawaySent) {
      this.#closedStreams.remember(id, 'reset-sent');
      this.#writeControl(this.#rstFrame(id, H2Code.REFUSED_STREAM));
      return;
    }
    if (this.#streams.size >= this.#localMaxStreams) return this.#resetStream(id, H2Code.REFUSED_STREAM);
    if (selfDependent) return this.#resetStream(id, H2Code.PROTOCOL_ERROR);
    const request = checkRequest(list);
    if ('malformed' in request) {
      this.emit('malformed', id, request.malformed);
      return this.#resetStream(id, H2Code.PROTOCOL_ERROR);
    }
    const stream = new H2Stream(this, this, id, this.remoteSettings.initialWindowSize, this.#localStreamWindow);
    if (request.contentLength !== undefined) stream.expectedLength = request.contentLength;
    this.#addStream(stream);
    if (endStream) {
      if (request.contentLength !== undefined && request.contentLength > 0) return this.#resetStream(id, H2Code.PROTOCOL_ERROR);
      stream.remoteEnded = true;
      stream.push(null);
    }
    this.emit('stream', stream, toHeaders(list));
  }

  #onStreamHeaders(stream: H2Stream, list: HeaderList, endStream: boolean): void {
    if (stream.remoteEnded) return this.#resetStream(stream.id, H2Code.STREAM_CLOSED);
    if (this.role === 'client' && !stream.responded) {
      const response = checkResponse(list);
      if ('malformed' in response) return this.#resetStream(stream.id, H2Code.PROTOCOL_ERROR);
      if (response.status < 200) {
        if (endStream) return this.#resetStream(stream.id, H2Code.PROTOCOL_ERROR); // an interim response cannot end the stream
        return;
      }
      const headers = toHeaders(list);
      headers[':status'] = response.status;
      stream.responded = true;
      stream.emit('response', headers);
    } else {
      // trailers: they end the stream and carry no pseudo-header
      if (!endStream || checkTrailers(list) !== undefined) return this.#resetStream(stream.id, H2Code.PROTOCOL_ERROR);
    }
    if (endStream) this.#remoteEnd(stream);
  }

  #onRstStream(payload: Buffer): void {
    const id = this.#fStream;
    if (id === 0) return this.#fail(H2Code.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (payload.length !== 4) return this.#fail(H2Code.FRAME_SIZE_ERROR, 'RST_STREAM payload must be 4 bytes');
    if (this.#isIdle(id)) return this.#fail(H2Code.PROTOCOL_ERROR, `RST_STREAM on idle stream ${id}`);
    const stream = this.#streams.get(id);
    if (stream === undefined) {
      this.#useless();
      return;
    }
    if (this.role === 'server' && !stream.headersSent && !this.#prematureReset()) return;
    this.#removeStream(stream, 'reset-received');
    stream.rstCode = payload.readUInt32BE(0);
    stream.aborted = !(stream.remoteEnded && stream.localEnded);
    stream.wireClosed = true;
    stream.destroy();
    this.#maybeFinish();
  }

  /** We answer a stream with a refusal (4xx/5xx). False (and the connection failed) past the budget. */
  #countRefused(): boolean {
    const f = this.#flood;
    f.roll(Date.now());
    if (++f.refused <= this.limits.maxRefusedStreamsPerWindow) return true;
    this.#calm('refused_streams', `more than ${this.limits.maxRefusedStreamsPerWindow} streams refused (answered 400 or above) within ${this.limits.floodWindowMs} ms`);
    return false;
  }

  /** The peer reset a stream before we answered it. False (and the connection failed) past the budget. */
  #prematureReset(): boolean {
    const f = this.#flood;
    f.roll(Date.now());
    f.premature++;
    // Only a peer that resets most of what it opens is cut off: a busy, honest one also cancels some streams.
    // Streams we refused do not count as honest ones: mixing cheap refusals with resets must not dilute the ratio.
    if (f.premature <= this.limits.maxPrematureResetsPerWindow || f.premature * 2 <= f.opened - f.refused) return true;
    this.#calm('rapid_reset', `${f.premature} of the ${f.opened - f.refused} streams opened (and not refused) within ${this.limits.floodWindowMs} ms were reset before they were answered`);
    return false;
  }

  #onSettings(payload: Buffer): void {
    if (this.#fStream !== 0) return this.#fail(H2Code.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (this.#fFlags & Flag.ACK) {
      if (payload.length !== 0) return this.#fail(H2Code.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      if (this.#settingsTimer !== undefined) {
        clearTimeout(this.#settingsTimer);
        this.#settingsTimer = undefined;
      } else {
        this.#useless();
      }
      return;
    }
    if (payload.length % 6 !== 0) return this.#fail(H2Code.FRAME_SIZE_ERROR, 'SETTINGS payload not a multiple of 6');
    if (this.#sawRemoteSettings && !this.#useless()) return;
    const rs = this.remoteSettings;
    for (let off = 0; off < payload.length; off += 6) {
      const id = payload.readUInt16BE(off);
      const value = payload.readUInt32BE(off + 2);
      switch (id) {
        case Setting.HEADER_TABLE_SIZE: rs.headerTableSize = value; break; // our encoder never indexes
        case Setting.ENABLE_PUSH:
          if (value > 1) return this.#fail(H2Code.PROTOCOL_ERROR, 'SETTINGS_ENABLE_PUSH must be 0 or 1');
          // Only a server may not send 1 (RFC 9113 §6.5.2); a client's 1 is legal and means nothing to us: we never push.
          if (value === 1 && this.role === 'client') return this.#fail(H2Code.PROTOCOL_ERROR, 'a server may not send SETTINGS_ENABLE_PUSH = 1');
          rs.enablePush = value === 1;
          break;
        case Setting.MAX_CONCURRENT_STREAMS: rs.maxConcurrentStreams = value; break;
        case Setting.INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW_BYTES) return this.#fail(H2Code.FLOW_CONTROL_ERROR, 'SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1');
          const delta = value - rs.initialWindowSize;
          rs.initialWindowSize = value;
          for (const s of this.#streams.values()) {
            s.sendWindow += delta;
            if (s.sendWindow > MAX_WINDOW_BYTES) return this.#fail(H2Code.FLOW_CONTROL_ERROR, 'a stream window went above 2^31-1');
          }
          break;
        }
        case Setting.MAX_FRAME_SIZE:
          if (value < MIN_MAX_FRAME_SIZE || value > MAX_MAX_FRAME_SIZE) return this.#fail(H2Code.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE ${value} out of range`);
          rs.maxFrameSize = value;
          break;
        case Setting.MAX_HEADER_LIST_SIZE: rs.maxHeaderListSize = value; break;
        default: break; // unknown settings are ignored
      }
    }
    this.#writeControl(frame(FrameType.SETTINGS, Flag.ACK, 0));
    const first = !this.#sawRemoteSettings;
    this.#sawRemoteSettings = true;
    this.emit('remoteSettings', rs);
    if (first) this.emit('connect');
    this.#flushBlocked();
  }

  #onPing(payload: Buffer): void {
    if (this.#fStream !== 0) return this.#fail(H2Code.PROTOCOL_ERROR, 'PING on a stream');
    if (payload.length !== 8) return this.#fail(H2Code.FRAME_SIZE_ERROR, 'PING payload must be 8 bytes');
    if (!this.#useless()) return;
    if ((this.#fFlags & Flag.ACK) === 0) this.#writeControl(frame(FrameType.PING, Flag.ACK, 0, payload));
  }

  #onGoaway(payload: Buffer): void {
    if (this.#fStream !== 0) return this.#fail(H2Code.PROTOCOL_ERROR, 'GOAWAY on a stream');
    if (payload.length < 8) return this.#fail(H2Code.FRAME_SIZE_ERROR, 'GOAWAY payload shorter than 8 bytes');
    if (!this.#useless()) return;
    const lastStreamId = payload.readUInt32BE(0) & 0x7fffffff;
    const code = payload.readUInt32BE(4);
    this.#goawayReceived = true;
    // Streams we opened above lastStreamId were not (and will not be) processed by the peer.
    for (const [id, s] of [...this.#streams]) {
      const ours = (id % 2 === 1) === (this.role === 'client');
      if (ours && id > lastStreamId) {
        this.#removeStream(s, 'reset-received');
        s.rstCode = H2Code.REFUSED_STREAM;
        s.aborted = true;
        s.wireClosed = true;
        s.destroy();
      }
    }
    this.emit('goaway', code, lastStreamId, payload.subarray(8, 8 + 1024).toString('utf8'));
    this.#maybeFinish();
  }

  #onWindowUpdate(payload: Buffer): void {
    if (payload.length !== 4) return this.#fail(H2Code.FRAME_SIZE_ERROR, 'WINDOW_UPDATE payload must be 4 bytes');
    if (!this.#useless()) return;
    const inc = payload.readUInt32BE(0) & 0x7fffffff;
    const id = this.#fStream;
    if (id === 0) {
      if (inc === 0) return this.#fail(H2Code.PROTOCOL_ERROR, 'WINDOW_UPDATE with increment 0');
      this.#sendWindow += inc;
      if (this.#sendWindow > MAX_WINDOW_BYTES) return this.#fail(H2Code.FLOW_CONTROL_ERROR, 'connection window above 2^31-1');
      this.#flushBlocked();
      return;
    }
    const stream = this.#streams.get(id);
    if (stream === undefined) {
      if (this.#isIdle(id)) this.#fail(H2Code.PROTOCOL_ERROR, `WINDOW_UPDATE on idle stream ${id}`);
      return; // closed: WINDOW_UPDATE may still be in flight (RFC 9113 §5.1)
    }
    if (inc === 0) return this.#resetStream(id, H2Code.PROTOCOL_ERROR);
    stream.sendWindow += inc;
    if (stream.sendWindow > MAX_WINDOW_BYTES) return this.#resetStream(id, H2Code.FLOW_CONTROL_ERROR);
    if (stream.queue.length > 0) this.#flushBlocked();
  }
}

/** Header fields as a record: one string per name, an array when a name repeats. */
function toHeaders(list: HeaderList): H2Headers {
  const headers: H2Headers = {};
  for (const [name, value] of list) {
    const prev = headers[name];
    if (prev === undefined) headers[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else headers[name] = [String(prev), value];
  }
  return headers;
}
