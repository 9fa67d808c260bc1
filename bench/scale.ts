/**
 * Scale benchmark (issue 14): the data path under concurrency and connection churn, with the ztunnels running 1 and
 * 2 workers, against stunnel (a thread per connection) and a bare Node.js TLS tunnel measured in the same run:
 *
 *   client → ztunnel (node-a, SOCKS5) → HBONE (mTLS, HTTP/2 CONNECT) → ztunnel (node-b) → server
 *
 * Phases, each path in turn (rounds rotate the order), for every `--workers` value (the mesh is restarted with
 * `strait up --workers N`; the references are measured again beside each mesh, so every ratio is same-run):
 * - throughput: aggregate download and upload with 1, 8 and 64 concurrent connections (the bytes split among them);
 * - rate: open-loop 1 KB requests at 1,000 and 10,000 req/s over keep-alive connections: p99 from the scheduled send
 *   time, achieved rate, the proxies' CPU per 1,000 req/s (every ztunnel process, workers included);
 * - churn: 200 and 1,000 new connections/s, each dial + one request + close: p99 connect+request, errors.
 *
 *   node --expose-gc dist/bench/scale.js [--workers 1,2] [--phases throughput,rate,churn] [--quick] [--keep]
 *                                        [--quiet-wait-s 30] [--noise-budget-s 120]
 *
 * Writes bench/results/scale.json and prints a table per phase plus the goals as ratios. Nothing is asserted.
 * Everything listens on 127.0.0.0/8 (the data-path bench's addresses: do not run both at once).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NoiseGuard, waitForQuiet } from './lib/bench-noise.js';
import { dialerFor, requestBytes, tcpDialer, type Dialer } from './lib/datapath-client.js';
import { LocalLoad, REQUEST_HOST, REQUEST_PATH } from './lib/datapath-load.js';
import { BenchMesh, CLIENT_ID, CLIENT_POD_IP, HTTP_PORT, SERVER_ID, SERVER_POD_IP, SERVICE_HOST, SINK_PORT } from './lib/datapath-mesh.js';
import { measureRate, measureThroughput, type PhaseContext, type PhasePath, type RateSummary, type ThroughputSummary } from './lib/datapath-phases.js';
import { MB, ProcessMeter, loadAverage, memoryMiB, ms, ratio, rotated, table, type ProcessUsage } from './lib/datapath-stats.js';
import { STUNNEL_CLIENT_IP, StunnelPair, findStunnel } from './lib/datapath-stunnel.js';
import { NODETLS_CLIENT_IP, NodeTlsPair } from './lib/datapath-nodetls.js';
import { churn } from './lib/scale-churn.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const RESULT_FILE = join(ROOT, 'bench', 'results', 'scale.json');

const option = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const QUICK = process.argv.includes('--quick');
const KEEP = process.argv.includes('--keep');
const WORKERS = (option('workers') ?? '1,2').split(',').map(Number);
const PHASES = new Set((option('phases') ?? 'throughput,rate,churn').split(','));
const QUIET_WAIT_MS = Number(option('quiet-wait-s') ?? 30) * 1000;

const CFG = {
  throughput: { streams: [1, 8, 64], totalBytes: (QUICK ? 64 : 256) * 1048576, repeats: QUICK ? 1 : 2, maxMs: 90_000 },
  rate: [
    { rps: 1_000, connections: 16, warmupMs: QUICK ? 1_000 : 2_000, durationMs: QUICK ? 4_000 : 10_000, rounds: 2 },
    { rps: 10_000, connections: 64, warmupMs: QUICK ? 1_000 : 2_000, durationMs: QUICK ? 3_000 : 8_000, rounds: 2 },
  ],
  churn: { rates: [200, 1_000], durationMs: QUICK ? 3_000 : 8_000, rounds: 2 },
};
/** The issue's goals. */
const GOALS = { churnP99Ms: 50 };

const say = (msg: string) => process.stderr.write(`[scale] ${msg}\n`);
const REQUEST = requestBytes(REQUEST_PATH, REQUEST_HOST);

interface Path extends PhasePath {
  http: Dialer;
  sink: Dialer;
}

interface ChurnSummary {
  perSecond: number;
  p50: number;
  p99: number;
  connectP99: number;
  completed: number;
  scheduled: number;
  errors: number;
  errorSamples: string[];
  usage: ProcessUsage;
}

