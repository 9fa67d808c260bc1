/**
 * Data-path benchmark: 1 KB HTTP responses through the mesh,
 *
 *   client → ztunnel (node-a, SOCKS5) → HBONE (mTLS, HTTP/2 CONNECT) → ztunnel (node-b) → server
 *
 * against two references measured in the same run on the same machine:
 *   direct   client → server (plain TCP)
 *   stunnel  client → stunnel (client mode) → mutual TLS 1.3 → stunnel (server mode) → server, with certificates
 *            issued by the same mesh CA
 *   node-tls client → Node.js TLS tunnel → mutual TLS 1.3 → Node.js TLS tunnel → server (net ⇄ tls with pipe, the same
 *            CA): what any tunnel written for Node costs on this machine, before it does anything a mesh does
 *
 * Figures: added latency (path minus direct, p50/p90/p99) at 1 connection and at 1,000 requests/s (open loop,
 * from the scheduled send time); single-stream throughput both ways; ztunnel CPU per 1,000 requests/s and
 * resident memory at that load. Goals are reported as ratios against stunnel, against Istio's published ztunnel
 * figures and against the budgets in the issue; nothing is asserted.
 *
 *   node --expose-gc dist/bench/datapath.js [--quick] [--phases sequential,rate,throughput] [--cpu-prof DIR] [--keep]
 *                                           [--quiet-wait-s 30] [--noise-budget-s 75]
 *
 * It first waits (up to --quiet-wait-s) for other jobs on the machine to go quiet, and says so if they do not;
 * a measured round during which other jobs were busy is run again after they calm down, within --noise-budget-s.
 *
 * --cpu-prof DIR writes a CPU profile of each ztunnel over the 1,000 req/s phase (and the throughput runs) into DIR.
 *
 * Writes bench/results/datapath.json and prints a table. Everything listens on 127.0.0.0/8. See bench/README.md.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NOISY_VCPU, NoiseGuard, waitForQuiet } from './lib/bench-noise.js';
import { dialerFor, tcpDialer, type Dialer } from './lib/datapath-client.js';
import { LocalLoad } from './lib/datapath-load.js';
import {
  BenchMesh, CLIENT_ID, CLIENT_POD_IP, HTTP_PORT, NODE_A, NODE_B, SERVER_ID, SERVER_POD_IP, SERVICE_HOST, SINK_PORT,
} from './lib/datapath-mesh.js';
import { measureRate, measureSequential, measureThroughput, type PhaseContext, type PhasePath, type RateSummary, type SequentialSummary, type ThroughputSummary } from './lib/datapath-phases.js';
import {
  MB, PERCENTILES, added, loadAverage, memoryMiB, ms, ratio, signedMs, table,
  type LatencySummary, type MachineUsage, type Percentile,
} from './lib/datapath-stats.js';
import { STUNNEL_CLIENT_IP, StunnelPair, findStunnel, type StunnelBinary } from './lib/datapath-stunnel.js';
import { NODETLS_CLIENT_IP, NodeTlsPair } from './lib/datapath-nodetls.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const RESULT_FILE = join(ROOT, 'bench', 'results', 'datapath.json');

// ---- what is measured, and the goals (from the issue) ----

const QUICK = process.argv.includes('--quick');
const KEEP = process.argv.includes('--keep');
const option = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const CPU_PROF_DIR = option('cpu-prof');
const QUIET_WAIT_MS = Number(option('quiet-wait-s') ?? 30) * 1000;
const PHASES = new Set((option('phases') ?? 'sequential,rate,throughput').split(','));
/** The benchmark's own processes (load client, server, mesh, stunnels), to tell other jobs' CPU from ours. */
let ourPids: () => number[] = () => [process.pid];

const CFG = {
  sequential: { warmup: QUICK ? 500 : 2_000, count: QUICK ? 3_000 : 15_000, maxMs: 12_000, rounds: 3 },
  rate: { rps: 1_000, connections: 16, warmupMs: QUICK ? 1_000 : 3_000, durationMs: QUICK ? 6_000 : 20_000, rounds: QUICK ? 2 : 4 },
  throughput: { bytes: (QUICK ? 64 : 256) * 1048576, repeats: QUICK ? 1 : 3, maxMs: 60_000 },
};

