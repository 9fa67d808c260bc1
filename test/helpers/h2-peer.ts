/**
 * A raw HTTP/2 peer for tests: it writes whatever frames a test asks for (valid or not) and records every frame
 * that comes back, so a test can await "GOAWAY with code X", "RST_STREAM on stream 3", "a response", or "the
 * connection closed". It never answers anything by itself (no automatic SETTINGS or PING ACKs) unless the test
 * calls handshake(), which does the one exchange every case starts with.
 *
 * Frames are built with the production writers (frames.ts `frame()`, hpack.ts `encodeHeaders`) and header
 * blocks that come back are decoded with the production HpackDecoder, in arrival order, so the dynamic table a
 * peer fills stays in step. Both roles:
 * - H2Peer.connect({host, port, tls?}): the client side over TCP, or TLS with ALPN h2 and a client certificate;
 * - H2Peer.listen({tls?}) then accept(): the server side of one accepted connection (it reads the client
 *   preface first).
 *
 * Invariants:
 * - `events` holds every frame received, in order, followed by one 'closed' event once the socket is gone;
 *   nothing is ever removed from it;
 * - a wait takes the oldest matching event it has not taken before; events it passes over stay for later
 *   waits (so awaiting a GOAWAY does not lose the RST_STREAM before it). A 'closed' event is never taken: it
 *   ends every later wait that does not look for it.
 */
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import {
  CONNECTION_PREFACE,
  FRAME_HEADER_BYTES,
  Flag,
  FrameType,
  codeName,
  frame,
} from '../../src/hbone/h2/frames.js';
import { HpackDecoder, encodeHeaders, type HeaderList } from '../../src/hbone/h2/hpack.js';

export const DEFAULT_WAIT_MS = 2000;

const TYPE_NAMES = new Map<number, string>(Object.entries(FrameType).map(([name, t]) => [t, name]));

export function frameTypeName(type: number): string {
  return TYPE_NAMES.get(type) ?? `UNKNOWN(0x${type.toString(16)})`;
}

/** One frame as received. Header blocks are decoded on the frame that ends them (END_HEADERS). */
export interface ReceivedFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
  /** The complete header block this frame ends (HEADERS, PUSH_PROMISE or their last CONTINUATION). */
  headers?: HeaderList;
  /** The block this frame ends could not be decoded (the peer's HPACK or our decoder disagree). */
  headerError?: string;
}

export type PeerEvent =
  | { kind: 'frame'; frame: ReceivedFrame }
  | { kind: 'closed'; how: 'eof' | 'reset'; error?: string };

export interface GoawayInfo {
  lastStreamId: number;
  code: number;
  debug: string;
}

export interface ResponseInfo {
  /** The final (non-1xx) status; NaN when `:status` is missing or not a number. */
  status: number;
  headers: HeaderList;
  /** END_STREAM was set on the HEADERS frame. */
  endStream: boolean;
}

export interface PeerTlsOptions {
  /** PEM certificate chain (leaf first) and key to present; for a client, optional. */
  cert?: string | string[];
  key?: string;
  /** Trust anchors for the other side's certificate; without them it is not verified. */
  ca?: string | string[];
  /** ALPN protocols to offer (client) or accept (server); default ["h2"]. */
  alpn?: string[];
  servername?: string;
  /** Server side: ask for a client certificate (not required). */
  requestCert?: boolean;
}

export interface ConnectOptions {
  host: string;
  port: number;
  tls?: PeerTlsOptions;
  /** Connect (and TLS handshake) time limit. */
  timeoutMs?: number;
}

export class H2PeerTimeoutError extends Error {
  override name = 'H2PeerTimeoutError';
}

export class H2PeerClosedError extends Error {
  override name = 'H2PeerClosedError';
}

/** One SETTINGS payload from (id, value) pairs, in the order given (duplicates allowed). */
export function settingsPayload(entries: Array<[number, number]>): Buffer {
  const payload = Buffer.alloc(6 * entries.length);
  entries.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, 6 * i);
    payload.writeUInt32BE(value >>> 0, 6 * i + 2);
  });
  return payload;
}

export function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0, 0);
  return b;
}

