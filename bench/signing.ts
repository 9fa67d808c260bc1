/**
 * Certificate signing through the real controller: CSRs signed per second by the CA gRPC service of a real
 * `strait controller` process (TLS 1.3, bootstrap-token authentication, per-node authorization against the
 * pods in its config), with 1 client sending one request at a time ("sequential") and with 8 clients (8
 * nodes, each its own CaClient with its own token) keeping 8 requests in flight ("concurrent").
 *
 *   node --expose-gc dist/bench/signing.js [--requests 2000] [--reps 3] [--warmup 1000] [--concurrency 8]
 *                                          [--pods N --services N --policies N --namespaces N --nodes N]
 *
 * Runs twice by default: on a small mesh (200 pods: the CA's fixed cost per request) and on the full mesh of
 * the propagation bench (10,000 pods, 2,000 services, 500 policies, 100 nodes: the per-node authorization
 * looks at the pods in the config). Any mesh flag runs one custom mesh instead.
 * The CSRs (fresh P-256 keys) are generated before the clock starts; each request uses a distinct CSR and
 * asks for the identity of a pod scheduled on the calling node. Reported: CSRs/s, client-side latency
 * p50/p99, the controller's CPU time per 1,000 CSRs (/proc/<pid>/stat before and after) and its RSS
 * (/proc/<pid>/status). Goal: >= 500 CSRs/s in both modes. Writes bench/results/signing.json.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { CaClient } from '../src/identity/ca-client.js';
import { createKeyAndCsr } from '../src/identity/index.js';
import { FULL_MESH, generateMesh, type MeshShape, type PodInfo } from './lib/controller-mesh.js';
import { promValue, startControllerProcess, systemBusyMs, type ControllerProcess } from './lib/controller-proc.js';
import { machine, warnIfBusy, mib, numArg, round, summarize, table, writeResults } from './lib/controller-report.js';

// grpc-js sets the TLS servername to the IP address it dials (127.0.0.1); Node warns about it once. Noise here.
process.noDeprecation = true;

const GOAL_PER_SECOND = 500;
const TRUST_DOMAIN = 'cluster.local';
const requests = numArg('requests', 2000);
const reps = Math.max(1, numArg('reps', 3));
const warmup = numArg('warmup', 1000);
const concurrency = numArg('concurrency', 8);
/** A small mesh (the CA's fixed cost per request) and the propagation bench's full-size one. */
const SMALL_MESH: MeshShape = { pods: 200, services: 40, policies: 10, namespaces: 2, nodes: 8 };
const custom = ['pods', 'services', 'policies', 'namespaces', 'nodes'].some((k) => process.argv.includes(`--${k}`));
const meshes: [string, MeshShape][] = custom
  ? [['custom', {
      pods: numArg('pods', FULL_MESH.pods),
      services: numArg('services', FULL_MESH.services),
      policies: numArg('policies', FULL_MESH.policies),
      namespaces: numArg('namespaces', FULL_MESH.namespaces),
      nodes: numArg('nodes', FULL_MESH.nodes),
    }]]
  : [['small', SMALL_MESH], ['full', FULL_MESH]];

interface Job {
  csr: string;
  identity: string;
}

interface ModeResult {
  mode: string;
  clients: number;
  inFlight: number;
  requests: number;
  seconds: number;
  perSecond: number;
  goalRatio: number;
  latencyMs: { p50: number; p99: number; max: number; mean: number };
  controllerCpuMsPer1000: number;
  controllerCpuCores: number;
  benchClientCpuMsPer1000: number;
  /** Cores used by everything else on the machine meanwhile (should be ~0; more means the figures are disturbed). */
  otherProcessesCores: number;
  controllerRssMiB: number;
  controllerPeakRssMiB: number;
  issuedPerMetrics: number;
  /** Rates of every repetition (the row shows the median one). */
  repetitionsPerSecond?: number[];
}

/** A CaClient as the ztunnel of `node` would have it: the node's token, TLS to the controller's root. */
async function clientFor(c: ControllerProcess, node: string): Promise<CaClient> {
  const token = await c.waitForNodeToken(node);
  return new CaClient({
    address: c.xds,
    credentials: grpc.credentials.createSsl(Buffer.from(c.rootPem)),
    metadata: () => ({ authorization: `Bearer ${token}`, 'x-strait-node': node }),
    timeoutMs: 30_000,
  });
}

/** Distinct CSRs, each paired with the identity of a pod on `node` (round robin over its pods). */
async function makeJobs(count: number, podsOnNode: PodInfo[]): Promise<Job[]> {
  const jobs: Job[] = [];
  const BATCH = 256;
  for (let i = 0; i < count; i += BATCH) {
    const batch = await Promise.all(Array.from({ length: Math.min(BATCH, count - i) }, () => createKeyAndCsr()));
    for (const k of batch) {
      const pod = podsOnNode[jobs.length % podsOnNode.length]!;
      jobs.push({ csr: k.csrPem, identity: `spiffe://${TRUST_DOMAIN}/ns/${pod.namespace}/sa/${pod.serviceAccount}` });
    }
  }
  return jobs;
}

