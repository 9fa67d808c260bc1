/**
 * Numbers for the data-path benchmark: latency samples and their percentiles, process CPU and memory from
 * /proc, and the plain-text table. No I/O besides reading /proc.
 */
import { readFileSync, readdirSync } from 'node:fs';

/** Latency samples in nanoseconds, kept in a preallocated array (no allocation per request). */
export class Samples {
  private buf: Float64Array;
  count = 0;

  constructor(capacity: number) {
    this.buf = new Float64Array(Math.max(16, capacity));
  }

  add(ns: number): void {
    if (this.count === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.count++] = ns;
  }

  addAll(other: Samples): void {
    for (let i = 0; i < other.count; i++) this.add(other.buf[i]!);
  }

  /** A copy of the samples (nanoseconds), e.g. to send them to another process. */
  values(): Float64Array {
    return this.buf.slice(0, this.count);
  }

  static from(values: ArrayLike<number>): Samples {
    const s = new Samples(values.length);
    for (let i = 0; i < values.length; i++) s.add(values[i]!);
    return s;
  }

  /** Percentiles in milliseconds (nearest-rank). */
  summary(): LatencySummary {
    const sorted = this.buf.slice(0, this.count).sort();
    const at = (q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]! / 1e6 : NaN);
    let sum = 0;
    for (const v of sorted) sum += v;
    return {
      count: sorted.length,
      mean: sorted.length ? sum / sorted.length / 1e6 : NaN,
      p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999),
      max: sorted.length ? sorted[sorted.length - 1]! / 1e6 : NaN,
    };
  }
}

/** Milliseconds. */
export interface LatencySummary {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export const PERCENTILES = ['p50', 'p90', 'p99'] as const;
export type Percentile = (typeof PERCENTILES)[number];

/** What a path adds on top of the direct connection, per percentile (ms). */
export function added(path: LatencySummary, direct: LatencySummary): Record<Percentile, number> {
  return { p50: path.p50 - direct.p50, p90: path.p90 - direct.p90, p99: path.p99 - direct.p99 };
}

// ---- /proc ----

const CLOCK_TICKS_PER_S = 100; // USER_HZ; Linux has reported 100 on every mainstream architecture for decades

/** utime and stime of a whole process (all its threads), in seconds; undefined once it is gone. */
export function cpuTimes(pid: number): { user: number; system: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: fields are counted after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(rest[11]) / CLOCK_TICKS_PER_S, system: Number(rest[12]) / CLOCK_TICKS_PER_S };
  } catch {
    return undefined;
  }
}

/** utime + stime of a whole process, in seconds. */
export function cpuSeconds(pid: number): number | undefined {
  const t = cpuTimes(pid);
  return t && t.user + t.system;
}

/** The direct children of a process (every thread's `children` list in /proc), e.g. a ztunnel's workers. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        for (const c of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/)) if (c) out.push(Number(c));
      } catch { /* the thread ended */ }
    }
  } catch { /* the process ended */ }
  return out;
}

/** VmRSS and VmHWM of a process, in MiB. */
export function memoryMiB(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

/**
 * CPU used by a set of processes between start() and stop(), and their resident memory sampled meanwhile
 * (the largest sample and the last one per process).
 */
export class ProcessMeter {
  private cpu0 = new Map<number, { user: number; system: number }>();
  private t0 = 0n;
  private peak = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly pids: Record<string, number>) {}

  start(sampleEveryMs = 250): void {
    for (const pid of Object.values(this.pids)) this.cpu0.set(pid, cpuTimes(pid) ?? { user: NaN, system: NaN });
    this.t0 = process.hrtime.bigint();
    this.sample();
    this.timer = setInterval(() => this.sample(), sampleEveryMs);
  }

  private sample(): void {
    for (const pid of Object.values(this.pids)) {
      const m = memoryMiB(pid);
      if (m) this.peak.set(pid, Math.max(this.peak.get(pid) ?? 0, m.rss));
    }
  }

  stop(): ProcessUsage {
    clearInterval(this.timer);
    this.sample();
    const seconds = Number(process.hrtime.bigint() - this.t0) / 1e9;
    const per: ProcessUsage['processes'] = {};
    for (const [name, pid] of Object.entries(this.pids)) {
      const t1 = cpuTimes(pid) ?? { user: NaN, system: NaN };
      const t0 = this.cpu0.get(pid)!;
      const user = t1.user - t0.user;
      const system = t1.system - t0.system;
      per[name] = { pid, cpuSeconds: user + system, userSeconds: user, systemSeconds: system, vcpu: (user + system) / seconds, rssMiB: memoryMiB(pid)?.rss ?? NaN, peakRssMiB: this.peak.get(pid) ?? NaN };
    }
    const vcpu = Object.values(per).reduce((s, p) => s + p.vcpu, 0);
    return { seconds, vcpu, processes: per };
  }
}