/** A one-line description of a frame, for failure messages ("GOAWAY(PROTOCOL_ERROR last=1 'why')"). */
export function describeFrame(f: ReceivedFrame): string {
  const name = frameTypeName(f.type);
  switch (f.type) {
    case FrameType.GOAWAY:
      if (f.payload.length >= 8) {
        const g = parseGoaway(f.payload);
        return `GOAWAY(${codeName(g.code)} last=${g.lastStreamId}${g.debug ? ` '${g.debug.slice(0, 80)}'` : ''})`;
      }
      break;
    case FrameType.RST_STREAM:
      if (f.payload.length === 4) return `RST_STREAM(stream ${f.streamId}, ${codeName(f.payload.readUInt32BE(0))})`;
      break;
    case FrameType.HEADERS: {
      const status = f.headers?.find(([n]) => n === ':status')?.[1];
      return `HEADERS(stream ${f.streamId}${status !== undefined ? ` :status ${status}` : ''}${f.flags & Flag.END_STREAM ? ' END_STREAM' : ''})`;
    }
    case FrameType.SETTINGS:
      return f.flags & Flag.ACK ? 'SETTINGS(ACK)' : `SETTINGS(${f.payload.length / 6} entries)`;
    case FrameType.PING:
      return f.flags & Flag.ACK ? 'PING(ACK)' : 'PING';
    case FrameType.WINDOW_UPDATE:
      if (f.payload.length === 4) return `WINDOW_UPDATE(stream ${f.streamId}, +${f.payload.readUInt32BE(0) & 0x7fffffff})`;
      break;
    case FrameType.DATA:
      return `DATA(stream ${f.streamId}, ${f.payload.length} bytes${f.flags & Flag.END_STREAM ? ' END_STREAM' : ''})`;
    default:
      break;
  }
  return `${name}(stream ${f.streamId}, flags 0x${f.flags.toString(16)}, ${f.payload.length} bytes)`;
}

export function describeEvent(e: PeerEvent): string {
  return e.kind === 'frame' ? describeFrame(e.frame) : `closed(${e.how}${e.error ? `: ${e.error}` : ''})`;
}

export function parseGoaway(payload: Buffer): GoawayInfo {
  return {
    lastStreamId: payload.readUInt32BE(0) & 0x7fffffff,
    code: payload.readUInt32BE(4),
    debug: payload.subarray(8).toString('utf8'),
  };
}

/** The value of the first header called `name`, or undefined. */
export function headerValue(headers: HeaderList, name: string): string | undefined {
  return headers.find(([n]) => n === name)?.[1];
}

export class H2Peer {
  readonly socket: net.Socket | tls.TLSSocket;
  readonly role: 'client' | 'server';
  /** Every frame received, then 'closed'. */
  readonly events: PeerEvent[] = [];
  bytesReceived = 0;
  framesReceived = 0;
  readonly framesByType = new Map<number, number>();
  /** Frame types only counted in framesByType, not kept as events (floods of replies would fill memory). */
  readonly countOnly = new Set<number>();
  /** Server side: the client's connection preface arrived intact (false until then, or when it was wrong). */
  prefaceReceived = false;
  /** The HPACK decoder for the other side's header blocks (tests may send a SETTINGS_HEADER_TABLE_SIZE to it). */
  readonly decoder: HpackDecoder;

  /** taken[i]: events[i] was returned by a wait. */
  readonly #taken: boolean[] = [];
  #firstUntaken = 0;
  #wake: Array<() => void> = [];
  #buf: Buffer = Buffer.alloc(0);
  #prefaceLeft: number;
  #block: { streamId: number; fragments: Buffer[] } | undefined;
  #closed = false;

