/**
 * Same-node benchmark (issue 14): what the same-node fast path saves. Three paths, measured in one run with the
 * rounds interleaved, by the same client:
 *
 *   fast        client pod → ztunnel node-a (SOCKS5) → in-process inbound → server pod on node-a        (the default)
 *   same-hbone  client pod → ztunnel node-a → HBONE (mTLS, HTTP/2) to its own 15008 → server pod on node-a
 *               (a second mesh whose ztunnel runs with STRAIT_SAME_NODE_FAST_PATH=false)
 *   cross       client pod → ztunnel node-a → HBONE → ztunnel node-b → server pod on node-b
 *
 * Figures per path: single-stream bulk download and upload (MiB/s), request/response throughput (1 KB GETs, closed
 * loop over 16 keep-alive connections, req/s), connection churn (a new connection per 1 KB GET, 8 at a time,
 * connections/s), and the ztunnels' CPU per GiB and per 10,000 requests. Goal (issue 14): fast ≥ 3× cross, for bulk
 * and for request/response. Nothing is asserted.
 *
 *   node --expose-gc dist/bench/same-node.js [--quick] [--keep] [--quiet-wait-s 30]
 *
 * Writes bench/results/same-node.json and prints a table. Addresses 127.0.215.x (fast path mesh) and 127.0.216.x
 * (HBONE mesh). See bench/README.md.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitForQuiet } from './lib/bench-noise.js';
import { HttpConn, dialerFor, download, openConns, requestBytes, sequential, upload, type Dialer } from './lib/datapath-client.js';
import { BenchMesh } from './lib/datapath-mesh.js';
import { MachineMeter, cpuSeconds, median, ratio, rotated, table } from './lib/datapath-stats.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const RESULT_FILE = join(ROOT, 'bench', 'results', 'same-node.json');
const QUICK = process.argv.includes('--quick');
const KEEP = process.argv.includes('--keep');
const option = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const QUIET_WAIT_MS = Number(option('quiet-wait-s') ?? 30) * 1000;
const CFG = {
  rounds: QUICK ? 1 : 3,
  bulkBytes: (QUICK ? 64 : 256) * 1048576,
  rr: { connections: 16, seconds: QUICK ? 2 : 5 },
  churn: { concurrency: 8, seconds: QUICK ? 2 : 5 },
};
const GOAL_RATIO = 3;
/** Requests one request/response connection may make (the time limit ends it first; this sizes its sample buffer). */
const RR_MAX_PER_CONNECTION = 100_000;
const HTTP_PORT = 8080;
const SINK_PORT = 9000;
const NS = 'bench';

const say = (msg: string) => console.error(`[same-node] ${msg}`);

/** One mesh: nodes, a client pod on node-a, server pods (each with a Service of the same name). */
interface MeshPlan { octet: number; nodes: string[]; servers: { name: string; node: string; last: number }[] }

const ip = (octet: number, last: number) => `127.0.${octet}.${last}`;
const CLIENT_LAST = 10;

function manifests(p: MeshPlan): string {
  const pod = (name: string, node: string, last: number, ports: { name: string; containerPort: number }[]) => ({
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS, labels: { app: name } },
    spec: { nodeName: node, serviceAccountName: name, containers: [{ name: 'app', image: 'strait-bench/same-node', ports }] },
    status: { podIP: ip(p.octet, last) },
  });
  const objects: unknown[] = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'istio.io/dataplane-mode': 'ambient' } } },
    ...p.nodes.map((n, i) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name: n }, status: { addresses: [{ type: 'InternalIP', address: ip(p.octet, i + 1) }] } })),
    pod('client', p.nodes[0]!, CLIENT_LAST, []),
    ...p.servers.flatMap((s, i) => [
      pod(s.name, s.node, s.last, [{ name: 'http', containerPort: HTTP_PORT }, { name: 'sink', containerPort: SINK_PORT }]),
      {
        apiVersion: 'v1', kind: 'Service', metadata: { name: s.name, namespace: NS },
        spec: { clusterIP: ip(p.octet, 100 + i), selector: { app: s.name }, ports: [{ name: 'http', port: HTTP_PORT, targetPort: 'http' }, { name: 'sink', port: SINK_PORT, targetPort: 'sink' }] },
      },
    ]),
  ];
  return objects.map((o) => JSON.stringify(o)).join('\n---\n') + '\n';
}

