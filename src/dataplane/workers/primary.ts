/**
 * The primary's side of the data-plane workers (see protocol.ts for what runs where): forks them with `cluster`
 * (SCHED_NONE: one shared listening socket per address, the kernel distributing accepts), feeds them the state and
 * answers their requests, merges what they report, drains them, and starts again a worker that dies.
 * Invariants: each slot 1..count has at most one live worker; a worker receives `state`/`cert-rotated` messages only
 * after its `init` (whose snapshot holds everything applied before it), so it never misses or repeats an update; once
 * stopping, no worker is started again.
 */
import cluster, { type Worker } from 'node:cluster';
import { Counter, Gauge, type Registry } from 'prom-client';
import { StraitError, errorMessage, type ErrorCode } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import type { LiveWork, StateUpdate, ToPrimary, ToWorker } from './protocol.js';
import { Requests, type RequestHandler } from './requests.js';

/** A worker that dies sooner than this after its start counts as crash-looping: its restart waits (doubling). */
const QUICK_DEATH_MS = 10_000;
const RESTART_MIN_DELAY_MS = 500;
const RESTART_MAX_DELAY_MS = 30_000;
/** How long a worker may take to close its listeners after `drain` before the drain goes on without its count. */
const DRAIN_ACK_MS = 2_000;
/** After its drain period, how long a worker may take to close everything and exit before SIGKILL. */
const EXIT_GRACE_MS = 5_000;
/** How long the start waits for every worker to listen. */
const START_TIMEOUT_MS = 30_000;

export interface WorkerPoolMetrics {
  restarts: Counter<'reason'>;
  ready: Gauge;
}

/** The primary's worker metrics: restarts (by reason: exit code or signal) and workers ready now. */
export function workerPoolMetrics(registry: Registry, readyNow: () => number): WorkerPoolMetrics {
  return {
    restarts: new Counter({
      name: 'strait_worker_restarts_total',
      help: 'Data-plane workers started again after they died, by reason (exit: a non-zero exit code; signal: killed, e.g. SIGKILL by the OOM killer).',
      labelNames: ['reason'], registers: [registry],
    }),
    ready: new Gauge({
      name: 'strait_workers_ready', help: 'Data-plane workers serving now (of --workers).', registers: [registry],
      collect() { this.set(readyNow()); },
    }),
  };
}

export interface WorkerPoolOptions {
  count: number;
  log: Logger;
  drainMs: number;
  /** The state a new worker starts from: every store's contents now. */
  snapshot(): StateUpdate[];
  /** What workers may ask the primary for (e.g. `cert`). */
  handlers: Record<string, RequestHandler>;
  metrics: WorkerPoolMetrics;
}

interface Slot {
  readonly n: number;
  worker?: Worker;
  requests?: Requests;
  initialised: boolean;
  listening: boolean;
  ready: boolean;
  detail: Record<string, unknown>;
  startedAt: number;
  quickDeaths: number;
  restarts: number;
  restartTimer?: NodeJS.Timeout;
  draining?: (live: LiveWork) => void;
  drained?: { completed: number; closed: number };
}

export interface WorkerReport<T> { worker: number; pid: number | undefined; body?: T; error?: string }

export class WorkerPool {
  private readonly slots: Slot[];
  private stopping = false;
  private starting: { resolve: () => void; reject: (e: Error) => void } | undefined;

  constructor(private readonly o: WorkerPoolOptions) {
    if (!cluster.isPrimary) throw new StraitError('STRAIT_ERR_BUG', 'BUG: a WorkerPool made in a worker');
    this.slots = Array.from({ length: o.count }, (_, i) => ({ n: i + 1, initialised: false, listening: false, ready: false, detail: {}, startedAt: 0, quickDeaths: 0, restarts: 0 }));
  }