  private constructor(socket: net.Socket | tls.TLSSocket, role: 'client' | 'server') {
    this.socket = socket;
    this.role = role;
    this.#prefaceLeft = role === 'server' ? CONNECTION_PREFACE.length : 0;
    // The largest header list any peer under test may send us; our own limits are not what is tested here.
    this.decoder = new HpackDecoder(4096, 16 * 1024 * 1024);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.#onClosed('eof'));
    socket.on('error', (err: NodeJS.ErrnoException) => this.#onClosed('reset', err.code ?? err.message));
    socket.on('close', () => this.#onClosed('eof'));
  }

  /** Connects as a client (TCP, or TLS when `tls` is given; ALPN must come back as h2 unless `tls.alpn` says otherwise). */
  static async connect(opts: ConnectOptions): Promise<H2Peer> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    let socket: net.Socket | tls.TLSSocket;
    if (opts.tls === undefined) {
      socket = net.connect({ host: opts.host, port: opts.port, noDelay: true });
      await withTimeout(once(socket, 'connect'), timeoutMs, `TCP connect to ${opts.host}:${opts.port}`, () => socket.destroy());
    } else {
      const t = opts.tls;
      const alpn = t.alpn ?? ['h2'];
      const s = tls.connect({
        host: opts.host,
        port: opts.port,
        cert: Array.isArray(t.cert) ? t.cert.join('\n') : t.cert,
        key: t.key,
        ca: t.ca,
        rejectUnauthorized: t.ca !== undefined,
        // Mesh certificates name a SPIFFE id, not a host name: the chain is what is checked here.
        checkServerIdentity: () => undefined,
        servername: t.servername ?? (net.isIP(opts.host) ? undefined : opts.host),
        ALPNProtocols: alpn,
        minVersion: 'TLSv1.2',
      });
      socket = s;
      await withTimeout(once(s, 'secureConnect'), timeoutMs, `TLS handshake with ${opts.host}:${opts.port}`, () => s.destroy());
      if (t.alpn === undefined && s.alpnProtocol !== 'h2') {
        s.destroy();
        throw new Error(`${opts.host}:${opts.port} did not negotiate ALPN h2 (got ${String(s.alpnProtocol)})`);
      }
      s.setNoDelay(true);
    }
    return new H2Peer(socket, 'client');
  }

  /** Listens on `host` (default 127.0.0.1), port 0; accept() hands out the server side of each connection. */
  static async listen(opts: { host?: string; port?: number; tls?: PeerTlsOptions } = {}): Promise<H2PeerListener> {
    const listener = new H2PeerListener(opts.tls);
    await listener.start(opts.host ?? '127.0.0.1', opts.port ?? 0);
    return listener;
  }

  /** @internal used by H2PeerListener */
  static wrapAccepted(socket: net.Socket | tls.TLSSocket): H2Peer {
    return new H2Peer(socket, 'server');
  }

  // ---- sending ----------------------------------------------------------------------------------------

  get closed(): boolean {
    return this.#closed;
  }

  /** Writes raw bytes (nothing is checked). Writes after the socket is gone are dropped. */
  sendRaw(bytes: Buffer): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    this.socket.write(bytes);
  }

