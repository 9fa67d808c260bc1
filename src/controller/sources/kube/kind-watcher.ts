/**
 * List-then-watch of one kind, as client-go's reflector does it. Invariants: the watch resumes from the last
 * resourceVersion seen (events and bookmarks), so a dropped stream loses and repeats nothing; a 410 Expired
 * means a relist whose result replaces this kind's whole state (deletions missed in the gap are applied);
 * errors back off with jitter up to the maximum; a custom kind whose CRD is missing is retried slowly and never
 * fails the source; every state change is logged once.
 */
import { errorMessage } from '../../../common/errors.js';
import type { Logger } from '../../../common/log.js';
import {
  isKindNotServed,
  isKubeApiError,
  isResourceExpired,
  type KubeClient,
  type KubeResourceType,
  type KubeWatch,
  type StoredKubeObject,
} from '../../../common/kube/index.js';
import type { Problem } from '../../../common/model/types.js';
import type { SourceEvent } from '../../store.js';
import { Backoff, jittered } from './backoff.js';
import { kindErrorProblem, missingCrdProblem, objectEvent, watchEvent, keyOf } from './events.js';
import type { WatchedKind } from './kinds.js';

/** Where a watcher sends what it learns (the KubeSource). */
export interface KindSink {
  /** The kind's whole state after a (re)list: every object as an event, keyed by store key, with its resourceVersion. */
  replace(kind: WatchedKind, objects: Map<string, { rv: string; event: SourceEvent }>): void;
  /** One change from the watch. `rv` is the object's resourceVersion (for upserts). */
  apply(kind: WatchedKind, key: string, rv: string | undefined, event: SourceEvent): void;
  /** Problems about the kind as a whole (missing CRD, forbidden); [] clears them. */
  problems(kind: WatchedKind, problems: Problem[]): void;
}

export interface KindWatcherMetrics {
  event(kind: string, type: string): void;
  relist(kind: string, reason: 'start' | 'expired' | 'recovered' | 'crd'): void;
  error(kind: string, status: string): void;
  up(kind: string, up: boolean): void;
}

export interface KindWatcherOptions {
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** How often a missing CRD is looked for again. */
  crdRetryMs: number;
  /** timeoutSeconds of each watch request (the server ends the stream then; it is reopened at once). */
  watchTimeoutSeconds?: number;
  pageSize?: number;
}

type State = 'listing' | 'watching' | 'missing' | 'failing' | 'closed';

/** A watch that ends before this with no event counts as a failure (backoff), so a server that closes at once is not hammered. */
const MIN_HEALTHY_WATCH_MS = 1000;

export class KindWatcher {
  #rv = '';
  #version = 0;
  #state: State = 'listing';
  #logged = '';
  #closed = false;
  #watch: KubeWatch | undefined;
  #sleep: { timer: NodeJS.Timeout; wake: () => void } | undefined;
  readonly #backoff: Backoff;
  readonly #firstListing: Promise<void>;
  #listed!: () => void;
  #loop: Promise<void> | undefined;

  constructor(
    private readonly client: KubeClient,
    readonly kind: WatchedKind,
    private readonly sink: KindSink,
    private readonly log: Logger,
    private readonly metrics: KindWatcherMetrics,
    private readonly opts: KindWatcherOptions,
  ) {
    this.#backoff = new Backoff({ initialMs: opts.backoffInitialMs, maxMs: opts.backoffMaxMs });
    this.#firstListing = new Promise((r) => (this.#listed = r));
  }

  /** The resourceVersion a watch would resume from. */
  get resourceVersion(): string {
    return this.#rv;
  }

  get state(): State {
    return this.#state;
  }

