/**
 * Keeps one component of the local mesh running: starts its process, proves it ready (its own pid answers the
 * readiness URL), and whenever it crashes (exits non-zero or is killed by a signal) starts it again after a delay that
 * doubles with each failure in a row (RESTART_BASE_MS up to RESTART_MAX_MS; a process that stayed up STABLE_AFTER_MS
 * starts the count afresh). A component exits 0 only when told to stop (SIGTERM, SIGINT, SIGHUP, /quitquitquit):
 * someone stopped it on purpose (to see the mesh without that node, say), so it stays stopped, as `docker stop` is.
 * Invariants: at most one process at a time; `pid` is that process's pid while it is ready and null otherwise, so
 * what the mesh reports never names a dead process; `onChange` runs after every change of `status` or `pid`;
 * after stop() nothing is started again.
 */
import { StraitError, errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { describeExit, type ChildSpec, type MeshChild } from './child.js';
import { httpGetIn, waitListening, waitReady, type ReadyOutcome } from './readiness.js';

export const RESTART_BASE_MS = 500;
export const RESTART_MAX_MS = 30_000;
export const STABLE_AFTER_MS = 30_000;

/** Delay before the next start after `failures` failures in a row: 0.5 s, 1 s, 2 s … 30 s. */
export function restartDelayMs(failures: number): number {
  return Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** Math.min(failures, 16));
}

export interface ComponentSpec extends ChildSpec {
  /** For people: "controller", "ztunnel on node-a", "demo app shop/web-1/app:8080". */
  what: string;
  /**
   * Answers 200 with the process's pid (PID_HEADER) once it is ready; asked from inside the child's network namespace
   * when it has one. None: `readyListen` says when it is ready, or else it is once started.
   */
  readyUrl?: string;
  /** Without readyUrl: "ip:port" pairs it accepts TCP connections on once ready (a lab pod's own command; needs `netns`). */
  readyListen?: readonly string[];
  /** Between SIGTERM and SIGKILL. */
  stopGraceMs: number;
}

export type ComponentStatus = 'starting' | 'running' | 'restarting' | 'stopped';

export interface SupervisorDeps {
  spawn: (spec: ChildSpec) => MeshChild;
  log: Logger;
  onChange: () => void;
  readyTimeoutMs: number;
  /** Added to a start failure that looks like another process holding the address (what to do about it). */
  conflictHint: string;
}

export class Supervisor {
  private child: MeshChild | undefined;
  private state: ComponentStatus = 'starting';
  private restartCount = 0;
  private failuresInARow = 0;
  private readyAt = 0;
  private stopping = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> = Promise.resolve();

  constructor(readonly spec: ComponentSpec, private readonly deps: SupervisorDeps) {}

  get name(): string { return this.spec.name; }
  get status(): ComponentStatus { return this.state; }
  get restarts(): number { return this.restartCount; }
  get pid(): number | null { return this.state === 'running' && this.child ? this.child.pid : null; }

  /**
   * Starts the process and resolves once it is ready. When it does not get ready: with `fatal`, throws saying why
   * (nothing is left running); otherwise logs why and keeps trying with backoff.
   */
  async start(fatal: boolean): Promise<void> {
    try {
      await this.launch();
    } catch (err) {
      if (fatal || this.stopping) {
        this.set('stopped');
        throw err;
      }
      this.deps.log.error({ child: this.name, err: errorMessage(err) }, `${this.spec.what} did not start`);
      this.restartLater();
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.child?.stop(this.spec.stopGraceMs);
    await this.loop;
    this.set('stopped');
  }

  private async launch(): Promise<void> {
    const child = this.deps.spawn(this.spec);
    this.child = child;
    const { readyUrl: url, readyListen: listen, netns } = this.spec;
    const gone = () => child.exit !== undefined || this.stopping;
    const outcome: ReadyOutcome = url !== undefined
      ? await waitReady({ url, pid: child.pid, gone, timeoutMs: this.deps.readyTimeoutMs, ...(netns ? { get: httpGetIn(netns) } : {}) })
      : listen?.length && netns ? await waitListening({ addresses: listen, netns, gone, timeoutMs: this.deps.readyTimeoutMs }) : { ready: true };
    if (!outcome.ready) {
      await child.stop(this.spec.stopGraceMs);
      throw this.failure(outcome, child);
    }
    this.readyAt = Date.now();
    this.set('running');
    void child.exited.then(() => this.exitedOnItsOwn(child));
  }

  private exitedOnItsOwn(child: MeshChild): void {
    if (this.stopping || child !== this.child) return;
    const exit = child.exit!;
    if (exit.code === 0 && exit.signal === null) {
      this.deps.log.warn({ child: this.name, exit: describeExit(exit) }, `${this.spec.what} was stopped (exit code 0: it was told to stop, not restarted)`);
      this.set('stopped');
      return;
    }
    if (Date.now() - this.readyAt >= STABLE_AFTER_MS) this.failuresInARow = 0;
    this.deps.log.error({ child: this.name, exit: describeExit(child.exit!), last_errors: child.lastErrors }, `${this.spec.what} exited unexpectedly`);
    this.restartLater();
  }

  private restartLater(): void {
    this.set('restarting');
    this.loop = (async () => {
      while (!this.stopping) {
        const delay = restartDelayMs(this.failuresInARow++);
        this.deps.log.warn({ child: this.name, retry_in_ms: delay, restarts: this.restartCount }, `restarting ${this.spec.what} in ${delay} ms`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, delay);
          this.wake = () => { clearTimeout(t); resolve(); };
        });
        if (this.stopping) return;
        this.restartCount++;
        try {
          await this.launch();
          this.deps.log.info({ child: this.name, child_pid: this.child?.pid, restarts: this.restartCount }, `${this.spec.what} restarted`);
          return;
        } catch (err) {
          if (this.stopping) return;
          this.deps.log.error({ child: this.name, err: errorMessage(err) }, `restarting ${this.spec.what} failed`);
        }
      }
    })();
  }

  private set(s: ComponentStatus): void {
    this.state = s;
    this.deps.onChange();
  }

  private failure(o: Exclude<ReadyOutcome, { ready: true }>, child: MeshChild): StraitError {
    const errors = child.lastErrors.join('; ');
    const held = o.answeredBy !== undefined || /EADDRINUSE|address already in use/i.test(errors);
    const answered = o.answeredBy !== undefined ? `; meanwhile ${this.spec.readyUrl} was answered by another process (${o.answeredBy === 'unknown' ? 'it does not say its pid' : `pid ${o.answeredBy}`})` : '';
    const why = o.why === 'exited'
      ? `${this.spec.what} exited (${child.exit ? describeExit(child.exit) : 'stopped'}) before it was ready: ${errors || 'see its log lines'}${answered}`
      : `${this.spec.what} not ready after ${this.deps.readyTimeoutMs / 1000} s (${this.spec.readyUrl ?? this.spec.readyListen?.join(', ')}: ${o.last})${answered}`;
    return new StraitError(held ? 'STRAIT_ERR_LISTEN' : 'STRAIT_ERR_LOCAL_MESH', held ? `${why}. ${this.deps.conflictHint}` : why);
  }
}