  /** Writes raw bytes as a well-behaved writer would: resolves once the socket takes more, or is gone. */
  async sendRawPaced(bytes: Buffer): Promise<void> {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    if (this.socket.write(bytes)) return;
    const s = this.socket;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        s.off('drain', done);
        s.off('close', done);
        resolve();
      };
      s.on('drain', done);
      s.on('close', done);
    });
  }

  /** Writes one frame; its payload goes out as given. */
  send(type: number, flags: number, streamId: number, payload?: Buffer): void {
    this.sendRaw(frame(type, flags, streamId, payload));
  }

  sendPreface(): void {
    this.sendRaw(CONNECTION_PREFACE);
  }

  sendSettings(entries: Array<[number, number]> = []): void {
    this.send(FrameType.SETTINGS, 0, 0, settingsPayload(entries));
  }

  sendSettingsAck(): void {
    this.send(FrameType.SETTINGS, Flag.ACK, 0);
  }

  /**
   * A HEADERS frame. `block` is a header list (encoded with the production encoder) or raw HPACK bytes.
   * `priority` adds the 5 priority bytes (PRIORITY flag); `padding` adds that many pad bytes (PADDED flag).
   */
  sendHeaders(streamId: number, block: HeaderList | Buffer, opts: {
    endStream?: boolean;
    endHeaders?: boolean;
    priority?: { dependsOn: number; weight?: number; exclusive?: boolean };
    padding?: number;
  } = {}): void {
    let fragment = Buffer.isBuffer(block) ? block : encodeHeaders(block);
    let flags = (opts.endStream ? Flag.END_STREAM : 0) | (opts.endHeaders === false ? 0 : Flag.END_HEADERS);
    if (opts.priority !== undefined) {
      flags |= Flag.PRIORITY;
      fragment = Buffer.concat([priorityPayload(opts.priority.dependsOn, opts.priority.weight ?? 16, opts.priority.exclusive ?? false), fragment]);
    }
    if (opts.padding !== undefined) {
      flags |= Flag.PADDED;
      fragment = Buffer.concat([Buffer.from([opts.padding]), fragment, Buffer.alloc(opts.padding)]);
    }
    this.send(FrameType.HEADERS, flags, streamId, fragment);
  }

  sendContinuation(streamId: number, block: HeaderList | Buffer, endHeaders = true): void {
    this.send(FrameType.CONTINUATION, endHeaders ? Flag.END_HEADERS : 0, streamId, Buffer.isBuffer(block) ? block : encodeHeaders(block));
  }

  sendData(streamId: number, data: Buffer | string, opts: { endStream?: boolean; padding?: number } = {}): void {
    let payload = Buffer.isBuffer(data) ? data : Buffer.from(data);
    let flags = opts.endStream ? Flag.END_STREAM : 0;
    if (opts.padding !== undefined) {
      flags |= Flag.PADDED;
      payload = Buffer.concat([Buffer.from([opts.padding]), payload, Buffer.alloc(opts.padding)]);
    }
    this.send(FrameType.DATA, flags, streamId, payload);
  }

  sendPriority(streamId: number, dependsOn: number, weight = 16, exclusive = false): void {
    this.send(FrameType.PRIORITY, 0, streamId, priorityPayload(dependsOn, weight, exclusive));
  }

  sendRstStream(streamId: number, code: number): void {
    this.send(FrameType.RST_STREAM, 0, streamId, u32(code));
  }

  sendPing(opaque: Buffer = Buffer.alloc(8), ack = false): void {
    this.send(FrameType.PING, ack ? Flag.ACK : 0, 0, opaque);
  }

  sendGoaway(lastStreamId: number, code: number, debug = ''): void {
    this.send(FrameType.GOAWAY, 0, 0, Buffer.concat([u32(lastStreamId), u32(code), Buffer.from(debug)]));
  }

  sendWindowUpdate(streamId: number, increment: number): void {
    this.send(FrameType.WINDOW_UPDATE, 0, streamId, u32(increment));
  }

  /**
   * The opening exchange (as a conformance suite does it): a client sends the preface; both send SETTINGS
   * (`settings`), then wait for the other side's SETTINGS, ACK it, and wait for the ACK of their own. Frames
   * seen on the way (WINDOW_UPDATE, ...) are consumed. Returns the other side's SETTINGS entries.
   */
  async handshake(settings: Array<[number, number]> = [], timeoutMs = DEFAULT_WAIT_MS): Promise<Array<[number, number]>> {
    if (this.role === 'client') this.sendPreface();
    this.sendSettings(settings);
    let remote: Array<[number, number]> | undefined;
    let acked = false;
    const deadline = Date.now() + timeoutMs;
    while (remote === undefined || !acked) {
      const f = await this.nextFrame(FrameType.SETTINGS, { timeoutMs: Math.max(1, deadline - Date.now()) });
      if (f.flags & Flag.ACK) {
        acked = true;
      } else {
        remote = [];
        for (let off = 0; off + 6 <= f.payload.length; off += 6) remote.push([f.payload.readUInt16BE(off), f.payload.readUInt32BE(off + 2)]);
        this.sendSettingsAck();
      }
    }
    return remote;
  }

  /** Stops reading from the socket: the kernel buffers fill and the other side's writes back up. */
  pauseReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  /** Half-closes (FIN) our side. */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  // ---- awaiting ---------------------------------------------------------------------------------------

  /** The oldest event not yet taken (taken, unless it is 'closed'). */
  async nextEvent(timeoutMs = DEFAULT_WAIT_MS): Promise<PeerEvent> {
    return this.waitFor('any event', (e) => e, timeoutMs);
  }

  /**
   * Takes the oldest event not yet taken for which `match` returns something other than undefined, and returns
   * that; events it passes over stay for later waits. Throws H2PeerTimeoutError after `timeoutMs`, and
   * H2PeerClosedError once the connection closed with no match (unless `match` accepts the 'closed' event).
   * Error messages list the events that were there instead.
   */
  async waitFor<T>(what: string, match: (e: PeerEvent) => T | undefined, timeoutMs = DEFAULT_WAIT_MS): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let scanned = this.#firstUntaken;
    for (;;) {
      for (; scanned < this.events.length; scanned++) {
        if (this.#taken[scanned] === true) continue;
        const e = this.events[scanned]!;
        const got = match(e);
        if (got !== undefined) {
          if (e.kind !== 'closed') this.#take(scanned);
          return got;
        }
        if (e.kind === 'closed') throw new H2PeerClosedError(`connection ${describeEvent(e)} while waiting for ${what}${this.#untakenText()}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new H2PeerTimeoutError(`no ${what} within ${timeoutMs} ms${this.#untakenText()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.#wake.push(done);
      });
    }
  }

  /** Events not taken by any wait yet. */
  untaken(): PeerEvent[] {
    return this.events.filter((_, i) => this.#taken[i] !== true);
  }

  /** The next frame (of `type`, on `streamId` when given); other frames on the way are consumed. */
  nextFrame(type?: number, opts: { streamId?: number; timeoutMs?: number } = {}): Promise<ReceivedFrame> {
    const what = `${type === undefined ? 'frame' : frameTypeName(type)}${opts.streamId === undefined ? '' : ` on stream ${opts.streamId}`}`;
    return this.waitFor(what, (e) => {
      if (e.kind !== 'frame') return undefined;
      if (type !== undefined && e.frame.type !== type) return undefined;
      if (opts.streamId !== undefined && e.frame.streamId !== opts.streamId) return undefined;
      return e.frame;
    }, opts.timeoutMs);
  }

  /** The next GOAWAY. */
  async goaway(timeoutMs = DEFAULT_WAIT_MS): Promise<GoawayInfo> {
    const f = await this.nextFrame(FrameType.GOAWAY, { timeoutMs });
    if (f.payload.length < 8) throw new Error(`GOAWAY with a ${f.payload.length}-byte payload (8 at least expected)`);
    return parseGoaway(f.payload);
  }

  /** The code of the next RST_STREAM on `streamId`. */
  async rstStream(streamId: number, timeoutMs = DEFAULT_WAIT_MS): Promise<number> {
    const f = await this.nextFrame(FrameType.RST_STREAM, { streamId, timeoutMs });
    if (f.payload.length !== 4) throw new Error(`RST_STREAM with a ${f.payload.length}-byte payload (4 expected)`);
    return f.payload.readUInt32BE(0);
  }

  /** The next complete header block on `streamId` (HEADERS + CONTINUATIONs), informational or not. */
  async headers(streamId: number, timeoutMs = DEFAULT_WAIT_MS): Promise<ResponseInfo> {
    const f = await this.waitFor(`HEADERS on stream ${streamId}`, (e) =>
      e.kind === 'frame' && e.frame.streamId === streamId && (e.frame.headers !== undefined || e.frame.headerError !== undefined) && e.frame.type !== FrameType.PUSH_PROMISE ? e.frame : undefined,
    timeoutMs);
    if (f.headers === undefined) throw new Error(`the header block on stream ${streamId} did not decode: ${f.headerError}`);
    const endStream = this.#endStreamOf(f);
    return { status: Number(headerValue(f.headers, ':status') ?? NaN), headers: f.headers, endStream };
  }

  /** The final response on `streamId` (1xx responses before it are skipped). */
  async response(streamId: number, timeoutMs = DEFAULT_WAIT_MS): Promise<ResponseInfo> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.headers(streamId, Math.max(1, deadline - Date.now()));
      if (!(r.status >= 100 && r.status < 200)) return r;
    }
  }

  /** Resolves when the connection is closed (EOF or reset), with how. */
  closedEvent(timeoutMs = DEFAULT_WAIT_MS): Promise<'eof' | 'reset'> {
    return this.waitFor('connection close', (e) => (e.kind === 'closed' ? e.how : undefined), timeoutMs);
  }

  /** All frames received so far (of `type` when given), taken or not. */
  framesSeen(type?: number): ReceivedFrame[] {
    const out: ReceivedFrame[] = [];
    for (const e of this.events) if (e.kind === 'frame' && (type === undefined || e.frame.type === type)) out.push(e.frame);
    return out;
  }

  // ---- reading ----------------------------------------------------------------------------------------

  #endStreamOf(f: ReceivedFrame): boolean {
    if (f.type === FrameType.HEADERS) return (f.flags & Flag.END_STREAM) !== 0;
    // A CONTINUATION ends the block: END_STREAM was on the HEADERS frame that opened it.
    for (let i = this.events.length - 1; i >= 0; i--) {
      const e = this.events[i]!;
      if (e.kind === 'frame' && e.frame === f) {
        for (let j = i - 1; j >= 0; j--) {
          const p = this.events[j]!;
          if (p.kind === 'frame' && p.frame.type === FrameType.HEADERS && p.frame.streamId === f.streamId) return (p.frame.flags & Flag.END_STREAM) !== 0;
        }
      }
    }
    return false;
  }

  #take(i: number): void {
    this.#taken[i] = true;
    while (this.#taken[this.#firstUntaken] === true) this.#firstUntaken++;
  }

  #untakenText(): string {
    const seen = this.untaken().map(describeEvent);
    if (seen.length === 0) return '';
    const shown = seen.length > 12 ? [...seen.slice(0, 12), `... ${seen.length - 12} more`] : seen;
    return `; saw ${shown.join(', ')}`;
  }

  #push(e: PeerEvent): void {
    this.events.push(e);
    const wake = this.#wake;
    this.#wake = [];
    for (const w of wake) w();
  }

  #onClosed(how: 'eof' | 'reset', error?: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#push(error === undefined ? { kind: 'closed', how } : { kind: 'closed', how, error });
  }

  #onData(chunk: Buffer): void {
    this.bytesReceived += chunk.length;
    let data = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    if (this.#prefaceLeft > 0) {
      const at = CONNECTION_PREFACE.length - this.#prefaceLeft;
      const take = Math.min(this.#prefaceLeft, data.length);
      if (!data.subarray(0, take).equals(CONNECTION_PREFACE.subarray(at, at + take))) {
        this.#buf = Buffer.alloc(0);
        this.socket.destroy();
        this.#onClosed('reset', 'the client did not send the HTTP/2 connection preface');
        return;
      }
      this.#prefaceLeft -= take;
      data = data.subarray(take);
      if (this.#prefaceLeft === 0) this.prefaceReceived = true;
    }
    let pos = 0;
    while (data.length - pos >= FRAME_HEADER_BYTES) {
      const len = (data[pos]! << 16) | (data[pos + 1]! << 8) | data[pos + 2]!;
      if (data.length - pos < FRAME_HEADER_BYTES + len) break;
      const f: ReceivedFrame = {
        type: data[pos + 3]!,
        flags: data[pos + 4]!,
        streamId: data.readUInt32BE(pos + 5) & 0x7fffffff,
        payload: Buffer.from(data.subarray(pos + FRAME_HEADER_BYTES, pos + FRAME_HEADER_BYTES + len)),
      };
      pos += FRAME_HEADER_BYTES + len;
      this.framesReceived++;
      this.framesByType.set(f.type, (this.framesByType.get(f.type) ?? 0) + 1);
      this.#decodeBlock(f);
      if (!this.countOnly.has(f.type)) this.#push({ kind: 'frame', frame: f });
    }
    this.#buf = pos === data.length ? Buffer.alloc(0) : Buffer.from(data.subarray(pos));
  }

  /** Collects header block fragments and decodes a block once it is complete. */
  #decodeBlock(f: ReceivedFrame): void {
    let fragment: Buffer | undefined;
    if (f.type === FrameType.HEADERS || f.type === FrameType.PUSH_PROMISE) {
      let start = 0;
      let end = f.payload.length;
      if (f.flags & Flag.PADDED) {
        start = 1;
        end -= f.payload[0] ?? 0;
      }
      if (f.type === FrameType.HEADERS && f.flags & Flag.PRIORITY) start += 5;
      if (f.type === FrameType.PUSH_PROMISE) start += 4;
      if (start > end) {
        f.headerError = 'padding or priority longer than the frame';
        return;
      }
      fragment = f.payload.subarray(start, end);
      this.#block = { streamId: f.streamId, fragments: [fragment] };
    } else if (f.type === FrameType.CONTINUATION && this.#block !== undefined) {
      this.#block.fragments.push(f.payload);
    } else {
      return;
    }
    if ((f.flags & Flag.END_HEADERS) === 0) return;
    const block = Buffer.concat(this.#block!.fragments);
    this.#block = undefined;
    try {
      f.headers = this.decoder.decode(block);
    } catch (err) {
      f.headerError = err instanceof Error ? err.message : String(err);
    }
  }
}

