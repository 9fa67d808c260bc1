/**
 * Bidirectional byte relay between two duplex streams (a client socket and an HBONE stream, an HBONE stream
 * and a target socket, ...), as TCP proxies need it:
 * - half-close: when one side ends (FIN / END_STREAM), the other side's write half is ended and the opposite
 *   direction keeps flowing until it ends too;
 * - a failure (error, reset, or closing before both of its halves are done) on one side resets the other:
 *   RST_STREAM(CANCEL) for an HBONE (H2Stream) stream, a TCP RST for a socket, destroy() otherwise;
 * - backpressure: a source is paused while its destination holds RELAY_BUFFER_BYTES or more unwritten
 *   (bounded buffering), and resumed when that drains;
 * - bulk writes to sockets are coalesced: large chunks that arrive in one turn of the event loop leave in one
 *   write (cork until setImmediate), and the small DATA payloads of one HTTP/2 read leave in one write;
 * - nothing is left behind: the promise resolves after both streams are destroyed and have emitted 'close',
 *   with every listener this function added removed.
 * Net sockets are switched to allowHalfOpen (otherwise Node ends their write half as soon as the peer's FIN
 * arrives, and half-closed connections lose their replies).
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { H2Stream } from './h2/stream.js';
import { H2Code, codeName } from './h2/frames.js';

export interface RelayResult {
  /** Bytes read from `a` and written to `b`. */
  aToB: number;
  /** Bytes read from `b` and written to `a`. */
  bToA: number;
  /** Why the relay stopped early; absent when both directions ended cleanly. */
  error?: Error;
  /** Which side failed first (errored, was reset, or closed before it was done). */
  resetBy?: 'a' | 'b';
}

export interface RelayHooks {
  /** Called for every chunk with the bytes just moved (one of the two is 0), e.g. to count metrics live. */
  onBytes?(aToB: number, bToA: number): void;
}

type Side = 'a' | 'b';

/**
 * A source is paused once this much waits in its destination's write buffer, and resumed when that drains.
 * (Pausing at every write() that returns false — Node's 16 KiB high-water mark — pauses and resumes the
 * source for nearly every chunk on a busy stream.)
 */
export const RELAY_BUFFER_BYTES = 256 * 1024;
/** Chunks at least this large are coalesced with the rest of their event-loop turn before being written. */
const COALESCE_MIN_BYTES = 8 * 1024;

interface StreamState {
  _readableState?: { closeEmitted?: boolean; emitClose?: boolean; endEmitted?: boolean };
  _writableState?: { closeEmitted?: boolean; emitClose?: boolean; finished?: boolean };
}

/** Ends `s` abruptly so that its peer sees a reset rather than a clean end. */
export function resetStream(s: Duplex): void {
  if (s instanceof H2Stream) {
    if (!s.wireClosed && !s.destroyed) s.close(H2Code.CANCEL);
    else s.destroy();
    return;
  }
  if (s instanceof net.Socket && !s.destroyed) {
    try {
      s.resetAndDestroy(); // throws for non-TCP handles (a TLSSocket): fall back to a plain destroy
      return;
    } catch {
      /* fall through */
    }
  }
  s.destroy();
}

/** For an HTTP/2 stream closed with RST_STREAM (any code but NO_ERROR): the error to report; else undefined. */
function resetError(side: Side, s: Duplex): Error | undefined {
  if (!(s instanceof H2Stream)) return undefined;
  const code = s.rstCode;
  if (!s.aborted && (!s.wireClosed || code === undefined || code === H2Code.NO_ERROR)) return undefined;
  const name = code === undefined ? 'connection lost' : codeName(code);
  return Object.assign(new Error(`relay side ${side}: HTTP/2 stream reset (RST_STREAM ${name})`), { code: 'ERR_HTTP2_STREAM_RESET', rstCode: code });
}

function closeEmitted(s: Duplex): boolean {
  const st = s as unknown as StreamState;
  return st._readableState?.closeEmitted === true || st._writableState?.closeEmitted === true;
}

function emitsClose(s: Duplex): boolean {
  const st = s as unknown as StreamState;
  return st._readableState?.emitClose !== false && st._writableState?.emitClose !== false;
}

export function relay(a: Duplex, b: Duplex, hooks?: RelayHooks): Promise<RelayResult> {
  return new Promise((resolve) => new Relay(a, b, hooks, resolve).start());
}

const other = (side: Side): Side => (side === 'a' ? 'b' : 'a');

