/**
 * The measured phases of the data-path benchmarks (bench/datapath.ts on loopback, bench/capture.ts through real
 * capture), the same for every path and whichever LoadDriver carries the load:
 * - sequential: one keep-alive connection per path, the next request as soon as the previous response ended;
 * - rate: open-loop load at a fixed rate over several keep-alive connections per path, latency from the scheduled
 *   send time (and from the write), with the path's proxy processes metered (CPU, RSS);
 * - throughput: bulk download and upload on 1 or N connections at once, with the proxies' CPU metered.
 * Paths alternate within every phase (round k starts with the k-th path), and each measured run goes through the
 * NoiseGuard, which redoes runs during which other jobs were busy.
 */
import type { OpenLoopResult, TransferResult } from './datapath-client.js';
import type { LoadDriver } from './datapath-load.js';
import type { NoiseGuard } from './bench-noise.js';
import {
  ProcessMeter, Samples, median, mergeMachine, mergeUsage, ms, rotated,
  type LatencySummary, type MachineUsage, type ProcessUsage,
} from './datapath-stats.js';

export interface PhasePath {
  name: string;
  /** The path's proxy processes by name, whose CPU and memory are metered (none for direct). */
  pids: Record<string, number>;
}

export interface PhaseContext {
  load: LoadDriver;
  noise: NoiseGuard;
  say: (msg: string) => void;
  /** Called right before a path's metered run starts and right after it ends (e.g. to start and stop CPU profiles). */
  toggle?: (path: PhasePath) => Promise<void>;
}

export interface SequentialSummary {
  latency: LatencySummary;
  errors: number;
  seconds: number;
  machine: MachineUsage;
}

export interface RateSummary {
  fromSchedule: LatencySummary;
  service: LatencySummary;
  lateness: LatencySummary;
  scheduled: number;
  due: number;
  completed: number;
  errors: number;
  achievedRps: number;
  usage: ProcessUsage;
  machine: MachineUsage;
}

export interface ThroughputSummary {
  download: TransferResult[];
  upload: TransferResult[];
  /** Median over the repeats, all streams together. */
  downloadMiBps: number;
  uploadMiBps: number;
  usage: ProcessUsage;
  machine: MachineUsage;
}

const gc = () => (globalThis as { gc?: () => void }).gc?.();

/** Sequential requests on one keep-alive connection per path, in interleaved rounds. */
export async function measureSequential(ctx: PhaseContext, paths: PhasePath[], cfg: { warmup: number; count: number; maxMs: number; rounds: number }): Promise<Record<string, SequentialSummary>> {
  const { load, noise, say } = ctx;
  const set = (p: PhasePath) => `sequential:${p.name}`;
  const state = new Map<string, { latency: Samples; errors: number; seconds: number; machine: MachineUsage[] }>();
  const out: Record<string, SequentialSummary> = {};
  try {
    for (const p of paths) {
      await load.open(set(p), p.name, 1);
      state.set(p.name, { latency: new Samples(cfg.count), errors: 0, seconds: 0, machine: [] });
      await load.sequential(set(p), cfg.warmup, cfg.maxMs);
    }
    for (let k = 0; k < cfg.rounds; k++) {
      for (const p of rotated(paths, k)) {
        const st = state.get(p.name)!;
        gc();
        const { value: r, machine } = await noise.measured(`sequential ${p.name} #${k + 1}`, () => load.sequential(set(p), Math.ceil(cfg.count / cfg.rounds), cfg.maxMs / cfg.rounds));
        st.machine.push(machine);
        st.latency.addAll(r.latency);
        st.errors += r.errors;
        st.seconds += r.seconds;
      }
    }
    for (const p of paths) {
      const st = state.get(p.name)!;
      out[p.name] = { latency: st.latency.summary(), errors: st.errors, seconds: st.seconds, machine: mergeMachine(st.machine) };
      const l = out[p.name]!.latency;
      say(`1 connection, ${p.name}: p50 ${ms(l.p50)} p90 ${ms(l.p90)} p99 ${ms(l.p99)} ms (${l.count} requests)`);
    }
    return out;
  } finally {
    for (const p of paths) await load.close(set(p)).catch(() => undefined);
  }
}

