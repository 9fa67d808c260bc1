/**
 * A real `strait lab up DIR` driven from a test, as /work/lab-contract.md §3 and its "Test rules for labs" say: the lab
 * runs as a child process (node dist/src/cli/strait.js lab up ...), the test waits for its `lab ready` line, reads the
 * state file, runs commands in pods and nodes with `strait lab exec`, captures a node's fabric interface with tcpdump,
 * reads a ztunnel's /config_dump in its node namespace and the access log from the lab's --log-dir files, and always
 * ends with `down()`: `strait lab down`, then proof that nothing of the lab is left (no namespace with its prefix, no
 * process that ran in its namespaces or names its files, no Strait rule added to the machine's own namespace).
 *
 * Invariants: everything a lab makes lives under one temporary directory (manifests, logs, data, state file, pcaps);
 * `down()` is idempotent and never leaves the lab running, even when its assertions fail (they run after the cleanup).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { STRAIT_BIN, StraitProcess, type LogLine } from './procs.js';
import { tempDir } from './temp-dir.js';
import { docs } from './manifests.js';
import { listNamespaces, runAsync, runSync, type CommandResult, type ExecOptions } from './netns.js';

// ---- the state file (contract §3) ----

// One definition of the state file's shape: the lab's own (src/local/lab/state.ts).
export type { LabState, ProcessState as LabComponent } from '../../src/local/lab/state.js';
import type { LabState } from '../../src/local/lab/state.js';

// ---- waiting ----

/** Polls `check` every `everyMs` until it returns a truthy value; the timeout error says what was awaited and the last value seen. */
export async function until<T>(check: () => T | Promise<T>, what: string, timeoutMs = 15_000, everyMs = 200): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

// ---- curl ----

export interface CurlResult {
  /** curl's exit code: 0 ok, 7 refused, 28 timed out, 52 empty reply, 56 reset. */
  exit: number | null;
  /** HTTP status, 0 without an answer. */
  status: number;
  /** The body parsed as JSON, when it is JSON. */
  body: any;
  text: string;
  stderr: string;
}
const STATUS_MARK = '\n@@strait-http-status@@';

/** Exit codes of a connection the server refused or reset (or closed without an answer): never a timeout, never success. */
export const REFUSED_OR_RESET = new Set([7, 52, 56]);

// ---- pcap ----

export interface TcpPacket { src: string; dst: string; sport: number; dport: number; flags: number; payload: Buffer }
export interface Pcap {
  /** The whole capture file: search it for bytes that must (not) be on the wire. */
  raw: Buffer;
  tcp: TcpPacket[];
  /** True when `text` occurs anywhere in the captured bytes. */
  contains(text: string): boolean;
}

/** Reads a classic pcap file (tcpdump -w) of Ethernet frames: the IPv4 TCP packets with their payloads. */
export function parsePcap(raw: Buffer): Pcap {
  const tcp: TcpPacket[] = [];
  if (raw.length >= 24) {
    const magicLE = raw.readUInt32LE(0);
    const le = magicLE === 0xa1b2c3d4 || magicLE === 0xa1b23c4d;
    if (!le && raw.readUInt32BE(0) !== 0xa1b2c3d4 && raw.readUInt32BE(0) !== 0xa1b23c4d) throw new Error(`not a pcap file (magic ${raw.subarray(0, 4).toString('hex')})`);
    const u32 = (at: number): number => (le ? raw.readUInt32LE(at) : raw.readUInt32BE(at));
    const linkType = u32(20);
    if (linkType !== 1) throw new Error(`pcap link type ${linkType}: only Ethernet (1) is read`);
    let at = 24;
    while (at + 16 <= raw.length) {
      const incl = u32(at + 8);
      const frame = raw.subarray(at + 16, Math.min(raw.length, at + 16 + incl));
      at += 16 + incl;
      let off = 12;
      let etherType = frame.length >= 14 ? frame.readUInt16BE(off) : 0;
      while (etherType === 0x8100 && frame.length >= off + 6) { off += 4; etherType = frame.readUInt16BE(off); }
      if (etherType !== 0x0800) continue;
      const ip = frame.subarray(off + 2);
      if (ip.length < 20 || ip[9] !== 6) continue;
      const ihl = (ip[0]! & 0x0f) * 4;
      const total = ip.readUInt16BE(2);
      const seg = ip.subarray(ihl, Math.min(ip.length, total));
      if (seg.length < 20) continue;
      const dataOff = (seg[12]! >> 4) * 4;
      tcp.push({
        src: ip.subarray(12, 16).join('.'), dst: ip.subarray(16, 20).join('.'),
        sport: seg.readUInt16BE(0), dport: seg.readUInt16BE(2), flags: seg[13]!, payload: seg.subarray(dataOff),
      });
    }
  }
  return { raw, tcp, contains: (text) => raw.includes(Buffer.from(text)) };
}