export interface ProcessUsage {
  seconds: number;
  /** Sum over the processes. */
  vcpu: number;
  processes: Record<string, { pid: number; cpuSeconds: number; userSeconds?: number; systemSeconds?: number; vcpu: number; rssMiB: number; peakRssMiB: number }>;
}

// ---- formatting ----

export const ms = (v: number | undefined, digits = 3): string => (v === undefined || Number.isNaN(v) ? '—' : v.toFixed(digits));
export const signedMs = (v: number | undefined, digits = 3): string => (v === undefined || Number.isNaN(v) ? '—' : `${v >= 0 ? '+' : ''}${v.toFixed(digits)}`);
export const ratio = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '—' : `${v.toFixed(2)}×`);

/** A plain-text table with a header row; columns right-aligned except the first. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** Busy CPU time of the whole machine (all CPUs), in seconds, from /proc/stat. */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!; // "cpu  user nice system idle iowait irq softirq steal ..."
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f;
  return (user! + nice! + system! + irq! + softirq! + (steal ?? 0)) / CLOCK_TICKS_PER_S;
}

/**
 * How busy the machine was during a phase, and how much of that was someone else's: the benchmark's own
 * processes (`ours`) are subtracted from the machine total. On a 2-core machine another job at work makes
 * every latency figure noisier; the report says so.
 */
export class MachineMeter {
  private busy0 = 0;
  private ours0 = 0;
  private t0 = 0n;

  constructor(private readonly ours: () => number[]) {}

  private oursSeconds(): number {
    return this.ours().reduce((s, pid) => s + (cpuSeconds(pid) ?? 0), 0);
  }

  start(): void {
    this.busy0 = machineBusySeconds();
    this.ours0 = this.oursSeconds();
    this.t0 = process.hrtime.bigint();
  }

  stop(): MachineUsage {
    const seconds = Number(process.hrtime.bigint() - this.t0) / 1e9;
    const machine = (machineBusySeconds() - this.busy0) / seconds;
    const ours = (this.oursSeconds() - this.ours0) / seconds;
    return { seconds, machineVcpu: machine, benchVcpu: ours, otherVcpu: Math.max(0, machine - ours) };
  }
}

export interface MachineUsage {
  seconds: number;
  /** All CPUs, all processes. */
  machineVcpu: number;
  /** The benchmark's processes: load client, server, mesh (controller, ztunnels, strait up), stunnels. */
  benchVcpu: number;
  /** Everything else (other jobs on the machine, the kernel's own threads). */
  otherVcpu: number;
}

/** The 1-minute load average. */
export function loadAverage(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}

// ---- merging rounds ----

/** Usage over several runs: CPU summed, RSS from the last run, peak RSS the largest; vCPU over the runs' total time. */
export function mergeUsage(us: ProcessUsage[]): ProcessUsage {
  const seconds = us.reduce((s, u) => s + u.seconds, 0);
  const processes: ProcessUsage['processes'] = {};
  for (const u of us) {
    for (const [name, p] of Object.entries(u.processes)) {
      const acc = processes[name];
      if (!acc) {
        processes[name] = { ...p };
        continue;
      }
      acc.cpuSeconds += p.cpuSeconds;
      acc.userSeconds = (acc.userSeconds ?? NaN) + (p.userSeconds ?? NaN);
      acc.systemSeconds = (acc.systemSeconds ?? NaN) + (p.systemSeconds ?? NaN);
      acc.rssMiB = p.rssMiB;
      acc.peakRssMiB = Math.max(acc.peakRssMiB, p.peakRssMiB);
    }
  }
  for (const p of Object.values(processes)) p.vcpu = p.cpuSeconds / seconds;
  return { seconds, vcpu: Object.values(processes).reduce((s, p) => s + p.vcpu, 0), processes };
}

/** Machine usage over several runs, each weighted by its duration. */
export function mergeMachine(ms: MachineUsage[]): MachineUsage {
  const seconds = ms.reduce((s, m) => s + m.seconds, 0);
  const w = (k: 'machineVcpu' | 'benchVcpu' | 'otherVcpu') => ms.reduce((s, m) => s + m[k] * m.seconds, 0) / seconds;
  return { seconds, machineVcpu: w('machineVcpu'), benchVcpu: w('benchVcpu'), otherVcpu: w('otherVcpu') };
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : NaN;
};

/** Round k visits the items starting from the k-th, so a noisy moment does not always hit the same one. */
export const rotated = <T>(xs: T[], k: number): T[] => xs.map((_, i) => xs[(i + k) % xs.length]!);

/** MiB (from /proc) to MB (10^6 bytes, the unit of the budgets). */
export const MB = (mib: number): number => (mib * 1048576) / 1e6;
