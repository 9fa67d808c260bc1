/**
 * Figures of the waypoint benchmark: per-variant results, the ratios the issue asks for (waypoint vs the Node.js
 * floor and vs nginx), and the printed tables. Pure: from the measured results.
 */
import { PERCENTILES, added, ms, ratio, signedMs, table, type LatencySummary, type MachineUsage, type Percentile } from './datapath-stats.js';

export type VariantName = 'mesh-l4' | 'tls-pair' | 'waypoint' | 'nginx-1w' | 'nginx-auto' | 'floor';
export type Phase = 'sequential' | 'rate';

/** CPU and memory of a group of processes over a phase (all its rounds). */
export interface GroupUsage {
  /** utime + stime, all processes of the group, all rounds. */
  cpuSeconds: number;
  /** CPU milliseconds per completed request. */
  cpuMsPerRequest: number;
  /** Sum of the group's VmRSS at the end of the last round, MB (10^6 bytes). */
  rssMB: number;
  /** Largest sum of the group's VmRSS sampled (every 250 ms) during the rounds, MB. */
  peakRssMB: number;
  processes: Record<string, { pid: number; cpuSeconds: number; userSeconds: number; systemSeconds: number; rssMB: number; peakRssMB: number }>;
}

export interface PhaseResult {
  /** 1 connection: from writing the request to the last byte of the response. 1,000 req/s: from the scheduled send time. */
  latency: LatencySummary;
  /** 1,000 req/s only: from the moment the request was written. */
  service?: LatencySummary;
  /** 1,000 req/s only: how late the client wrote requests behind the schedule. */
  lateness?: LatencySummary;
  requests: number;
  errors: number;
  seconds: number;
  rps: number;
  /** The L7 proxy (the waypoint, nginx's workers, the floor proxy); empty for paths without one. */
  proxy: GroupUsage;
  /** The path's other processes: the ztunnels, or the references' TLS ends. */
  others: GroupUsage;
  /** Mesh paths: `strait up`, which relays every log line of the mesh's processes into files (local mode only). */
  relay?: GroupUsage;
  routing: { expected: Record<string, number | string>; got: Record<string, number>; ok: boolean };
  machine: MachineUsage;
}

export type Results = Partial<Record<VariantName, Partial<Record<Phase, PhaseResult>>>>;

export interface Goal {
  goal: string;
  measured: string;
  reference: string;
  ratio: number | null;
  /** null: nothing to judge (a reference missing, or too small for a ratio). */
  met: boolean | null;
  note?: string;
}

export const BUDGET = { cpuVsFloor: 1.1, addedLatencyVsFloor: 1.1, rssMB: 120 };

/** Latency added by a variant: its percentile minus the same percentile of path (a), mesh-l4, in the same run. */
export function addedLatency(r: Results, v: VariantName, phase: Phase): Record<Percentile, number> | undefined {
  const x = r[v]?.[phase]?.latency;
  const a = r['mesh-l4']?.[phase]?.latency;
  return x && a ? added(x, a) : undefined;
}

const where = (phase: Phase, rps: number) => (phase === 'sequential' ? '1 connection' : `${rps.toLocaleString('en-US')} req/s`);