/** A running tcpdump; stop() ends it and reads what it captured. */
export interface Tcpdump { stop(): Promise<Pcap> }

// ---- processes left behind ----

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** Field 22 of /proc/PID/stat (start time in clock ticks): tells a pid reused by another process apart. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch { return undefined; }
}

function cmdline(pid: number): string {
  try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim(); } catch { return ''; }
}

function allPids(): number[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number);
}

/** Lines of the root namespace's iptables (nat and filter) that name Strait's chains or pods. */
function rootStraitRules(): string[] {
  const out: string[] = [];
  for (const table of ['nat', 'filter']) {
    const r = runSync(['iptables-save', '-t', table], { allowFailure: true });
    out.push(...r.stdout.split('\n').filter((l) => /STRAIT|strait-pod=/.test(l)).map((l) => `${table}: ${l}`));
  }
  return out;
}

// ---- the lab ----

const live = new Set<LabCli>();
let hooks = false;
function installHooks(): void {
  if (hooks) return;
  hooks = true;
  const stopAll = (): void => { for (const l of live) l.stopNowSync(); };
  process.on('exit', stopAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const on = (): void => { stopAll(); process.removeListener(signal, on); process.kill(process.pid, signal); };
    process.on(signal, on);
  }
}

export interface LabStartOptions {
  /** Manifest files: name → YAML text (use `docs(...)`), or a list of objects; absent: `lab up` without DIR (the built-in demo). */
  files?: Record<string, string | unknown[]>;
  /** How long `lab ready` may take. */
  readyTimeoutMs?: number;
  logLevel?: string;
}

export class LabCli {
  readonly root = tempDir('lab-e2e');
  readonly manifestDir = join(this.root.path, 'manifests');
  readonly logDir = join(this.root.path, 'logs');
  readonly dataDir = join(this.root.path, 'data');
  readonly stateFile = join(this.root.path, 'lab.json');
  proc!: StraitProcess;
  state!: LabState;
  private downDone: Promise<void> | undefined;
  private pcaps = 0;
  private readonly rootRulesBefore = new Set(rootStraitRules());

  private constructor() {
    mkdirSync(this.manifestDir);
  }

  /** Writes the manifests, starts `strait lab up`, waits for `lab ready` and reads the state file. */
  static async start(opts: LabStartOptions): Promise<LabCli> {
    installHooks();
    const lab = new LabCli();
    for (const [name, text] of Object.entries(opts.files ?? {})) lab.write(name, text);
    const dir = opts.files ? [lab.manifestDir] : [];
    lab.proc = StraitProcess.start(['--log-level', opts.logLevel ?? 'info', 'lab', 'up', ...dir, '--state-file', lab.stateFile, '--log-dir', lab.logDir, '--data-dir', lab.dataDir]);
    live.add(lab);
    try {
      await lab.proc.waitFor((l) => l.msg === 'lab ready', opts.readyTimeoutMs ?? 90_000, '`lab ready`');
      lab.state = lab.readState();
      assert.equal(lab.state.pid, lab.proc.child.pid, 'the state file names the `lab up` process');
    } catch (err) {
      await lab.down().catch(() => undefined);
      throw err;
    }
    return lab;
  }

  /** (Re)writes one manifest file (the lab applies edits live). */
  write(name: string, content: string | unknown[]): void {
    writeFileSync(join(this.manifestDir, name), typeof content === 'string' ? content : docs(...content));
  }

  remove(name: string): void {
    rmSync(join(this.manifestDir, name), { force: true });
  }

