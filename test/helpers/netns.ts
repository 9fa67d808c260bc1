import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { isIPv4 } from 'node:net';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';

/**
 * Lab kit (DESIGN §7 "Lab"): network namespaces joined by veth pairs, with addresses from the benchmarking range
 * 198.18.0.0/15 only and no route to the machine's real network (no default route, no link to the root namespace:
 * veth ends are created directly inside the lab's namespaces). A `Lab` remembers everything it made and
 * `destroy()` removes it: first the processes it started (by pid), then its namespaces, which takes their veths
 * with them. `destroy()` is synchronous so it also runs from the process 'exit' handler and on SIGINT/SIGTERM/SIGHUP.
 * Names are unique per lab: namespaces `strait-<label><random>-<role>`, interfaces at most 15 characters.
 */

export const LAB_NET = '198.18.0.0/15';
export const LAB_NS_PREFIX = 'strait-';
const IFNAMSIZ = 15;

/** True for an IPv4 address inside 198.18.0.0/15. */
export function isLabAddress(ip: string): boolean {
  if (!isIPv4(ip)) return false;
  const [a, b] = ip.split('.').map(Number);
  return a === 198 && (b === 18 || b === 19);
}

function assertLabPrefix(cidr: string): void {
  const [ip, len] = cidr.split('/');
  const bits = len === undefined ? 32 : Number(len);
  if (!isLabAddress(ip!) || !Number.isInteger(bits) || bits < 15 || bits > 32) {
    throw new Error(`lab address ${cidr} is outside ${LAB_NET}: lab traffic must never reach the real network`);
  }
}

export interface CommandResult { status: number | null; stdout: string; stderr: string }

export class LabCommandError extends Error {
  constructor(readonly argv: string[], readonly result: CommandResult) {
    super(`command failed (exit ${result.status}): ${argv.join(' ')}\n${result.stderr.trim()}${result.stdout.trim() ? `\nstdout: ${result.stdout.trim()}` : ''}`);
    this.name = 'LabCommandError';
  }
}

export interface ExecOptions {
  env?: Record<string, string>;
  input?: string;
  timeoutMs?: number;
  /** Return a failed result instead of throwing. */
  allowFailure?: boolean;
}

