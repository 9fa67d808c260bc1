/**
 * Which protocol a client speaks inside its HBONE tunnel (DESIGN §6: "detect HTTP/1.1 | h2 | TCP"), from its first
 * bytes: the HTTP/2 connection preface (prior knowledge, gRPC included), an HTTP/1.x request line, or anything else.
 * `classify` is pure; `detectProtocol` reads just enough and puts the bytes back.
 */
import type { Duplex } from 'node:stream';

export type InnerProtocol = 'h2' | 'http1' | 'tcp';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** An HTTP/1.x request line: a token method, a space, a target without spaces, " HTTP/1.", a digit. */
const REQUEST_LINE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32} [^\s]{1,8192} HTTP\/1\.[01]\r?\n/;
/** What a request line may start with while it is incomplete: method token, then optionally its space and target. */
const REQUEST_LINE_SO_FAR = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{0,32}( [^\s]{0,8192}( (H(T(T(P(\/(1(\.([01](\r)?)?)?)?)?)?)?)?)?)?)?$/;
/** A request line longer than this without its end is not HTTP/1.x as far as the waypoint is concerned. */
const MAX_REQUEST_LINE_BYTES = 8192 + 64;

/** The protocol, or undefined while the bytes seen so far could still be either. */
export function classify(head: Buffer): InnerProtocol | undefined {
  if (head.length === 0) return undefined;
  const n = Math.min(head.length, H2_PREFACE.length);
  if (head.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) return head.length >= H2_PREFACE.length ? 'h2' : undefined;
  const text = head.subarray(0, MAX_REQUEST_LINE_BYTES).toString('latin1');
  const eol = text.indexOf('\n');
  if (eol >= 0) return REQUEST_LINE.test(text.slice(0, eol + 1)) ? 'http1' : 'tcp';
  if (head.length >= MAX_REQUEST_LINE_BYTES) return 'tcp';
  return REQUEST_LINE_SO_FAR.test(text) ? undefined : 'tcp';
}

export interface Detected {
  protocol: InnerProtocol;
  /**
   * Set only when the client ended its side within the bytes read (they cannot be put back after the end): the
   * bytes it sent, which the caller forwards first. Otherwise they were unshifted into the stream.
   */
  endedWith?: Buffer;
}

/**
 * Reads from `stream` until `classify` decides, the stream ends, or `timeoutMs` passes (a server-first protocol:
 * the client waits for the server, so TCP), then unshifts what it read.
 */
export function detectProtocol(stream: Duplex, timeoutMs: number): Promise<Detected> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (p: InnerProtocol, ended = false) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      const head = Buffer.concat(chunks, size);
      if (ended) return resolve({ protocol: p, endedWith: head });
      if (size > 0) stream.unshift(head);
      resolve({ protocol: p });
    };
    const onReadable = () => {
      let chunk: Buffer | null;
      while ((chunk = stream.read() as Buffer | null) !== null) {
        chunks.push(chunk);
        size += chunk.length;
        const p = classify(chunks.length === 1 ? chunk : Buffer.concat(chunks, size));
        if (p) return finish(p);
      }
    };
    const onEnd = () => finish('tcp', true);
    const timer = setTimeout(() => finish('tcp'), timeoutMs);
    stream.on('readable', onReadable);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
    onReadable();
  });
}