/** Istio's published ambient figures: latency two ztunnels add at 1,000 req/s of 1 KB, p90 / p99. */
const ISTIO = { addedP90Ms: 0.17, addedP99Ms: 0.2 };
/** The budgets for one ztunnel's CPU per 1,000 req/s and its RSS at that load (MB = 10^6 bytes). */
const BUDGET = { vcpuPer1000Rps: 0.06, rssMB: 80 };

type PathName = 'direct' | 'stunnel' | 'node-tls' | 'strait';

interface Path {
  name: PathName;
  label: string;
  http: Dialer;
  sink: Dialer;
  /** Processes of the path whose CPU and memory are metered (none for direct). */
  pids: Record<string, number>;
}

interface PathResult {
  sequential?: SequentialSummary;
  rate?: RateSummary;
  throughput?: ThroughputSummary;
  idleRssMB?: Record<string, number>;
}

const say = (msg: string) => process.stderr.write(`[datapath] ${msg}\n`);

// ---- processes ----

async function startServer(): Promise<ChildProcess> {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'lib', 'datapath-server.js');
  const child = fork(script, ['--address', SERVER_POD_IP, '--http-port', String(HTTP_PORT), '--sink-port', String(SINK_PORT)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
  const ready = new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`bench server exited (${code}) before listening on ${SERVER_POD_IP}:${HTTP_PORT}/${SINK_PORT}`)));
  });
  await ready;
  return child;
}

function meshDialer(mesh: BenchMesh, port: number): Dialer {
  return dialerFor({ kind: 'socks5', proxy: mesh.socks5(), localAddress: CLIENT_POD_IP, target: { host: SERVICE_HOST, port } });
}

/** Extra time the whole run may spend waiting for quiet and redoing noisy rounds. */
const noise = new NoiseGuard(() => ourPids(), Number(option('noise-budget-s') ?? 75) * 1000, say);

/** With --cpu-prof: starts or stops (and writes) the ztunnels' CPU profiles (see lib/datapath-profiler.ts). */
async function toggleProfiles(path: PhasePath): Promise<void> {
  if (!CPU_PROF_DIR || path.name !== 'strait') return;
  for (const pid of Object.values(path.pids)) process.kill(pid, 'SIGUSR2');
  await new Promise((r) => setTimeout(r, 300));
}


// ---- goals ----

interface Goal {
  goal: string;
  measured: string;
  reference: string;
  /** measured / reference, oriented so that <= 1 meets the goal (or >= 1 for "at least"). */
  ratio: number | null;
  met: boolean | null;
  note?: string;
}

function latencyGoals(kind: 'sequential' | 'rate', r: Record<string, PathResult>, stunnelOk: boolean): Goal[] {
  const get = (p: PathName) => (kind === 'sequential' ? r[p]?.sequential?.latency : r[p]?.rate?.fromSchedule);
  const direct = get('direct');
  const mesh = get('strait');
  const st = get('stunnel');
  if (!direct || !mesh) return [];
  const addMesh = added(mesh, direct);
  const addSt = st ? added(st, direct) : undefined;
  const where = kind === 'sequential' ? '1 connection' : `${CFG.rate.rps} req/s`;
  const goals: Goal[] = PERCENTILES.map((q: Percentile) => {
    if (!stunnelOk || !addSt) {
      return { goal: `added ${q} at ${where} <= stunnel's`, measured: `${signedMs(addMesh[q])} ms`, reference: 'stunnel not run', ratio: null, met: null };
    }
    const ref = addSt[q];
    return {
      goal: `added ${q} at ${where} <= stunnel's`, measured: `${signedMs(addMesh[q])} ms`, reference: `${signedMs(ref)} ms`,
      ratio: ref > 0 ? addMesh[q] / ref : null, met: addMesh[q] <= ref,
      ...(ref <= 0 ? { note: 'stunnel added nothing measurable: no meaningful ratio' } : {}),
    };
  });
  if (kind === 'rate') {
    for (const [q, ref] of [['p90', ISTIO.addedP90Ms], ['p99', ISTIO.addedP99Ms]] as const) {
      goals.push({ goal: `added ${q} at ${where} <= Istio ztunnel's published`, measured: `${signedMs(addMesh[q])} ms`, reference: `+${ref.toFixed(2)} ms`, ratio: addMesh[q] / ref, met: addMesh[q] <= ref });
    }
  }
  return goals;
}