/** Checks a returned chain: leaf + root, the leaf's only SAN is the identity asked for. */
function checkChain(chain: string[], identity: string): void {
  if (chain.length < 2) throw new Error(`chain of ${chain.length} certificates for ${identity}`);
  const leaf = new X509Certificate(chain[0]!);
  if (leaf.subjectAltName !== `URI:${identity}`) throw new Error(`leaf SAN ${leaf.subjectAltName}, expected URI:${identity}`);
}

async function runMode(
  c: ControllerProcess,
  mode: string,
  workers: { client: CaClient; jobs: Job[] }[],
): Promise<ModeResult> {
  const total = workers.reduce((n, w) => n + w.jobs.length, 0);
  const latencies: number[] = [];
  const issuedBefore = promValue(await c.get('/metrics'), 'citadel_server_success_cert_issuance_count');
  global.gc?.();
  const cpu0 = c.cpuMs();
  const sys0 = systemBusyMs();
  const self0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    workers.map(async (w) => {
      for (let i = 0; i < w.jobs.length; i++) {
        const job = w.jobs[i]!;
        const s = performance.now();
        const chain = await w.client.createCertificate(job.csr, job.identity);
        latencies.push(performance.now() - s);
        if (i % 97 === 0) checkChain(chain, job.identity); // spot check (about 1%): chain + SAN
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  const cpu1 = c.cpuMs();
  const self = process.cpuUsage(self0);
  const sys1 = systemBusyMs();
  const selfMs = (self.user + self.system) / 1000;
  const mem = c.memory();
  const issuedAfter = promValue(await c.get('/metrics'), 'citadel_server_success_cert_issuance_count');
  const lat = summarize(latencies);
  const perSecond = total / elapsed;
  return {
    mode,
    clients: workers.length,
    inFlight: workers.length,
    requests: total,
    seconds: round(elapsed, 2),
    perSecond: round(perSecond, 0),
    goalRatio: round(perSecond / GOAL_PER_SECOND, 2),
    latencyMs: { p50: round(lat.p50, 2), p99: round(lat.p99, 2), max: round(lat.max, 2), mean: round(lat.mean, 2) },
    controllerCpuMsPer1000: round(((cpu1 - cpu0) / total) * 1000, 0),
    controllerCpuCores: round((cpu1 - cpu0) / 1000 / elapsed, 2),
    benchClientCpuMsPer1000: round((selfMs / total) * 1000, 0),
    otherProcessesCores: round(Math.max(0, sys1 - sys0 - (cpu1 - cpu0) - selfMs) / 1000 / elapsed, 2),
    controllerRssMiB: mib(mem.rss),
    controllerPeakRssMiB: mib(mem.peak),
    issuedPerMetrics: issuedAfter - issuedBefore,
  };
}

interface MeshRun {
  mesh: string;
  shape: MeshShape;
  objects: number;
  controllerLoadSeconds: number;
  controllerRssMiB: { idle: number; final: number; peak: number };
  results: ModeResult[];
}

/** The repetition with the median rate, listing every repetition's rate. */
function medianRun(runs: ModeResult[]): ModeResult {
  const sorted = [...runs].sort((a, b) => a.perSecond - b.perSecond);
  return { ...sorted[Math.floor((sorted.length - 1) / 2)]!, repetitionsPerSecond: runs.map((r) => r.perSecond) };
}

/** One controller on one generated mesh: warm-up, then the sequential and the concurrent run. */
async function runMesh(label: string, shape: MeshShape): Promise<MeshRun> {
  const cfgDir = mkdtempSync(join(tmpdir(), 'strait-bench-sign-cfg-'));
  const dataDir = mkdtempSync(join(tmpdir(), 'strait-bench-sign-data-'));
  let controller: ControllerProcess | undefined;
  const clients: CaClient[] = [];
  try {
    const mesh = generateMesh(cfgDir, shape, TRUST_DOMAIN);
    const objects = shape.namespaces + shape.nodes + mesh.pods.length + mesh.expected.services + mesh.expected.authorizations;
    console.log(
      `\n[${label} mesh] ${mesh.pods.length} pods on ${mesh.nodes.length} nodes, ${mesh.expected.services} services, ` +
        `${mesh.expected.authorizations} policies (${objects} objects in ${mesh.files} files)`,
    );
    const loadStart = performance.now();
    controller = await startControllerProcess({ configDir: cfgDir, dataDir });
    const loadSeconds = (performance.now() - loadStart) / 1000;
    const c = controller;
    const idle = c.memory();
    console.log(`  controller ready after ${loadSeconds.toFixed(1)} s (pid ${c.pid}, xds ${c.xds}), RSS ${mib(idle.rss)} MiB`);

    const nodes = mesh.nodes.slice(0, Math.max(1, concurrency));
    const genStart = performance.now();
    const warmPer = Math.ceil(warmup / nodes.length);
    const warmJobs = await Promise.all(nodes.map((n) => makeJobs(warmPer, mesh.podsByNode.get(n)!)));
    const per = Math.ceil(requests / nodes.length);
    const seqJobs: Job[][] = [];
    const concJobs: Job[][][] = [];
    for (let r = 0; r < reps; r++) {
      seqJobs.push(await makeJobs(requests, mesh.podsByNode.get(nodes[0]!)!));
      concJobs.push(await Promise.all(nodes.map((n, i) => makeJobs(Math.max(0, Math.min(per, requests - i * per)), mesh.podsByNode.get(n)!))));
    }
    console.log(`  pre-generated ${warmPer * nodes.length + 2 * reps * requests} distinct CSRs in ${((performance.now() - genStart) / 1000).toFixed(1)} s (not timed)`);

    for (const n of nodes) clients.push(await clientFor(c, n));
    // Warm-up: TLS handshakes for every client, JIT on both sides.
    await runMode(c, 'warm-up', clients.map((client, i) => ({ client, jobs: warmJobs[i]! })));
    // Repetitions alternate the two modes; each mode reports its median repetition.
    const seqRuns: ModeResult[] = [];
    const concRuns: ModeResult[] = [];
    for (let r = 0; r < reps; r++) {
      seqRuns.push(await runMode(c, 'sequential', [{ client: clients[0]!, jobs: seqJobs[r]! }]));
      concRuns.push(await runMode(c, 'concurrent', clients.map((client, i) => ({ client, jobs: concJobs[r]![i]! }))));
      console.log(
        `  repetition ${r + 1}/${reps}: sequential ${seqRuns[r]!.perSecond}/s, concurrent (${clients.length} in flight) ${concRuns[r]!.perSecond}/s` +
          ` (other processes meanwhile: ${seqRuns[r]!.otherProcessesCores} / ${concRuns[r]!.otherProcessesCores} cores)`,
      );
    }
    const results = [medianRun(seqRuns), medianRun(concRuns)];
    for (const r of [...seqRuns, ...concRuns]) {
      if (r.issuedPerMetrics !== r.requests) throw new Error(`${r.mode}: controller counted ${r.issuedPerMetrics} issued, expected ${r.requests}`);
    }
    const final = c.memory();
    return {
      mesh: label,
      shape,
      objects,
      controllerLoadSeconds: round(loadSeconds, 2),
      controllerRssMiB: { idle: mib(idle.rss), final: mib(final.rss), peak: mib(final.peak) },
      results,
    };
  } finally {
    for (const cl of clients) cl.close();
    await controller?.stop();
    rmSync(cfgDir, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const cpuBusyAtStart = await warnIfBusy();
  const m = { ...(await machine()), cpuBusyAtStart };
  console.log(
    `signing: CSRs through the real controller's CA (gRPC over TLS 1.3, token auth, per-node authorization); ` +
      `${reps} repetitions of ${requests} CSRs per mode (median shown) after ${warmup} warm-up; ${m.cpus} cores shared by the bench client and the controller; node ${process.version}`,
  );
  const runs: MeshRun[] = [];
  for (const [label, shape] of meshes) runs.push(await runMesh(label, shape));

  console.log();
  console.log(
    table([
      ['mesh (objects)', 'mode', 'in flight', 'CSRs', 'CSRs/s', 'all reps /s', 'vs goal 500/s', 'p50 ms', 'p99 ms', 'max ms', 'ctrl CPU ms/1000 CSRs', 'ctrl cores busy', 'client CPU ms/1000', 'other procs cores', 'ctrl RSS MiB'],
      ...runs.flatMap((run) =>
        run.results.map((r) => [
          `${run.mesh} (${run.objects})`, r.mode, r.inFlight, r.requests, r.perSecond, (r.repetitionsPerSecond ?? []).join(' '), `${r.goalRatio.toFixed(2)}x ${r.perSecond >= GOAL_PER_SECOND ? 'met' : 'MISSED'}`,
          r.latencyMs.p50, r.latencyMs.p99, r.latencyMs.max, r.controllerCpuMsPer1000, r.controllerCpuCores, r.benchClientCpuMsPer1000, r.otherProcessesCores, r.controllerRssMiB,
        ]),
      ),
    ]),
  );
  for (const run of runs) {
    console.log(
      `${run.mesh} mesh: controller loaded the config in ${run.controllerLoadSeconds} s; RSS ${run.controllerRssMiB.idle} MiB idle, ` +
        `${run.controllerRssMiB.final} MiB after the runs (peak ${run.controllerRssMiB.peak} MiB)`,
    );
  }
  const file = writeResults('signing', {
    bench: 'signing',
    at: new Date().toISOString(),
    machine: m,
    goal: { csrsPerSecond: GOAL_PER_SECOND },
    settings: { requestsPerRepetition: requests, repetitions: reps, warmup, concurrency },
    runs,
  });
  console.log(`results: ${file}`);
}

await main();
