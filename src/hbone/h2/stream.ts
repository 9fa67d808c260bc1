/**
 * One HTTP/2 stream of an H2Connection as a Node Duplex: what the peer sends in DATA frames is readable,
 * what is written goes out in DATA frames, end() sends END_STREAM, close(code) sends RST_STREAM.
 *
 * Invariants:
 * - `wireClosed` is true once the stream is over on the wire: reset either way, or END_STREAM sent and received;
 * - a stream that is destroyed before it is closed resets itself (CANCEL, or INTERNAL_ERROR with an error),
 *   so the peer never waits on a stream nobody holds;
 * - flow control credit for received bytes is returned only as the reader takes them (see _read).
 */
import { Duplex } from 'node:stream';
import { H2Code } from './frames.js';
import type { HeaderList } from './hpack.js';

/** Header fields as received: one string per name, an array when a name repeats; `:status` as a number. */
export type H2Headers = Record<string, string | string[] | number | undefined>;

/** What a stream needs from its connection. */
export interface StreamOwner {
  sendHeaders(stream: H2Stream, headers: HeaderList, endStream: boolean): void;
  sendData(stream: H2Stream, chunk: Buffer, endStream: boolean, cb: (err?: Error | null) => void): void;
  sendReset(stream: H2Stream, code: number): void;
  writeDirect(stream: H2Stream, chunk: Buffer, budget: number): boolean;
  /** The reader took data: return flow-control credit if enough is owed. */
  streamRead(stream: H2Stream): void;
  /** The sink's destination drained: what was delivered to it while it was full no longer counts as held. */
  sinkReleased(stream: H2Stream): void;
  /** The stream is destroyed: forget it. */
  streamDestroyed(stream: H2Stream): void;
}

interface QueuedWrite {
  chunk: Buffer;
  offset: number;
  end: boolean;
  cb: (err?: Error | null) => void;
}

const EMPTY = Buffer.alloc(0);

export class H2Stream extends Duplex {
  readonly id: number;
  /** The RST_STREAM code, once the stream was reset (either way). */
  rstCode: number | undefined = undefined;
  /** Reset by the peer, or its connection went away, before the stream finished. */
  aborted = false;
  /** Over on the wire: reset, or END_STREAM both ways. */
  wireClosed = false;
  headersSent = false;
  /** Client side: a final (non-1xx) response arrived. */
  responded = false;
  /** END_STREAM sent / received. */
  localEnded = false;
  remoteEnded = false;
  /** Our send window for this stream (the peer's grant). */
  sendWindow: number;
  /** Bytes the peer may still send before it needs more credit from us. */
  recvWindow: number;
  /** Bytes received and not yet credited back. */
  recvUnacked = 0;
  /** Server side: the request's content-length, which its DATA must add up to (RFC 9113 §8.1.1). */
  expectedLength: number | undefined = undefined;
  receivedLength = 0;
  /** Writes waiting for flow-control credit, oldest first. */
  readonly queue: QueuedWrite[] = [];
  /**
   * Set by a relay: DATA payloads go straight to it instead of through the Readable. It returns false while
   * its destination is full; flow-control credit is then held back (`sinkBlocked`) until sinkDrained().
   */
  sink: ((chunk: Buffer) => boolean) | undefined = undefined;
  sinkBlocked = false;
  /** Bytes handed to the sink after it reported full, until it drains (the connection bounds their sum). */
  heldBytes = 0;
  /** writeDirect() returned false: 'drain' is emitted once the queue and the socket have room again. */
  wantDrain = false;
  readonly #owner: StreamOwner;
  readonly #session: unknown;

  constructor(owner: StreamOwner, session: unknown, id: number, sendWindow: number, recvWindow: number) {
    super({ allowHalfOpen: true, autoDestroy: true, emitClose: true });
    this.#owner = owner;
    this.#session = session;
    this.id = id;
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }

  /** The connection this stream belongs to. */
  get session(): unknown {
    return this.#session;
  }

  /** Server side: sends the response headers (`:status` first). */
  respond(headers: Record<string, string | number>, opts?: { endStream?: boolean }): void {
    if (this.headersSent) throw new Error('HTTP/2 response headers already sent on this stream');
    if (this.wireClosed || this.destroyed) return;
    const list: HeaderList = [[':status', String(headers[':status'] ?? 200)]];
    for (const [name, value] of Object.entries(headers)) if (name !== ':status') list.push([name, String(value)]);
    const end = opts?.endStream === true;
    this.headersSent = true;
    this.#owner.sendHeaders(this, list, end);
    if (end) {
      this.localEnded = true;
      this.end();
    }
  }

  /**
   * Hands every DATA payload to `sink` from now on (what the Readable already holds first). The stream's
   * 'end', 'close' and 'error' events stay as they are. The peer's window is the only buffer bound: credit
   * is returned only while the sink reports room.
   */
  setSink(sink: (chunk: Buffer) => boolean): void {
    let held: Buffer | null;
    while ((held = this.read() as Buffer | null) !== null) if (!sink(held)) this.sinkBlocked = true;
    this.sink = sink;
  }

  /** The sink's destination drained: credit the peer again. */
  sinkDrained(): void {
    this.sinkBlocked = false;
    if (this.heldBytes > 0) this.#owner.sinkReleased(this);
    if (this.recvUnacked > 0) this.#owner.streamRead(this);
  }

  /**
   * Sends `chunk` as DATA now, bypassing the Writable (whose buffer must be empty: the caller is the only
   * writer). Returns false when this stream's queue plus the socket's buffer hold `budget` bytes or more;
   * 'drain' follows once they are below it.
   */
  writeDirect(chunk: Buffer, budget: number): boolean {
    return this.#owner.writeDirect(this, chunk, budget);
  }

  /** Resets the stream with `code` (RST_STREAM) and destroys it. */
  close(code: number = H2Code.CANCEL): void {
    if (!this.wireClosed) {
      this.rstCode = code;
      this.wireClosed = true;
      this.#owner.sendReset(this, code);
    }
    this.destroy();
  }

  override _read(): void {
    if (this.recvUnacked > 0) this.#owner.streamRead(this);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.wireClosed) {
      cb(Object.assign(new Error('write to a closed HTTP/2 stream'), { code: 'ERR_HTTP2_INVALID_STREAM' }));
      return;
    }
    this.#owner.sendData(this, chunk, false, cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    if (this.wireClosed) {
      cb(Object.assign(new Error('write to a closed HTTP/2 stream'), { code: 'ERR_HTTP2_INVALID_STREAM' }));
      return;
    }
    this.#owner.sendData(this, chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk)), false, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.localEnded || this.wireClosed) {
      cb();
      return;
    }
    this.#owner.sendData(this, EMPTY, true, cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.wireClosed) {
      if (this.localEnded && this.remoteEnded) {
        this.wireClosed = true;
      } else {
        this.rstCode = err ? H2Code.INTERNAL_ERROR : H2Code.CANCEL;
        this.wireClosed = true;
        this.#owner.sendReset(this, this.rstCode);
      }
    }
    for (const q of this.queue.splice(0)) q.cb(err ?? Object.assign(new Error('HTTP/2 stream closed before the write was sent'), { code: 'ERR_HTTP2_INVALID_STREAM' }));
    this.#owner.streamDestroyed(this);
    cb(err);
  }
}