function otherGoals(r: Record<string, PathResult>, stunnelOk: boolean): Goal[] {
  const goals: Goal[] = [];
  const mt = r.strait?.throughput;
  const st = r.stunnel?.throughput;
  for (const dir of ['download', 'upload'] as const) {
    const key = dir === 'download' ? 'downloadMiBps' : 'uploadMiBps';
    if (!mt) continue;
    goals.push(stunnelOk && st
      ? { goal: `single-stream ${dir} >= stunnel's`, measured: `${mt[key].toFixed(0)} MiB/s`, reference: `${st[key].toFixed(0)} MiB/s`, ratio: mt[key] / st[key], met: mt[key] >= st[key] }
      : { goal: `single-stream ${dir} >= stunnel's`, measured: `${mt[key].toFixed(0)} MiB/s`, reference: 'stunnel not run', ratio: null, met: null });
  }
  const rate = r.strait?.rate;
  if (rate) {
    const per1000 = rate.usage.vcpu / (rate.achievedRps / 1000);
    goals.push({ goal: `ztunnel CPU per 1000 req/s <= ${BUDGET.vcpuPer1000Rps} vCPU (both ztunnels)`, measured: `${per1000.toFixed(3)} vCPU`, reference: `${BUDGET.vcpuPer1000Rps} vCPU`, ratio: per1000 / BUDGET.vcpuPer1000Rps, met: per1000 <= BUDGET.vcpuPer1000Rps });
    for (const [name, p] of Object.entries(rate.usage.processes)) {
      const perOne = p.vcpu / (rate.achievedRps / 1000);
      goals.push({ goal: `${name} CPU per 1000 req/s <= ${BUDGET.vcpuPer1000Rps} vCPU`, measured: `${perOne.toFixed(3)} vCPU`, reference: `${BUDGET.vcpuPer1000Rps} vCPU`, ratio: perOne / BUDGET.vcpuPer1000Rps, met: perOne <= BUDGET.vcpuPer1000Rps });
    }
    for (const [name, p] of Object.entries(rate.usage.processes)) {
      const peak = MB(p.peakRssMiB);
      goals.push({ goal: `${name} RSS at ${CFG.rate.rps} req/s <= ${BUDGET.rssMB} MB`, measured: `${peak.toFixed(1)} MB`, reference: `${BUDGET.rssMB} MB`, ratio: peak / BUDGET.rssMB, met: peak <= BUDGET.rssMB, note: 'peak VmRSS sampled every 250 ms during the phase' });
    }
  }
  return goals;
}

