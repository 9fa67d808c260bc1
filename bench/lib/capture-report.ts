/**
 * Figures of the capture benchmark (bench/capture.ts): per variant, the same-run ratios of Strait against the direct
 * path, stunnel and the Node.js TLS floor, and the printed tables. Pure: from the measured results.
 */
import type { RateSummary, SequentialSummary, ThroughputSummary } from './datapath-phases.js';
import { MB, added, ms, ratio, table, type LatencySummary } from './datapath-stats.js';

export type VariantName = 'direct' | 'strait' | 'stunnel' | 'node-tls';
export const VARIANTS: VariantName[] = ['direct', 'strait', 'stunnel', 'node-tls'];

export interface VariantResult {
  sequential?: SequentialSummary;
  rate?: RateSummary;
  /** 1 connection at a time. */
  throughput1?: ThroughputSummary;
  /** N connections at once. */
  throughputN?: ThroughputSummary;
  /** The proxies by side (client = node A, server = node B) → process name in `usage`. */
  sides: { client?: string; server?: string };
  idleRssMB: Record<string, number>;
}

export type Results = Partial<Record<VariantName, VariantResult>>;

export interface Figure {
  figure: string;
  values: Partial<Record<VariantName, number>>;
  digits: number;
  /** Strait's value over the reference's (same run). */
  vsDirect?: number;
  vsStunnel?: number;
  vsFloor?: number;
}

export interface ReportConfig {
  rps: number;
  connections: number;
  streams: number;
}

const cpuSeconds = (t: { usage: { processes: Record<string, { cpuSeconds: number }> } }) => Object.values(t.usage.processes).reduce((s, p) => s + p.cpuSeconds, 0);
const gib = (t: ThroughputSummary) => [...t.download, ...t.upload].reduce((s, x) => s + x.bytes, 0) / 2 ** 30;

/** Every figure with its ratios; a variant that did not run (or has no proxy) has no value. */
export function figures(r: Results, cfg: ReportConfig): Figure[] {
  const out: Figure[] = [];
  const row = (figure: string, digits: number, pick: (v: VariantResult) => number | undefined, ratios: { direct?: boolean } = { direct: true }) => {
    const values: Partial<Record<VariantName, number>> = {};
    for (const name of VARIANTS) {
      const v = r[name];
      const x = v && pick(v);
      if (x !== undefined && Number.isFinite(x)) values[name] = x;
    }
    if (!Object.keys(values).length) return;
    const s = values.strait;
    const over = (ref: number | undefined) => (s !== undefined && ref !== undefined && ref !== 0 ? s / ref : undefined);
    out.push({ figure, values, digits, ...(ratios.direct ? { vsDirect: over(values.direct) } : {}), vsStunnel: over(values.stunnel), vsFloor: over(values['node-tls']) });
  };
  const tput = (key: 'throughput1' | 'throughputN', label: string) => {
    row(`${label}: download, MiB/s`, 0, (v) => v[key]?.downloadMiBps);
    row(`${label}: upload, MiB/s`, 0, (v) => v[key]?.uploadMiBps);
    row(`${label}: proxy CPU s per GiB carried (both proxies)`, 2, (v) => (v[key] && Object.keys(v[key]!.usage.processes).length ? cpuSeconds(v[key]!) / gib(v[key]!) : undefined), {});
  };
  tput('throughput1', 'throughput, 1 connection');
  tput('throughputN', `throughput, ${cfg.streams} connections at once`);
  const at = `at ${cfg.rps.toLocaleString('en-US')} req/s`;
  const lat = (v: VariantResult): LatencySummary | undefined => v.rate?.fromSchedule;
  for (const q of ['p50', 'p90', 'p99'] as const) row(`latency ${at}, ${q}, ms`, 3, (v) => lat(v)?.[q]);
  const d = r.direct && lat(r.direct);
  if (d) for (const q of ['p50', 'p90', 'p99'] as const) row(`added latency ${at}, ${q}, ms (minus direct)`, 3, (v) => (v === r.direct || !lat(v) ? undefined : added(lat(v)!, d)[q]), {});
  const perReq = (v: VariantResult, proc?: string) => {
    const rate = v.rate;
    if (!rate || !Object.keys(rate.usage.processes).length) return undefined;
    const secs = proc ? rate.usage.processes[proc]?.cpuSeconds : cpuSeconds(rate);
    return secs === undefined ? undefined : (secs * 1000) / rate.completed;
  };
  row(`proxy CPU per request ${at}, ms (both proxies)`, 3, (v) => perReq(v), {});
  row(`proxy CPU per request ${at}, ms (client side, node A)`, 3, (v) => (v.sides.client ? perReq(v, v.sides.client) : undefined), {});
  row(`proxy CPU per request ${at}, ms (server side, node B)`, 3, (v) => (v.sides.server ? perReq(v, v.sides.server) : undefined), {});
  const peak = (v: VariantResult, side: 'client' | 'server') => {
    const p = v.sides[side] && v.rate?.usage.processes[v.sides[side]!];
    return p ? MB(p.peakRssMiB) : undefined;
  };
  row(`proxy RSS ${at}, peak, MB (client side)`, 1, (v) => peak(v, 'client'), {});
  row(`proxy RSS ${at}, peak, MB (server side)`, 1, (v) => peak(v, 'server'), {});
  return out;
}

