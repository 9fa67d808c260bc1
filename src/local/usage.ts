/**
 * CPU and memory of the local mesh's processes, from systeminformation (its process list: `ps` plus each process's
 * /proc/<pid>/stat on Linux). CPU is the share of one core used since the previous sample, as `top` shows it; a
 * process seen for the first time has no previous sample, so its CPU is null until the next one.
 * Invariants: one sample at a time (a caller arriving meanwhile gets the sample in flight); `seen` holds exactly the
 * pids of the last sample (all processes: systeminformation's CPU baseline covers them all).
 */
import { cpus } from 'node:os';
import si from 'systeminformation';

export interface ProcessUsage {
  /** Percent of one core since the previous sample; null on a process's first sample. */
  cpuPercent: number | null;
  rssBytes: number;
}

export class UsageSampler {
  private seen = new Set<number>();
  private inFlight: Promise<Map<number, ProcessUsage>> | undefined;

  /** Usage of those of `pids` that are running. */
  sample(pids: readonly number[]): Promise<Map<number, ProcessUsage>> {
    return (this.inFlight ??= this.read(pids).finally(() => { this.inFlight = undefined; }));
  }

  private async read(pids: readonly number[]): Promise<Map<number, ProcessUsage>> {
    const want = new Set(pids);
    const { list } = await si.processes();
    // systeminformation gives CPU as a share of all cores together (100 = every core busy).
    const cores = Math.max(1, cpus().length);
    const out = new Map<number, ProcessUsage>();
    for (const p of list) {
      if (!want.has(p.pid)) continue;
      out.set(p.pid, { cpuPercent: this.seen.has(p.pid) ? round1(p.cpu * cores) : null, rssBytes: p.memRss * 1024 });
    }
    // systeminformation keeps the previous sample of every process, not only of those asked for.
    this.seen = new Set(list.map((p) => p.pid));
    return out;
  }
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