/** Same-run comparisons that are not goals of the issue but say what the goals mean on this machine. */
function context(r: Record<string, PathResult>): Goal[] {
  const rows: Goal[] = [];
  const row = (goal: string, measured: string, reference: string, x: number) => rows.push({ goal, measured, reference, ratio: x, met: null });
  const zr = r.strait?.rate;
  const sr = r.stunnel?.rate;
  const dr = r.direct?.rate;
  if (zr && sr) {
    const z = zr.usage.vcpu / (zr.achievedRps / 1000);
    const st = sr.usage.vcpu / (sr.achievedRps / 1000);
    row('proxy CPU per 1000 req/s: both ztunnels vs both stunnels', `${z.toFixed(3)} vCPU`, `${st.toFixed(3)} vCPU`, z / st);
    const zm = Math.max(...Object.values(zr.usage.processes).map((p) => p.peakRssMiB));
    const sm = Math.max(...Object.values(sr.usage.processes).map((p) => p.peakRssMiB));
    row('peak RSS of one proxy: ztunnel vs stunnel', `${MB(zm).toFixed(1)} MB`, `${MB(sm).toFixed(1)} MB`, zm / sm);
  }
  if (zr && dr) {
    const a = added(zr.service, dr.service);
    row(`strait added p90 at ${CFG.rate.rps} req/s timed from the write vs Istio's`, `${signedMs(a.p90)} ms`, `+${ISTIO.addedP90Ms.toFixed(2)} ms`, a.p90 / ISTIO.addedP90Ms);
    row(`strait added p99 at ${CFG.rate.rps} req/s timed from the write vs Istio's`, `${signedMs(a.p99)} ms`, `+${ISTIO.addedP99Ms.toFixed(2)} ms`, a.p99 / ISTIO.addedP99Ms);
  }
  if (sr && dr) {
    const a = added(sr.fromSchedule, dr.fromSchedule);
    row(`stunnel's own added p90 at ${CFG.rate.rps} req/s vs Istio's (is the figure reachable here?)`, `${signedMs(a.p90)} ms`, `+${ISTIO.addedP90Ms.toFixed(2)} ms`, a.p90 / ISTIO.addedP90Ms);
    row(`stunnel's own added p99 at ${CFG.rate.rps} req/s vs Istio's`, `${signedMs(a.p99)} ms`, `+${ISTIO.addedP99Ms.toFixed(2)} ms`, a.p99 / ISTIO.addedP99Ms);
  }
  const zt = r.strait?.throughput;
  const stt = r.stunnel?.throughput;
  const perGiB = (t: NonNullable<PathResult['throughput']>) => Object.values(t.usage.processes).reduce((x, p) => x + p.cpuSeconds, 0) / (((t.download.length + t.upload.length) * CFG.throughput.bytes) / 2 ** 30);
  if (zt && stt) row('proxy CPU seconds per GiB carried: ztunnels vs stunnels', perGiB(zt).toFixed(2), perGiB(stt).toFixed(2), perGiB(zt) / perGiB(stt));
  // The runtime reference: how far Strait is from a bare Node.js TLS tunnel, and that tunnel from stunnel.
  const nr = r['node-tls']?.rate;
  const nt = r['node-tls']?.throughput;
  const ns = r['node-tls']?.sequential;
  const zs = r.strait?.sequential;
  const ds = r.direct?.sequential;
  if (zs && ns && ds) {
    const a = added(zs.latency, ds.latency);
    const b = added(ns.latency, ds.latency);
    row('added p50 at 1 connection: strait vs node-tls', `${signedMs(a.p50)} ms`, `${signedMs(b.p50)} ms`, a.p50 / b.p50);
    row('added p90 at 1 connection: strait vs node-tls', `${signedMs(a.p90)} ms`, `${signedMs(b.p90)} ms`, a.p90 / b.p90);
  }
  if (zr && nr && dr) {
    const a = added(zr.fromSchedule, dr.fromSchedule);
    const b = added(nr.fromSchedule, dr.fromSchedule);
    row(`added p90 at ${CFG.rate.rps} req/s: strait vs node-tls`, `${signedMs(a.p90)} ms`, `${signedMs(b.p90)} ms`, a.p90 / b.p90);
    row(`added p99 at ${CFG.rate.rps} req/s: strait vs node-tls`, `${signedMs(a.p99)} ms`, `${signedMs(b.p99)} ms`, a.p99 / b.p99);
    const z = zr.usage.vcpu / (zr.achievedRps / 1000);
    const n = nr.usage.vcpu / (nr.achievedRps / 1000);
    row(`proxy CPU per ${CFG.rate.rps} req/s: both ztunnels vs both node-tls`, `${z.toFixed(3)} vCPU`, `${n.toFixed(3)} vCPU`, z / n);
    const zm = Math.max(...Object.values(zr.usage.processes).map((p) => p.peakRssMiB));
    const nm = Math.max(...Object.values(nr.usage.processes).map((p) => p.peakRssMiB));
    row('peak RSS of one proxy: ztunnel vs node-tls', `${MB(zm).toFixed(1)} MB`, `${MB(nm).toFixed(1)} MB`, zm / nm);
  }
  if (nr && sr) {
    const n = nr.usage.vcpu / (nr.achievedRps / 1000);
    const st = sr.usage.vcpu / (sr.achievedRps / 1000);
    row(`proxy CPU per ${CFG.rate.rps} req/s: both node-tls vs both stunnels (the runtime's share)`, `${n.toFixed(3)} vCPU`, `${st.toFixed(3)} vCPU`, n / st);
  }
  if (zt && nt) {
    row('single-stream download: strait vs node-tls', `${zt.downloadMiBps.toFixed(0)} MiB/s`, `${nt.downloadMiBps.toFixed(0)} MiB/s`, zt.downloadMiBps / nt.downloadMiBps);
    row('single-stream upload: strait vs node-tls', `${zt.uploadMiBps.toFixed(0)} MiB/s`, `${nt.uploadMiBps.toFixed(0)} MiB/s`, zt.uploadMiBps / nt.uploadMiBps);
    row('proxy CPU seconds per GiB carried: ztunnels vs node-tls', perGiB(zt).toFixed(2), perGiB(nt).toFixed(2), perGiB(zt) / perGiB(nt));
  }
  if (nt && stt) {
    row('single-stream download: node-tls vs stunnel (the runtime\'s share)', `${nt.downloadMiBps.toFixed(0)} MiB/s`, `${stt.downloadMiBps.toFixed(0)} MiB/s`, nt.downloadMiBps / stt.downloadMiBps);
    row('single-stream upload: node-tls vs stunnel', `${nt.uploadMiBps.toFixed(0)} MiB/s`, `${stt.uploadMiBps.toFixed(0)} MiB/s`, nt.uploadMiBps / stt.uploadMiBps);
    row('proxy CPU seconds per GiB carried: node-tls vs stunnels', perGiB(nt).toFixed(2), perGiB(stt).toFixed(2), perGiB(nt) / perGiB(stt));
  }
  return rows;
}

