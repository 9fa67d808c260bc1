/**
 * The bearer token a proxy presents to the controller. Given a file (--token-file), it is read again at every use
 * (each xDS (re)connect and certificate request): a Kubernetes projected ServiceAccount token is rotated by the
 * kubelet, and the one read at start expires. A read that fails or finds the file empty keeps the last good token
 * (logged once per change of outcome); a fixed token (--token / STRAIT_TOKEN) is used as is.
 */
import { readFileSync } from 'node:fs';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';

/** A token file is a few KiB at most (a projected token is about 1 KiB); more is not read. */
export const MAX_TOKEN_FILE_BYTES = 64 * 1024;

export function tokenSource(o: { token: string; file?: string; logger?: Logger }): () => string {
  if (!o.file) return () => o.token;
  const file = o.file;
  let last = o.token;
  let failing = false;
  return () => {
    try {
      const text = readFileSync(file, 'utf8');
      if (text.length > MAX_TOKEN_FILE_BYTES) throw new Error(`longer than ${MAX_TOKEN_FILE_BYTES} bytes`);
      const token = text.trim();
      if (!token) throw new Error('the file is empty');
      if (failing) o.logger?.info({ file }, 'token file readable again');
      failing = false;
      last = token;
    } catch (err) {
      if (!failing) o.logger?.warn({ file, err: errorMessage(err) }, 'cannot re-read the token file; presenting the last token read');
      failing = true;
    }
    return last;
  };
}