/**
 * One relay's state (see relay()).
 * Invariants: `settled` is set once, by the first of a clean end of both directions or a failure, and then
 * `finish` runs exactly once; every listener added goes through `on` and is removed at cleanup.
 */
class Relay {
  readonly result: RelayResult = { aToB: 0, bToA: 0 };
  readonly streams: Record<Side, Duplex>;
  readonly readDone: Record<Side, boolean>;
  readonly writeDone: Record<Side, boolean>;
  readonly #added: Array<[Duplex, string, (...args: unknown[]) => void]> = [];
  readonly #sinks: H2Stream[] = [];
  readonly #pumps: Partial<Record<Side, Pump>> = {};
  settled = false;

  constructor(readonly a: Duplex, readonly b: Duplex, readonly hooks: RelayHooks | undefined, private readonly resolve: (r: RelayResult) => void) {
    this.streams = { a, b };
    this.readDone = { a: a.readableEnded, b: b.readableEnded };
    this.writeDone = { a: a.writableFinished, b: b.writableFinished };
  }

  start(): void {
    for (const side of ['a', 'b'] as const) this.#watch(side);
    this.#pumps.a = new Pump(this, 'a');
    this.#pumps.b = new Pump(this, 'b');
    for (const side of ['a', 'b'] as const) {
      const s = this.streams[side];
      if (s.destroyed) {
        const err = (s as { errored?: Error | null }).errored;
        this.fail(side, err ?? Object.assign(new Error(`relay side ${side} was already destroyed`), { code: 'ERR_STREAM_DESTROYED' }));
        return;
      }
    }
    // Sources that already ended before we were called: pass the end on now.
    for (const side of ['a', 'b'] as const) {
      if (this.readDone[side]) this.streams[other(side)].end();
    }
    this.a.resume();
    this.b.resume();
    this.maybeDone();
  }

  on<A extends unknown[]>(s: Duplex, event: string, fn: (...args: A) => void): void {
    const listener = fn as unknown as (...args: unknown[]) => void;
    s.on(event, listener);
    this.#added.push([s, event, listener]);
  }

  /** `src` hands its DATA to a sink; it is detached at cleanup. */
  sinkOf(src: H2Stream, sink: (chunk: Buffer) => boolean): void {
    src.setSink(sink);
    this.#sinks.push(src);
  }

  /** Errors, resets and early closes of one side fail the relay; a clean close may still end it. */
  #watch(side: Side): void {
    const s = this.streams[side];
    if (s instanceof net.Socket) s.allowHalfOpen = true;
    this.on(s, 'error', (err: Error) => this.fail(side, err));
    this.on(s, 'close', () => {
      if (this.settled) return;
      const reset = resetError(side, s);
      if (reset !== undefined) {
        this.fail(side, reset);
        return;
      }
      if (s instanceof H2Stream) {
        // Closed cleanly (both END_STREAMs exchanged, code NO_ERROR), possibly just before the deferred 'end'
        // or the 'finish' we wait for.
        if (s.readableEnded) this.endOf(side);
        if (s.writableEnded) this.writeDone[side] = true;
        if (this.settled) return;
      }
      if (this.readDone[side] && this.writeDone[side]) {
        this.maybeDone();
        return;
      }
      const what = this.readDone[side] ? 'before all data was written to it' : 'before it ended (reset or aborted)';
      this.fail(side, Object.assign(new Error(`relay side ${side} closed ${what}`), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    });
  }

  #cleanup(): void {
    for (const s of this.#sinks) s.sink = undefined;
    for (const [s, event, fn] of this.#added) s.removeListener(event, fn);
    this.#added.length = 0;
    this.resolve(this.result);
  }

  /** Destroys whatever is still open, then resolves once both have emitted 'close'. */
  #finish(): void {
    let waiting = 0;
    const one = (): void => {
      if (--waiting === 0) this.#cleanup();
    };
    for (const s of [this.a, this.b]) {
      if (!s.destroyed) s.destroy();
      if (!closeEmitted(s) && emitsClose(s)) {
        waiting++;
        this.on(s, 'close', one);
      }
    }
    if (waiting === 0) this.#cleanup();
  }

  fail(side: Side, error: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.result.error = error;
    this.result.resetBy = side;
    resetStream(this.streams[other(side)]);
    this.streams[side].destroy();
    this.#finish();
  }

  maybeDone(): void {
    const { readDone, writeDone } = this;
    if (this.settled || !(readDone.a && readDone.b && writeDone.a && writeDone.b)) return;
    this.settled = true;
    this.#finish();
  }

  /** `from` ended its sending half: a clean end is passed on, a reset fails the relay. */
  endOf(from: Side): void {
    if (this.settled || this.readDone[from]) return;
    const reset = resetError(from, this.streams[from]);
    if (reset !== undefined) {
      this.fail(from, reset);
      return;
    }
    this.readDone[from] = true;
    this.#pumps[from]?.flushSmall(); // small pieces of the last read go before the FIN
    this.streams[other(from)].end();
    this.maybeDone();
  }
}

/**
 * One direction of a relay: moves what `from` reads into the other side, with backpressure and write coalescing.
 * Invariant: `small` holds only pieces of the current read (flushed in a microtask, or before a larger chunk or the
 * end), so bytes leave in the order they came.
 */
class Pump {
  readonly src: Duplex;
  readonly dst: Duplex;
  readonly #fromH2: boolean;
  #paused = false;
  #corked = false;
  // Small DATA payloads of one read (a peer may send thousands of tiny frames in one TLS record) are joined and
  // written once, when the read is processed (a microtask): one write per read, not one per frame.
  #small: Buffer[] = [];
  #smallBytes = 0;
  readonly #flush = (): void => this.flushSmall();
  readonly #uncork = (): void => {
    this.#corked = false;
    if (!this.dst.destroyed) this.dst.uncork();
  };