// ---- report ----

function report(paths: PathName[], r: Record<string, PathResult>, goals: Goal[], contextRows: Goal[], stunnel: StunnelBinary | undefined): string {
  const out: string[] = [];
  const direct = r.direct!;
  const latencyRows = (pick: (p: PathResult) => LatencySummary | undefined) => paths.flatMap((p) => {
    const s = r[p] && pick(r[p]!);
    const d = pick(direct);
    if (!s || !d) return [];
    const a = added(s, d);
    return [[p, ms(s.p50), ms(s.p90), ms(s.p99), ms(s.p999), p === 'direct' ? '' : signedMs(a.p50), p === 'direct' ? '' : signedMs(a.p90), p === 'direct' ? '' : signedMs(a.p99), String(s.count)]];
  });
  const latHeader = ['path', 'p50', 'p90', 'p99', 'p99.9', 'added p50', 'added p90', 'added p99', 'requests'];

  out.push(`Data path: 1 KB HTTP/1.1 GET, client → ztunnel (${NODE_A.name}) → HBONE → ztunnel (${NODE_B.name}) → server; all times in ms`);
  out.push(`  direct = client → server;  stunnel = client → stunnel → mTLS 1.3 → stunnel → server (same CA);`);
  out.push(`  node-tls = the same with two minimal Node.js TLS tunnels (net ⇄ tls, pipe);  strait = the mesh`);
  if (!stunnel) out.push('  !!! stunnel NOT FOUND: the stunnel column is missing (apt-get install -y stunnel4) !!!');
  out.push('');
  const others = (pick: (p: PathResult) => MachineUsage | undefined) => {
    const parts = paths.flatMap((p) => { const m = r[p] && pick(r[p]!); return m ? [`${p} ${m.otherVcpu.toFixed(2)}`] : []; });
    if (!parts.length) return;
    const worst = Math.max(...paths.map((p) => (r[p] && pick(r[p]!)?.otherVcpu) ?? 0));
    out.push(`  other jobs on the machine meanwhile, vCPU: ${parts.join(', ')}${worst > 0.1 ? '   !!! the machine was not quiet: these figures are noisy !!!' : ''}`);
  };
  if (paths.some((p) => r[p]?.sequential)) {
    out.push(`Latency at 1 connection (sequential requests on one keep-alive connection: ${CFG.sequential.count} after ${CFG.sequential.warmup} warm-up, in ${CFG.sequential.rounds} rounds interleaving the paths)`);
    out.push(table(latHeader, latencyRows((p) => p.sequential?.latency)));
    others((p) => p.sequential?.machine);
    for (const p of paths) if (r[p]?.sequential?.errors) out.push(`  !!! ${p}: ${r[p]!.sequential!.errors} errors at 1 connection`);
    out.push('');
  }
  if (paths.some((p) => r[p]?.rate)) {
    out.push(`Latency at ${CFG.rate.rps} req/s (open loop over ${CFG.rate.connections} keep-alive connections, ${CFG.rate.durationMs / 1000} s per path in ${CFG.rate.rounds} interleaved rounds; from the scheduled send time)`);
    out.push(table(latHeader, latencyRows((p) => p.rate?.fromSchedule)));
    others((p) => p.rate?.machine);
    out.push('');
    out.push(`  the same requests timed from the moment they were written (client timer lateness excluded):`);
    out.push(table(latHeader, latencyRows((p) => p.rate?.service)));
    const late = r.direct?.rate?.lateness;
    if (late) out.push(`  client send lateness behind schedule (direct run): p50 ${ms(late.p50)} p99 ${ms(late.p99)} max ${ms(late.max)}`);
    const bad = paths.filter((p) => (r[p]?.rate?.errors ?? 0) > 0 || (r[p]?.rate && r[p]!.rate!.completed < r[p]!.rate!.scheduled));
    for (const p of bad) out.push(`  !!! ${p}: ${r[p]!.rate!.errors} errors, ${r[p]!.rate!.completed}/${r[p]!.rate!.scheduled} completed`);
    out.push('');
  }
  if (paths.some((p) => r[p]?.throughput)) {
    out.push(`Single-stream throughput (${CFG.throughput.bytes / 1048576} MiB per transfer, median of ${CFG.throughput.repeats}; MiB/s)`);
    out.push(table(['path', 'download', 'upload', 'vs direct (down/up)', 'proxy CPU s per GiB', 'user/system'], paths.flatMap((p) => {
      const t = r[p]?.throughput;
      const d = direct.throughput;
      if (!t || !d) return [];
      const gib = ((t.download.length + t.upload.length) * CFG.throughput.bytes) / 2 ** 30;
      const procs = Object.values(t.usage.processes);
      const cpu = procs.reduce((s, x) => s + x.cpuSeconds, 0);
      const user = procs.reduce((s, x) => s + (x.userSeconds ?? NaN), 0);
      return [[p, t.downloadMiBps.toFixed(0), t.uploadMiBps.toFixed(0), p === 'direct' ? '' : `${ratio(t.downloadMiBps / d.downloadMiBps)} / ${ratio(t.uploadMiBps / d.uploadMiBps)}`,
        p === 'direct' ? '' : (cpu / gib).toFixed(2), p === 'direct' ? '' : `${Math.round((100 * user) / cpu)}/${Math.round((100 * (cpu - user)) / cpu)}%`]];
    })));
    others((p) => p.throughput?.machine);
    out.push('');
  }
  if (paths.some((p) => r[p]?.rate)) {
    out.push(`CPU and memory of the proxies during the ${CFG.rate.rps} req/s phase`);
    out.push(table(['process', 'vCPU', 'user/system', 'vCPU per 1000 req/s', 'RSS MB (end)', 'peak RSS MB', 'idle RSS MB'], paths.flatMap((p) => {
      const rate = r[p]?.rate;
      if (!rate) return [];
      return Object.entries(rate.usage.processes).map(([name, x]) => [name, x.vcpu.toFixed(3), `${Math.round((100 * (x.userSeconds ?? NaN)) / x.cpuSeconds)}/${Math.round((100 * (x.systemSeconds ?? NaN)) / x.cpuSeconds)}%`,
        (x.vcpu / (rate.achievedRps / 1000)).toFixed(3), MB(x.rssMiB).toFixed(1), MB(x.peakRssMiB).toFixed(1),
        r[p]?.idleRssMB?.[name]?.toFixed(1) ?? '']);
    })));
    out.push('');
  }
  const noisy = noise.summary();
  if (noisy) out.push(noisy, '');
  if (!stunnel) out.push('!!! stunnel NOT FOUND: every comparison with stunnel was skipped (apt-get install -y stunnel4) !!!');
  out.push('Goals (ratio = strait / reference; a latency or cost goal is met at <= 1.00×, a throughput goal at >= 1.00×)');
  out.push(table(['goal', 'strait', 'reference', 'ratio', 'met'], goals.map((g) => [g.goal, g.measured, g.reference, ratio(g.ratio ?? undefined), g.met === null ? 'n/a' : g.met ? 'yes' : 'NO'])));
  if (contextRows.length) {
    out.push('');
    out.push('Context (same-run comparisons, not goals)');
    out.push(table(['comparison', 'measured', 'reference', 'ratio'], contextRows.map((g) => [g.goal, g.measured, g.reference, ratio(g.ratio ?? undefined)])));
  }
  return out.join('\n');
}

