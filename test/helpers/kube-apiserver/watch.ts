/**
 * One watch stream of the double: newline-delimited `{type, object}` JSON over a chunked 200 response, filtered
 * by namespace and selectors (an object that starts or stops matching is ADDED or DELETED, as the API server does),
 * BOOKMARK events when the client allowed them, ended by timeoutSeconds, the test (dropWatches) or the client.
 */
import type { ServerResponse } from 'node:http';
import type { KindDef } from './registry.js';
import { present } from './objects.js';
import type { Matcher } from './selectors.js';
import type { Obj, StoreEvent } from './store.js';
import type { ApiError } from './status.js';

export interface WatchInfo {
  group: string;
  resource: string;
  namespace: string | undefined;
  user: string;
  /** The resourceVersion the watch started from ('' for "now, with the current state first"). */
  resourceVersion: string;
  bookmarks: boolean;
  /** The last resourceVersion sent (event or bookmark). */
  lastSent: string;
}

export class WatchConn {
  readonly info: WatchInfo;
  #ended = false;
  #timer: NodeJS.Timeout | undefined;
  #onEnd: () => void = () => {};

  constructor(
    readonly kind: KindDef,
    readonly version: string,
    readonly res: ServerResponse,
    readonly filter: { namespace: string | undefined; labels: Matcher; fields: Matcher },
    info: Omit<WatchInfo, 'lastSent' | 'group' | 'resource'>,
  ) {
    this.info = { ...info, group: kind.group, resource: kind.resource, lastSent: info.resourceVersion };
    res.on('close', () => this.end());
  }

  get ended(): boolean {
    return this.#ended;
  }

  start(timeoutSeconds: number | undefined, onEnd: () => void): void {
    this.#onEnd = onEnd;
    this.res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' });
    this.res.flushHeaders();
    if (timeoutSeconds !== undefined && timeoutSeconds > 0) this.#timer = setTimeout(() => this.end(), timeoutSeconds * 1000);
  }

  matches(o: Obj): boolean {
    if (this.filter.namespace !== undefined && o['metadata']?.namespace !== this.filter.namespace) return false;
    return this.filter.labels(o) && this.filter.fields(o);
  }

  /** Sends a store event, translated for this watch's filter. */
  deliver(e: StoreEvent): void {
    if (this.#ended) return;
    const now = this.matches(e.object);
    const before = e.prev !== undefined && this.matches(e.prev);
    let type: string | undefined;
    if (e.type === 'ADDED') type = now ? 'ADDED' : undefined;
    else if (e.type === 'DELETED') type = before ? 'DELETED' : undefined;
    else type = now && before ? 'MODIFIED' : now ? 'ADDED' : before ? 'DELETED' : undefined;
    if (type) this.send(type, e.object);
  }

  send(type: string, object: Obj): void {
    if (this.#ended) return;
    this.info.lastSent = String(object['metadata']?.resourceVersion ?? this.info.lastSent);
    this.res.write(JSON.stringify({ type, object: present(this.kind, this.version, object) }) + '\n');
  }

  bookmark(rv: number, annotations?: Record<string, string>): void {
    if (this.#ended || !this.info.bookmarks) return;
    this.info.lastSent = String(rv);
    const object = { kind: this.kind.kind, apiVersion: this.kind.group ? `${this.kind.group}/${this.version}` : this.version, metadata: { resourceVersion: String(rv), ...(annotations ? { annotations } : {}) } };
    this.res.write(JSON.stringify({ type: 'BOOKMARK', object }) + '\n');
  }

  /** An ERROR event carrying a Status, then the end (410 Expired for a compacted resourceVersion). */
  error(err: ApiError): void {
    if (this.#ended) return;
    this.res.write(JSON.stringify({ type: 'ERROR', object: err.toStatus() }) + '\n');
    this.end();
  }

  /** Ends the stream cleanly (as a server-side timeout does); `abrupt` resets the connection instead. */
  end(abrupt = false): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (abrupt) this.res.socket?.destroy();
    else this.res.end();
    this.#onEnd();
  }
}