interface RoundResult {
  workers: number;
  /** Paths' results by phase key ("x8", "1000", "churn200"). */
  throughput: Record<string, Record<string, ThroughputSummary>>;
  rate: Record<string, Record<string, RateSummary>>;
  churn: Record<string, Record<string, ChurnSummary>>;
  ztunnelProcesses: number;
  idleRssMB: Record<string, number>;
}

async function startServer(): Promise<ChildProcess> {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'lib', 'datapath-server.js');
  const child = fork(script, ['--address', SERVER_POD_IP, '--http-port', String(HTTP_PORT), '--sink-port', String(SINK_PORT)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`bench server exited (${code}) before listening`)));
  });
  return child;
}

async function measureChurn(ctx: PhaseContext, paths: Path[], perSecond: number): Promise<Record<string, ChurnSummary>> {
  const out: Record<string, ChurnSummary> = {};
  const per = new Map<string, { runs: Awaited<ReturnType<typeof churn>>[]; usage: ProcessUsage[] }>();
  for (const p of paths) per.set(p.name, { runs: [], usage: [] });
  for (let k = 0; k < CFG.churn.rounds; k++) {
    for (const p of rotated(paths, k)) {
      const { value } = await ctx.noise.measured(`churn ${perSecond}/s ${p.name} #${k + 1}`, async () => {
        const meter = new ProcessMeter(p.pids);
        meter.start();
        const run = await churn(p.http, REQUEST, perSecond, CFG.churn.durationMs / CFG.churn.rounds);
        return { run, usage: meter.stop() };
      });
      per.get(p.name)!.runs.push(value.run);
      per.get(p.name)!.usage.push(value.usage);
      await new Promise((r) => setTimeout(r, 500)); // TIME_WAIT sockets and accept queues settle between runs
    }
  }
  for (const p of paths) {
    const st = per.get(p.name)!;
    const all = st.runs[0]!.fromSchedule;
    const conn = st.runs[0]!.connect;
    for (const r of st.runs.slice(1)) { all.addAll(r.fromSchedule); conn.addAll(r.connect); }
    const s = all.summary();
    const sum = (k: 'completed' | 'scheduled' | 'errors') => st.runs.reduce((t, r) => t + r[k], 0);
    out[p.name] = {
      perSecond, p50: s.p50, p99: s.p99, connectP99: conn.summary().p99, completed: sum('completed'), scheduled: sum('scheduled'), errors: sum('errors'),
      errorSamples: [...new Set(st.runs.flatMap((r) => r.errorSamples))].slice(0, 5), usage: st.usage.at(-1)!,
    };
    ctx.say(`churn ${perSecond}/s ${p.name}: p50 ${ms(s.p50)} p99 ${ms(s.p99)} ms, ${sum('errors')} errors of ${sum('scheduled')}`);
  }
  return out;
}