// ---- main ----

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'strait-bench-datapath-'));
  const cleanups: (() => Promise<void>)[] = [];
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    for (const c of cleanups.reverse()) await c().catch((err) => say(`cleanup: ${(err as Error).message}`));
    if (!KEEP) rmSync(work, { recursive: true, force: true });
    else say(`kept ${work}`);
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void cleanup().then(() => process.exit(130)));

  const t0 = Date.now();
  const loadAtStart = loadAverage();
  try {
    const quiet = await waitForQuiet(QUIET_WAIT_MS, () => ourPids(), say);
    if (!quiet.ok) say(`!!! the machine is still busy after waiting ${QUIET_WAIT_MS / 1000} s (other jobs use ${quiet.otherVcpu.toFixed(2)} vCPU of ${cpus().length}): figures will be noisy; see "other jobs" in the report !!!`);
    const stunnel = findStunnel();
    if (!stunnel) {
      say('!!! stunnel is not installed: the stunnel reference will be SKIPPED. Install it with: apt-get install -y stunnel4 !!!');
    }

    say(`server on ${SERVER_POD_IP}:${HTTP_PORT} (HTTP) and :${SINK_PORT} (sink)`);
    const server = await startServer();
    cleanups.push(async () => {
      server.disconnect();
      if (server.exitCode === null) await Promise.race([once(server, 'exit'), new Promise((r) => setTimeout(r, 3000))]);
      if (server.exitCode === null) server.kill('SIGKILL');
    });

    say('starting the mesh (strait up)');
    if (CPU_PROF_DIR) mkdirSync(CPU_PROF_DIR, { recursive: true });
    const mesh = new BenchMesh({ workDir: join(work, 'mesh'), ...(CPU_PROF_DIR ? { cpuProfileDir: CPU_PROF_DIR } : {}) });
    cleanups.push(() => mesh.stop());
    await mesh.start();

    let stunnelPair: StunnelPair | undefined;
    if (stunnel) {
      say(`starting two ${stunnel.version} processes`);
      stunnelPair = new StunnelPair({
        bin: stunnel, workDir: join(work, 'stunnel'), caDataDir: mesh.dataDir, clientIdentity: CLIENT_ID, serverIdentity: SERVER_ID,
        routes: [
          { name: 'http', clientPort: 18080, tlsPort: 18443, target: { host: SERVER_POD_IP, port: HTTP_PORT } },
          { name: 'sink', clientPort: 19000, tlsPort: 19443, target: { host: SERVER_POD_IP, port: SINK_PORT } },
        ],
      });
      cleanups.push(() => stunnelPair!.stop());
      await stunnelPair.start();
    }

    say('starting the Node.js TLS tunnel pair');
    const nodeTls = new NodeTlsPair({
      workDir: join(work, 'node-tls'), caDataDir: mesh.dataDir, clientIdentity: CLIENT_ID, serverIdentity: SERVER_ID,
      routes: [
        { clientPort: 18080, tlsPort: 18443, target: { host: SERVER_POD_IP, port: HTTP_PORT } },
        { clientPort: 19000, tlsPort: 19443, target: { host: SERVER_POD_IP, port: SINK_PORT } },
      ],
    });
    cleanups.push(() => nodeTls.stop());
    await nodeTls.start();

    const paths: Path[] = [
      { name: 'direct', label: 'direct', http: tcpDialer(SERVER_POD_IP, HTTP_PORT, CLIENT_POD_IP), sink: tcpDialer(SERVER_POD_IP, SINK_PORT, CLIENT_POD_IP), pids: {} },
      ...(stunnelPair ? [{ name: 'stunnel' as const, label: 'stunnel', http: tcpDialer(STUNNEL_CLIENT_IP, 18080, CLIENT_POD_IP), sink: tcpDialer(STUNNEL_CLIENT_IP, 19000, CLIENT_POD_IP), pids: stunnelPair.pids() }] : []),
      { name: 'node-tls', label: 'node-tls', http: tcpDialer(NODETLS_CLIENT_IP, 18080, CLIENT_POD_IP), sink: tcpDialer(NODETLS_CLIENT_IP, 19000, CLIENT_POD_IP), pids: nodeTls.pids() },
      { name: 'strait', label: 'strait', http: meshDialer(mesh, HTTP_PORT), sink: meshDialer(mesh, SINK_PORT), pids: mesh.ztunnelPids() },
    ];
    const results: Record<string, PathResult> = Object.fromEntries(paths.map((p) => [p.name, {}]));
    ourPids = () => [process.pid, server.pid ?? 0, ...mesh.allPids(), ...Object.values(stunnelPair?.pids() ?? {}), ...Object.values(nodeTls.pids())].filter((p) => p > 0);

    const load = new LocalLoad();
    for (const p of paths) load.addPath(p.name, p.http, p.sink);
    // The first request through the mesh fetches certificates: probe() retries for a while.
    for (const p of paths) await load.probe(p.name);
    for (const p of paths) {
      results[p.name]!.idleRssMB = Object.fromEntries(Object.entries(p.pids).map(([n, pid]) => [n, MB(memoryMiB(pid)?.rss ?? NaN)]));
    }
    say(`all paths answer (${((Date.now() - t0) / 1000).toFixed(1)} s)`);

    const ctx: PhaseContext = { load, noise, say, toggle: toggleProfiles };
    const put = <K extends 'sequential' | 'rate' | 'throughput'>(key: K, byPath: Record<string, PathResult[K]>) => {
      for (const [name, v] of Object.entries(byPath)) results[name]![key] = v;
    };
    if (PHASES.has('sequential')) put('sequential', await measureSequential(ctx, paths, CFG.sequential));
    if (PHASES.has('rate')) put('rate', await measureRate(ctx, paths, CFG.rate));
    if (PHASES.has('throughput')) put('throughput', await measureThroughput(ctx, paths, { ...CFG.throughput, streams: 1 }));

    const names = paths.map((p) => p.name);
    const goals = [...latencyGoals('sequential', results, !!stunnelPair), ...latencyGoals('rate', results, !!stunnelPair), ...otherGoals(results, !!stunnelPair)];
    const contextRows = context(results);
    const json = {
      benchmark: 'datapath',
      description: '1 KB HTTP responses: client → ztunnel → HBONE → ztunnel → server, against direct and two stunnel processes doing mTLS 1.3 with the same CA',
      date: new Date().toISOString(),
      durationSeconds: (Date.now() - t0) / 1000,
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: totalmem() / 2 ** 30, node: process.version, kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(), loadAverageAtStart: loadAtStart, otherJobsVcpuBeforeStart: quiet.otherVcpu },
      stunnel: stunnel ? stunnel.version : null,
      skipped: stunnel ? [] : ['stunnel: not installed (apt-get install -y stunnel4)'],
      config: CFG,
      units: { latency: 'ms', throughput: 'MiB/s', rss: 'MB (10^6 bytes) in goals and table; MiB in raw process usage', cpu: 'vCPU (CPU seconds per second)' },
      references: { istioAddedLatencyMs: { p90: ISTIO.addedP90Ms, p99: ISTIO.addedP99Ms }, budget: BUDGET },
      paths: results,
      added: Object.fromEntries(names.filter((n) => n !== 'direct').map((n) => [n, {
        sequential: results[n]?.sequential && results.direct?.sequential ? added(results[n]!.sequential!.latency, results.direct.sequential.latency) : null,
        rateFromSchedule: results[n]?.rate && results.direct?.rate ? added(results[n]!.rate!.fromSchedule, results.direct.rate.fromSchedule) : null,
        rateService: results[n]?.rate && results.direct?.rate ? added(results[n]!.rate!.service, results.direct.rate.service) : null,
      }])),
      goals,
      context: contextRows,
      noise: { threshold: `rounds during which other jobs used >= ${NOISY_VCPU} vCPU are redone after waiting for quiet, within a budget`, rounds: noise.log },
    };
    mkdirSync(dirname(RESULT_FILE), { recursive: true });
    writeFileSync(RESULT_FILE, JSON.stringify(json, null, 2) + '\n');
    console.log(report(names, results, goals, contextRows, stunnel));
    console.log(`\nResults: ${RESULT_FILE} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  } finally {
    await cleanup();
  }
}

main().catch((err) => {
  console.error(`datapath benchmark failed: ${(err as Error).stack ?? err}`);
  process.exitCode = 1;
});
