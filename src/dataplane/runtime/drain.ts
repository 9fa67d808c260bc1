/**
 * A proxy's drain (SIGTERM, SIGINT, /quitquitquit): stop accepting, let live work finish for `drainMs`, then close
 * the rest and stop. Invariants: the drain runs at most once (start() and close() share one promise); `stopped`
 * resolves only after everything is closed and the last log line written.
 */
import type { Logger } from '../../common/log.js';

/** How often the drain looks whether the live work is done. */
const DRAIN_POLL_MS = 50;

export interface DrainTarget {
  drainMs: number;
  log: Logger;
  /** Live work by kind, logged when the drain starts (e.g. connections, accepting, hbone_streams); done when all are 0. */
  live(): Record<string, number>;
  /** Connections tracked now, and finished since start (the closing lines report them). */
  tracked(): { live: number; finished: number };
  /** Stop taking new work (close the listeners, GOAWAY the HBONE peers). */
  stopAccepting(): void;
  /** Close everything still open and release every resource. */
  closeAll(): Promise<void>;
}

export class Drain {
  readonly stopped: Promise<void>;
  private resolveStopped!: () => void;
  private running: Promise<void> | undefined;
  private drainingNow = false;

  constructor(private readonly t: DrainTarget) {
    this.stopped = new Promise<void>((r) => (this.resolveStopped = r));
  }

  /** True from the start of the drain: readiness answers 503. */
  get draining(): boolean {
    return this.drainingNow;
  }

  /** Drains, then stops; resolves when stopped. A second call returns the same promise. */
  start(): Promise<void> {
    this.running ??= this.drain();
    return this.running;
  }

  /** Stops at once, closing every connection (or waits for a drain already running). */
  close(): Promise<void> {
    this.running ??= this.stop();
    return this.running;
  }

  private async drain(): Promise<void> {
    const { t } = this;
    this.drainingNow = true;
    const startedAt = Date.now();
    const finishedBefore = t.tracked().finished;
    const pending = () => Object.values(t.live()).reduce((a, b) => a + b, 0);
    t.log.info({ drain_ms: t.drainMs, ...t.live() }, 'drain started: no longer accepting; live connections may finish');
    t.stopAccepting();
    const until = startedAt + t.drainMs;
    while (pending() > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, DRAIN_POLL_MS));
    const { live: remaining, finished } = t.tracked();
    const completed = finished - finishedBefore;
    if (pending() > 0) t.log.warn({ remaining, drain_ms: t.drainMs }, 'drain period over; closing the remaining connections');
    await this.stop(() => t.log.info({ completed, closed: remaining, duration_ms: Date.now() - startedAt }, 'drain finished; stopped'));
  }

  private async stop(last?: () => void): Promise<void> {
    await this.t.closeAll();
    last?.();
    this.resolveStopped();
  }
}
