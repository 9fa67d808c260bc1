/**
 * Capture benchmark (issue 11): the data-path figures through REAL capture between network namespaces, in a cluster
 * made by `strait lab up` (two node namespaces on a fabric bridge, one namespace per pod):
 *
 *   strait   client pod (node-a) ─iptables→ ztunnel node-a :15001 ══ HBONE over the fabric ══ :15008 ztunnel node-b → server pod
 *
 * against references placed in the same namespaces, measured in the same run, variants alternated round by round:
 *   direct   the same path without the mesh: pods of a namespace that is not enrolled, routed through both node namespaces
 *   stunnel  client pod → stunnel (client side, node-a's namespace) ══ mTLS 1.3 over the fabric ══ stunnel (server side,
 *            node-b's namespace) → server pod; the client pod connects to stunnel explicitly (stunnel does not capture)
 *   node-tls the same with two bare Node.js TLS tunnels (net ⇄ tls, pipe): what the runtime alone costs, the floor
 *
 * Figures: throughput on 1 connection and on 8 at once (download and upload), latency p50/p90/p99 at 1,000 req/s
 * (open loop), the proxies' CPU per request at that rate and per GiB carried, their RSS; each as a ratio against the
 * direct path, stunnel and the floor. The load generators and servers run inside the pod namespaces. Nothing is
 * asserted. Writes bench/results/capture.json and prints a table. Needs root (network namespaces, iptables).
 *
 *   node --expose-gc dist/bench/capture.js [--quick] [--phases rate,throughput] [--variants direct,strait,stunnel,node-tls]
 *                                          [--streams 8] [--keep] [--quiet-wait-s 30] [--noise-budget-s 75]
 *
 * Every namespace and process the run made is removed at the end, on failure and on a signal.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NOISY_VCPU, NoiseGuard, waitForQuiet } from './lib/bench-noise.js';
import { ADDR, CLIENT_ID, HTTP_PORT, MESH_NS, NODE_A, NODE_B, PLAIN_NS, SERVER_ID, SINK_PORT, StraitLab, captureManifests, type LabState } from './lib/capture-lab.js';
import { VARIANTS, figures, report, type Results, type VariantName } from './lib/capture-report.js';
import type { DialSpec } from './lib/datapath-client.js';
import { LoadByPath, RemoteLoad, type LoadDriver } from './lib/datapath-load.js';
import { NodeTlsPair } from './lib/datapath-nodetls.js';
import { measureRate, measureSequential, measureThroughput, type PhaseContext, type PhasePath } from './lib/datapath-phases.js';
import { MB, loadAverage, memoryMiB } from './lib/datapath-stats.js';
import { StunnelPair, findStunnel, type TunnelPlacement } from './lib/datapath-stunnel.js';
import { Forked } from './lib/forked.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');
const RESULT_FILE = join(ROOT, 'bench', 'results', 'capture.json');

// ---- options ----

const argv = process.argv.slice(2);
const option = (name: string): string | undefined => (argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : undefined);
const QUICK = argv.includes('--quick');
const KEEP = argv.includes('--keep');
const QUIET_WAIT_MS = Number(option('quiet-wait-s') ?? 30) * 1000;
const PHASES = new Set((option('phases') ?? 'rate,throughput').split(','));
const STREAMS = Number(option('streams') ?? 8);

const CFG = {
  sequential: { warmup: QUICK ? 500 : 2_000, count: QUICK ? 3_000 : 15_000, maxMs: 12_000, rounds: 3 },
  rate: { rps: 1_000, connections: 16, warmupMs: QUICK ? 1_000 : 3_000, durationMs: QUICK ? 6_000 : 20_000, rounds: QUICK ? 2 : 4 },
  throughput1: { bytes: (QUICK ? 64 : 256) * 1048576, repeats: QUICK ? 1 : 3, maxMs: 60_000, streams: 1 },
  throughputN: { bytes: (QUICK ? 16 : 64) * 1048576, repeats: QUICK ? 1 : 3, maxMs: 60_000, streams: STREAMS },
};

/** Ports of the references: the client side listens on node A's pod gateway, the server side on node B's fabric address. */
const REF_PORTS = {
  stunnel: { http: { client: 18080, tls: 18443 }, sink: { client: 19000, tls: 19443 } },
  'node-tls': { http: { client: 28080, tls: 28443 }, sink: { client: 29000, tls: 29443 } },
};