/** Open-loop load at cfg.rps over cfg.connections connections per path, in interleaved rounds, the proxies metered. */
export async function measureRate(ctx: PhaseContext, paths: PhasePath[], cfg: { rps: number; connections: number; warmupMs: number; durationMs: number; rounds: number }): Promise<Record<string, RateSummary>> {
  const { load, noise, say } = ctx;
  const { rps, connections, warmupMs, durationMs, rounds } = cfg;
  const set = (p: PhasePath) => `rate:${p.name}`;
  const state = new Map<string, { runs: OpenLoopResult[]; usage: ProcessUsage[]; machine: MachineUsage[] }>();
  const out: Record<string, RateSummary> = {};
  try {
    for (const p of paths) {
      await load.open(set(p), p.name, connections);
      state.set(p.name, { runs: [], usage: [], machine: [] });
      await load.openLoop(set(p), rps, warmupMs);
    }
    for (let k = 0; k < rounds; k++) {
      for (const p of rotated(paths, k)) {
        const st = state.get(p.name)!;
        gc();
        const { value, machine } = await noise.measured(`${rps} req/s ${p.name} #${k + 1}`, async () => {
          const meter = new ProcessMeter(p.pids);
          await ctx.toggle?.(p);
          meter.start();
          const run = await load.openLoop(set(p), rps, durationMs / rounds);
          const usage = meter.stop();
          await ctx.toggle?.(p);
          return { run, usage };
        });
        st.runs.push(value.run);
        st.usage.push(value.usage);
        st.machine.push(machine);
      }
    }
    for (const p of paths) {
      const st = state.get(p.name)!;
      const all = <K extends 'fromSchedule' | 'service' | 'lateness'>(key: K) => {
        const s = new Samples(rps * (durationMs / 1000));
        for (const r of st.runs) s.addAll(r[key]);
        return s.summary();
      };
      const sum = (key: 'scheduled' | 'due' | 'completed' | 'errors' | 'seconds') => st.runs.reduce((t, r) => t + r[key], 0);
      const s: RateSummary = {
        fromSchedule: all('fromSchedule'), service: all('service'), lateness: all('lateness'),
        scheduled: sum('scheduled'), due: sum('due'), completed: sum('completed'), errors: sum('errors'), achievedRps: sum('completed') / sum('seconds'),
        usage: mergeUsage(st.usage), machine: mergeMachine(st.machine),
      };
      out[p.name] = s;
      say(`${rps} req/s, ${p.name}: p50 ${ms(s.fromSchedule.p50)} p90 ${ms(s.fromSchedule.p90)} p99 ${ms(s.fromSchedule.p99)} ms, ${s.achievedRps.toFixed(0)} req/s, proxies ${s.usage.vcpu.toFixed(3)} vCPU`);
    }
    return out;
  } finally {
    for (const p of paths) await load.close(set(p)).catch(() => undefined);
  }
}

/**
 * Bulk transfers: per repeat and path, a download then an upload of cfg.bytes on each of cfg.streams connections at
 * once (fresh connections each time), the proxies metered over both. Repeats interleave the paths.
 */
export async function measureThroughput(ctx: PhaseContext, paths: PhasePath[], cfg: { bytes: number; repeats: number; maxMs: number; streams: number }): Promise<Record<string, ThroughputSummary>> {
  const { load, noise, say } = ctx;
  const runs = new Map<string, { download: TransferResult[]; upload: TransferResult[]; usage: ProcessUsage[]; machine: MachineUsage[] }>();
  for (const p of paths) runs.set(p.name, { download: [], upload: [], usage: [], machine: [] });
  const label = cfg.streams === 1 ? 'throughput' : `throughput x${cfg.streams}`;
  for (let rep = 0; rep < cfg.repeats; rep++) {
    for (const p of rotated(paths, rep)) {
      const run = runs.get(p.name)!;
      gc();
      const { value, machine } = await noise.measured(`${label} ${p.name} #${rep + 1}`, async () => {
        const meter = new ProcessMeter(p.pids);
        await ctx.toggle?.(p);
        meter.start(1000);
        const down = await load.download(p.name, cfg.bytes, cfg.streams, cfg.maxMs);
        const up = await load.upload(p.name, cfg.bytes, cfg.streams, cfg.maxMs);
        const usage = meter.stop();
        await ctx.toggle?.(p);
        return { down, up, usage };
      });
      run.download.push(value.down);
      run.upload.push(value.up);
      run.usage.push(value.usage);
      run.machine.push(machine);
      say(`${label} ${p.name} #${rep + 1}: download ${value.down.mibps.toFixed(0)} MiB/s, upload ${value.up.mibps.toFixed(0)} MiB/s`);
    }
  }
  const out: Record<string, ThroughputSummary> = {};
  for (const p of paths) {
    const run = runs.get(p.name)!;
    out[p.name] = {
      download: run.download, upload: run.upload,
      downloadMiBps: median(run.download.map((r) => r.mibps)), uploadMiBps: median(run.upload.map((r) => r.mibps)),
      usage: mergeUsage(run.usage), machine: mergeMachine(run.machine),
    };
  }
  return out;
}