export function report(o: { r: Results; cfg: ReportConfig; header: string[]; notes: string[]; noise?: string }): string {
  const { r, cfg } = o;
  const out: string[] = [...o.header];
  for (const n of o.notes) out.push(`  !!! ${n}`);
  out.push('');
  const fmt = (x: number | undefined, digits: number) => (x === undefined ? '—' : x.toFixed(digits));
  const ran = VARIANTS.filter((v) => r[v]);
  out.push('Figures (ratio = strait ÷ the reference, same run)');
  out.push(table(['figure', ...ran, 'vs direct', 'vs stunnel', 'vs node-tls'], figures(r, cfg).map((f) => [
    f.figure, ...ran.map((v) => fmt(f.values[v], f.digits)), ratio(f.vsDirect), ratio(f.vsStunnel), ratio(f.vsFloor),
  ])));
  out.push('');
  const rateRows = ran.flatMap((v) => {
    const rate = r[v]?.rate;
    if (!rate) return [];
    return [[v, rate.achievedRps.toFixed(0), ms(rate.fromSchedule.p50), ms(rate.fromSchedule.p99), ms(rate.service.p50), ms(rate.service.p99),
      `${rate.errors}`, `${rate.completed}/${rate.scheduled}`, rate.machine.otherVcpu.toFixed(2)]];
  });
  if (rateRows.length) {
    out.push(`At ${cfg.rps} req/s (open loop over ${cfg.connections} keep-alive connections; latency from the scheduled send time, and from the write)`);
    out.push(table(['variant', 'req/s', 'p50', 'p99', 'p50 (write)', 'p99 (write)', 'errors', 'completed', 'other jobs vCPU'], rateRows));
    for (const v of ran) {
      const rate = r[v]?.rate;
      if (rate && (rate.errors > 0 || rate.completed < rate.scheduled)) {
        out.push(`  !!! ${v}: ${rate.errors} errors, ${rate.completed}/${rate.scheduled} requests completed: its figures at ${cfg.rps} req/s are not comparable !!!`);
      }
    }
    out.push('');
    const procRows = ran.flatMap((v) => Object.entries(r[v]?.rate?.usage.processes ?? {}).map(([name, x]) => [
      name, x.vcpu.toFixed(3), `${Math.round((100 * (x.userSeconds ?? NaN)) / x.cpuSeconds)}/${Math.round((100 * (x.systemSeconds ?? NaN)) / x.cpuSeconds)}%`,
      ((x.cpuSeconds * 1000) / r[v]!.rate!.completed).toFixed(3), MB(x.rssMiB).toFixed(1), MB(x.peakRssMiB).toFixed(1), r[v]!.idleRssMB[name]?.toFixed(1) ?? '',
    ]));
    out.push(`The proxies during the ${cfg.rps} req/s phase`);
    out.push(table(['process', 'vCPU', 'user/system', 'CPU ms per request', 'RSS MB (end)', 'peak RSS MB', 'idle RSS MB'], procRows));
    out.push('');
  }
  for (const [key, label] of [['throughput1', '1 connection'], ['throughputN', `${cfg.streams} connections at once`]] as const) {
    const rows = ran.flatMap((v) => {
      const t = r[v]?.[key];
      return t ? [[v, t.download.map((x) => x.mibps.toFixed(0)).join(' '), t.upload.map((x) => x.mibps.toFixed(0)).join(' '), t.machine.otherVcpu.toFixed(2)]] : [];
    });
    if (!rows.length) continue;
    out.push(`Throughput, ${label}: every repeat, MiB/s`);
    out.push(table(['variant', 'download', 'upload', 'other jobs vCPU'], rows));
    out.push('');
  }
  if (o.noise) out.push(o.noise);
  return out.join('\n');
}