const say = (msg: string) => process.stderr.write(`[capture] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- the lab's insides ----

/** GET http://127.0.0.1:PORT/PATH inside a node namespace (the ztunnel's admin and metrics listen there). */
function nodeGet(netns: string, port: number, path: string): string | undefined {
  const r = spawnSync('ip', ['netns', 'exec', netns, 'curl', '-sf', '--max-time', '5', `http://127.0.0.1:${port}${path}`], { encoding: 'utf8', timeout: 10_000 });
  if (r.error) throw new Error(`curl could not run (${r.error.message}): apt-get install -y curl`);
  return r.status === 0 ? r.stdout : undefined;
}

/** POST http://127.0.0.1:PORT/PATH inside a node namespace. */
function nodePost(netns: string, port: number, path: string): void {
  const r = spawnSync('ip', ['netns', 'exec', netns, 'curl', '-sf', '--max-time', '5', '-X', 'POST', `http://127.0.0.1:${port}${path}`], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`POST ${path} to the ztunnel's admin in ${netns} failed (${r.status}): ${(r.stderr ?? '').trim()}`);
}

/** Waits until the node's ztunnel reports the pods' capture rules present in /config_dump. */
async function waitCaptured(netns: string, pods: string[], timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let seen = '';
  for (;;) {
    try {
      const dump = JSON.parse(nodeGet(netns, 15000, '/config_dump') ?? '{}') as { capture?: { pods?: { pod: string; state: string }[] } };
      const states = new Map((dump.capture?.pods ?? []).map((p) => [p.pod, p.state]));
      seen = JSON.stringify(Object.fromEntries(states));
      if (pods.every((p) => states.get(p) === 'present')) return;
    } catch { /* not up yet */ }
    if (Date.now() > until) {
      throw new Error(`the ztunnel in ${netns} has not captured ${pods.join(', ')} after ${timeoutMs / 1000} s (its /config_dump capture pods: ${seen || 'none'}; `
        + 'does this build\'s lab run the ztunnels with --capture?)');
    }
    await sleep(250);
  }
}

/** Sum of a counter over all its series in a Prometheus text exposition. */
function counterSum(text: string | undefined, name: string): number {
  let sum = 0;
  for (const line of (text ?? '').split('\n')) if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
  return sum;
}

/** The process whose command line contains `needle`: `pid` itself or one of its descendants (a wrapper's child). */
function resolvePid(pid: number, needle: string): number {
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift()!;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').some((a) => a.includes(needle))) return p;
      for (const t of readdirSync(`/proc/${p}/task`)) {
        queue.push(...readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number));
      }
    } catch { /* gone */ }
  }
  throw new Error(`no process with "${needle}" in its command line at or under pid ${pid}`);
}

/** The mesh CA's directory: where the lab's root certificate and key are. */
function caDir(state: LabState): string {
  for (const d of [dirname(state.rootCert), state.dataDir]) if (d && existsSync(join(d, 'root-key.pem'))) return d;
  throw new Error(`cannot find the lab's CA (root-key.pem next to ${state.rootCert} or in ${state.dataDir}): the stunnel and node-tls pairs need certificates from the mesh CA`);
}

// ---- main ----

