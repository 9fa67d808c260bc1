/**
 * One process of the local mesh (`strait controller`, `strait ztunnel`, `strait demo-app`), started by `strait up`,
 * or of a lab (`strait lab`), where it may run inside a network namespace (`ip netns exec NS ...`: ip execs the
 * command, so the pid is the command's own) and may be a pod's own shell command instead of a strait one.
 * Its output lines go to a log file or to the parent's writer; its last error lines are kept to say why it failed.
 * It runs in its own process group, so a terminal's Ctrl-C or hang-up reaches only `strait up`, which stops the
 * children in order; and a strait child holds an IPC channel to the parent, which closes when the parent dies however
 * it dies, and the child then stops itself (src/cli/shutdown.ts). A shell command gets no channel (it is not ours to
 * hand one to): it is signalled as a whole process group, and a lab removes what is left in its namespaces.
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
  /** Run inside this network namespace (`ip netns exec NS ...`). */
  netns?: string;
  /** A shell command (`/bin/sh -c`) to run instead of `strait args` (a lab pod's strait.dev/lab-command). */
  shell?: string;
  /** Added to the environment. */
  env?: Readonly<Record<string, string>>;
  /** Working directory (default: the parent's). */
  cwd?: string;
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

  private constructor(readonly name: string, private readonly proc: ChildProcess, out: ChildOutput, private readonly shell: boolean) {
    if (proc.pid === undefined) throw new Error(`BUG: ${name} has no pid`);
    this.pid = proc.pid;
    const file: WriteStream | undefined = out.logDir ? createWriteStream(join(out.logDir, `${name.replace(/[/:]/g, '_')}.log`), { flags: 'a' }) : undefined;
    const sink = (line: string) => (file ? file.write(line + '\n') : out.write(line + '\n'));
    const stdoutDone = once(createInterface({ input: proc.stdout! }).on('line', (line) => {
      // A shell command's lines are its own text: wrapped, so that what the lab writes stays JSON lines.
      if (shell) sink(JSON.stringify({ level: 'info', component: name, stdout: line }));
      else {
        sink(line);
        this.noteError(line);
      }
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
    const shell = spec.shell !== undefined;
    const command = shell ? ['/bin/sh', '-c', spec.shell!] : [process.execPath, ...(spec.nodeOptions ?? []), STRAIT_BIN, '--log-level', logLevel, ...spec.args];
    const argv = spec.netns ? ['ip', 'netns', 'exec', spec.netns, ...command] : command;
    const proc = spawn(argv[0]!, argv.slice(1), {
      stdio: shell ? ['ignore', 'pipe', 'pipe'] : ['ignore', 'pipe', 'pipe', 'ipc'], detached: true,
      ...(spec.env ? { env: { ...process.env, ...spec.env } } : {}), ...(spec.cwd ? { cwd: spec.cwd } : {}),
    });
    return new MeshChild(spec.name, proc, out, shell);
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
      // A shell command's own children (its process group, made by `detached`) go with it.
      if (this.shell) process.kill(-this.pid, signal);
      else this.proc.kill(signal);
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