  constructor(private readonly relay: Relay, private readonly from: Side) {
    const to = other(from);
    this.src = relay.streams[from];
    this.dst = relay.streams[to];
    const { src, dst } = this;
    this.#fromH2 = src instanceof H2Stream;
    const move = (chunk: Buffer): boolean => this.move(chunk);
    if (src instanceof H2Stream) {
      // DATA payloads come straight from the HTTP/2 connection; while dst is full the peer gets no more
      // flow-control credit, so its window bounds what waits here.
      relay.sinkOf(src, move);
      relay.on(dst, 'drain', () => src.sinkDrained());
    } else {
      relay.on(src, 'data', (chunk: Buffer | string) => {
        if (!move(typeof chunk === 'string' ? Buffer.from(chunk) : chunk) && !this.#paused) {
          this.#paused = true;
          src.pause();
        }
      });
      relay.on(dst, 'drain', () => {
        if (this.#paused) {
          this.#paused = false;
          src.resume();
        }
      });
    }
    relay.on(src, 'end', () => relay.endOf(from));
    relay.on(dst, 'finish', () => {
      relay.writeDone[to] = true;
      relay.maybeDone();
    });
  }

  /** Moves one chunk; false while `dst` holds RELAY_BUFFER_BYTES or more unwritten. */
  move(chunk: Buffer): boolean {
    const n = chunk.length;
    const { dst, relay } = this;
    if (this.from === 'a') relay.result.aToB += n;
    else relay.result.bToA += n;
    relay.hooks?.onBytes?.(this.from === 'a' ? n : 0, this.from === 'a' ? 0 : n);
    // HTTP/2 streams take the chunk as DATA at once (their Writable would only add a layer).
    if (dst instanceof H2Stream && dst.writableLength === 0 && !dst.writableEnded) return dst.writeDirect(chunk, RELAY_BUFFER_BYTES);
    if (this.#fromH2 && n < COALESCE_MIN_BYTES) {
      if (this.#small.length === 0) queueMicrotask(this.#flush);
      this.#small.push(chunk);
      this.#smallBytes += n;
      return dst.writableLength + this.#smallBytes < RELAY_BUFFER_BYTES;
    }
    if (this.#small.length > 0) this.flushSmall(); // keep the order
    // Bulk data that arrives in one turn of the event loop (a TLS read yields one piece per 16 KiB record)
    // leaves in one write; the check phase runs right after the I/O it batches. Small chunks from a socket
    // (requests, interactive traffic) go out at once.
    if (!this.#corked && n >= COALESCE_MIN_BYTES) {
      this.#corked = true;
      dst.cork();
      setImmediate(this.#uncork);
    }
    dst.write(chunk);
    return dst.writableLength < RELAY_BUFFER_BYTES;
  }

  flushSmall(): void {
    if (this.#small.length === 0) return;
    const pieces = this.#small;
    this.#small = [];
    this.#smallBytes = 0;
    const { dst, src } = this;
    if (dst.destroyed || dst.writableEnded) return;
    dst.write(pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces));
    // move() may have held the peer's credit back counting these bytes; if the write left room, give it back.
    if (src instanceof H2Stream && src.sinkBlocked && dst.writableLength < RELAY_BUFFER_BYTES) src.sinkDrained();
  }
}
