/**
 * One open watch: newline-delimited JSON `{type, object}` events from a chunked HTTP response, as an async
 * iterable. Invariants: a line longer than maxLineBytes ends the watch with an error; an ERROR event ends it with
 * the KubeApiError its Status describes (410 Expired: relist); close() ends it quietly; it is iterated once.
 */
import type http from 'node:http';
import { KubeApiError, kubeErrorFromStatus, type KubeRequestSubject, type KubeStatus } from './kube-error.js';
import type { KubeObject, StoredKubeObject, WatchEvent, WatchEventType } from './types.js';

const EVENT_TYPES: ReadonlySet<string> = new Set<WatchEventType>(['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK']);

export interface KubeWatchOptions {
  subject: KubeRequestSubject;
  server: string;
  maxLineBytes: number;
  apiVersion: string;
  kind: string;
  onClose: () => void;
}

export class KubeWatch<T extends KubeObject = KubeObject> implements AsyncIterable<WatchEvent<T>> {
  readonly #req: http.ClientRequest;
  readonly #res: http.IncomingMessage;
  readonly #opts: KubeWatchOptions;
  #closed = false;
  #iterated = false;

  constructor(req: http.ClientRequest, res: http.IncomingMessage, opts: KubeWatchOptions) {
    this.#req = req;
    this.#res = res;
    this.#opts = opts;
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#req.destroy();
    this.#opts.onClose();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<WatchEvent<T>> {
    if (this.#iterated) throw new KubeApiError('BUG: a watch stream is iterated once', 0, '', this.#opts.subject);
    this.#iterated = true;
    let pending: Buffer = Buffer.alloc(0);
    try {
      try {
        for await (const chunk of this.#res as AsyncIterable<Buffer>) {
          pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
          let start = 0;
          for (let nl = pending.indexOf(10, start); nl >= 0; nl = pending.indexOf(10, start)) {
            const line = pending.subarray(start, nl);
            start = nl + 1;
            const ev = this.#parse(line);
            if (ev) yield ev;
            if (this.#closed) return;
          }
          pending = pending.subarray(start);
          if (pending.length > this.#opts.maxLineBytes) throw this.#broken(`a watch event is longer than ${this.#opts.maxLineBytes} bytes`);
        }
      } catch (err) {
        if (this.#closed) return;
        if (err instanceof KubeApiError) throw err;
        throw this.#broken(`the watch stream broke: ${err instanceof Error ? err.message : String(err)}`, err);
      }
      const last = this.#parse(pending);
      if (last && !this.#closed) yield last;
    } finally {
      this.close();
    }
  }

  #parse(line: Buffer): WatchEvent<T> | undefined {
    if (line.length === 0 || line.every((b) => b === 32 || b === 13 || b === 9)) return undefined;
    let ev: { type?: unknown; object?: unknown };
    try {
      ev = JSON.parse(line.toString('utf8')) as typeof ev;
    } catch (err) {
      throw this.#broken('a watch event is not JSON', err);
    }
    if (ev.type === 'ERROR') {
      const status = (ev.object ?? {}) as KubeStatus;
      throw kubeErrorFromStatus(typeof status.code === 'number' ? status.code : 500, status, this.#opts.subject, this.#opts.server);
    }
    if (typeof ev.type !== 'string' || !EVENT_TYPES.has(ev.type) || typeof ev.object !== 'object' || ev.object === null) {
      throw this.#broken(`a watch event has an unknown type or no object (${String(ev.type)})`);
    }
    const object = ev.object as StoredKubeObject<T>;
    object.apiVersion ??= this.#opts.apiVersion;
    object.kind ??= this.#opts.kind;
    return { type: ev.type as WatchEventType, object };
  }

  #broken(what: string, cause?: unknown): KubeApiError {
    const s = this.#opts.subject;
    return new KubeApiError(`watch of ${s.type.resource} from ${this.#opts.server}: ${what}; the watch is restarted from the last resourceVersion`, 0, '', s, cause === undefined ? {} : { cause });
  }
}