export function goals(r: Results, rps: number): Goal[] {
  const out: Goal[] = [];
  const w = r.waypoint;
  if (!w) return out;
  for (const phase of ['sequential', 'rate'] as const) {
    const wp = w[phase];
    if (!wp) continue;
    const f = r.floor?.[phase];
    const cpuGoal = phase === 'rate';
    out.push(f
      ? {
        goal: `waypoint CPU per request at ${where(phase, rps)}${cpuGoal ? ` <= ${BUDGET.cpuVsFloor}x the floor's` : ' vs the floor (context)'}`,
        measured: `${wp.proxy.cpuMsPerRequest.toFixed(3)} ms`, reference: `${f.proxy.cpuMsPerRequest.toFixed(3)} ms`,
        ratio: wp.proxy.cpuMsPerRequest / f.proxy.cpuMsPerRequest, met: cpuGoal ? wp.proxy.cpuMsPerRequest / f.proxy.cpuMsPerRequest <= BUDGET.cpuVsFloor : null,
      }
      : { goal: `waypoint CPU per request at ${where(phase, rps)} vs the floor`, measured: `${wp.proxy.cpuMsPerRequest.toFixed(3)} ms`, reference: 'floor not run', ratio: null, met: null });
    const aw = addedLatency(r, 'waypoint', phase);
    const af = addedLatency(r, 'floor', phase);
    for (const q of PERCENTILES) {
      if (!aw) break;
      const isGoal = q === 'p50';
      const g = `waypoint added ${q} at ${where(phase, rps)}${isGoal ? ` <= ${BUDGET.addedLatencyVsFloor}x the floor's` : ' vs the floor (context)'}`;
      if (!af) { out.push({ goal: g, measured: `${signedMs(aw[q])} ms`, reference: 'floor not run', ratio: null, met: null }); continue; }
      const ok = af[q] > 0;
      out.push({
        goal: g, measured: `${signedMs(aw[q])} ms`, reference: `${signedMs(af[q])} ms`, ratio: ok ? aw[q] / af[q] : null,
        met: isGoal && ok ? aw[q] / af[q] <= BUDGET.addedLatencyVsFloor : null,
        ...(ok ? {} : { note: 'the floor added nothing measurable over path (a): no meaningful ratio' }),
      });
    }
  }
  const rate = w.rate;
  if (rate) {
    out.push({ goal: `waypoint RSS at ${where('rate', rps)} (peak) <= ${BUDGET.rssMB} MB`, measured: `${rate.proxy.peakRssMB.toFixed(1)} MB`, reference: `${BUDGET.rssMB} MB`, ratio: rate.proxy.peakRssMB / BUDGET.rssMB, met: rate.proxy.peakRssMB <= BUDGET.rssMB });
  }
  return out;
}

/** Ratios to nginx and other same-run comparisons: reported, not judged. */
export function context(r: Results, rps: number): Goal[] {
  const out: Goal[] = [];
  const row = (goal: string, m: number | undefined, ref: number | undefined, unit: string, digits = 3) => {
    if (m === undefined || ref === undefined || Number.isNaN(m) || Number.isNaN(ref)) return;
    out.push({ goal, measured: `${m >= 0 && unit === 'ms+' ? '+' : ''}${m.toFixed(digits)} ${unit.replace('+', '')}`, reference: `${ref >= 0 && unit === 'ms+' ? '+' : ''}${ref.toFixed(digits)} ${unit.replace('+', '')}`, ratio: ref > 0 ? m / ref : null, met: null });
  };
  for (const phase of ['sequential', 'rate'] as const) {
    const w = r.waypoint?.[phase];
    for (const n of ['nginx-1w', 'nginx-auto'] as const) {
      const x = r[n]?.[phase];
      if (!w || !x) continue;
      row(`waypoint vs ${n}: proxy CPU per request at ${where(phase, rps)}`, w.proxy.cpuMsPerRequest, x.proxy.cpuMsPerRequest, 'ms');
      row(`waypoint vs ${n}: added p50 at ${where(phase, rps)}`, addedLatency(r, 'waypoint', phase)?.p50, addedLatency(r, n, phase)?.p50, 'ms+');
      row(`waypoint vs ${n}: added p99 at ${where(phase, rps)}`, addedLatency(r, 'waypoint', phase)?.p99, addedLatency(r, n, phase)?.p99, 'ms+');
      if (phase === 'sequential') row(`waypoint vs ${n}: req/s at 1 connection`, w.rps, x.rps, 'req/s', 0);
      if (phase === 'rate') row(`waypoint vs ${n}: proxy RSS at ${where(phase, rps)} (peak; nginx: workers summed)`, w.proxy.peakRssMB, x.proxy.peakRssMB, 'MB', 1);
    }
    const f = r.floor?.[phase];
    if (w && f && phase === 'sequential') row('waypoint vs floor: req/s at 1 connection', w.rps, f.rps, 'req/s', 0);
    if (w && f && phase === 'rate') row(`waypoint vs floor: proxy RSS at ${where(phase, rps)} (peak)`, w.proxy.peakRssMB, f.proxy.peakRssMB, 'MB', 1);
    const pair = r['tls-pair']?.[phase]?.latency;
    const a = r['mesh-l4']?.[phase]?.latency;
    if (pair && a) row(`the references' TLS ends vs the ztunnels, p50 at ${where(phase, rps)} (tls-pair vs mesh-l4; near 1.00x, (a) is a fair zero for all)`, pair.p50, a.p50, 'ms');
    const fl = r.floor?.[phase]?.latency;
    if (fl && pair && w) row(`added p50 over each path's own ends at ${where(phase, rps)}: waypoint − mesh-l4 vs floor − tls-pair`, w.latency.p50 - a!.p50, fl.p50 - pair.p50, 'ms+');
    if (w && f) row(`path's other processes, CPU per request at ${where(phase, rps)}: ztunnels (waypoint run) vs TLS ends (floor run)`, w.others.cpuMsPerRequest, f.others.cpuMsPerRequest, 'ms');
    if (w?.relay) out.push({ goal: `strait up relaying the waypoint's access-log lines at ${where(phase, rps)} (local mode only; not in the waypoint's figures)`, measured: `${w.relay.cpuMsPerRequest.toFixed(3)} ms CPU/req`, reference: '', ratio: null, met: null });
  }
  return out;
}

