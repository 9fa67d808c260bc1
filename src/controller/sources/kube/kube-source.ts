/**
 * The Kubernetes config source: one KindWatcher per kind (kinds.ts), feeding the store the same per-object
 * events as the file source. Invariants: the store's first batch is the whole state of every kind (sent once all
 * are listed, as a resync); a relist of one kind (after 410) sends the whole state again as a resync batch, so
 * what vanished during the gap is deleted and what did not change is not re-announced (the store ignores identical
 * upserts); watch events that carry a version already held are dropped; changes arriving together are sent as one
 * batch.
 */
import type { Logger } from '../../../common/log.js';
import type { KubeClient } from '../../../common/kube/index.js';
import type { Problem } from '../../../common/model/types.js';
import type { ConfigSource, SourceEvent, SourceSink } from '../../store.js';
import { DEFAULT_KUBE_BACKOFF_INITIAL_MS, DEFAULT_KUBE_BACKOFF_MAX_MS } from './backoff.js';
import { KindWatcher, type KindSink, type KindWatcherMetrics } from './kind-watcher.js';
import { watchedKinds, type WatchedKind } from './kinds.js';

/** How often a missing CRD is looked for again. */
export const DEFAULT_KUBE_CRD_RETRY_MS = 30_000;

export interface KubeSourceOptions {
  /** Istio's root namespace: where the mesh-config ConfigMap `istio` is read from. */
  rootNamespace: string;
  log: Logger;
  metrics?: KindWatcherMetrics;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  crdRetryMs?: number;
  watchTimeoutSeconds?: number;
  pageSize?: number;
}

type KindState = Map<string, { rv: string; event: SourceEvent }>;

const NO_METRICS: KindWatcherMetrics = { event() {}, relist() {}, error() {}, up() {} };

export class KubeSource implements ConfigSource, KindSink {
  readonly name = 'kubernetes';
  readonly #client: KubeClient;
  readonly #opts: KubeSourceOptions;
  readonly #watchers: KindWatcher[];
  readonly #state = new Map<string, KindState>();
  readonly #problems = new Map<string, Problem[]>();
  #sink: SourceSink | undefined;
  #started = false;
  #pending: SourceEvent[] = [];
  #pendingSince = 0;
  #flush: NodeJS.Immediate | undefined;

  constructor(client: KubeClient, opts: KubeSourceOptions) {
    this.#client = client;
    this.#opts = opts;
    const metrics = opts.metrics ?? NO_METRICS;
    const watcherOpts = {
      backoffInitialMs: opts.backoffInitialMs ?? DEFAULT_KUBE_BACKOFF_INITIAL_MS,
      backoffMaxMs: opts.backoffMaxMs ?? DEFAULT_KUBE_BACKOFF_MAX_MS,
      crdRetryMs: opts.crdRetryMs ?? DEFAULT_KUBE_CRD_RETRY_MS,
      ...(opts.watchTimeoutSeconds ? { watchTimeoutSeconds: opts.watchTimeoutSeconds } : {}),
      ...(opts.pageSize ? { pageSize: opts.pageSize } : {}),
    };
    this.#watchers = watchedKinds(opts.rootNamespace).map((k) => new KindWatcher(client, k, this, opts.log.child({ source: 'kubernetes' }), metrics, watcherOpts));
  }

  /** The watchers' resume points by kind id (for tests and /debug). */
  resourceVersions(): Record<string, string> {
    return Object.fromEntries(this.#watchers.map((w) => [w.kind.id, w.resourceVersion]));
  }

  async start(sink: SourceSink): Promise<void> {
    this.#sink = sink;
    this.#opts.log.info({ server: this.#client.server, kinds: this.#watchers.length }, 'listing configuration from the Kubernetes API');
    await Promise.all(this.#watchers.map((w) => w.start()));
    this.#started = true;
    this.#resync();
    const objects = [...this.#state.values()].reduce((n, s) => n + s.size, 0);
    this.#opts.log.info({ objects }, 'Kubernetes source listed every kind; watching');
  }

  async close(): Promise<void> {
    this.#started = false;
    if (this.#flush) clearImmediate(this.#flush);
    await Promise.all(this.#watchers.map((w) => w.close()));
  }

  // ---------- KindSink ----------

  replace(kind: WatchedKind, objects: KindState): void {
    this.#state.set(kind.id, objects);
    if (this.#started) this.#resync();
  }

  apply(kind: WatchedKind, key: string, rv: string | undefined, event: SourceEvent): void {
    const state = this.#state.get(kind.id) ?? this.#state.set(kind.id, new Map()).get(kind.id)!;
    if (event.type === 'delete') {
      if (!state.delete(key)) return;
    } else {
      if (rv !== undefined && state.get(key)?.rv === rv) return; // a version already held (a replayed event)
      state.set(key, { rv: rv ?? '', event });
    }
    if (this.#started) this.#queue(event);
  }

  problems(kind: WatchedKind, problems: Problem[]): void {
    const before = this.#problems.get(kind.id) ?? [];
    if (before.length === 0 && problems.length === 0) return;
    if (problems.length === 0) this.#problems.delete(kind.id);
    else this.#problems.set(kind.id, problems);
    if (this.#started) this.#queue({ type: 'problems', scope: scopeOf(kind), problems });
  }

  // ---------- batches ----------

  #queue(e: SourceEvent): void {
    if (this.#pending.length === 0) this.#pendingSince = Date.now();
    this.#pending.push(e);
    this.#flush ??= setImmediate(() => {
      this.#flush = undefined;
      const events = this.#pending;
      this.#pending = [];
      if (events.length > 0 && this.#started) this.#sink?.(events, this.#pendingSince);
    });
  }

  /** Sends the whole state of every kind as one resync batch (queued changes go first, so order is kept). */
  #resync(): void {
    if (this.#flush) {
      clearImmediate(this.#flush);
      this.#flush = undefined;
    }
    const changedAt = this.#pending.length > 0 ? this.#pendingSince : Date.now();
    this.#pending = [];
    const events: SourceEvent[] = [];
    for (const state of this.#state.values()) for (const { event } of state.values()) events.push(event);
    for (const w of this.#watchers) {
      const ps = this.#problems.get(w.kind.id);
      if (ps) events.push({ type: 'problems', scope: scopeOf(w.kind), problems: ps });
    }
    this.#sink?.(events, changedAt, { resync: true });
  }
}

function scopeOf(kind: WatchedKind): string {
  return `kubernetes:${kind.id}`;
}
