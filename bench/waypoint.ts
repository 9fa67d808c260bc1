/**
 * Waypoint benchmark (issue 10): HTTP/1.1 requests through
 *
 *   client → ztunnel (node-a, SOCKS5) → HBONE → waypoint (route by header) → HBONE → ztunnel (node-b) → server
 *
 * at 1 connection (closed loop) and at 1,000 requests/s (open loop), against, in the same run and by the same load
 * generator: (a) the same path without the waypoint, (b) nginx doing the same L7 job (mTLS in, route by header,
 * mTLS out) with 1 worker and with `auto` workers, (c) the smallest Node.js HTTPS proxy doing it (the runtime's
 * floor), and, for scale, the references' two TLS ends without a proxy. Variants alternate round by round.
 *
 * Figures per variant: req/s, latency p50/p90/p99, added latency (minus path (a)), the L7 proxy's CPU ms per request
 * (utime+stime from /proc) and its RSS at 1,000 req/s; ratios: waypoint vs floor (goals: CPU and added p50 within
 * 1.1x), vs nginx (reported), waypoint RSS (goal <= 120 MB). Nothing is asserted. See bench/README.md.
 *
 *   node --expose-gc dist/bench/waypoint.js [--quick] [--seq-count N] [--rate-seconds S] [--rounds N]
 *     [--variants mesh-l4,tls-pair,waypoint,nginx-1w,nginx-auto,floor] [--phases sequential,rate]
 *     [--access-logs on|off] [--no-routes] [--cpu-prof DIR] [--keep] [--quiet-wait-s 30]
 *
 * Writes bench/results/waypoint.json and prints a table. Everything listens on 127.0.190-196.x.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BenchMesh } from './lib/datapath-mesh.js';
import { waitForQuiet } from './lib/bench-noise.js';
import { MB, MachineMeter, ProcessMeter, Samples, loadAverage, mergeMachine, rotated, type MachineUsage, type ProcessUsage } from './lib/datapath-stats.js';
import { Forked } from './lib/forked.js';
import type { DialSpec } from './lib/datapath-client.js';
import {
  APP_PORT, CLIENT_POD_IP, CONTROLLER_IP, NAMESPACE, NODE_A, NODE_B, SA, SERVER_PODS, SERVICE, SERVICE_L4, TRUST_DOMAIN, WAYPOINT,
  serviceHost, waypointManifests,
} from './lib/waypoint-mesh.js';
import { findNginx } from './lib/waypoint-nginx.js';
import { ORIGINATOR_IP, ORIGINATOR_PORTS, References } from './lib/waypoint-refs.js';
import { context, goals, report, type GroupUsage, type Phase, type PhaseResult, type Results, type VariantName } from './lib/waypoint-report.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');
const RESULT_FILE = join(ROOT, 'bench', 'results', 'waypoint.json');

// ---- options ----

const argv = process.argv.slice(2);
const option = (name: string): string | undefined => (argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : undefined);
const QUICK = argv.includes('--quick');
const KEEP = argv.includes('--keep');
const ROUTES = !argv.includes('--no-routes');
const ACCESS_LOGS = (option('access-logs') ?? 'on') !== 'off';
const CPU_PROF_DIR = option('cpu-prof');
const QUIET_WAIT_MS = Number(option('quiet-wait-s') ?? 30) * 1000;
const ALL: VariantName[] = ['mesh-l4', 'tls-pair', 'waypoint', 'nginx-1w', 'nginx-auto', 'floor'];
const PHASES = new Set((option('phases') ?? 'sequential,rate').split(',') as Phase[]);
const ROUNDS = Number(option('rounds') ?? (QUICK ? 2 : 4));

const CFG = {
  sequential: { warmup: QUICK ? 300 : 2_000, count: Number(option('seq-count') ?? (QUICK ? 2_000 : 12_000)), maxMsPerRound: 20_000 },
  rate: { rps: 1_000, connections: 10, warmupMs: QUICK ? 1_000 : 3_000, durationMs: Number(option('rate-seconds') ?? (QUICK ? 4 : 20)) * 1000 },
  rounds: ROUNDS,
};

const say = (msg: string) => process.stderr.write(`[waypoint] ${msg}\n`);
const gc = () => (globalThis as { gc?: () => void }).gc?.();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- the variants ----

interface Variant {
  name: VariantName;
  dial: DialSpec;
  /** The L7 proxy's processes (CPU and RSS reported as the proxy's). */
  proxy: () => Record<string, number>;
  /** The path's other processes (reported apart). */
  others: () => Record<string, number>;
  /** `strait up`, which relays the mesh's log lines into files (the local mesh only): mesh paths. */
  relay?: () => Record<string, number>;
  /** Where the plain and the canary requests must land: 'split' = plain → v1, canary → v2; 'v1' = all to v1; 'any'. */
  routing: 'split' | 'v1' | 'any';
}

