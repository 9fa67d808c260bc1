/**
 * One process of the local mesh (`strait controller`, `strait ztunnel`, `strait demo-app`), started by `strait up`.
 * Its output lines go to a log file or to the parent's writer; its last error lines are kept to say why it failed.
 * It runs in its own process group, so a terminal's Ctrl-C or hang-up reaches only `strait up`, which stops the
 * children in order; and it holds an IPC channel to the parent, which closes when the parent dies however it dies,
 * and the child then stops itself (src/cli/shutdown.ts).
 * Invariants: `exited` resolves exactly once, after the process is gone and its output has been read to the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export const STRAIT_BIN = new URL('../cli/strait.js', import.meta.url).pathname;
/** Error lines kept per child, to say why it exited. */
const KEPT_ERRORS = 3;

export interface ChildExit { code: number | null; signal: NodeJS.Signals | null }

export interface ChildSpec {
  /** "controller", "ztunnel/node-a", "app/shop/web-1/app:8080" */
  name: string;
  /** Arguments after `strait`. */
  args: string[];
  /** Node options before the script (V8 heap sizes cannot be set from inside). */
  nodeOptions?: readonly string[];
}

export interface ChildOutput {
  logDir?: string;
  /** Where output lines go without a log directory. */
  write: (line: string) => void;
}

export class MeshChild {
  readonly pid: number;
  readonly exited: Promise<ChildExit>;
  private exitInfo: ChildExit | undefined;
  private readonly errors: string[] = [];
  private stopping: Promise<ChildExit> | undefined;

  private constructor(readonly name: string, private readonly proc: ChildProcess, out: ChildOutput) {
    if (proc.pid === undefined) throw new Error(`BUG: ${name} has no pid`);
    this.pid = proc.pid;
    const file: WriteStream | undefined = out.logDir ? createWriteStream(join(out.logDir, `${name.replace(/[/:]/g, '_')}.log`), { flags: 'a' }) : undefined;
    const sink = (line: string) => (file ? file.write(line + '\n') : out.write(line + '\n'));
    const stdoutDone = once(createInterface({ input: proc.stdout! }).on('line', (line) => {
      sink(line);
      this.noteError(line);
    }), 'close');
    const stderrDone = once(createInterface({ input: proc.stderr! }).on('line', (line) => {
      sink(JSON.stringify({ level: 'error', component: name, stderr: line }));
      if (line.trim()) this.keep(line.trim());
    }), 'close');
    // The IPC channel only carries the parent's liveness: nothing is sent on it.
    proc.on('error', () => undefined);
    this.exited = Promise.all([once(proc, 'exit'), stdoutDone, stderrDone]).then(([[code, signal]]) => {
      file?.end();
      this.exitInfo = { code: code as number | null, signal: signal as NodeJS.Signals | null };
      return this.exitInfo;
    });
  }

  static spawn(spec: ChildSpec, logLevel: string, out: ChildOutput): MeshChild {
    const proc = spawn(process.execPath, [...(spec.nodeOptions ?? []), STRAIT_BIN, '--log-level', logLevel, ...spec.args], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'], detached: true,
    });
    return new MeshChild(spec.name, proc, out);
  }

  /** How it ended, once it has. */
  get exit(): ChildExit | undefined {
    return this.exitInfo;
  }

  /** Its last error lines (log lines at error level and above, standard error), oldest first. */
  get lastErrors(): readonly string[] {
    return this.errors;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.exitInfo) return;
    try {
      this.proc.kill(signal);
    } catch {
      // already gone
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`. Once: a second SIGTERM would cut a ztunnel's drain short. */
  stop(graceMs: number): Promise<ChildExit> {
    return (this.stopping ??= (async () => {
      this.kill('SIGTERM');
      const t = setTimeout(() => this.kill('SIGKILL'), graceMs);
      const e = await this.exited;
      clearTimeout(t);
      return e;
    })());
  }

  private noteError(line: string): void {
    if (!line.startsWith('{')) return;
    try {
      const l = JSON.parse(line) as { level?: unknown; msg?: unknown; err?: unknown };
      const level = typeof l.level === 'number' ? (l.level >= 50 ? 'error' : '') : String(l.level);
      if (level !== 'error' && level !== 'fatal') return;
      this.keep([l.msg, typeof l.err === 'string' ? l.err : undefined].filter((x) => typeof x === 'string' && x).join(': '));
    } catch {
      // not a log line
    }
  }

  private keep(text: string): void {
    if (!text) return;
    this.errors.push(text);
    if (this.errors.length > KEPT_ERRORS) this.errors.shift();
  }
}

/** "code 1", "signal SIGKILL" */
export function describeExit(e: ChildExit): string {
  return e.signal ? `signal ${e.signal}` : `code ${e.code}`;
}