async function startServer(address: string): Promise<ChildProcess> {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'lib', 'datapath-server.js');
  const child = fork(script, ['--address', address, '--http-port', String(HTTP_PORT), '--sink-port', String(SINK_PORT)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`bench server exited (${code}) before listening on ${address}`)));
  });
  return child;
}

type PathName = 'fast' | 'same-hbone' | 'cross';

interface Path {
  name: PathName;
  http: Dialer;
  sink: Dialer;
  /** The ztunnels this path crosses. */
  pids: number[];
}

interface PathFigures {
  downloadMiBps: number[];
  uploadMiBps: number[];
  rrPerS: number[];
  churnPerS: number[];
  cpuSecondsPerGiB: number[];
  cpuSecondsPer10kRequests: number[];
  otherVcpu: number[];
  errors: number;
}

const cpuOf = (pids: number[]) => pids.reduce((s, p) => s + (cpuSeconds(p) ?? NaN), 0);

/** Runs `f` while metering the path's ztunnels and the rest of the machine. */
async function metered<T>(path: Path, ours: () => number[], f: () => Promise<T>): Promise<{ r: T; cpu: number; otherVcpu: number }> {
  const m = new MachineMeter(ours);
  m.start();
  const c0 = cpuOf(path.pids);
  const r = await f();
  const cpu = cpuOf(path.pids) - c0;
  return { r, cpu, otherVcpu: m.stop().otherVcpu };
}

/** 1 KB GETs on `connections` keep-alive connections, each one request at a time, for `seconds`. */
async function requestResponse(path: Path, host: string): Promise<{ requests: number; seconds: number; errors: number }> {
  const conns = await openConns(path.http, CFG.rr.connections);
  try {
    const req = requestBytes('/1k', host);
    const t0 = process.hrtime.bigint();
    const rs = await Promise.all(conns.map((c) => sequential(c, req, RR_MAX_PER_CONNECTION, CFG.rr.seconds * 1000)));
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    return { requests: rs.reduce((s, r) => s + r.latency.count, 0), seconds, errors: rs.reduce((s, r) => s + r.errors, 0) };
  } finally {
    for (const c of conns) c.close();
  }
}

