/** Bench helper: percentiles, a plain-text table, and bench/results/<name>.json. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './controller-proc.js';

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function summarize(values: readonly number[]): { n: number; p50: number; p99: number; max: number; mean: number } {
  const s = [...values].sort((a, b) => a - b);
  return {
    n: s.length,
    p50: percentile(s, 50),
    p99: percentile(s, 99),
    max: s.length ? s[s.length - 1]! : NaN,
    mean: s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN,
  };
}

export const MiB = 1024 * 1024;
export const mib = (bytes: number): number => Math.round((bytes / MiB) * 10) / 10;
export const round = (n: number, digits = 1): number => {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
};

/** Renders rows as an aligned table (first row = header); numbers right-aligned. */
export function table(rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? (Number.isFinite(c) ? String(c) : '-') : c)));
  const widths: number[] = [];
  for (const r of cells) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  const line = (r: string[], raw: (string | number)[]) =>
    '| ' + r.map((c, i) => (typeof raw[i] === 'number' ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ') + ' |';
  const out = [line(cells[0]!, rows[0]!), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|'];
  for (let i = 1; i < cells.length; i++) out.push(line(cells[i]!, rows[i]!));
  return out.join('\n');
}

/** Writes bench/results/<name>.json; returns its path. */
export function writeResults(name: string, data: unknown): string {
  const dir = join(REPO_ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(data, null, 2) + '\n');
  return file;
}

/** Numeric flag `--name N` from argv, else the default. */
export function numArg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const n = Number(process.argv[i + 1]);
  if (!Number.isFinite(n)) throw new Error(`--${name} needs a number (got ${process.argv[i + 1]})`);
  return n;
}

/** Machine facts for the results file. */
export interface MachineInfo {
  node: string;
  cpus: number;
  cpuModel: string | undefined;
  memTotalMiB: number;
  platform: string;
}

export async function machine(): Promise<MachineInfo> {
  const os = await import('node:os');
  return {
    node: process.version, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memTotalMiB: mib(os.totalmem()),
    platform: `${os.platform()} ${os.release()}`,
  };
}

/** Share of all CPUs busy over `ms` (from /proc/stat), 0..1. */
export async function cpuBusy(ms = 1000): Promise<number> {
  const { readFileSync } = await import('node:fs');
  const read = () => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3]! + (f[4] ?? 0);
    return { idle, total: f.reduce((a, b) => a + b, 0) };
  };
  const a = read();
  await new Promise((r) => setTimeout(r, ms));
  const b = read();
  return b.total === a.total ? 0 : 1 - (b.idle - a.idle) / (b.total - a.total);
}

/** Warns when something else keeps the machine busy: the figures would measure the sharing, not Strait. */
export async function warnIfBusy(): Promise<number> {
  const busy = await cpuBusy();
  if (busy > 0.2) console.log(`WARNING: ${Math.round(busy * 100)}% of the CPU was busy before the start: other processes compete; figures will be lower than on an idle machine`);
  return round(busy, 2);
}