  readState(): LabState {
    return JSON.parse(readFileSync(this.stateFile, 'utf8')) as LabState;
  }

  /** The state file as it is now (kept in `state`). */
  refresh(): LabState {
    this.state = this.readState();
    return this.state;
  }

  pod(name: string): LabState['pods'][string] {
    const p = this.state.pods[name];
    if (!p) throw new Error(`no pod ${name} in the lab's state file (pods: ${Object.keys(this.state.pods).join(', ')})`);
    return p;
  }

  node(name: string): LabState['nodes'][string] {
    const n = this.state.nodes[name];
    if (!n) throw new Error(`no node ${name} in the lab's state file (nodes: ${Object.keys(this.state.nodes).join(', ')})`);
    return n;
  }

  // ---- commands ----

  /** `strait lab exec <ns>/<pod> -- argv`: runs argv in the pod's namespace; resolves with its status and output. */
  exec(pod: string, argv: string[], opts: ExecOptions = {}): Promise<CommandResult> {
    return runAsync([process.execPath, STRAIT_BIN, 'lab', 'exec', '--state-file', this.stateFile, pod, '--', ...argv], { allowFailure: true, ...opts });
  }

  /** `strait lab exec --node NAME -- argv`. */
  execNode(node: string, argv: string[], opts: ExecOptions = {}): Promise<CommandResult> {
    return runAsync([process.execPath, STRAIT_BIN, 'lab', 'exec', '--state-file', this.stateFile, '--node', node, '--', ...argv], { allowFailure: true, ...opts });
  }

  /** `ip netns exec` straight into a node's namespace (no CLI start-up: for polling). */
  inNode(node: string, argv: string[], opts: ExecOptions = {}): Promise<CommandResult> {
    return runAsync(['ip', 'netns', 'exec', this.node(node).netns, ...argv], { allowFailure: true, ...opts });
  }

  /** Plain curl inside a pod (`strait lab exec`), with the HTTP status and the JSON body parsed. */
  async curl(pod: string, url: string, extra: string[] = [], maxTimeS = 5): Promise<CurlResult> {
    const r = await this.exec(pod, ['curl', '-sS', '--noproxy', '*', '--max-time', String(maxTimeS), '-w', `${STATUS_MARK}%{http_code}`, ...extra, url], { timeoutMs: (maxTimeS + 10) * 1000 });
    const at = r.stdout.lastIndexOf(STATUS_MARK);
    const text = at >= 0 ? r.stdout.slice(0, at) : r.stdout;
    const status = at >= 0 ? Number(r.stdout.slice(at + STATUS_MARK.length).trim()) || 0 : 0;
    let body: any;
    try { body = JSON.parse(text); } catch { body = undefined; }
    return { exit: r.status, status, body, text, stderr: r.stderr };
  }