/** Accepts connections for H2Peer in the server role; TLS when `tls` is given (cert and key required). */
export class H2PeerListener {
  readonly #tls: PeerTlsOptions | undefined;
  readonly #server: net.Server;
  readonly #ready: Array<H2Peer> = [];
  readonly #waiting: Array<(p: H2Peer) => void> = [];
  readonly #peers: H2Peer[] = [];
  host = '';
  port = 0;
  /** Connections accepted so far (TCP accepts, TLS or not). */
  accepted = 0;

  constructor(tlsOptions: PeerTlsOptions | undefined) {
    this.#tls = tlsOptions;
    if (tlsOptions === undefined) {
      this.#server = net.createServer({ noDelay: true }, (s) => this.#onSocket(s));
    } else {
      const t = tlsOptions;
      this.#server = tls.createServer({
        cert: Array.isArray(t.cert) ? t.cert.join('\n') : t.cert,
        key: t.key,
        ca: t.ca,
        requestCert: t.requestCert ?? false,
        rejectUnauthorized: false,
        ALPNProtocols: t.alpn ?? ['h2'],
        minVersion: 'TLSv1.2',
      }, (s) => this.#onSocket(s));
      this.#server.on('tlsClientError', () => undefined);
    }
    this.#server.on('connection', () => this.accepted++);
  }

  /** @internal */
  async start(host: string, port: number): Promise<void> {
    this.#server.listen(port, host);
    await once(this.#server, 'listening');
    const a = this.#server.address() as net.AddressInfo;
    this.host = a.address;
    this.port = a.port;
  }

  get tls(): boolean {
    return this.#tls !== undefined;
  }

  /** The next accepted connection, as the server side (the client preface is checked as it arrives). */
  accept(timeoutMs = 5000): Promise<H2Peer> {
    const ready = this.#ready.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    return withTimeout(new Promise<H2Peer>((resolve) => this.#waiting.push(resolve)), timeoutMs, `a connection on ${this.host}:${this.port}`);
  }

  /** Stops listening and destroys every accepted connection. */
  async close(): Promise<void> {
    for (const p of this.#peers) p.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #onSocket(socket: net.Socket | tls.TLSSocket): void {
    socket.setNoDelay(true);
    const peer = H2Peer.wrapAccepted(socket);
    this.#peers.push(peer);
    const waiter = this.#waiting.shift();
    if (waiter !== undefined) waiter(peer);
    else this.#ready.push(peer);
  }
}

function priorityPayload(dependsOn: number, weight: number, exclusive: boolean): Buffer {
  const b = Buffer.alloc(5);
  b.writeUInt32BE(((exclusive ? 0x80000000 : 0) | (dependsOn & 0x7fffffff)) >>> 0, 0);
  b[4] = (weight - 1) & 0xff;
  return b;
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string, onTimeout?: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          onTimeout?.();
          reject(new H2PeerTimeoutError(`${what} did not complete within ${ms} ms`));
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