async function runRound(workers: number, work: string, refs: { stunnel?: StunnelPair; nodeTls: NodeTlsPair }, load: LocalLoad, noise: NoiseGuard, setOurs: (f: () => number[]) => void, basePids: () => number[]): Promise<{ result: RoundResult; mesh: BenchMesh }> {
  say(`starting the mesh with --workers ${workers}`);
  const mesh = new BenchMesh({ workDir: join(work, `mesh-w${workers}`), upArgs: ['--workers', String(workers)] });
  await mesh.start();
  const meshName = `strait-w${workers}`;
  const meshDial = (port: number) => dialerFor({ kind: 'socks5', proxy: mesh.socks5(), localAddress: CLIENT_POD_IP, target: { host: SERVICE_HOST, port } });
  const paths: Path[] = [
    { name: 'direct', http: tcpDialer(SERVER_POD_IP, HTTP_PORT, CLIENT_POD_IP), sink: tcpDialer(SERVER_POD_IP, SINK_PORT, CLIENT_POD_IP), pids: {} },
    ...(refs.stunnel ? [{ name: 'stunnel', http: tcpDialer(STUNNEL_CLIENT_IP, 18080, CLIENT_POD_IP), sink: tcpDialer(STUNNEL_CLIENT_IP, 19000, CLIENT_POD_IP), pids: refs.stunnel.pids() }] : []),
    { name: 'node-tls', http: tcpDialer(NODETLS_CLIENT_IP, 18080, CLIENT_POD_IP), sink: tcpDialer(NODETLS_CLIENT_IP, 19000, CLIENT_POD_IP), pids: refs.nodeTls.pids() },
    { name: meshName, http: meshDial(HTTP_PORT), sink: meshDial(SINK_PORT), pids: {} },
  ];
  for (const p of paths) load.addPath(p.name, p.http, p.sink);
  await load.probe(meshName);
  // Workers are children of each ztunnel: meter them all (read after the first request, once they all run).
  const zt = mesh.ztunnelProcesses();
  paths.at(-1)!.pids = zt;
  const expected = 2 * (workers > 1 ? workers + 1 : 1);
  if (Object.keys(zt).length !== expected) say(`!!! expected ${expected} ztunnel processes with --workers ${workers}, found ${Object.keys(zt).length}: ${Object.keys(zt).join(', ')}`);
  setOurs(() => [...basePids(), ...mesh.allPids()]);
  const result: RoundResult = { workers, throughput: {}, rate: {}, churn: {}, ztunnelProcesses: Object.keys(zt).length, idleRssMB: Object.fromEntries(Object.entries(zt).map(([n, pid]) => [n, MB(memoryMiB(pid)?.rss ?? NaN)])) };
  const ctx: PhaseContext = { load, noise, say };
  if (PHASES.has('throughput')) {
    for (const streams of CFG.throughput.streams) {
      result.throughput[`x${streams}`] = await measureThroughput(ctx, paths, { bytes: Math.floor(CFG.throughput.totalBytes / streams), repeats: CFG.throughput.repeats, maxMs: CFG.throughput.maxMs, streams });
    }
  }
  if (PHASES.has('rate')) for (const r of CFG.rate) result.rate[String(r.rps)] = await measureRate(ctx, paths, r);
  if (PHASES.has('churn')) for (const r of CFG.churn.rates) result.churn[String(r)] = await measureChurn(ctx, paths, r);
  return { result, mesh };
}

