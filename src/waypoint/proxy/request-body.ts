/**
 * A request body kept for retries: read up to a limit, so each try can send it again; a longer body is streamed
 * once (what was read, then the rest) and its request is not retried after its first try started.
 */
import { PassThrough, type Readable } from 'node:stream';

export type HeldBody =
  | { kind: 'none' }
  | { kind: 'buffered'; bytes: Buffer }
  | { kind: 'streamed'; stream: Readable; read: () => number };

/** Reads `req` until it ends or `limit` bytes are held. `bytes` counts all bytes of the body as they pass. */
export function holdBody(req: Readable, limit: number, hasBody: boolean): Promise<HeldBody> {
  if (!hasBody) {
    req.resume();
    return Promise.resolve({ kind: 'none' });
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      if (size > limit) {
        settled = true;
        cleanup();
        req.pause();
        const out = new PassThrough();
        let total = size;
        for (const x of chunks) out.write(x);
        req.on('data', (x: Buffer) => { total += x.length; });
        req.pipe(out);
        req.on('error', (err) => out.destroy(err));
        resolve({ kind: 'streamed', stream: out, read: () => total });
      }
    };
    const onEnd = () => {
      if (settled) return;
      settled = true;
      cleanup();
      resolve(size === 0 ? { kind: 'none' } : { kind: 'buffered', bytes: Buffer.concat(chunks, size) });
    };
    const onError = (err: Error) => { if (!settled) { settled = true; cleanup(); reject(err); } };
    const onClose = () => { if (!settled) { settled = true; cleanup(); reject(new Error('the client closed the request before its body ended')); } };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onError);
    req.once('close', onClose);
  });
}