  /** Starts the loop; resolves after the first listing (or once a missing CRD has been reported). */
  start(): Promise<void> {
    this.#loop ??= this.#run();
    return this.#firstListing;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#state = 'closed';
    this.#watch?.close();
    if (this.#sleep) {
      clearTimeout(this.#sleep.timer);
      this.#sleep.wake();
    }
    await this.#loop;
  }

  get #type(): KubeResourceType {
    return this.kind.types[this.#version]!;
  }

  async #run(): Promise<void> {
    let needList = true;
    let relistReason: 'start' | 'expired' | 'recovered' | 'crd' = 'start';
    while (!this.#closed) {
      try {
        if (needList) {
          this.#state = 'listing';
          const objects = await this.#list();
          this.metrics.relist(this.kind.id, relistReason);
          needList = false;
          this.#backoff.reset();
          this.sink.problems(this.kind, []);
          this.sink.replace(this.kind, objects);
          this.#listed();
        }
        this.#state = 'watching';
        this.metrics.up(this.kind.id, true);
        this.#note('watching', 'info', `watching ${this.kind.id}`, { resourceVersion: this.#rv, version: this.#type.version });
        const healthy = await this.#watchOnce();
        if (!healthy) await this.#pause(this.#backoff.next());
        else this.#backoff.reset();
      } catch (err) {
        if (this.#closed) break;
        this.metrics.up(this.kind.id, false);
        if (isResourceExpired(err)) {
          // The resume point was compacted away: relist and replace the whole kind (deletions in the gap included).
          this.metrics.error(this.kind.id, '410');
          this.#note('expired', 'info', `the ${this.kind.id} watch's resourceVersion is too old (410); listing again`, { resourceVersion: this.#rv });
          needList = true;
          relistReason = 'expired';
          continue;
        }
        if (isKindNotServed(err) && this.kind.optional) {
          if (this.#version + 1 < this.kind.types.length) {
            this.#version++;
            needList = true;
            continue;
          }
          this.#missing();
          needList = true;
          relistReason = 'crd';
          await this.#pause(jittered(this.opts.crdRetryMs));
          this.#version = 0;
          continue;
        }
        const status = isKubeApiError(err) ? String(err.status) : 'error';
        this.metrics.error(this.kind.id, status);
        this.#state = 'failing';
        const delay = this.#backoff.next();
        this.#note(`failing:${status}`, 'warn', `${needList ? 'listing' : 'watching'} ${this.kind.id} failed; retrying with backoff`, { err: errorMessage(err), status, retryInMs: delay });
        if (isKubeApiError(err) && (err.status === 401 || err.status === 403 || err.status === 404)) this.sink.problems(this.kind, [kindErrorProblem(err.message)]);
        if (needList) relistReason = 'recovered';
        await this.#pause(delay);
      }
    }
  }

  async #list(): Promise<Map<string, { rv: string; event: SourceEvent }>> {
    const type = this.#type;
    const { items, resourceVersion } = await this.client.listAll(type, {
      ...(this.kind.namespace !== undefined ? { namespace: this.kind.namespace } : {}),
      ...(this.kind.fieldSelector ? { fieldSelector: this.kind.fieldSelector } : {}),
      ...(this.opts.pageSize ? { pageSize: this.opts.pageSize } : {}),
    });
    const objects = new Map<string, { rv: string; event: SourceEvent }>();
    for (const o of items) objects.set(keyOf(type, o), { rv: o.metadata.resourceVersion, event: objectEvent(type, o) });
    this.#rv = resourceVersion;
    return objects;
  }

  /** One watch request until its stream ends; returns whether it was healthy (events came or it lasted). */
  async #watchOnce(): Promise<boolean> {
    const type = this.#type;
    const started = Date.now();
    let events = 0;
    const w = await this.client.watch(type, {
      resourceVersion: this.#rv,
      allowWatchBookmarks: true,
      ...(this.kind.namespace !== undefined ? { namespace: this.kind.namespace } : {}),
      ...(this.kind.fieldSelector ? { fieldSelector: this.kind.fieldSelector } : {}),
      ...(this.opts.watchTimeoutSeconds ? { timeoutSeconds: this.opts.watchTimeoutSeconds } : {}),
    });
    this.#watch = w;
    try {
      for await (const ev of w) {
        events++;
        this.metrics.event(this.kind.id, ev.type);
        const rv = ev.object.metadata?.resourceVersion;
        const e = watchEvent(type, ev as { type: typeof ev.type; object: StoredKubeObject });
        if (e) this.sink.apply(this.kind, keyOf(type, ev.object), ev.type === 'DELETED' ? undefined : rv, e);
        if (rv) this.#rv = rv;
      }
    } finally {
      this.#watch = undefined;
      w.close();
    }
    return events > 0 || Date.now() - started >= MIN_HEALTHY_WATCH_MS;
  }

  #missing(): void {
    this.#state = 'missing';
    this.metrics.up(this.kind.id, false);
    const type = this.kind.types[0]!;
    this.#note('missing', 'warn', `the CRD ${type.crd?.name ?? this.kind.id} is not installed; ${type.kind} objects are not read until it is`, { retryInMs: this.opts.crdRetryMs });
    // Whatever was read before the CRD went away is gone with it.
    this.#rv = '';
    this.sink.replace(this.kind, new Map());
    this.sink.problems(this.kind, [missingCrdProblem(type, this.opts.crdRetryMs)]);
    this.#listed();
  }

  /** Logs a line when the watcher's state changes (not on every retry). */
  #note(state: string, level: 'info' | 'warn', msg: string, fields: Record<string, unknown>): void {
    if (this.#logged === state) return;
    const recovered = this.#logged.startsWith('failing') || this.#logged === 'missing';
    this.#logged = state;
    this.log[level]({ kind: this.kind.id, ...fields }, recovered && state === 'watching' ? `${msg} (recovered)` : msg);
  }

  #pause(ms: number): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        this.#sleep = undefined;
        resolve();
      };
      this.#sleep = { timer: setTimeout(wake, ms), wake };
    });
  }
}
