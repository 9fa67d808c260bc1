/**
 * Bench helper: runs the real `strait controller` process (dist/src/cli/strait.js) on loopback and reads
 * its CPU time and memory from /proc. Shared by bench/signing.ts and bench/propagation.ts.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** Repository root (this file runs as dist/bench/lib/controller-proc.js). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const STRAIT_CLI = join(REPO_ROOT, 'dist/src/cli/strait.js');

let clockTicks: number | undefined;
/** USER_HZ, the unit of utime/stime in /proc/<pid>/stat. */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number(r.stdout?.trim());
    clockTicks = Number.isFinite(n) && n > 0 ? n : 100;
  }
  return clockTicks;
}

/** User + system CPU time of a process so far, in ms (from /proc/<pid>/stat; 10 ms resolution at USER_HZ 100). */
export function procCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start at field 3 ("state").
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]); // field 14
  const stime = Number(rest[12]); // field 15
  return ((utime + stime) * 1000) / clockTicksPerSecond();
}

/** CPU time all processes of the machine have used so far (non-idle jiffies of /proc/stat), in ms. */
export function systemBusyMs(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3]! + (f[4] ?? 0); // idle + iowait
  const busy = f.slice(0, 8).reduce((a, b) => a + b, 0) - idle; // user..steal, without guest (counted in user)
  return (busy * 1000) / clockTicksPerSecond();
}

/** Resident set size now (VmRSS) and its peak so far (VmHWM), in bytes. */
export function procMemory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

export interface LogLine {
  msg?: string;
  level?: number | string;
  [k: string]: unknown;
}

export interface ControllerProcess {
  child: ChildProcess;
  pid: number;
  xds: string;
  admin: string;
  rootPem: string;
  dataDir: string;
  /** Contents of <data-dir>/tokens/node-<node>.token. */
  nodeToken(node: string): string;
  /**
   * The node's token, waiting for the file if needed: the controller may log "controller ready" before it
   * has written every token file of a large config (it writes them one by one from a change listener).
   */
  waitForNodeToken(node: string, timeoutMs?: number): Promise<string>;
  cpuMs(): number;
  memory(): { rss: number; peak: number };
  /** GET on the admin listener. */
  get(path: string): Promise<string>;
  /** Log lines seen (the last 2000). */
  lines: LogLine[];
  stop(): Promise<number | null>;
}

export interface StartOptions {
  configDir: string;
  dataDir: string;
  extraArgs?: string[];
  /** Options of `strait` itself, before the command (e.g. ['--log-level', 'debug']). */
  globalArgs?: string[];
  /** How long to wait for "controller ready" (loading a big config takes a while). */
  readyTimeoutMs?: number;
  nodeArgs?: string[];
}

/** Starts `strait controller` on 127.0.0.1 with ephemeral ports; resolves once it logged "controller ready". */
export async function startControllerProcess(opts: StartOptions): Promise<ControllerProcess> {
  const args = [
    ...(opts.nodeArgs ?? []),
    STRAIT_CLI,
    ...(opts.globalArgs ?? []),
    'controller',
    '--config-dir', opts.configDir,
    '--data-dir', opts.dataDir,
    '--xds-address', '127.0.0.1:0',
    '--admin-address', '127.0.0.1:0',
    ...(opts.extraArgs ?? []),
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO_ROOT });
  const lines: LogLine[] = [];
  const stderr: string[] = [];
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  let onReady: ((l: LogLine) => void) | undefined;
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      line = { msg: text };
    }
    lines.push(line);
    if (lines.length > 2000) lines.splice(0, 1000);
    if (line.msg === 'controller ready') onReady?.(line);
  });
  createInterface({ input: child.stderr! }).on('line', (t) => {
    stderr.push(t);
    if (stderr.length > 200) stderr.shift();
  });

  const timeoutMs = opts.readyTimeoutMs ?? 120_000;
  const ready = await new Promise<LogLine>((resolve, reject) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`controller not ready after ${timeoutMs} ms; stderr: ${stderr.join('\n')}`));
    }, timeoutMs);
    onReady = (l) => {
      clearTimeout(t);
      resolve(l);
    };
    void exited.then((code) => {
      clearTimeout(t);
      reject(new Error(`controller exited (${code}) before it was ready; stderr: ${stderr.join('\n')}; last lines: ${JSON.stringify(lines.slice(-5))}`));
    });
  });
  const rootPem = readFileSync(ready.rootCert as string, 'utf8');
  const admin = ready.admin as string;
  const pid = child.pid!;
  return {
    child,
    pid,
    xds: ready.xds as string,
    admin,
    rootPem,
    dataDir: opts.dataDir,
    lines,
    nodeToken: (node) => readFileSync(join(opts.dataDir, 'tokens', `node-${node}.token`), 'utf8').trim(),
    async waitForNodeToken(node, timeoutMs = 30_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        try {
          const t = readFileSync(join(opts.dataDir, 'tokens', `node-${node}.token`), 'utf8').trim();
          if (t) return t;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || Date.now() > until) throw err;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    cpuMs: () => procCpuMs(pid),
    memory: () => procMemory(pid),
    async get(path) {
      const res = await fetch(`http://${admin}${path}`);
      const text = await res.text();
      if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status}: ${text.slice(0, 200)}`);
      return text;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** One Prometheus histogram (one label set) read from /metrics text: cumulative bucket counts, sum, count. */
export interface PromHistogram {
  buckets: { le: number; count: number }[];
  sum: number;
  count: number;
}

/** Reads histogram `name` with label `label="value"` from Prometheus exposition text. */
export function promHistogram(text: string, name: string, label: string, value: string): PromHistogram {
  const buckets: { le: number; count: number }[] = [];
  let sum = 0;
  let count = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || !line.includes(`${label}="${value}"`)) continue;
    const num = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.startsWith(`${name}_bucket{`)) {
      const le = /le="([^"]+)"/.exec(line)?.[1];
      buckets.push({ le: le === '+Inf' ? Infinity : Number(le), count: num });
    } else if (line.startsWith(`${name}_sum{`)) sum = num;
    else if (line.startsWith(`${name}_count{`)) count = num;
  }
  buckets.sort((a, b) => a.le - b.le);
  return { buckets, sum, count };
}

/** after − before, bucket by bucket. */
export function histogramDelta(before: PromHistogram, after: PromHistogram): PromHistogram {
  return {
    buckets: after.buckets.map((b) => ({ le: b.le, count: b.count - (before.buckets.find((x) => x.le === b.le)?.count ?? 0) })),
    sum: after.sum - before.sum,
    count: after.count - before.count,
  };
}

/** Upper bound of the bucket holding quantile q (0..1): what the histogram can say about a percentile. */
export function histogramQuantileBound(h: PromHistogram, q: number): number {
  if (h.count === 0) return NaN;
  const rank = Math.ceil(q * h.count);
  for (const b of h.buckets) if (b.count >= rank) return b.le;
  return Infinity;
}

/** Value of a counter/gauge line `name{label="value"} N` (0 when absent). */
export function promValue(text: string, name: string, label?: string, value?: string): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (label ? !rest.startsWith('{') || !rest.includes(`${label}="${value}"`) : !(rest.startsWith(' ') || rest.startsWith('{}'))) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}