/** Usage of one group of processes over several rounds: CPU summed, RSS (group sum) from the last round, peak the largest sample. */
function group(us: ProcessUsage[], requests: number): GroupUsage {
  const processes: GroupUsage['processes'] = {};
  let rssMB = 0;
  let peakRssMB = 0;
  for (const [i, u] of us.entries()) {
    let peak = 0;
    for (const [name, p] of Object.entries(u.processes)) {
      const acc = (processes[name] ??= { pid: p.pid, cpuSeconds: 0, userSeconds: 0, systemSeconds: 0, rssMB: 0, peakRssMB: 0 });
      acc.cpuSeconds += p.cpuSeconds;
      acc.userSeconds += p.userSeconds ?? NaN;
      acc.systemSeconds += p.systemSeconds ?? NaN;
      acc.rssMB = MB(p.rssMiB);
      acc.peakRssMB = Math.max(acc.peakRssMB, MB(p.peakRssMiB));
      peak += MB(p.peakRssMiB);
    }
    // The group's peak is the sum of its processes' peaks within a round (an upper bound of the sampled sums).
    peakRssMB = Math.max(peakRssMB, peak);
    if (i === us.length - 1) rssMB = Object.values(u.processes).reduce((s, p) => s + MB(p.rssMiB), 0);
  }
  const cpuSeconds = Object.values(processes).reduce((s, p) => s + p.cpuSeconds, 0);
  return { cpuSeconds, cpuMsPerRequest: requests > 0 ? (cpuSeconds * 1000) / requests : NaN, rssMB, peakRssMB, processes };
}

// ---- main ----