/** A new connection per 1 KB GET, `concurrency` loops at once, for `seconds`. */
async function churn(path: Path, host: string): Promise<{ connections: number; seconds: number; errors: number }> {
  const req = requestBytes('/1k', host);
  const until = Date.now() + CFG.churn.seconds * 1000;
  let connections = 0;
  let errors = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: CFG.churn.concurrency }, async () => {
    while (Date.now() < until) {
      try {
        const conn = new HttpConn(await path.http());
        await new Promise<void>((resolve, reject) => conn.get(req, (_end, err) => (err ? reject(err) : resolve())));
        conn.close();
        connections++;
      } catch {
        errors++;
      }
    }
  }));
  return { connections, seconds: Number(process.hrtime.bigint() - t0) / 1e9, errors };
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'strait-bench-same-node-'));
  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c().catch((err) => say(`cleanup: ${(err as Error).message}`));
    if (!KEEP) rmSync(work, { recursive: true, force: true });
  };
  const t0 = Date.now();
  try {
    const servers: ChildProcess[] = [];
    const meshes: BenchMesh[] = [];
    const ours = () => [process.pid, ...servers.map((s) => s.pid ?? 0), ...meshes.flatMap((m) => m.allPids())].filter((p) => p > 0);
    const quiet = await waitForQuiet(QUIET_WAIT_MS, ours, say);
    if (!quiet.ok) say(`!!! the machine is still busy (other jobs use ${quiet.otherVcpu.toFixed(2)} vCPU): figures will be noisy !!!`);

    const fastPlan: MeshPlan = { octet: 215, nodes: ['node-a', 'node-b'], servers: [{ name: 'local', node: 'node-a', last: 11 }, { name: 'remote', node: 'node-b', last: 12 }] };
    const hbonePlan: MeshPlan = { octet: 216, nodes: ['node-a'], servers: [{ name: 'local', node: 'node-a', last: 11 }] };
    for (const a of [ip(215, 11), ip(215, 12), ip(216, 11)]) servers.push(await startServer(a));
    cleanups.push(async () => {
      for (const s of servers) {
        s.disconnect();
        if (s.exitCode === null) await Promise.race([once(s, 'exit'), new Promise((r) => setTimeout(r, 3000))]);
        if (s.exitCode === null) s.kill('SIGKILL');
      }
    });
    const plans: [MeshPlan, Record<string, string>][] = [[fastPlan, {}], [hbonePlan, { STRAIT_SAME_NODE_FAST_PATH: 'false' }]];
    for (const [plan, env] of plans) {
      const mesh = new BenchMesh({ workDir: join(work, `mesh-${plan.octet}`), manifests: manifests(plan), nodes: plan.nodes.map((name) => ({ name })), controllerAddress: ip(plan.octet, 254), env });
      meshes.push(mesh);
      cleanups.push(() => mesh.stop());
      say(`starting mesh 127.0.${plan.octet}.x (${plan.nodes.join(', ')}${env.STRAIT_SAME_NODE_FAST_PATH ? ', same-node fast path off' : ''})`);
      await mesh.start();
    }
    const [fastMesh, hboneMesh] = meshes as [BenchMesh, BenchMesh];
    const dial = (mesh: BenchMesh, octet: number, svc: string, port: number): Dialer => dialerFor({
      kind: 'socks5', proxy: mesh.socks5('node-a'), localAddress: ip(octet, CLIENT_LAST), target: { host: `${svc}.${NS}.svc.cluster.local`, port },
    });
    const zt = (mesh: BenchMesh, node: string) => mesh.state.nodes[node]!.pid;
    const paths: (Path & { host: string })[] = [
      { name: 'fast', host: `local.${NS}.svc.cluster.local`, http: dial(fastMesh, 215, 'local', HTTP_PORT), sink: dial(fastMesh, 215, 'local', SINK_PORT), pids: [zt(fastMesh, 'node-a')] },
      { name: 'same-hbone', host: `local.${NS}.svc.cluster.local`, http: dial(hboneMesh, 216, 'local', HTTP_PORT), sink: dial(hboneMesh, 216, 'local', SINK_PORT), pids: [zt(hboneMesh, 'node-a')] },
      { name: 'cross', host: `remote.${NS}.svc.cluster.local`, http: dial(fastMesh, 215, 'remote', HTTP_PORT), sink: dial(fastMesh, 215, 'remote', SINK_PORT), pids: [zt(fastMesh, 'node-a'), zt(fastMesh, 'node-b')] },
    ];
    // The first connection of each path waits for certificates; probe until each answers.
    for (const p of paths) {
      const until = Date.now() + 30_000;
      for (;;) {
        try {
          const r = await download(p.http, 1024, p.host, 5000);
          if (r.bytes === 1024) break;
        } catch (err) {
          if (Date.now() > until) throw new Error(`path ${p.name} does not answer: ${(err as Error).message}`);
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    }
    const fastSame = (await (await fetch(`http://${fastMesh.state.nodes['node-a']!.metrics}/metrics`)).text()).match(/strait_ztunnel_same_node_connections_total\{path="fast"\} (\d+)/)?.[1];
    say(`all paths answer (${((Date.now() - t0) / 1000).toFixed(1)} s); fast-path connections so far: ${fastSame ?? 'none (!)'}`);

    const empty = (): PathFigures => ({ downloadMiBps: [], uploadMiBps: [], rrPerS: [], churnPerS: [], cpuSecondsPerGiB: [], cpuSecondsPer10kRequests: [], otherVcpu: [], errors: 0 });
    const figs: Record<PathName, PathFigures> = { fast: empty(), 'same-hbone': empty(), cross: empty() };
    for (let round = 0; round < CFG.rounds; round++) {
      for (const p of rotated(paths, round)) {
        const f = figs[p.name];
        const down = await metered(p, ours, () => download(p.http, CFG.bulkBytes, p.host, 120_000));
        const up = await metered(p, ours, () => upload(p.sink, CFG.bulkBytes, 120_000));
        f.downloadMiBps.push(down.r.mibps);
        f.uploadMiBps.push(up.r.mibps);
        f.cpuSecondsPerGiB.push((down.cpu + up.cpu) / ((down.r.bytes + up.r.bytes) / 2 ** 30));
        const rr = await metered(p, ours, () => requestResponse(p, p.host));
        f.rrPerS.push(rr.r.requests / rr.r.seconds);
        f.cpuSecondsPer10kRequests.push(rr.cpu / (rr.r.requests / 10_000));
        const ch = await metered(p, ours, () => churn(p, p.host));
        f.churnPerS.push(ch.r.connections / ch.r.seconds);
        f.errors += rr.r.errors + ch.r.errors;
        f.otherVcpu.push(down.otherVcpu, up.otherVcpu, rr.otherVcpu, ch.otherVcpu);
        say(`round ${round + 1}/${CFG.rounds} ${p.name}: down ${down.r.mibps.toFixed(0)} MiB/s, up ${up.r.mibps.toFixed(0)} MiB/s, ${(rr.r.requests / rr.r.seconds).toFixed(0)} req/s, ${(ch.r.connections / ch.r.seconds).toFixed(0)} conn/s`);
      }
    }

    const med = (p: PathName, k: keyof Omit<PathFigures, 'errors'>) => median(figs[p][k]);
    const fmt = (v: number, d = 0) => (Number.isFinite(v) ? v.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '—');
    const rows: [string, keyof Omit<PathFigures, 'errors'>, number, boolean][] = [
      ['single-stream download, MiB/s', 'downloadMiBps', 0, true],
      ['single-stream upload, MiB/s', 'uploadMiBps', 0, true],
      ['request/response, 16 connections, req/s', 'rrPerS', 0, true],
      ['new connection per request, 8 at a time, conn/s', 'churnPerS', 0, false],
      ['ztunnel CPU per GiB, s', 'cpuSecondsPerGiB', 2, false],
      ['ztunnel CPU per 10,000 requests, s', 'cpuSecondsPer10kRequests', 2, false],
    ];
    const goals = rows.filter((r) => r[3]).map(([label, k]) => {
      const x = med('fast', k) / med('cross', k);
      return { figure: label, fastOverCross: x, goal: GOAL_RATIO, met: x >= GOAL_RATIO };
    });
    const text = table(['figure (median of rounds)', 'fast', 'same-node HBONE', 'cross-node', 'fast / same-node HBONE', 'fast / cross-node'],
      rows.map(([label, k, d]) => [label, fmt(med('fast', k), d), fmt(med('same-hbone', k), d), fmt(med('cross', k), d), ratio(med('fast', k) / med('same-hbone', k)), ratio(med('fast', k) / med('cross', k))]));
    const others = Math.max(...Object.values(figs).flatMap((f) => f.otherVcpu));
    const json = {
      benchmark: 'same-node',
      date: new Date().toISOString(),
      durationSeconds: (Date.now() - t0) / 1000,
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, node: process.version, kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(), otherJobsVcpuBeforeStart: quiet.otherVcpu },
      config: CFG,
      paths: figs,
      goals,
      otherJobsVcpuMax: others,
    };
    mkdirSync(dirname(RESULT_FILE), { recursive: true });
    writeFileSync(RESULT_FILE, JSON.stringify(json, null, 2) + '\n');
    console.log(`\nSame-node fast path (${CFG.rounds} round(s), ${cpus().length} cores, Node ${process.version}; other jobs at most ${others.toFixed(2)} vCPU during a measurement)\n`);
    console.log(text);
    console.log('\nGoal (issue 14): same-node >= 3x cross-node throughput');
    for (const g of goals) console.log(`  ${g.figure}: fast / cross = ${g.fastOverCross.toFixed(2)}x: ${g.met ? 'met' : 'MISSED'}`);
    const errors = Object.entries(figs).filter(([, f]) => f.errors > 0).map(([n, f]) => `${n}: ${f.errors}`);
    if (errors.length) console.log(`\n!!! failed requests: ${errors.join(', ')} !!!`);
    console.log(`\nResults: ${RESULT_FILE} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  } finally {
    await cleanup();
  }
}

main().catch((err) => {
  console.error(`same-node benchmark failed: ${(err as Error).stack ?? err}`);
  process.exitCode = 1;
});