/** Runs argv to completion synchronously; throws LabCommandError on failure unless allowFailure. */
export function runSync(argv: string[], opts: ExecOptions = {}): CommandResult {
  const r = spawnSync(argv[0]!, argv.slice(1), {
    encoding: 'utf8',
    input: opts.input ?? '',
    timeout: opts.timeoutMs ?? 30_000,
    env: opts.env ? { ...process.env, ...opts.env } : process.env,
  });
  const result: CommandResult = { status: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
  if (!opts.allowFailure && (r.error || r.status !== 0)) throw new LabCommandError(argv, result);
  return result;
}

/** Runs argv to completion without blocking the event loop. */
export async function runAsync(argv: string[], opts: ExecOptions = {}): Promise<CommandResult> {
  const child = spawn(argv[0]!, argv.slice(1), {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: opts.env ? { ...process.env, ...opts.env } : process.env,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  child.stdin.end(opts.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
  const [status, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  const result: CommandResult = { status, stdout, stderr: stderr + (signal ? `\n(killed by ${signal})` : '') };
  if (!opts.allowFailure && status !== 0) throw new LabCommandError(argv, result);
  return result;
}

/** Names of the network namespaces whose name starts with `prefix`. */
export function listNamespaces(prefix = LAB_NS_PREFIX): string[] {
  const r = runSync(['ip', 'netns', 'list'], { allowFailure: true });
  if (r.status !== 0) return [];
  return r.stdout.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((n) => n.startsWith(prefix));
}

// --- can the lab run here? ---

let availability: string | undefined | null = null;

/** Why the lab cannot run in this environment, or undefined when it can. Probed once per process. */
export function labUnavailableReason(): string | undefined {
  if (availability !== null) return availability;
  availability = probe();
  return availability;
}

function probe(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'lab tests need root (network namespaces, veths, iptables); run them as root';
  for (const [tool, pkg] of [['ip', 'iproute2'], ['iptables', 'iptables'], ['iptables-save', 'iptables']] as const) {
    if (spawnSync(tool, ['-V'], { encoding: 'utf8' }).error) {
      return `\`${tool}\` is not installed (or not on PATH): apt-get update && apt-get install -y ${pkg}`;
    }
  }
  const name = `${LAB_NS_PREFIX}probe${randomBytes(3).toString('hex')}`;
  const add = runSync(['ip', 'netns', 'add', name], { allowFailure: true });
  if (add.status !== 0) return `cannot create a network namespace (ip netns add): ${add.stderr.trim()}`;
  try {
    const nat = runSync(['ip', 'netns', 'exec', name, 'iptables', '-w', '-t', 'nat', '-S'], { allowFailure: true });
    if (nat.status !== 0) return `iptables cannot use the nat table inside a network namespace: ${nat.stderr.trim()}`;
    const link = runSync(['ip', '-n', name, 'link', 'add', 'probe0', 'type', 'veth', 'peer', 'name', 'probe1'], { allowFailure: true });
    if (link.status !== 0) return `cannot create a veth pair inside a network namespace: ${link.stderr.trim()}`;
  } finally {
    runSync(['ip', 'netns', 'del', name], { allowFailure: true });
  }
  return undefined;
}

/**
 * The loud skip / CI-fail rule for tests that cannot run here: with `reason` set, prints it loudly; fails the test
 * when CI=true, skips it otherwise. Returns true when the test can go on.
 */
export function requireOrSkip(t: TestContext, reason: string | undefined): boolean {
  if (reason === undefined) return true;
  const message = `THIS TEST DID NOT RUN: ${reason}`;
  process.stderr.write(`\n${'!'.repeat(100)}\n!!! ${t.name}: ${message}\n${'!'.repeat(100)}\n\n`);
  t.diagnostic(message);
  if (process.env.CI === 'true') assert.fail(`${message} (CI=true: this test must run in CI)`);
  t.skip(message);
  return false;
}

/** Lab tests start with `if (!requireLab(t)) return;`: root, ip, iptables and netns support, else loud skip / CI fail. */
export function requireLab(t: TestContext): boolean {
  return requireOrSkip(t, labUnavailableReason());
}

// --- processes inside namespaces ---

export interface LabLine { [k: string]: unknown }

/** A child process running in a lab namespace whose stdout JSON lines are collected. */
export class LabProcess {
  readonly lines: LabLine[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<number | null>;
  private waiters: { pred: (l: LabLine) => boolean; resolve: (l: LabLine) => void }[] = [];

  constructor(readonly ns: string, readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (text) => {
      let line: LabLine;
      try { line = JSON.parse(text) as LabLine; } catch { line = { raw: text }; }
      this.lines.push(line);
      this.waiters = this.waiters.filter((w) => (w.pred(line) ? (w.resolve(line), false) : true));
    });
    createInterface({ input: child.stderr! }).on('line', (text) => this.stderr.push(text));
    this.exited = once(child, 'exit').then(([code]) => code as number | null);
  }

  get running(): boolean { return this.child.exitCode === null && this.child.signalCode === null; }

  /** The first stdout line (past or future) matching `pred`. */
  waitFor(pred: (l: LabLine) => boolean, timeoutMs = 10_000, what = 'line'): Promise<LabLine> {
    const found = this.lines.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs}ms waiting for ${what} from a process in ${this.ns}; stderr: ${this.stderr.join('\n')}`)), timeoutMs);
      this.waiters.push({ pred, resolve: (l) => { clearTimeout(timer); resolve(l); } });
      void this.exited.then((code) => { clearTimeout(timer); reject(new Error(`process in ${this.ns} exited (${code}) before ${what}; stderr: ${this.stderr.join('\n')}`)); });
    });
  }

  /** SIGKILL and wait for the exit. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }
}

// --- the lab ---

export interface LinkEnd { ns: string; ifname: string; address: string }
export interface Link { subnet: string; a: LinkEnd; b: LinkEnd }

const liveLabs = new Set<Lab>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => { for (const lab of liveLabs) lab.destroy(); });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      for (const lab of liveLabs) lab.destroy();
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

/**
 * Invariants: every namespace and process this lab made is in `namespaces` / `processes` before the call that
 * made it returns; `destroy()` removes all of them, is idempotent, and after it the lab refuses new work.
 */
export class Lab {
  /** Unique per lab: `strait-<label><random>-`; every namespace name starts with it. */
  readonly prefix: string;
  readonly id: string;
  private readonly namespaces: string[] = [];
  private readonly processes = new Set<LabProcess>();
  private nextSubnet = 1;
  private nextLink = 0;
  private destroyed = false;

  /** `label`: a few lowercase letters naming the test (e.g. "cap"). */
  constructor(label: string) {
    if (!/^[a-z0-9]{1,5}$/.test(label)) throw new Error(`lab label "${label}" must be 1-5 lowercase letters or digits`);
    this.id = `${label}${randomBytes(2).toString('hex')}`;
    this.prefix = `${LAB_NS_PREFIX}${this.id}-`;
    installExitHooks();
    liveLabs.add(this);
  }

  private check(): void {
    if (this.destroyed) throw new Error(`lab ${this.prefix} is already destroyed`);
  }

  /** Creates namespace `<prefix><role>` with loopback up; returns its name. */
  namespace(role: string): string {
    this.check();
    if (!/^[a-z0-9-]{1,20}$/.test(role)) throw new Error(`namespace role "${role}" must be lowercase letters, digits or -`);
    const name = `${this.prefix}${role}`;
    runSync(['ip', 'netns', 'add', name]);
    this.namespaces.push(name);
    runSync(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  /**
   * A veth pair between namespaces `a` and `b`, each end created directly inside its namespace, on the next free
   * /24 of 198.18.0.0/15: `a` gets .1, `b` gets .2. Both ends are up.
   */
  link(a: string, b: string, names?: { a?: string; b?: string }): Link {
    this.check();
    for (const ns of [a, b]) if (!this.namespaces.includes(ns)) throw new Error(`namespace ${ns} does not belong to lab ${this.prefix}`);
    const n = this.nextLink++;
    const ifA = names?.a ?? `${this.id}v${n}a`;
    const ifB = names?.b ?? `${this.id}v${n}b`;
    for (const ifname of [ifA, ifB]) {
      if (ifname.length > IFNAMSIZ) throw new Error(`interface name "${ifname}" is longer than ${IFNAMSIZ} characters`);
    }
    const k = this.nextSubnet++;
    if (k > 511) throw new Error(`lab ${this.prefix} ran out of /24 subnets in ${LAB_NET}`);
    const base = `198.${18 + (k >> 8)}.${k & 255}`;
    const link: Link = {
      subnet: `${base}.0/24`,
      a: { ns: a, ifname: ifA, address: `${base}.1` },
      b: { ns: b, ifname: ifB, address: `${base}.2` },
    };
    runSync(['ip', '-n', a, 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', b]);
    for (const end of [link.a, link.b]) {
      runSync(['ip', '-n', end.ns, 'addr', 'add', `${end.address}/24`, 'dev', end.ifname]);
      runSync(['ip', '-n', end.ns, 'link', 'set', end.ifname, 'up']);
    }
    return link;
  }

  /** A route inside `ns` to `dest` (default: the whole lab range) via `via`; both must be lab addresses. */
  route(ns: string, via: string, dest: string = LAB_NET): void {
    this.check();
    assertLabPrefix(dest);
    assertLabPrefix(via);
    runSync(['ip', '-n', ns, 'route', 'replace', dest, 'via', via]);
  }

  /** `sysctl -w key=value` inside `ns` (network sysctls are per namespace). */
  sysctl(ns: string, key: string, value: string): void {
    this.exec(ns, ['sysctl', '-q', '-w', `${key}=${value}`]);
  }

  /** Runs argv inside `ns` synchronously (`ip netns exec`); throws LabCommandError on failure unless allowFailure. */
  exec(ns: string, argv: string[], opts?: ExecOptions): CommandResult {
    this.check();
    return runSync(['ip', 'netns', 'exec', ns, ...argv], opts);
  }

  /** Runs argv inside `ns` without blocking the event loop. */
  execAsync(ns: string, argv: string[], opts?: ExecOptions): Promise<CommandResult> {
    this.check();
    return runAsync(['ip', 'netns', 'exec', ns, ...argv], opts);
  }

  /** Starts a long-running process inside `ns`; it is killed by `destroy()`. */
  spawn(ns: string, argv: string[], opts: { env?: Record<string, string> } = {}): LabProcess {
    this.check();
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
    });
    const proc = new LabProcess(ns, child);
    this.processes.add(proc);
    void proc.exited.then(() => this.processes.delete(proc));
    return proc;
  }

  /** Starts `node <args>` inside `ns` (this Node binary). */
  spawnNode(ns: string, args: string[], opts: { env?: Record<string, string> } = {}): LabProcess {
    return this.spawn(ns, [process.execPath, ...args], opts);
  }

  /** Runs an ES module given as source text inside `ns` (`node --input-type=module -e`), with `args` as argv[1..]. */
  spawnNodeScript(ns: string, source: string, args: string[] = [], opts: { env?: Record<string, string> } = {}): LabProcess {
    return this.spawnNode(ns, ['--input-type=module', '-e', source, '--', ...args], opts);
  }

  /** Runs an ES module source to completion inside `ns`, without blocking the event loop. */
  runNodeScript(ns: string, source: string, args: string[] = [], opts?: ExecOptions): Promise<CommandResult> {
    return this.execAsync(ns, [process.execPath, '--input-type=module', '-e', source, '--', ...args], opts);
  }

  /** The namespaces this lab created (and has not yet removed). */
  get namespaceNames(): readonly string[] { return this.namespaces; }

  /**
   * Removes everything: kills the processes it started (SIGKILL, by pid), and any process still inside its
   * namespaces (started by it through `exec`), then deletes the namespaces, which deletes their veths. Synchronous
   * and idempotent; never throws (a failure is printed, and the namespace name is left for `listNamespaces`).
   */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    liveLabs.delete(this);
    for (const proc of this.processes) {
      if (proc.running) {
        try { process.kill(proc.child.pid!, 'SIGKILL'); } catch { /* already gone */ }
      }
    }
    for (const ns of [...this.namespaces].reverse()) {
      const pids = runSync(['ip', 'netns', 'pids', ns], { allowFailure: true }).stdout.split(/\s+/).filter(Boolean).map(Number);
      for (const pid of pids) {
        if (pid !== process.pid) {
          try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
        }
      }
      const r = runSync(['ip', 'netns', 'del', ns], { allowFailure: true });
      if (r.status !== 0) process.stderr.write(`lab: could not delete namespace ${ns}: ${r.stderr.trim()}\n`);
      else this.namespaces.splice(this.namespaces.indexOf(ns), 1);
    }
  }
}