async function main(): Promise<void> {
  const t0 = Date.now();
  const work = mkdtempSync(join(tmpdir(), 'strait-bench-waypoint-'));
  const cleanups: (() => Promise<void>)[] = [];
  const everyPid = new Set<number>();
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    for (const c of cleanups.reverse()) await c().catch((err) => say(`cleanup: ${(err as Error).message}`));
    if (!KEEP) rmSync(work, { recursive: true, force: true });
    else say(`kept ${work}`);
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void cleanup().then(() => process.exit(130)));

  const notes: string[] = [];
  let wanted = (option('variants')?.split(',') as VariantName[] | undefined) ?? ALL;
  for (const v of wanted) if (!ALL.includes(v)) throw new Error(`unknown variant ${v}; known: ${ALL.join(', ')}`);
  const nginx = findNginx();
  if (!nginx && wanted.some((v) => v.startsWith('nginx'))) {
    notes.push('nginx NOT FOUND: the nginx variants were skipped (apt-get install -y nginx-light)');
    say('!!! nginx is not installed: reference (b) is SKIPPED. Install it with: apt-get install -y nginx-light !!!');
    wanted = wanted.filter((v) => !v.startsWith('nginx'));
  }
  if (!ROUTES) notes.push('--no-routes: no VirtualService/DestinationRule; the waypoint forwards to any endpoint of the service (no route decision to make)');
  if (!ACCESS_LOGS) notes.push('--access-logs off: the waypoint at log level warn and nginx with access_log off (the defaults log every request)');
  const loadAtStart = loadAverage();
  let ourPids: () => number[] = () => [process.pid];

  try {
    const quiet = await waitForQuiet(QUIET_WAIT_MS, () => ourPids(), say);
    if (!quiet.ok) say(`!!! the machine is still busy (other jobs use ${quiet.otherVcpu.toFixed(2)} vCPU of ${cpus().length}): figures will be noisy !!!`);

    say(`server pods on ${SERVER_PODS.v1}:${APP_PORT} (v1) and ${SERVER_PODS.v2}:${APP_PORT} (v2)`);
    const server = new Forked(join(HERE, 'lib', 'waypoint-server.js'), ['--listen', `v1=${SERVER_PODS.v1}:${APP_PORT}`, '--listen', `v2=${SERVER_PODS.v2}:${APP_PORT}`], 'the bench server');
    cleanups.push(() => server.stop());
    await server.ready;
    everyPid.add(server.pid);
    const counts = async () => (await server.ask({ cmd: 'counts' })).counts as Record<string, number>;

    const load = new Forked(join(HERE, 'lib', 'waypoint-load.js'), [], 'the load generator');
    cleanups.push(() => load.stop());
    await load.ready;
    everyPid.add(load.pid);

    say(`starting the mesh (strait up, log level info: the waypoint's access log ${ACCESS_LOGS ? 'on' : 'then turned off'})`);
    if (CPU_PROF_DIR) mkdirSync(CPU_PROF_DIR, { recursive: true });
    const mesh = new BenchMesh({
      workDir: join(work, 'mesh'), manifests: waypointManifests({ routes: ROUTES }), nodes: [NODE_A, NODE_B], controllerAddress: CONTROLLER_IP, logLevel: 'info',
      ...(CPU_PROF_DIR ? { cpuProfileDir: CPU_PROF_DIR, cpuProfileRoles: ['waypoint'] } : {}),
    });
    cleanups.push(() => mesh.stop());
    try {
      await mesh.start();
    } catch (err) {
      const msg = (err as Error).message;
      if (ROUTES && /waypoint .* not ready/.test(msg)) {
        throw new Error(`${msg}\n(the waypoint did not take its configuration: if this build's controller does not yet compile VirtualServices into `
          + `waypoint route tables, run with --no-routes to measure the waypoint without a route decision; see ${mesh.logDir})`);
      }
      throw err;
    }
    for (const p of mesh.allPids()) everyPid.add(p);
    const wpKey = `${NAMESPACE}/${WAYPOINT.name}`;
    const wp = mesh.state.waypoints?.[wpKey];
    if (!wp) throw new Error(`strait up runs no waypoint ${wpKey}: ${JSON.stringify(mesh.state.waypoints ?? {})}`);
    if (!ACCESS_LOGS) {
      const r = await fetch(`http://${wp.admin}/logging?level=warn`, { method: 'POST' });
      if (!r.ok) throw new Error(`the waypoint's admin refused /logging?level=warn: ${r.status} ${await r.text()}`);
    }
    const ztunnels = () => ({ [`ztunnel/${NODE_A.name}`]: mesh.state.nodes[NODE_A.name]!.pid, [`ztunnel/${NODE_B.name}`]: mesh.state.nodes[NODE_B.name]!.pid });

    say('starting the references (TLS ends, floor proxy' + (nginx && wanted.some((v) => v.startsWith('nginx')) ? `, ${nginx.version} x2` : '') + ')');
    const refs = new References({
      workDir: join(work, 'refs'), caDataDir: mesh.dataDir, trustDomain: TRUST_DOMAIN, namespace: NAMESPACE, clientSa: SA.client, serverSa: SA.server, proxySa: SA.waypoint,
      servers: { v1: { host: SERVER_PODS.v1, port: APP_PORT }, v2: { host: SERVER_PODS.v2, port: APP_PORT } }, header: 'x-canary', value: 'true',
      ...(nginx && wanted.some((v) => v.startsWith('nginx')) ? { nginx } : {}), accessLogs: ACCESS_LOGS,
    });
    cleanups.push(() => refs.stop());
    await refs.start();
    for (const p of refs.allPids()) everyPid.add(p);
    ourPids = () => [process.pid, ...everyPid];

    const socks = (service: string): DialSpec => ({ kind: 'socks5', proxy: mesh.socks5(NODE_A.name), localAddress: CLIENT_POD_IP, target: { host: serviceHost(service), port: APP_PORT } });
    const viaOriginator = (port: number): DialSpec => ({ kind: 'tcp', host: ORIGINATOR_IP, port, localAddress: CLIENT_POD_IP });
    const upRelay = () => ({ 'strait up': mesh.upPid() });
    const ends = () => ({ 'tls-originator': refs.pid('tls-originator'), 'tls-terminator': refs.pid('tls-terminator') });
    const nginxWorkers = (n: 'nginx-1w' | 'nginx-auto') => () => Object.fromEntries((refs.nginx(n)?.workerPids() ?? []).map((p, i) => [`${n}/worker-${i + 1}`, p]));
    const all: Variant[] = [
      { name: 'mesh-l4', dial: socks(SERVICE_L4.name), proxy: () => ({}), others: ztunnels, relay: upRelay, routing: 'v1' },
      { name: 'tls-pair', dial: viaOriginator(ORIGINATOR_PORTS['tls-pair']), proxy: () => ({}), others: ends, routing: 'v1' },
      { name: 'waypoint', dial: socks(SERVICE.name), proxy: () => ({ waypoint: wp.pid }), others: ztunnels, relay: upRelay, routing: ROUTES ? 'split' : 'any' },
      { name: 'nginx-1w', dial: viaOriginator(ORIGINATOR_PORTS['nginx-1w']), proxy: nginxWorkers('nginx-1w'), others: ends, routing: 'split' },
      { name: 'nginx-auto', dial: viaOriginator(ORIGINATOR_PORTS['nginx-auto']), proxy: nginxWorkers('nginx-auto'), others: ends, routing: 'split' },
      { name: 'floor', dial: viaOriginator(ORIGINATOR_PORTS.floor), proxy: () => ({ floor: refs.pid('floor') }), others: ends, routing: 'split' },
    ];
    const variants = all.filter((v) => wanted.includes(v.name));

    // ---- every path answers, and routes as it must ----
    for (const v of variants) {
      const until = Date.now() + 30_000;
      for (;;) {
        try {
          const p = await load.call('probe', { name: v.name, dial: v.dial });
          const ok = (x: { status: string }) => x.status.startsWith('HTTP/1.1 200');
          if (!ok(p.plain) || !ok(p.canary)) throw new Error(`answers ${p.plain.status} / ${p.canary.status}`);
          const want = v.routing === 'split' ? ['v1', 'v2'] : v.routing === 'v1' ? ['v1', 'v1'] : [p.plain.version, p.canary.version];
          if (p.plain.version !== want[0] || p.canary.version !== want[1]) {
            throw new Error(`a plain request reached ${p.plain.version} and an x-canary: true one ${p.canary.version}; expected ${want[0]} and ${want[1]}`
              + (v.name === 'waypoint' ? ' (does this build compile VirtualServices into the waypoint\'s routes? --no-routes measures without them)' : ''));
          }
          break;
        } catch (err) {
          if (Date.now() > until) throw new Error(`path ${v.name} does not work after 30 s: ${(err as Error).message}`);
          await sleep(250);
        }
      }
    }
    say(`all ${variants.length} paths answer and route as expected (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    const idleRssMB: Record<string, Record<string, number>> = {};
    for (const v of variants) {
      idleRssMB[v.name] = Object.fromEntries(Object.entries(v.proxy()).map(([n, pid]) => [n, MB(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024)]));
    }

    const results: Results = {};
    const wpLogFile = join(mesh.logDir, `waypoint_${NAMESPACE}_${WAYPOINT.name}.log`);
    const logLines = () => (existsSync(wpLogFile) ? readFileSync(wpLogFile, 'utf8').split('\n').length - 1 : 0);
    const logLinesBefore = logLines();
    let measuredRequestsThroughWaypoint = 0;

    const measurePhase = async (phase: Phase) => {
      const acc = new Map<VariantName, { samples: Samples[]; service: Samples[]; lateness: Samples[]; requests: number; errors: number; seconds: number; proxy: ProcessUsage[]; others: ProcessUsage[]; relay: ProcessUsage[]; machine: MachineUsage[]; expected: { v1: number; v2: number; all: number }; got: { v1: number; v2: number } }>();
      const conn = (v: Variant) => `${v.name}-${phase}`;
      for (const v of variants) {
        await load.call('open', { name: conn(v), dial: v.dial, connections: phase === 'sequential' ? 1 : CFG.rate.connections });
        if (phase === 'sequential') await load.call('sequential', { name: conn(v), count: CFG.sequential.warmup, maxMs: 30_000 });
        else await load.call('rate', { name: conn(v), rps: CFG.rate.rps, durationMs: CFG.rate.warmupMs });
        acc.set(v.name, { samples: [], service: [], lateness: [], requests: 0, errors: 0, seconds: 0, proxy: [], others: [], relay: [], machine: [], expected: { v1: 0, v2: 0, all: 0 }, got: { v1: 0, v2: 0 } });
      }
      for (let k = 0; k < CFG.rounds; k++) {
        for (const v of rotated(variants, k)) {
          const a = acc.get(v.name)!;
          gc();
          const before = await counts();
          const proxyMeter = new ProcessMeter(v.proxy());
          const otherMeter = new ProcessMeter(v.others());
          const relayMeter = new ProcessMeter(v.relay?.() ?? {});
          const machine = new MachineMeter(ourPids);
          const profile = CPU_PROF_DIR && v.name === 'waypoint' && phase === 'rate';
          if (profile) { process.kill(wp.pid, 'SIGUSR2'); await sleep(300); }
          machine.start();
          proxyMeter.start();
          otherMeter.start();
          relayMeter.start(1000);
          const r = phase === 'sequential'
            ? await load.call('sequential', { name: conn(v), count: Math.ceil(CFG.sequential.count / CFG.rounds), maxMs: CFG.sequential.maxMsPerRound })
            : await load.call('rate', { name: conn(v), rps: CFG.rate.rps, durationMs: CFG.rate.durationMs / CFG.rounds });
          a.proxy.push(proxyMeter.stop());
          a.others.push(otherMeter.stop());
          a.relay.push(relayMeter.stop());
          a.machine.push(machine.stop());
          if (profile) { process.kill(wp.pid, 'SIGUSR2'); await sleep(300); }
          const after = await counts();
          const done = phase === 'sequential' ? (r.samples as Float64Array).length : (r.completed as number);
          if (phase === 'rate' && (r.closed as number) > 0) throw new Error(`${v.name}: ${r.closed} of the load's connections closed during the run (${r.errors} errors)`);
          a.samples.push(Samples.from(phase === 'sequential' ? r.samples : r.fromSchedule));
          if (phase === 'rate') { a.service.push(Samples.from(r.service)); a.lateness.push(Samples.from(r.lateness)); }
          a.requests += done;
          a.errors += r.errors as number;
          a.seconds += r.seconds as number;
          a.expected.v1 += r.plain as number;
          a.expected.v2 += r.canary as number;
          a.expected.all += (r.plain as number) + (r.canary as number);
          a.got.v1 += (after.v1 ?? 0) - (before.v1 ?? 0);
          a.got.v2 += (after.v2 ?? 0) - (before.v2 ?? 0);
          if (v.name === 'waypoint') measuredRequestsThroughWaypoint += done;
        }
        say(`${phase} round ${k + 1}/${CFG.rounds} done`);
      }
      for (const v of variants) {
        const a = acc.get(v.name)!;
        const merged = (xs: Samples[]) => { const s = new Samples(a.requests); for (const x of xs) s.addAll(x); return s.summary(); };
        const exp: Record<string, number> = v.routing === 'split' ? { v1: a.expected.v1, v2: a.expected.v2 } : v.routing === 'v1' ? { v1: a.expected.all, v2: 0 } : { 'v1+v2': a.expected.all };
        const ok = v.routing === 'any' ? a.got.v1 + a.got.v2 === a.expected.all : a.got.v1 === exp.v1 && a.got.v2 === exp.v2;
        const res: PhaseResult = {
          latency: merged(a.samples), requests: a.requests, errors: a.errors, seconds: a.seconds, rps: a.requests / a.seconds,
          proxy: group(a.proxy, a.requests), others: group(a.others, a.requests), ...(v.relay ? { relay: group(a.relay, a.requests) } : {}),
          routing: { expected: exp, got: a.got, ok }, machine: mergeMachine(a.machine),
          ...(phase === 'rate' ? { service: merged(a.service), lateness: merged(a.lateness) } : {}),
        };
        (results[v.name] ??= {})[phase] = res;
        say(`${phase} ${v.name}: ${res.rps.toFixed(0)} req/s, p50 ${res.latency.p50.toFixed(3)} p99 ${res.latency.p99.toFixed(3)} ms, proxy ${res.proxy.cpuMsPerRequest.toFixed(3)} ms CPU/req${ok ? '' : ' ROUTING CHECK FAILED'}`);
        await load.call('close', { name: conn(v) });
      }
    };
    if (PHASES.has('sequential')) await measurePhase('sequential');
    if (PHASES.has('rate')) await measurePhase('rate');

    const accessLogLines = logLines() - logLinesBefore;
    if (ACCESS_LOGS && measuredRequestsThroughWaypoint > 0 && accessLogLines < measuredRequestsThroughWaypoint) {
      notes.push(`the waypoint wrote ${accessLogLines} log lines for ${measuredRequestsThroughWaypoint} measured requests: its access log is not one line per request on this build`);
    }
    const names = variants.map((v) => v.name);
    const cfgText = `1 connection: ${CFG.sequential.count} requests per variant after ${CFG.sequential.warmup} warm-up; ${CFG.rate.rps} req/s: ${CFG.rate.durationMs / 1000} s per variant over ${CFG.rate.connections} connections after ${CFG.rate.warmupMs / 1000} s warm-up; ${CFG.rounds} rounds rotating the variants; access logs ${ACCESS_LOGS ? 'on (waypoint: info, nginx: combined)' : 'off'}`;
    const json = {
      benchmark: 'waypoint',
      description: 'HTTP/1.1 GET through client → ztunnel → waypoint → ztunnel → server, against the same path without the waypoint, nginx and the smallest Node.js HTTPS proxy doing the same L7 job between two TLS ends',
      date: new Date().toISOString(),
      durationSeconds: (Date.now() - t0) / 1000,
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: totalmem() / 2 ** 30, node: process.version, kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(), loadAverageAtStart: loadAtStart, otherJobsVcpuBeforeStart: quiet.otherVcpu },
      nginx: nginx?.version ?? null,
      config: { ...CFG, routes: ROUTES, accessLogs: ACCESS_LOGS, variants: names },
      units: { latency: 'ms', cpu: 'CPU ms per request (utime+stime)', rss: 'MB (10^6 bytes)' },
      definitions: {
        latency: '1 connection: from writing the request to the last byte of the response; 1,000 req/s: from the scheduled send time to the last byte (no coordinated omission)',
        addedLatency: 'variant percentile minus the same percentile of mesh-l4 (path (a)), same phase, same run',
        proxyCpu: 'utime+stime of the L7 proxy processes (waypoint; nginx workers; floor) over the measured rounds, divided by the requests completed',
      },
      notes,
      idleRssMB,
      waypointAccessLogLines: accessLogLines,
      results,
      goals: goals(results, CFG.rate.rps),
      context: context(results, CFG.rate.rps),
    };
    mkdirSync(dirname(RESULT_FILE), { recursive: true });
    writeFileSync(RESULT_FILE, JSON.stringify(json, null, 2) + '\n');
    console.log(report({ r: results, variants: names, rps: CFG.rate.rps, connections: CFG.rate.connections, cfgText, notes }));
    console.log(`\nResults: ${RESULT_FILE} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  } finally {
    await cleanup();
    await sleep(200);
    const alive = [...everyPid].filter((pid) => { try { process.kill(pid, 0); return true; } catch { return false; } });
    if (alive.length) say(`!!! processes still running after cleanup: ${alive.join(', ')}`);
  }
}

main().catch((err) => {
  console.error(`waypoint benchmark failed: ${(err as Error).stack ?? err}`);
  process.exitCode = 1;
});