  /** Forks every worker; resolves once each listens, rejects with the first one's failure (then stops the rest). */
  async start(): Promise<void> {
    // Frozen at the first fork: shared sockets, accepted by whichever worker the kernel wakes (see protocol.ts).
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    const started = new Promise<void>((resolve, reject) => { this.starting = { resolve, reject }; });
    const timer = setTimeout(() => this.starting?.reject(new StraitError('STRAIT_ERR_WORKER', `the workers did not all listen within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
    for (const s of this.slots) this.fork(s);
    try {
      await started;
    } catch (err) {
      await this.close();
      throw err;
    } finally {
      clearTimeout(timer);
      this.starting = undefined;
    }
  }

  /** Sends a message to every initialised worker (state updates, rotated certificates, log level). */
  broadcast(m: ToWorker): void {
    for (const s of this.slots) if (s.initialised && s.worker?.isConnected()) this.send(s, m);
  }

  /** Asks every live worker; a worker that fails or does not answer is reported with its error. */
  async ask<T>(what: string, timeoutMs?: number): Promise<WorkerReport<T>[]> {
    return Promise.all(this.slots.map(async (s): Promise<WorkerReport<T>> => {
      const pid = s.worker?.process.pid;
      if (!s.requests || !s.initialised) return { worker: s.n, pid, error: 'starting' };
      try {
        return { worker: s.n, pid, body: await s.requests.request<T>(what, undefined, timeoutMs) };
      } catch (err) {
        return { worker: s.n, pid, error: errorMessage(err) };
      }
    }));
  }

  /** Ready when every worker listens, has its state and its certificates. */
  readiness(): { ready: boolean; detail: Record<string, unknown> } {
    const waiting = this.slots.filter((s) => !s.ready);
    return {
      ready: waiting.length === 0,
      detail: { workers: waiting.length === 0 ? 'ok' : `${this.slots.length - waiting.length}/${this.slots.length} ready`, ...(waiting.length ? { waiting: waiting.map((s) => ({ worker: s.n, ...s.detail })) } : {}) },
    };
  }

  readyCount(): number {
    return this.slots.filter((s) => s.ready).length;
  }

  /** Per worker: pid, readiness, restarts (config_dump). */
  list(): { worker: number; pid: number | undefined; ready: boolean; restarts: number }[] {
    return this.slots.map((s) => ({ worker: s.n, pid: s.worker?.process.pid, ready: s.ready, restarts: s.restarts }));
  }

  /**
   * Drains every worker: each stops accepting (its listeners close: once all have, the kernel refuses new
   * connections), lets its connections finish for drainMs, closes the rest and exits. `onStopped` is called with
   * the summed live work once every worker stopped accepting. Resolves with the summed outcome when all exited.
   */
  async drain(onStopped: (live: LiveWork) => void): Promise<{ completed: number; closed: number }> {
    this.stopping = true;
    const live = this.alive();
    const acks = live.map((s) => new Promise<LiveWork>((resolve) => {
      const t = setTimeout(() => resolve({}), DRAIN_ACK_MS);
      s.draining = (w) => { clearTimeout(t); resolve(w); };
      s.worker!.once('exit', () => { clearTimeout(t); resolve({}); });
      this.send(s, { t: 'drain', drainMs: this.o.drainMs });
    }));
    const sum: LiveWork = {};
    for (const w of await Promise.all(acks)) for (const [k, v] of Object.entries(w)) sum[k] = (sum[k] ?? 0) + v;
    onStopped(sum);
    await this.exits(live, this.o.drainMs + EXIT_GRACE_MS);
    return live.reduce((a, s) => ({ completed: a.completed + (s.drained?.completed ?? 0), closed: a.closed + (s.drained?.closed ?? 0) }), { completed: 0, closed: 0 });
  }

  /** Stops every worker at once (each closes its connections). */
  async close(): Promise<void> {
    this.stopping = true;
    const live = this.alive();
    for (const s of live) this.send(s, { t: 'close' });
    await this.exits(live, EXIT_GRACE_MS);
  }

  private alive(): Slot[] {
    for (const s of this.slots) if (s.restartTimer) clearTimeout(s.restartTimer);
    return this.slots.filter((s) => s.worker && s.worker.exitedAfterDisconnect !== true && s.worker.process.exitCode === null && s.worker.process.signalCode === null);
  }

  private async exits(slots: Slot[], withinMs: number): Promise<void> {
    await Promise.all(slots.map((s) => new Promise<void>((resolve) => {
      const w = s.worker!;
      if (w.process.exitCode !== null || w.process.signalCode !== null) return resolve();
      const t = setTimeout(() => {
        this.o.log.warn({ worker: s.n, pid: w.process.pid, within_ms: withinMs }, 'worker did not exit in time; killing it');
        w.process.kill('SIGKILL');
      }, withinMs);
      w.process.once('exit', () => { clearTimeout(t); resolve(); });
    })));
  }

  private send(s: Slot, m: ToWorker): void {
    try {
      s.worker?.send(m);
    } catch (err) {
      this.o.log.warn({ worker: s.n, err: errorMessage(err) }, 'cannot send to a worker (it is exiting)');
    }
  }

  private fork(s: Slot): void {
    s.restartTimer = undefined;
    if (this.stopping) return;
    const w = cluster.fork();
    Object.assign(s, { worker: w, initialised: false, listening: false, ready: false, detail: { state: 'starting' }, startedAt: Date.now(), drained: undefined, draining: undefined });
    const requests = new Requests((m) => w.send(m), `worker ${s.n}`, this.o.handlers);
    s.requests = requests;
    w.on('message', (m: ToPrimary) => this.onMessage(s, w, m));
    w.on('error', (err) => this.o.log.warn({ worker: s.n, err: errorMessage(err) }, 'worker channel error'));
    w.process.once('exit', (code, signal) => {
      requests.close();
      if (s.worker !== w) return;
      s.ready = false;
      s.initialised = false;
      this.onExit(s, w, code, signal);
    });
  }

  private onMessage(s: Slot, w: Worker, m: ToPrimary): void {
    if (s.worker !== w) return;
    if (s.requests?.handle(m)) return;
    switch (m.t) {
      case 'hello':
        this.send(s, { t: 'init', slot: s.n, snapshot: this.o.snapshot() });
        s.initialised = true;
        return;
      case 'listening':
        s.listening = true;
        if (this.starting && this.slots.every((x) => x.listening)) this.starting.resolve();
        return;
      case 'ready':
        s.ready = m.ready;
        s.detail = m.detail;
        return;
      case 'failed':
        this.o.log.error({ worker: s.n, pid: w.process.pid, code: m.code, err: m.message }, 'worker failed to start');
        this.starting?.reject(new StraitError(m.code as ErrorCode, m.message));
        return;
      case 'draining':
        s.draining?.(m.live);
        return;
      case 'drained':
        s.drained = { completed: m.completed, closed: m.closed };
        return;
      default:
        this.o.log.warn({ worker: s.n, message: (m as { t?: unknown }).t }, 'BUG: unknown message from a worker');
    }
  }

  private onExit(s: Slot, w: Worker, code: number | null, signal: string | null): void {
    if (this.stopping) return;
    if (this.starting) {
      this.starting.reject(new StraitError('STRAIT_ERR_WORKER', `worker ${s.n} exited while starting (${signal ?? `code ${code}`}); its log lines above say why`));
      return;
    }
    const lived = Date.now() - s.startedAt;
    s.quickDeaths = lived < QUICK_DEATH_MS ? s.quickDeaths + 1 : 0;
    const delay = s.quickDeaths === 0 ? 0 : Math.min(RESTART_MAX_DELAY_MS, RESTART_MIN_DELAY_MS * 2 ** (s.quickDeaths - 1));
    s.restarts++;
    this.o.metrics.restarts.inc({ reason: signal ? 'signal' : 'exit' });
    this.o.log.error({ worker: s.n, pid: w.process.pid, code, signal, lived_ms: lived, restart_in_ms: delay, restarts: s.restarts }, 'worker exited; starting it again');
    s.restartTimer = setTimeout(() => this.fork(s), delay);
  }
}