export function report(o: { r: Results; variants: VariantName[]; rps: number; connections: number; cfgText: string; notes: string[] }): string {
  const { r, variants, rps } = o;
  const out: string[] = [];
  out.push('Waypoint: HTTP/1.1 GET, 64-byte responses, keep-alive, every second request with x-canary: true; times in ms');
  out.push('  mesh-l4    (a) client → ztunnel → HBONE → ztunnel → server (service labelled use-waypoint: none)');
  out.push('  waypoint       client → ztunnel → HBONE → waypoint (route by header) → HBONE → ztunnel → server');
  out.push('  tls-pair       client → TLS originator ══ mTLS ══ TLS terminator → server (the references\' ends, no proxy)');
  out.push('  nginx-1w/auto  (b) client → originator ══ mTLS ══ nginx (1 worker / auto) ══ mTLS ══ terminator → server');
  out.push('  floor          (c) the same with the smallest Node.js HTTPS proxy');
  out.push(`  ${o.cfgText}`);
  for (const n of o.notes) out.push(`  !!! ${n}`);
  out.push('');
  const latRow = (v: VariantName, p: PhaseResult, phase: Phase) => {
    const a = v === 'mesh-l4' ? undefined : addedLatency(r, v, phase);
    return [v, p.rps.toFixed(0), ms(p.latency.p50), ms(p.latency.p90), ms(p.latency.p99), a ? signedMs(a.p50) : '', a ? signedMs(a.p90) : '', a ? signedMs(a.p99) : '',
      p.proxy.processes && Object.keys(p.proxy.processes).length ? p.proxy.cpuMsPerRequest.toFixed(3) : '',
      p.others.cpuMsPerRequest.toFixed(3), ...(phase === 'rate' ? [Object.keys(p.proxy.processes).length ? p.proxy.peakRssMB.toFixed(1) : ''] : []),
      String(p.requests), `${p.errors}${p.routing.ok ? '' : ' ROUTING!'}`, p.machine.otherVcpu.toFixed(2)];
  };
  for (const phase of ['sequential', 'rate'] as const) {
    const rows = variants.flatMap((v) => (r[v]?.[phase] ? [latRow(v, r[v]![phase]!, phase)] : []));
    if (!rows.length) continue;
    out.push(phase === 'sequential'
      ? 'At 1 connection (closed loop: the next request as soon as the previous response ended)'
      : `At ${rps.toLocaleString('en-US')} req/s (open loop over ${o.connections} connections; latency from the scheduled send time)`);
    out.push(table(['variant', 'req/s', 'p50', 'p90', 'p99', 'added p50', 'added p90', 'added p99', 'proxy CPU ms/req', 'ends CPU ms/req',
      ...(phase === 'rate' ? ['proxy RSS MB (peak)'] : []), 'requests', 'errors', 'other jobs vCPU'], rows));
    out.push('');
  }
  const bad = variants.flatMap((v) => (['sequential', 'rate'] as const).flatMap((ph) => {
    const p = r[v]?.[ph];
    return p && !p.routing.ok ? [`${v} (${ph}): expected ${JSON.stringify(p.routing.expected)}, servers counted ${JSON.stringify(p.routing.got)}`] : [];
  }));
  for (const b of bad) out.push(`!!! ROUTING CHECK FAILED: ${b}`);
  if (bad.length) out.push('');
  const g = goals(r, rps);
  out.push('Goals (ratio = waypoint / reference; met at <= the budget)');
  out.push(table(['goal', 'waypoint', 'reference', 'ratio', 'met'], g.map((x) => [x.goal, x.measured, x.reference, ratio(x.ratio ?? undefined), x.met === null ? 'n/a' : x.met ? 'yes' : 'NO'])));
  const c = context(r, rps);
  if (c.length) {
    out.push('');
    out.push('Context (same-run comparisons, not goals)');
    out.push(table(['comparison', 'measured', 'reference', 'ratio'], c.map((x) => [x.goal, x.measured, x.reference, ratio(x.ratio ?? undefined)])));
  }
  return out.join('\n');
}