  /** The node's ztunnel /config_dump (admin on 127.0.0.1:15000 inside the node namespace). */
  async configDump(node: string): Promise<any> {
    const r = await this.inNode(node, ['curl', '-sS', '--noproxy', '*', '--max-time', '3', 'http://127.0.0.1:15000/config_dump']);
    if (r.status !== 0) throw new Error(`config_dump of ${node}: curl exit ${r.status}: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout);
  }

  /** `capture.pods` of a node's /config_dump, by "ns/name". */
  async capturePods(node: string): Promise<Map<string, { pod: string; address: string; state: string; since: string; attempts: number; lastError?: string }>> {
    const dump = await this.configDump(node);
    const pods = (dump.capture?.pods ?? []) as { pod: string; address: string; state: string; since: string; attempts: number }[];
    return new Map(pods.map((p) => [p.pod, p]));
  }

  /** `iptables-save -t nat` in a node's namespace, through `strait lab exec --node`. */
  async natRules(node: string): Promise<string> {
    const r = await this.execNode(node, ['iptables-save', '-t', 'nat']);
    if (r.status !== 0) throw new Error(`iptables-save in ${node}: exit ${r.status}: ${r.stderr}`);
    return r.stdout;
  }

  /**
   * tcpdump on a node's fabric interface (the wire between the nodes), TCP only, whole packets, written as they come.
   * Resolves once tcpdump listens.
   */
  async tcpdump(node: string): Promise<Tcpdump> {
    const file = join(this.root.path, `capture-${node}-${this.pcaps++}.pcap`);
    const n = this.node(node);
    // -Z root: tcpdump would otherwise drop to its own user and not be able to write into our 0700 temp directory.
    // --immediate-mode: without it packets wait in a kernel block and a SIGINT ends tcpdump before it reads them.
    const child: ChildProcess = spawn('ip', ['netns', 'exec', n.netns, 'tcpdump', '-i', n.fabricInterface, '-n', '-U', '--immediate-mode', '-s', '0', '-Z', 'root', '-w', file, 'tcp'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tcpdump on ${node}/${n.fabricInterface} did not start: ${stderr}`)), 10_000);
      child.stderr!.on('data', (d) => {
        stderr += d;
        if (/listening on/.test(stderr)) { clearTimeout(timer); resolve(); }
      });
      void exited.then((code) => { clearTimeout(timer); reject(new Error(`tcpdump on ${node}/${n.fabricInterface} exited (${code}): ${stderr}`)); });
    });
    return {
      stop: async () => {
        // Let the last packets (FIN/ACK) be written before asking tcpdump to stop.
        await new Promise((r) => setTimeout(r, 200));
        child.kill('SIGINT');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
        return parsePcap(readFileSync(file));
      },
    };
  }

  // ---- logs ----

  /** Every JSON line the lab wrote: its --log-dir files, then its own standard output. */
  logLines(): LogLine[] {
    const lines: LogLine[] = [];
    if (existsSync(this.logDir)) {
      for (const f of readdirSync(this.logDir).sort()) {
        const p = join(this.logDir, f);
        if (!statSync(p).isFile()) continue;
        for (const text of readFileSync(p, 'utf8').split('\n')) {
          if (!text.startsWith('{')) continue;
          try { lines.push({ ...(JSON.parse(text) as LogLine), logFile: f }); } catch { /* a line being written */ }
        }
      }
    }
    return lines.concat(this.proc?.lines ?? []);
  }

  /** The access-log lines (`connection complete` / `connection refused`) of one node's ztunnel. */
  accessLog(node: string): LogLine[] {
    return this.logLines().filter((l) => l.component === 'ztunnel' && l.node === node && (l.msg === 'connection complete' || l.msg === 'connection refused'));
  }

  /** The first line of the lab (any component) matching `pred`, waiting for it. */
  waitForLog(pred: (l: LogLine) => boolean, what: string, timeoutMs = 10_000): Promise<LogLine> {
    return until(() => this.logLines().find(pred), what, timeoutMs, 100);
  }

  // ---- the end ----

  /** Synchronous best effort for the process's exit: `strait lab down`, then SIGKILL of the child. */
  stopNowSync(): void {
    if (!this.proc || this.proc.child.exitCode !== null || this.proc.child.signalCode !== null) return;
    spawnSync(process.execPath, [STRAIT_BIN, 'lab', 'down', '--state-file', this.stateFile], { stdio: 'ignore', timeout: 40_000 });
    try { this.proc.child.kill('SIGKILL'); } catch { /* gone */ }
  }

  /**
   * `strait lab down`, and then the proof that the lab left nothing: no namespace with its prefix, none of the
   * processes that ran in its namespaces or that the state file named still alive, no process in what were its
   * namespaces, no process naming its files, no state file, no new Strait rule in the machine's own namespace.
   * Cleans up by force what is left before it asserts, so a failing lab never stays behind. Idempotent.
   */
  down(): Promise<void> {
    return (this.downDone ??= this.doDown());
  }

  private async doDown(): Promise<void> {
    live.delete(this);
    const state = existsSync(this.stateFile) ? this.readState() : this.state;
    const prefix = state?.prefix;
    const problems: string[] = [];
    // What runs now: the lab's own process, everything the state file names, everything inside its namespaces.
    const watched = new Map<number, { start: string | undefined; what: string }>();
    const watch = (pid: number | null | undefined, what: string): void => {
      if (pid && pid !== process.pid && !watched.has(pid)) watched.set(pid, { start: startTime(pid), what });
    };
    if (this.proc?.child.pid) watch(this.proc.child.pid, 'lab up');
    if (state) {
      watch(state.controller?.pid, 'controller');
      for (const [n, x] of Object.entries(state.nodes ?? {})) watch(x.ztunnel?.pid, `ztunnel ${n}`);
      for (const [n, x] of Object.entries(state.waypoints ?? {})) watch(x.pid, `waypoint ${n}`);
      for (const [n, x] of Object.entries(state.pods ?? {})) watch(x.process?.pid, `pod ${n}`);
    }
    const namespaces = prefix ? listNamespaces(prefix) : [];
    const nsInodes = new Set<string>();
    for (const ns of namespaces) {
      try { nsInodes.add(`net:[${statSync(`/run/netns/${ns}`).ino}]`); } catch { /* already gone */ }
      for (const pid of runSync(['ip', 'netns', 'pids', ns], { allowFailure: true }).stdout.split(/\s+/).filter(Boolean).map(Number)) watch(pid, `a process in ${ns}: ${cmdline(pid)}`);
    }

    const down = await runAsync([process.execPath, STRAIT_BIN, 'lab', 'down', '--state-file', this.stateFile], { allowFailure: true, timeoutMs: 45_000 });
    if (down.status !== 0) problems.push(`strait lab down exited ${down.status}: ${down.stderr.trim()} ${down.stdout.trim()}`);
    if (this.proc) {
      const timer = setTimeout(() => { problems.push('lab up was still running 35 s after strait lab down: SIGKILL'); this.proc.child.kill('SIGKILL'); }, 35_000);
      const code = await this.proc.exited;
      clearTimeout(timer);
      if (code !== 0 && code !== null) problems.push(`lab up exited with ${code} after strait lab down (stderr: ${this.proc.stderr.slice(-5).join(' | ')})`);
    }

    // What is left, then removed by force so that a failure never leaves the lab on the machine.
    const stillAlive = (pid: number): boolean => pidAlive(pid) && startTime(pid) === watched.get(pid)!.start;
    // A process may take a moment to be reaped after its namespace is gone.
    await until(() => [...watched.keys()].every((pid) => !stillAlive(pid)), 'the lab\'s processes to be gone', 5000, 100).catch(() => undefined);
    for (const [pid, w] of watched) {
      if (stillAlive(pid)) {
        problems.push(`process ${pid} (${w.what}) is still running: ${cmdline(pid)}`);
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
    }
    for (const pid of allPids()) {
      if (pid === process.pid) continue;
      let net = '';
      try { net = readlinkSync(`/proc/${pid}/ns/net`); } catch { continue; }
      const cmd = cmdline(pid);
      const inLabNs = nsInodes.has(net);
      let cwd = '';
      try { cwd = readlinkSync(`/proc/${pid}/cwd`); } catch { /* gone */ }
      const namesLab = [cmd, cwd].some((s) => s.includes(this.root.path) || (state?.dataDir !== undefined && s.includes(state.dataDir)));
      if (inLabNs || namesLab) {
        problems.push(`process ${pid} ${inLabNs ? 'still runs in a namespace of the lab' : 'names the lab\'s files (arguments or working directory)'}: ${cmd}`);
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
    }
    const leftNs = prefix ? listNamespaces(prefix) : [];
    if (leftNs.length) {
      problems.push(`namespaces left behind: ${leftNs.join(', ')}`);
      for (const ns of leftNs) runSync(['ip', 'netns', 'del', ns], { allowFailure: true });
    }
    if (!prefix) problems.push('the lab never wrote a state file naming its namespace prefix: cannot check its namespaces');
    if (existsSync(this.stateFile)) problems.push(`the state file ${this.stateFile} is still there`);
    for (const dir of (state as { temporaryDirs?: string[] } | undefined)?.temporaryDirs ?? []) {
      if (existsSync(dir)) problems.push(`the lab's temporary directory ${dir} is still there`);
    }
    const newRules = rootStraitRules().filter((l) => !this.rootRulesBefore.has(l));
    if (newRules.length) problems.push(`new Strait rules in the machine's own namespace: ${newRules.join(' / ')}`);
    if (problems.length === 0) this.root.remove();
    assert.deepEqual(problems, [], `the lab left things behind (its files are kept in ${this.root.path})`);
  }
}