function report(rounds: RoundResult[], stunnel: boolean): { text: string; goals: { goal: string; measured: string; reference: string; ratio: number | null; met: boolean | null }[] } {
  const out: string[] = [];
  const goals: { goal: string; measured: string; reference: string; ratio: number | null; met: boolean | null }[] = [];
  for (const r of rounds) {
    const mesh = `strait-w${r.workers}`;
    out.push(`--- ztunnels with --workers ${r.workers} (${r.ztunnelProcesses} ztunnel processes; idle RSS MB: ${Object.entries(r.idleRssMB).map(([n, v]) => `${n} ${v.toFixed(0)}`).join(', ')}) ---`);
    const names = Object.keys(Object.values(r.throughput)[0] ?? Object.values(r.rate)[0] ?? Object.values(r.churn)[0] ?? {});
    if (Object.keys(r.throughput).length) {
      out.push('Aggregate throughput, MiB/s (download / upload; the bytes split among the connections)');
      out.push(table(['path', ...Object.keys(r.throughput).map((k) => `${k.slice(1)} conn`), 'proxy vCPU at x64'], names.map((n) => [n,
        ...Object.values(r.throughput).map((t) => `${t[n]!.downloadMiBps.toFixed(0)} / ${t[n]!.uploadMiBps.toFixed(0)}`),
        r.throughput.x64?.[n]?.usage.vcpu.toFixed(2) ?? ''])));
      for (const [k, t] of Object.entries(r.throughput)) {
        const m = t[mesh];
        const s = t.stunnel;
        if (!m) continue;
        const agg = (x: ThroughputSummary) => x.downloadMiBps + x.uploadMiBps;
        if (Number(k.slice(1)) >= 8) {
          goals.push(s ? { goal: `w${r.workers}: aggregate throughput at ${k.slice(1)} connections >= stunnel's`, measured: `${agg(m).toFixed(0)} MiB/s`, reference: `${agg(s).toFixed(0)} MiB/s`, ratio: agg(m) / agg(s), met: agg(m) >= agg(s) }
            : { goal: `w${r.workers}: aggregate throughput at ${k.slice(1)} connections >= stunnel's`, measured: `${agg(m).toFixed(0)} MiB/s`, reference: 'stunnel not run', ratio: null, met: null });
        }
        const nt = t['node-tls'];
        if (nt) goals.push({ goal: `w${r.workers}: (context) throughput at ${k.slice(1)} connections vs node-tls`, measured: `${agg(m).toFixed(0)} MiB/s`, reference: `${agg(nt).toFixed(0)} MiB/s`, ratio: agg(m) / agg(nt), met: null });
      }
      out.push('');
    }
    for (const [rps, byPath] of Object.entries(r.rate)) {
      out.push(`Open loop at ${rps} req/s (1 KB responses; latency from the scheduled send time, ms)`);
      out.push(table(['path', 'p50', 'p99', 'achieved req/s', 'errors', 'proxy vCPU', 'vCPU per 1000 req/s'], names.map((n) => {
        const x = byPath[n]!;
        return [n, ms(x.fromSchedule.p50), ms(x.fromSchedule.p99), x.achievedRps.toFixed(0), String(x.errors), n === 'direct' ? '' : x.usage.vcpu.toFixed(2), n === 'direct' ? '' : (x.usage.vcpu / (x.achievedRps / 1000)).toFixed(3)];
      })));
      const m = byPath[mesh];
      const s = byPath.stunnel;
      if (m && s) {
        goals.push({ goal: `w${r.workers}: p99 at ${rps} req/s <= stunnel's`, measured: `${ms(m.fromSchedule.p99)} ms`, reference: `${ms(s.fromSchedule.p99)} ms`, ratio: m.fromSchedule.p99 / s.fromSchedule.p99, met: m.fromSchedule.p99 <= s.fromSchedule.p99 });
        const per = (x: RateSummary) => x.usage.vcpu / (x.achievedRps / 1000);
        goals.push({ goal: `w${r.workers}: (context) CPU per 1000 req/s at ${rps} req/s vs stunnel`, measured: `${per(m).toFixed(3)} vCPU`, reference: `${per(s).toFixed(3)} vCPU`, ratio: per(m) / per(s), met: null });
      }
      out.push('');
    }
    for (const [rate, byPath] of Object.entries(r.churn)) {
      out.push(`Connection churn at ${rate} new connections/s (dial + one request + close; ms from the scheduled time)`);
      out.push(table(['path', 'p50', 'p99', 'connect p99', 'completed / scheduled', 'errors', 'proxy vCPU'], names.map((n) => {
        const x = byPath[n]!;
        return [n, ms(x.p50), ms(x.p99), ms(x.connectP99), `${x.completed} / ${x.scheduled}`, `${x.errors}${x.errorSamples.length ? ` (${x.errorSamples[0]})` : ''}`, n === 'direct' ? '' : x.usage.vcpu.toFixed(2)];
      })));
      const m = byPath[mesh];
      if (m && Number(rate) === 200) goals.push({ goal: `w${r.workers}: churn p99 at 200/s < ${GOALS.churnP99Ms} ms`, measured: `${ms(m.p99)} ms`, reference: `${GOALS.churnP99Ms} ms`, ratio: m.p99 / GOALS.churnP99Ms, met: m.p99 < GOALS.churnP99Ms && m.errors === 0 });
      const s = byPath.stunnel;
      if (m && s) goals.push({ goal: `w${r.workers}: (context) churn p99 at ${rate}/s vs stunnel`, measured: `${ms(m.p99)} ms`, reference: `${ms(s.p99)} ms`, ratio: m.p99 / s.p99, met: null });
      out.push('');
    }
  }
  if (!stunnel) out.push('!!! stunnel NOT FOUND: every comparison with stunnel was skipped (apt-get install -y stunnel4) !!!');
  out.push('Goals (ratio = strait / reference; throughput goals are met at >= 1.00x, latency goals at <= 1.00x; "(context)" rows are not goals)');
  out.push(table(['goal', 'strait', 'reference', 'ratio', 'met'], goals.map((g) => [g.goal, g.measured, g.reference, ratio(g.ratio ?? undefined), g.met === null ? '' : g.met ? 'yes' : 'NO'])));
  return { text: out.join('\n'), goals };
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'strait-bench-scale-'));
  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c().catch((err) => say(`cleanup: ${(err as Error).message}`));
    cleanups.length = 0;
    if (!KEEP) rmSync(work, { recursive: true, force: true });
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void cleanup().then(() => process.exit(130)));
  const t0 = Date.now();
  let ours: () => number[] = () => [process.pid];
  const noise = new NoiseGuard(() => ours(), Number(option('noise-budget-s') ?? 120) * 1000, say);
  try {
    const quiet = await waitForQuiet(QUIET_WAIT_MS, () => ours(), say);
    if (!quiet.ok) say(`!!! the machine is still busy (other jobs ${quiet.otherVcpu.toFixed(2)} vCPU of ${cpus().length}): figures will be noisy !!!`);
    const server = await startServer();
    cleanups.push(async () => { server.disconnect(); if (server.exitCode === null) server.kill('SIGKILL'); });
    // The references use certificates of the first mesh's CA; they stay valid after that mesh stops.
    const rounds: RoundResult[] = [];
    let refs: { stunnel?: StunnelPair; nodeTls: NodeTlsPair } | undefined;
    const load = new LocalLoad();
    const stunnelBin = findStunnel();
    if (!stunnelBin) say('!!! stunnel is not installed: the stunnel reference will be SKIPPED (apt-get install -y stunnel4) !!!');
    const basePids = () => [process.pid, server.pid ?? 0, ...Object.values(refs?.stunnel?.pids() ?? {}), ...Object.values(refs?.nodeTls.pids() ?? {})].filter((p) => p > 0);
    for (const w of WORKERS) {
      if (!refs) {
        // A throwaway first mesh issues the references' certificates (from its CA data dir).
        const caMesh = new BenchMesh({ workDir: join(work, 'ca-mesh') });
        await caMesh.start();
        const stunnel = stunnelBin ? new StunnelPair({
          bin: stunnelBin, workDir: join(work, 'stunnel'), caDataDir: caMesh.dataDir, clientIdentity: CLIENT_ID, serverIdentity: SERVER_ID,
          routes: [
            { name: 'http', clientPort: 18080, tlsPort: 18443, target: { host: SERVER_POD_IP, port: HTTP_PORT } },
            { name: 'sink', clientPort: 19000, tlsPort: 19443, target: { host: SERVER_POD_IP, port: SINK_PORT } },
          ],
        }) : undefined;
        const nodeTls = new NodeTlsPair({
          workDir: join(work, 'node-tls'), caDataDir: caMesh.dataDir, clientIdentity: CLIENT_ID, serverIdentity: SERVER_ID,
          routes: [
            { clientPort: 18080, tlsPort: 18443, target: { host: SERVER_POD_IP, port: HTTP_PORT } },
            { clientPort: 19000, tlsPort: 19443, target: { host: SERVER_POD_IP, port: SINK_PORT } },
          ],
        });
        if (stunnel) { cleanups.push(() => stunnel.stop()); await stunnel.start(); }
        cleanups.push(() => nodeTls.stop());
        await nodeTls.start();
        await caMesh.stop();
        refs = { ...(stunnel ? { stunnel } : {}), nodeTls };
      }
      const { result, mesh } = await runRound(w, work, refs, load, noise, (f) => (ours = f), basePids);
      rounds.push(result);
      await mesh.stop();
    }
    const { text, goals } = report(rounds, !!refs?.stunnel);
    const json = {
      benchmark: 'scale',
      date: new Date().toISOString(),
      durationSeconds: (Date.now() - t0) / 1000,
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: totalmem() / 2 ** 30, node: process.version, kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(), loadAverageAtStart: loadAverage(), otherJobsVcpuBeforeStart: quiet.otherVcpu },
      config: CFG, goals, rounds, noise: noise.log,
    };
    mkdirSync(dirname(RESULT_FILE), { recursive: true });
    writeFileSync(RESULT_FILE, JSON.stringify(json, null, 2) + '\n');
    console.log(text);
    const n = noise.summary();
    if (n) console.log(`\n${n}`);
    console.log(`\nResults: ${RESULT_FILE} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  } finally {
    await cleanup();
  }
}

main().catch((err) => {
  console.error(`scale benchmark failed: ${(err as Error).stack ?? err}`);
  process.exitCode = 1;
});

