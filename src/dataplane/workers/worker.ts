/**
 * A worker's side of the data-plane workers (see protocol.ts): the link to its primary. The state's one writer is
 * this link (`apply` gets each update the primary applied, in order); certificates come from the primary on request.
 * Invariants: `apply` sees the snapshot before any later update; the worker drains or stops only when the primary
 * says so, or when the primary is gone (the channel closed); signals to the worker itself are ignored (a Ctrl-C
 * reaches the whole process group, and the primary drives the drain).
 */
import cluster from 'node:cluster';
import { EventEmitter } from 'node:events';
import { StraitError, errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import type { LiveWork, StateUpdate, ToPrimary, ToWorker } from './protocol.js';
import { Requests, type RequestHandler } from './requests.js';

/** How often a draining worker looks whether its live work is done. */
const DRAIN_POLL_MS = 50;

export interface WorkerDrainTarget {
  /** Live work by kind (connections, accepting, hbone_streams); done when all are 0. */
  live(): LiveWork;
  tracked(): { live: number; finished: number };
  stopAccepting(): void;
  closeAll(): Promise<void>;
}

export interface PrimaryLinkOptions {
  log: Logger;
  /** The worker state's one writer: one update the primary applied (or one store of the snapshot). */
  apply(update: StateUpdate): void;
  /** What the primary may ask this worker (metrics, config dump, connections). */
  handlers: Record<string, RequestHandler>;
  onLogLevel(level: string): void;
}

export class PrimaryLink extends EventEmitter<{ 'cert-rotated': [string] }> {
  readonly requests: Requests;
  private target: WorkerDrainTarget | undefined;
  private stopping = false;

  private constructor(private readonly o: PrimaryLinkOptions, readonly slot: number) {
    super();
    this.requests = new Requests((m) => void send(m), 'the primary', o.handlers);
  }

  /** Says hello and waits for the slot and the state snapshot (applied before this resolves). */
  static connect(o: PrimaryLinkOptions): Promise<PrimaryLink> {
    if (!cluster.isWorker || typeof process.send !== 'function') throw new StraitError('STRAIT_ERR_BUG', 'BUG: PrimaryLink outside a cluster worker');
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => undefined);
    return new Promise((resolve) => {
      let link: PrimaryLink | undefined;
      const early: ToWorker[] = [];
      process.on('message', (m: ToWorker) => {
        if (!link) {
          if (m.t !== 'init') { early.push(m); return; }
          link = new PrimaryLink(o, m.slot);
          for (const u of m.snapshot) o.apply(u);
          for (const e of early.splice(0)) link.onMessage(e);
          resolve(link);
          return;
        }
        link.onMessage(m);
      });
      process.once('disconnect', () => {
        o.log.warn('the primary went away; this worker stops');
        void (link ? link.stop() : Promise.resolve()).finally(() => process.exit(0));
      });
      send({ t: 'hello' });
    });
  }

  /** Drain and close act on this once the data path is up. */
  serve(target: WorkerDrainTarget): void {
    this.target = target;
    send({ t: 'listening' });
  }

  ready(ready: boolean, detail: Record<string, unknown>): void {
    send({ t: 'ready', ready, detail });
  }

  /** The start failed: the primary is told why, then this process exits 1. */
  failed(err: unknown): void {
    const code = (err as { code?: string }).code ?? 'STRAIT_ERR_WORKER';
    this.o.log.error({ err: errorMessage(err) }, 'worker failed to start');
    void send({ t: 'failed', code, message: errorMessage(err) }).then(() => process.exit(1));
  }

  private onMessage(m: ToWorker): void {
    if (this.requests.handle(m)) return;
    switch (m.t) {
      case 'state': this.o.apply(m.update); return;
      case 'cert-rotated': this.emit('cert-rotated', m.identity); return;
      case 'log-level': this.o.onLogLevel(m.level); return;
      case 'drain': void this.drain(m.drainMs); return;
      case 'close': void this.stop().finally(() => process.exit(0)); return;
      default: this.o.log.warn({ message: m.t }, 'BUG: unexpected message from the primary');
    }
  }

  private async drain(drainMs: number): Promise<void> {
    const t = this.target;
    if (!t || this.stopping) return;
    this.stopping = true;
    const finishedBefore = t.tracked().finished;
    const pending = () => Object.values(t.live()).reduce((a, b) => a + b, 0);
    t.stopAccepting();
    send({ t: 'draining', live: t.live() });
    const until = Date.now() + drainMs;
    while (pending() > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, DRAIN_POLL_MS));
    const { live: closed, finished } = t.tracked();
    await t.closeAll().catch((err) => this.o.log.error({ err: errorMessage(err) }, 'worker: closing after the drain failed'));
    await send({ t: 'drained', completed: finished - finishedBefore, closed });
    this.requests.close();
    process.exit(0);
  }

  private async stop(): Promise<void> {
    this.stopping = true;
    this.requests.close();
    await this.target?.closeAll().catch(() => undefined);
  }
}

function send(m: ToPrimary): Promise<void> {
  if (!process.connected) return Promise.resolve();
  return new Promise((resolve) => process.send!(m, undefined, {}, () => resolve()));
}
