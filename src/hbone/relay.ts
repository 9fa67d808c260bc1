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
  return new Promise((resolve) => {
    const result: RelayResult = { aToB: 0, bToA: 0 };
    const streams: Record<Side, Duplex> = { a, b };
    const readDone: Record<Side, boolean> = { a: a.readableEnded, b: b.readableEnded };
    const writeDone: Record<Side, boolean> = { a: a.writableFinished, b: b.writableFinished };
    const added: Array<[Duplex, string, (...args: unknown[]) => void]> = [];
    const sinks: H2Stream[] = [];
    let settled = false;
    /** Per source side: writes what it has joined and not yet written (see pump). */
    const flushPending: Record<Side, () => void> = { a: () => undefined, b: () => undefined };

    const on = <A extends unknown[]>(s: Duplex, event: string, fn: (...args: A) => void): void => {
      const listener = fn as unknown as (...args: unknown[]) => void;
      s.on(event, listener);
      added.push([s, event, listener]);
    };

    const cleanup = (): void => {
      for (const s of sinks) s.sink = undefined;
      for (const [s, event, fn] of added) s.removeListener(event, fn);
      added.length = 0;
      resolve(result);
    };

    /** Destroys whatever is still open, then resolves once both have emitted 'close'. */
    const finish = (): void => {
      let waiting = 0;
      const one = (): void => {
        if (--waiting === 0) cleanup();
      };
      for (const s of [a, b]) {
        if (!s.destroyed) s.destroy();
        if (!closeEmitted(s) && emitsClose(s)) {
          waiting++;
          on(s, 'close', one);
        }
      }
      if (waiting === 0) cleanup();
    };

    const fail = (side: Side, error: Error): void => {
      if (settled) return;
      settled = true;
      result.error = error;
      result.resetBy = side;
      resetStream(streams[side === 'a' ? 'b' : 'a']);
      streams[side].destroy();
      finish();
    };

    const maybeDone = (): void => {
      if (settled || !(readDone.a && readDone.b && writeDone.a && writeDone.b)) return;
      settled = true;
      finish();
    };

    /** `from` ended its sending half: a clean end is passed on, a reset fails the relay. */
    const endOf = (from: Side): void => {
      if (settled || readDone[from]) return;
      const src = streams[from];
      const reset = resetError(from, src);
      if (reset !== undefined) {
        fail(from, reset);
        return;
      }
      readDone[from] = true;
      flushPending[from](); // small pieces of the last read go before the FIN
      streams[from === 'a' ? 'b' : 'a'].end();
      maybeDone();
    };

    const pump = (from: Side, to: Side): void => {
      const src = streams[from];
      const dst = streams[to];
      const fromH2 = src instanceof H2Stream;
      let paused = false;
      let corked = false;
      const uncork = (): void => {
        corked = false;
        if (!dst.destroyed) dst.uncork();
      };
      // Small DATA payloads of one read (a peer may send thousands of tiny frames in one TLS record) are joined
      // and written once, when the read is processed (a microtask): one write per read, not one per frame.
      let small: Buffer[] = [];
      let smallBytes = 0;
      const flushSmall = (): void => {
        if (small.length === 0) return;
        const pieces = small;
        small = [];
        smallBytes = 0;
        if (dst.destroyed || dst.writableEnded) return;
        dst.write(pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces));
        // move() may have held the peer's credit back counting these bytes; if the write left room, give it back.
        if (fromH2 && (src as H2Stream).sinkBlocked && dst.writableLength < RELAY_BUFFER_BYTES) (src as H2Stream).sinkDrained();
      };
      flushPending[from] = flushSmall;
      /** Moves one chunk; false while `dst` holds RELAY_BUFFER_BYTES or more unwritten. */
      const move = (chunk: Buffer): boolean => {
        const n = chunk.length;
        if (from === 'a') result.aToB += n;
        else result.bToA += n;
        hooks?.onBytes?.(from === 'a' ? n : 0, from === 'a' ? 0 : n);
        // HTTP/2 streams take the chunk as DATA at once (their Writable would only add a layer).
        if (dst instanceof H2Stream && dst.writableLength === 0 && !dst.writableEnded) return dst.writeDirect(chunk, RELAY_BUFFER_BYTES);
        if (fromH2 && n < COALESCE_MIN_BYTES) {
          if (small.length === 0) queueMicrotask(flushSmall);
          small.push(chunk);
          smallBytes += n;
          return dst.writableLength + smallBytes < RELAY_BUFFER_BYTES;
        }
        if (small.length > 0) flushSmall(); // keep the order
        // Bulk data that arrives in one turn of the event loop (a TLS read yields one piece per 16 KiB record)
        // leaves in one write; the check phase runs right after the I/O it batches. Small chunks from a socket
        // (requests, interactive traffic) go out at once.
        if (!corked && n >= COALESCE_MIN_BYTES) {
          corked = true;
          dst.cork();
          setImmediate(uncork);
        }
        dst.write(chunk);
        return dst.writableLength < RELAY_BUFFER_BYTES;
      };
      if (src instanceof H2Stream) {
        // DATA payloads come straight from the HTTP/2 connection; while dst is full the peer gets no more
        // flow-control credit, so its window bounds what waits here.
        src.setSink(move);
        sinks.push(src);
        on(dst, 'drain', () => src.sinkDrained());
      } else {
        on(src, 'data', (chunk: Buffer | string) => {
          if (!move(typeof chunk === 'string' ? Buffer.from(chunk) : chunk) && !paused) {
            paused = true;
            src.pause();
          }
        });
        on(dst, 'drain', () => {
          if (paused) {
            paused = false;
            src.resume();
          }
        });
      }
      on(src, 'end', () => endOf(from));
      on(dst, 'finish', () => {
        writeDone[to] = true;
        maybeDone();
      });
    };

    for (const side of ['a', 'b'] as const) {
      const s = streams[side];
      if (s instanceof net.Socket) s.allowHalfOpen = true;
      on(s, 'error', (err: Error) => fail(side, err));
      on(s, 'close', () => {
        if (settled) return;
        const reset = resetError(side, s);
        if (reset !== undefined) {
          fail(side, reset);
          return;
        }
        if (s instanceof H2Stream) {
          // Closed cleanly (both END_STREAMs exchanged, code NO_ERROR), possibly just before the deferred 'end'
          // or the 'finish' we wait for.
          if (s.readableEnded) endOf(side);
          if (s.writableEnded) writeDone[side] = true;
          if (settled) return;
        }
        if (readDone[side] && writeDone[side]) {
          maybeDone();
          return;
        }
        const what = readDone[side] ? 'before all data was written to it' : 'before it ended (reset or aborted)';
        fail(side, Object.assign(new Error(`relay side ${side} closed ${what}`), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
      });
    }
    pump('a', 'b');
    pump('b', 'a');

    for (const side of ['a', 'b'] as const) {
      const s = streams[side];
      if (s.destroyed) {
        const err = (s as { errored?: Error | null }).errored;
        fail(side, err ?? Object.assign(new Error(`relay side ${side} was already destroyed`), { code: 'ERR_STREAM_DESTROYED' }));
        return;
      }
    }
    // Sources that already ended before we were called: pass the end on now.
    for (const side of ['a', 'b'] as const) {
      if (readDone[side]) streams[side === 'a' ? 'b' : 'a'].end();
    }
    a.resume();
    b.resume();
    maybeDone();
  });
}
