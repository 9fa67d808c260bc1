/**
 * A benchmark helper run as its own Node.js process with an IPC channel (serialization "advanced", so typed arrays
 * cross it as they are): the load generators and servers of the benchmarks. With `netns` it runs inside that
 * network namespace (`ip netns exec NS node SCRIPT`: ip execs node, so the pid is the helper's own and the IPC
 * channel's descriptor passes through).
 *
 * Protocol: the helper sends `{ ready: true }` once it can work; the parent sends `{ id, cmd, ... }` and gets
 * `{ id, ok: true, ... }` or `{ id, ok: false, error }` (call), or, for a helper that answers without ids, the next
 * message (ask). The helper exits when the parent disconnects.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';

export class Forked {
  private next = 1;
  private pending = new Map<number, { resolve: (v: Record<string, any>) => void; reject: (e: Error) => void }>();
  private waiters: ((m: Record<string, any>) => void)[] = [];
  readonly proc: ChildProcess;
  readonly ready: Promise<void>;

  /** `script`: an absolute path to a compiled helper. */
  constructor(script: string, args: string[], readonly what: string, opts: { netns?: string } = {}) {
    this.proc = opts.netns
      ? spawn('ip', ['netns', 'exec', opts.netns, process.execPath, script, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' })
      : fork(script, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [], serialization: 'advanced' });
    this.ready = new Promise((resolve, reject) => {
      this.proc.once('exit', (code, signal) => {
        const err = new Error(`${what} exited (${code ?? signal})`);
        reject(err);
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
      });
      this.proc.on('message', (m: Record<string, any>) => {
        if (m.ready) return resolve();
        if (typeof m.id === 'number') {
          const p = this.pending.get(m.id);
          this.pending.delete(m.id);
          if (m.ok) p?.resolve(m);
          else p?.reject(new Error(`${what}: ${m.error}`));
          return;
        }
        this.waiters.shift()?.(m);
      });
    });
    this.ready.catch(() => undefined); // observed by whoever awaits it; never an unhandled rejection
  }

  get pid(): number {
    return this.proc.pid ?? 0;
  }

  call(cmd: string, args: Record<string, unknown> = {}): Promise<Record<string, any>> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      if (!this.proc.connected) return reject(new Error(`${this.what} is gone (${cmd})`));
      this.pending.set(id, { resolve, reject });
      this.proc.send({ id, cmd, ...args });
    });
  }

  /** For a helper that answers without ids (the waypoint bench's server): the next message. */
  ask(msg: Record<string, unknown>): Promise<Record<string, any>> {
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.proc.send(msg);
    });
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = once(this.proc, 'exit');
    if (this.proc.connected) this.proc.disconnect();
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
}

/**
 * The helper's side of the protocol above: answers each `{ id, cmd, ... }` with what `handle` returns (or its error),
 * says `{ ready: true }`, and exits when the parent disconnects. Call once, at the end of the helper's script.
 */
export function serveForked<M extends { id: number }>(handle: (m: M) => Promise<Record<string, unknown>>): void {
  process.on('message', (m: M) => {
    handle(m).then(
      (r) => process.send?.({ id: m.id, ok: true, ...r }),
      (err: Error) => process.send?.({ id: m.id, ok: false, error: err.message }),
    );
  });
  process.on('disconnect', () => process.exit(0));
  process.send?.({ ready: true });
}