interface Variant extends PhasePath {
  name: VariantName;
  load: LoadDriver;
  http: DialSpec;
  sink: DialSpec;
  sides: { client?: string; server?: string };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the capture benchmark needs root (network namespaces, veths, iptables): run it with sudo');
  const t0 = Date.now();
  const work = mkdtempSync(join(tmpdir(), 'strait-bench-capture-'));
  const cleanups: (() => Promise<unknown>)[] = [];
  const children = new Set<number>();
  let lab: StraitLab | undefined;
  let cleaned = false;
  const leftovers: string[] = [];
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    for (const c of cleanups.reverse()) await c().catch((err) => say(`cleanup: ${(err as Error).message}`));
    if (lab) leftovers.push(...await lab.stop());
    for (const l of leftovers) say(`!!! cleanup: ${l}`);
    if (!KEEP) rmSync(work, { recursive: true, force: true });
    else say(`kept ${work}`);
  };
  // Last resort (an exception past the finally, process.exit): kill our children and take the lab down, synchronously.
  process.on('exit', () => {
    if (cleaned) return;
    for (const pid of children) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    lab?.stopSync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, () => void cleanup().finally(() => process.exit(130)));

  const notes: string[] = [];
  let wanted = (option('variants')?.split(',') as VariantName[] | undefined) ?? VARIANTS;
  for (const v of wanted) if (!VARIANTS.includes(v)) throw new Error(`unknown variant ${v}; known: ${VARIANTS.join(', ')}`);
  if (!wanted.includes('direct')) throw new Error('the direct variant is every ratio\'s reference: keep it in --variants');
  const stunnel = findStunnel();
  if (!stunnel && wanted.includes('stunnel')) {
    notes.push('stunnel NOT FOUND: the stunnel variant was skipped (apt-get install -y stunnel4)');
    say('!!! stunnel is not installed: the stunnel reference is SKIPPED. Install it with: apt-get install -y stunnel4 !!!');
    wanted = wanted.filter((v) => v !== 'stunnel');
  }
  const loadAtStart = loadAverage();
  let ourPids: () => number[] = () => [process.pid];

  try {
    const quiet = await waitForQuiet(QUIET_WAIT_MS, () => ourPids(), say);
    if (!quiet.ok) say(`!!! the machine is still busy (other jobs use ${quiet.otherVcpu.toFixed(2)} vCPU of ${cpus().length}): figures will be noisy !!!`);

    lab = new StraitLab(join(work, 'lab'));
    say('starting the cluster (strait lab up)');
    const state = await lab.start(captureManifests());
    const ca = caDir(state);
    const pod = (key: string) => {
      const p = state.pods[key];
      if (!p) throw new Error(`the lab has no pod ${key} (pods: ${Object.keys(state.pods).join(', ')})`);
      return p;
    };
    const nodeA = state.nodes[NODE_A]!;
    const nodeB = state.nodes[NODE_B]!;
    say(`lab ${state.prefix}*: ${NODE_A} ${nodeA.address}, ${NODE_B} ${nodeB.address} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);

    // Servers in both server pods, load generators in both client pods.
    const serverScript = join(HERE, 'lib', 'datapath-server.js');
    const started: Forked[] = [];
    for (const ns of wanted.includes('strait') ? [MESH_NS, PLAIN_NS] : [PLAIN_NS]) {
      const p = pod(`${ns}/server`);
      const f = new Forked(serverScript, ['--address', p.address, '--http-port', String(HTTP_PORT), '--sink-port', String(SINK_PORT)], `the server in ${ns}/server`, { netns: p.netns });
      cleanups.push(() => f.stop());
      children.add(f.pid);
      started.push(f);
    }
    await Promise.all(started.map((f) => f.ready));
    const loads: Partial<Record<'mesh' | 'plain', RemoteLoad>> = {};
    const loadPods: ['plain' | 'mesh', string][] = [['plain', PLAIN_NS], ...(wanted.includes('strait') ? [['mesh', MESH_NS] as ['mesh', string]] : [])];
    for (const [kind, ns] of loadPods) {
      const l = new RemoteLoad(`the load generator in ${ns}/client`, { netns: pod(`${ns}/client`).netns });
      cleanups.push(() => l.stop());
      children.add(l.pid);
      await l.start();
      loads[kind] = l;
    }

    // The references, placed on the nodes.
    const placement: TunnelPlacement = {
      client: { netns: nodeA.netns, listen: nodeA.gateway, source: nodeA.address },
      server: { netns: nodeB.netns, listen: nodeB.address },
    };
    const certs = { caDataDir: ca, clientIdentity: CLIENT_ID, serverIdentity: SERVER_ID, placement };
    const target = (port: number) => ({ host: pod(`${PLAIN_NS}/server`).address, port });
    let stunnelPair: StunnelPair | undefined;
    if (wanted.includes('stunnel')) {
      say(`starting ${stunnel!.version}: client side in ${nodeA.netns}, server side in ${nodeB.netns}`);
      const ports = REF_PORTS.stunnel;
      stunnelPair = new StunnelPair({
        bin: stunnel!, workDir: join(work, 'stunnel'), ...certs,
        routes: [
          { name: 'http', clientPort: ports.http.client, tlsPort: ports.http.tls, target: target(HTTP_PORT) },
          { name: 'sink', clientPort: ports.sink.client, tlsPort: ports.sink.tls, target: target(SINK_PORT) },
        ],
      });
      cleanups.push(() => stunnelPair!.stop());
      await stunnelPair.start();
      for (const pid of Object.values(stunnelPair.pids())) children.add(pid);
    }
    let nodeTls: NodeTlsPair | undefined;
    if (wanted.includes('node-tls')) {
      say('starting the Node.js TLS tunnel pair, placed the same way');
      const ports = REF_PORTS['node-tls'];
      nodeTls = new NodeTlsPair({
        workDir: join(work, 'node-tls'), ...certs,
        routes: [
          { clientPort: ports.http.client, tlsPort: ports.http.tls, target: target(HTTP_PORT) },
          { clientPort: ports.sink.client, tlsPort: ports.sink.tls, target: target(SINK_PORT) },
        ],
      });
      cleanups.push(() => nodeTls!.stop());
      await nodeTls.start();
      for (const pid of Object.values(nodeTls.pids())) children.add(pid);
    }

    // The mesh: both pods' rules in place before the first request (else it would go out uncaptured).
    let ztunnels: Record<string, number> = {};
    if (wanted.includes('strait')) {
      await waitCaptured(nodeA.netns, [`${MESH_NS}/client`]);
      await waitCaptured(nodeB.netns, [`${MESH_NS}/server`]);
      ztunnels = { [`ztunnel/${NODE_A}`]: resolvePid(nodeA.ztunnel.pid, 'ztunnel'), [`ztunnel/${NODE_B}`]: resolvePid(nodeB.ztunnel.pid, 'ztunnel') };
      // As the loopback data-path benchmark runs them: at warn, no access-log line per connection on the hot path.
      for (const n of [nodeA, nodeB]) nodePost(n.netns, 15000, '/logging?level=warn');
      say(`both pods captured; ztunnels ${Object.entries(ztunnels).map(([n, p]) => `${n} pid ${p}`).join(', ')}`);
    }

    // Every path addresses the server pod itself (no Service VIP, so no DNAT on any path).
    const tcp = (host: string, port: number): DialSpec => ({ kind: 'tcp', host, port });
    const plainServer = pod(`${PLAIN_NS}/server`).address;
    const meshServer = wanted.includes('strait') ? pod(`${MESH_NS}/server`).address : ADDR.meshServer;
    const all: Variant[] = [
      { name: 'direct', load: loads.plain!, http: tcp(plainServer, HTTP_PORT), sink: tcp(plainServer, SINK_PORT), pids: {}, sides: {} },
      { name: 'strait', load: loads.mesh!, http: tcp(meshServer, HTTP_PORT), sink: tcp(meshServer, SINK_PORT), pids: ztunnels, sides: { client: `ztunnel/${NODE_A}`, server: `ztunnel/${NODE_B}` } },
      {
        name: 'stunnel', load: loads.plain!, http: tcp(nodeA.gateway, REF_PORTS.stunnel.http.client), sink: tcp(nodeA.gateway, REF_PORTS.stunnel.sink.client),
        pids: stunnelPair?.pids() ?? {}, sides: { client: 'stunnel/client', server: 'stunnel/server' },
      },
      {
        name: 'node-tls', load: loads.plain!, http: tcp(nodeA.gateway, REF_PORTS['node-tls'].http.client), sink: tcp(nodeA.gateway, REF_PORTS['node-tls'].sink.client),
        pids: nodeTls?.pids() ?? {}, sides: { client: 'node-tls/client', server: 'node-tls/server' },
      },
    ];
    const variants = all.filter((v) => wanted.includes(v.name));
    for (const v of variants) await (v.load as RemoteLoad).addPath(v.name, v.http, v.sink);
    const load = new LoadByPath((path) => variants.find((v) => v.name === path)!.load);

    // Every path answers; the mesh path's connections went through both ztunnels, the others' through neither.
    const opened = (netns: string) => counterSum(nodeGet(netns, 15020, '/metrics'), 'istio_tcp_connections_opened_total');
    const counted = () => [opened(nodeA.netns), opened(nodeB.netns)];
    for (const v of variants) {
      const before = wanted.includes('strait') ? counted() : [];
      await load.probe(v.name);
      if (!wanted.includes('strait')) continue;
      await sleep(200);
      const [a, b] = counted().map((x, i) => x - before[i]!);
      if (v.name === 'strait' && (a! < 1 || b! < 1)) {
        throw new Error(`the strait path answered, but the ztunnels counted ${a} (${NODE_A}) and ${b} (${NODE_B}) new connections: the pods' traffic was not captured on both nodes`);
      }
      if (v.name !== 'strait' && (a! > 0 || b! > 0)) throw new Error(`the ${v.name} path went through a ztunnel (${a} + ${b} connections counted): its pods must not be enrolled`);
    }
    const results: Results = {};
    for (const v of variants) {
      results[v.name] = { sides: v.sides, idleRssMB: Object.fromEntries(Object.entries(v.pids).map(([n, pid]) => [n, MB(memoryMiB(pid)?.rss ?? NaN)])) };
    }
    const labPids = lab.allPids();
    ourPids = () => [process.pid, ...children, ...labPids];
    say(`all ${variants.length} paths answer (${((Date.now() - t0) / 1000).toFixed(1)} s)`);

    const noise = new NoiseGuard(() => ourPids(), Number(option('noise-budget-s') ?? 75) * 1000, say);
    const ctx: PhaseContext = { load, noise, say };
    if (PHASES.has('sequential')) for (const [n, s] of Object.entries(await measureSequential(ctx, variants, CFG.sequential))) results[n as VariantName]!.sequential = s;
    if (PHASES.has('rate')) for (const [n, s] of Object.entries(await measureRate(ctx, variants, CFG.rate))) results[n as VariantName]!.rate = s;
    if (PHASES.has('throughput')) {
      for (const [n, s] of Object.entries(await measureThroughput(ctx, variants, CFG.throughput1))) results[n as VariantName]!.throughput1 = s;
      for (const [n, s] of Object.entries(await measureThroughput(ctx, variants, CFG.throughputN))) results[n as VariantName]!.throughputN = s;
    }

    const cfg = { rps: CFG.rate.rps, connections: CFG.rate.connections, streams: STREAMS };
    const header = [
      `Through real capture (strait lab): 1 KB HTTP/1.1 GETs and bulk transfers, pod on ${NODE_A} → pod on ${NODE_B}; times in ms`,
      '  direct   = pods not enrolled, routed through both node namespaces',
      `  strait   = enrolled pods: iptables → ztunnel ${NODE_A} :15001 → HBONE → ztunnel ${NODE_B} :15008 → pod`,
      `  stunnel  = client pod → stunnel in ${NODE_A}'s namespace → mTLS 1.3 → stunnel in ${NODE_B}'s → server pod (same CA)`,
      '  node-tls = the same with two bare Node.js TLS tunnels (the runtime\'s floor)',
    ];
    const json = {
      benchmark: 'capture',
      description: 'the data path through real iptables capture between network namespaces (strait lab), against the direct path, stunnel and a bare Node.js TLS tunnel pair placed on the same nodes',
      date: new Date().toISOString(),
      durationSeconds: (Date.now() - t0) / 1000,
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: totalmem() / 2 ** 30, node: process.version, kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(), loadAverageAtStart: loadAtStart, otherJobsVcpuBeforeStart: quiet.otherVcpu },
      stunnel: stunnel?.version ?? null,
      config: CFG,
      units: { latency: 'ms', throughput: 'MiB/s (all connections together)', rss: 'MB (10^6 bytes) in figures; MiB in raw process usage', cpu: 'CPU seconds (utime+stime); per request in ms' },
      notes,
      results,
      figures: figures(results, cfg),
      noise: { threshold: `rounds during which other jobs used >= ${NOISY_VCPU} vCPU are redone after waiting for quiet, within a budget`, rounds: noise.log },
    };
    mkdirSync(dirname(RESULT_FILE), { recursive: true });
    writeFileSync(RESULT_FILE, JSON.stringify(json, null, 2) + '\n');
    const noisy = noise.summary();
    console.log(report({ r: results, cfg, header, notes, ...(noisy ? { noise: noisy } : {}) }));
    console.log(`\nResults: ${RESULT_FILE} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  } finally {
    await cleanup();
    await sleep(200);
    const alive = [...children].filter((pid) => { try { process.kill(pid, 0); return true; } catch { return false; } });
    if (alive.length) say(`!!! processes still running after cleanup: ${alive.join(', ')}`);
    if (leftovers.length || alive.length) process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(`capture benchmark failed: ${(err as Error).stack ?? err}`);
  process.exitCode = 1;
});
