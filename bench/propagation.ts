/**
 * Config propagation through the real controller: a policy file is edited; how long until every one of
 * 1,000 ztunnels has ACKed the push carrying the change.
 *
 *   node --expose-gc dist/bench/propagation.js [--proxies 1000] [--rounds 5] [--window 50] [--procs 1] [--stalled N]
 *                                              [--pods 10000 --services 2000 --policies 500 --namespaces 50 --nodes 100]
 *                                              [--encoding proto|json] [--streams-per-connection 1] [--cpu-prof-dir DIR]
 *
 * 1. Writes a mesh of 10,000 pods, 2,000 services and 500 AuthorizationPolicies in 50 namespaces on 100
 *    nodes into a temporary config directory (one file per policy) and starts the real `strait controller`.
 * 2. Connects 1,000 simulated ztunnels (bench/lib/controller-xds-sim.ts, in a child process): 10 per node,
 *    each with its own TLS connection and its node's token, subscribing to Workload, Service and
 *    Authorization and ACKing everything; at most --window of them in their initial sync at a time.
 *    Waits until all hold the full snapshot, cross-checked with /debug/syncz.
 * 3. Per round: rewrites ONE policy file (alternating between two rule variants) and takes, per proxy, the
 *    time from just before the write to the proxy having ACKed the response that carries the new version
 *    (recognised by a marker in the resource body). Cross-checks with the controller's own
 *    pilot_proxy_convergence_time histogram (config change seen → ACK received) and pilot_xds_pushes.
 * With --stalled N (0 included), N of the proxies (spread evenly) stop reading once their initial sync is done, and
 * before the rounds the pods of one namespace are relabelled (a ~100 KiB Workload push, more than a stalled proxy's
 * HTTP/2 window), so the stalled ones really stop taking data; they are left out of the latency figures.
 * Reported: p50/p99/max per round and overall, initial sync time, controller RSS (/proc) after the sync and
 * after the rounds. Goals: p99 < 1 s, RSS < 1 GiB. Writes bench/results/propagation.json.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_XDS_DEBOUNCE_MS } from '../src/controller/xds/xds-server.js';
import { DEFAULT_XDS_ACCEPT } from '../src/common/xds/xds-client.js';
import { TYPE_AUTHORIZATION, TYPE_SERVICE, TYPE_WORKLOAD } from '../src/common/xds/resources.js';
import { measureBreakdown } from './lib/controller-breakdown.js';
import { FULL_MESH, generateMesh, type GeneratedMesh } from './lib/controller-mesh.js';
import {
  histogramDelta,
  histogramQuantileBound,
  promHistogram,
  procCpuMs,
  promValue,
  startControllerProcess,
  systemBusyMs,
  type ControllerProcess,
  type LogLine,
  type PromHistogram,
} from './lib/controller-proc.js';
import { MiB, machine, warnIfBusy, mib, numArg, round, summarize, table, writeResults } from './lib/controller-report.js';
import type { RoundMessage, SimProxySpec, StartMessage, SyncedMessage } from './lib/controller-xds-sim.js';

const P99_GOAL_MS = 1000;
const RSS_GOAL_BYTES = 1024 * MiB;
const proxies = numArg('proxies', 1000);
const rounds = numArg('rounds', 5);
const window = numArg('window', 50);
const procs = Math.max(1, numArg('procs', 1));
const roundTimeoutMs = numArg('round-timeout-ms', 30_000);
/** undefined: no --stalled (the plain bench); a number: that many stalled proxies, and the pre-round relabel. */
const stalledCount = process.argv.includes('--stalled') ? numArg('stalled', 0) : undefined;
const shape = {
  pods: numArg('pods', FULL_MESH.pods),
  services: numArg('services', FULL_MESH.services),
  policies: numArg('policies', FULL_MESH.policies),
  namespaces: numArg('namespaces', FULL_MESH.namespaces),
  nodes: numArg('nodes', FULL_MESH.nodes),
};
/**
 * --encoding proto (default): the proxies ask for what XdsClient asks for (protobuf bodies, packed snapshots);
 * json: they send no Node.accept, as proxies before it (JSON bodies, nothing packed).
 */
const encoding = process.argv.includes('--encoding') ? process.argv[process.argv.indexOf('--encoding') + 1] : 'proto';
if (encoding !== 'proto' && encoding !== 'json') throw new Error(`--encoding must be proto or json (got ${encoding})`);
/** Proxies sharing one TLS connection (the controller allows 8 streams per connection by default). */
const streamsPerConnection = Math.max(1, numArg('streams-per-connection', 1));
/** --cpu-prof-dir DIR: the controller runs under `node --cpu-prof` and writes its profile there when it exits. */
const cpuProfDir = process.argv.includes('--cpu-prof-dir') ? process.argv[process.argv.indexOf('--cpu-prof-dir') + 1] : undefined;
const SIM = fileURLToPath(new URL('./lib/controller-xds-sim.js', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One sample of a metric with several labels (0 when absent). */
function promValueLabels(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

/** One child process of simulated proxies, with typed waits on its messages. */
class SimProcess {
  readonly child: ChildProcess;
  private readonly waiters: { type: string; pred: (m: any) => boolean; resolve: (m: any) => void }[] = [];
  private readonly backlog: any[] = [];
  failure: string | undefined;
  constructor(readonly index: number) {
    this.child = fork(SIM, ['--strait-xds-sim'], { execArgv: ['--max-old-space-size=4096'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: any) => {
      if (m.type === 'failed' && !this.failure) this.failure = m.message;
      if (m.type === 'progress') return;
      const i = this.waiters.findIndex((w) => w.type === m.type && w.pred(m));
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(m);
      else this.backlog.push(m);
    });
    this.child.on('exit', (code) => {
      if (code !== 0 && !this.failure) this.failure = `proxy process ${index} exited with ${code}`;
    });
  }
  send(m: unknown): void {
    this.child.send(m as never);
  }
  next<T>(type: string, timeoutMs: number, pred: (m: any) => boolean = () => true): Promise<T> {
    const i = this.backlog.findIndex((m) => m.type === type && pred(m));
    if (i >= 0) return Promise.resolve(this.backlog.splice(i, 1)[0] as T);
    return new Promise<T>((resolve, reject) => {
      const w = { type, pred, resolve: (m: T) => { clearTimeout(t); clearInterval(f); resolve(m); } };
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w as never), 1);
        reject(new Error(`proxy process ${this.index}: no "${type}" after ${timeoutMs} ms${this.failure ? `; ${this.failure}` : ''}`));
      }, timeoutMs);
      const f = setInterval(() => {
        if (this.failure) {
          clearTimeout(t);
          clearInterval(f);
          reject(new Error(`proxy process ${this.index}: ${this.failure}`));
        }
      }, 200);
      this.waiters.push(w as never);
    });
  }
}

interface RoundResult {
  round: number;
  variant: 'a' | 'b';
  acked: number;
  missing: number;
  latencyMs: { min: number; p50: number; p99: number; max: number; mean: number };
  /** Controller log "configuration changed" time − file write: file watch + debounce + rescan. */
  configSeenMs: number;
  /** Controller log "xDS push round": when it began (− file write) and how long it took (view recompute + writes to every stream). */
  pushRoundStartMs: number;
  pushRoundMs: number;
  controllerHistogram: { acks: number; meanMs: number; p50BucketLeMs: number; p99BucketLeMs: number };
  pushes: Record<string, number>;
  /** Cores used by processes other than this bench's during the round (should be ~0). */
  otherProcessesCores: number;
  responsesSeenByProxies: Record<string, number>;
}

/** Timestamp of a controller log line (pino isoTime `time`), in ms. */
function logTime(l: LogLine): number {
  return typeof l.time === 'number' ? l.time : Date.parse(String(l.time));
}

function shortType(t: string): string {
  return t.slice(t.lastIndexOf('/') + 1);
}

async function metricsSnapshot(c: ControllerProcess): Promise<{ hist: PromHistogram; pushes: Record<string, number> }> {
  const text = await c.get('/metrics');
  const pushes: Record<string, number> = {};
  for (const t of [TYPE_WORKLOAD, TYPE_SERVICE, TYPE_AUTHORIZATION]) pushes[shortType(t)] = promValue(text, 'pilot_xds_pushes', 'type', shortType(t));
  return { hist: promHistogram(text, 'pilot_proxy_convergence_time', 'type', 'Authorization'), pushes };
}

/** /debug/syncz: every ztunnel stream ACKed what it was sent and holds the expected number of resources. */
async function checkSyncz(c: ControllerProcess, mesh: GeneratedMesh): Promise<{ streams: number; inSync: number; generation: number }> {
  const body = JSON.parse(await c.get('/debug/syncz')) as {
    generation: number;
    proxies: { proxy: { kind: string }; types: Record<string, { versionSent: string; versionAcked: string; resourcesHeld: number; pendingNonce?: string }> }[];
  };
  const want: Record<string, number> = {
    [TYPE_WORKLOAD]: mesh.expected.workloads,
    [TYPE_SERVICE]: mesh.expected.services,
    [TYPE_AUTHORIZATION]: mesh.expected.authorizations,
  };
  let inSync = 0;
  const zt = body.proxies.filter((p) => p.proxy.kind === 'ztunnel');
  for (const p of zt) {
    const ok = Object.entries(want).every(([t, n]) => {
      const s = p.types[t];
      return s && s.versionAcked === s.versionSent && s.resourcesHeld === n && !s.pendingNonce;
    });
    if (ok) inSync++;
  }
  return { streams: zt.length, inSync, generation: body.generation };
}

/** CPU meter for everything that is not this bench (controller, proxy processes, this process). */
function otherCpuMeter(c: ControllerProcess, sims: SimProcess[]): () => number {
  const mine = () => c.cpuMs() + sims.reduce((n, s) => n + procCpuMs(s.child.pid!), 0) + (process.cpuUsage().user + process.cpuUsage().system) / 1000;
  const sys0 = systemBusyMs();
  const mine0 = mine();
  const t0 = performance.now();
  /** Cores the rest of the machine used since the meter started. */
  return () => round(Math.max(0, systemBusyMs() - sys0 - (mine() - mine0)) / (performance.now() - t0), 2);
}

async function stopSims(sims: SimProcess[]): Promise<void> {
  for (const s of sims) if (s.child.exitCode === null && s.child.connected) s.send({ type: 'exit' });
  await sleep(300);
  for (const s of sims) if (s.child.exitCode === null) s.child.kill('SIGKILL');
}

async function main(): Promise<void> {
  const cpuBusyAtStart = await warnIfBusy();
  const m = { ...(await machine()), cpuBusyAtStart };
  const cfgDir = mkdtempSync(join(tmpdir(), 'strait-bench-prop-cfg-'));
  const dataDir = mkdtempSync(join(tmpdir(), 'strait-bench-prop-data-'));
  let controller: ControllerProcess | undefined;
  const sims: SimProcess[] = [];
  try {
    const genStart = performance.now();
    const mesh = generateMesh(cfgDir, shape);
    console.log(
      `propagation: ${proxies} simulated ztunnels on ${mesh.nodes.length} nodes; mesh of ${mesh.pods.length} pods, ${mesh.expected.services} services, ` +
        `${mesh.expected.authorizations} AuthorizationPolicies in ${shape.namespaces} namespaces (${mesh.files} files, ${mib(mesh.bytes)} MiB, ` +
        `written in ${((performance.now() - genStart) / 1000).toFixed(1)} s); ${m.cpus} cores; node ${process.version}`,
    );
    const loadStart = performance.now();
    // Debug logging only adds the controller's own "xDS push round" line (durationMs: recompute + writes), once per push.
    controller = await startControllerProcess({ configDir: cfgDir, dataDir, globalArgs: ['--log-level', 'debug'], nodeArgs: cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', cpuProfDir] : [] });
    const c = controller;
    const loadSeconds = (performance.now() - loadStart) / 1000;
    const afterLoad = c.memory();
    console.log(`controller ready after ${loadSeconds.toFixed(1)} s (pid ${c.pid}), RSS ${mib(afterLoad.rss)} MiB`);

    // Proxies: 10 per node (proxy i on node i mod nodes), each with its node's token.
    const tokens = new Map(await Promise.all(mesh.nodes.map(async (n) => [n, await c.waitForNodeToken(n)] as const)));
    const specs: SimProxySpec[] = Array.from({ length: proxies }, (_, i) => {
      const node = mesh.nodes[i % mesh.nodes.length]!;
      return { id: `ztunnel~${node}~sim-${i}`, node, token: tokens.get(node)! };
    });
    const stalledSet = new Set<number>();
    for (let k = 0; k < (stalledCount ?? 0); k++) stalledSet.add(Math.floor((k * proxies) / (stalledCount ?? 1)) + 1);
    for (let p = 0; p < procs; p++) sims.push(new SimProcess(p));
    await Promise.all(sims.map((s) => s.next('hello', 30_000)));
    const perProc = Math.ceil(proxies / procs);
    const syncStart = Date.now();
    const cpuBeforeSync = c.cpuMs();
    const simCpuBeforeSync = sims.reduce((n, s) => n + procCpuMs(s.child.pid!), 0);
    const syncOthers = otherCpuMeter(c, sims);
    sims.forEach((s, p) =>
      s.send({
        type: 'start', address: c.xds, rootPem: c.rootPem, proxies: specs.slice(p * perProc, (p + 1) * perProc),
        window: Math.max(1, Math.round(window / procs)),
        ...(encoding === 'proto' ? { accept: [...DEFAULT_XDS_ACCEPT] } : {}),
        streamsPerConnection,
        stalled: [...stalledSet].filter((i) => i >= p * perProc && i < (p + 1) * perProc).map((i) => i - p * perProc),
      } satisfies StartMessage),
    );
    let rssDuringSync = 0;
    const sampler = setInterval(() => (rssDuringSync = Math.max(rssDuringSync, c.memory().rss)), 250);
    const synced = await Promise.all(sims.map((s) => s.next<SyncedMessage>('synced', Math.max(150_000, proxies * 60))));
    clearInterval(sampler);
    const syncSeconds = (Math.max(...synced.map((s) => s.doneAt)) - syncStart) / 1000;
    const syncCpuSeconds = (c.cpuMs() - cpuBeforeSync) / 1000;
    const simSyncCpuSeconds = (sims.reduce((n, s) => n + procCpuMs(s.child.pid!), 0) - simCpuBeforeSync) / 1000;
    const syncOtherCores = syncOthers();
    const counts = synced.flatMap((s) => s.counts);
    const wrong = counts.filter(([w, s, a]) => w !== mesh.expected.workloads || s !== mesh.expected.services || a !== mesh.expected.authorizations);
    if (wrong.length) throw new Error(`${wrong.length} proxies got an incomplete snapshot, e.g. ${JSON.stringify(wrong[0])} (want ${JSON.stringify(mesh.expected)})`);
    const bytesPerProxy = synced.reduce((n, s) => n + s.bytesReceived, 0) / proxies;
    const inflatedPerProxy = synced.reduce((n, s) => n + s.inflatedReceived, 0) / proxies;
    const perProxySync = summarize(synced.flatMap((s) => s.perProxyMs));
    // The controller processes the last ACKs a moment after the proxies sent them.
    let syncz = await checkSyncz(c, mesh);
    for (let i = 0; i < 50 && syncz.inSync < proxies; i++) {
      await sleep(100);
      syncz = await checkSyncz(c, mesh);
    }
    if (syncz.streams !== proxies || syncz.inSync !== proxies) {
      throw new Error(`/debug/syncz: ${syncz.inSync} of ${syncz.streams} ztunnel streams in sync (want ${proxies})`);
    }
    global.gc?.();
    await sleep(2000); // let the controller settle (GC) before reading its RSS
    const afterSync = c.memory();
    const simRssAfterSync = synced.reduce((n, s) => n + s.rss, 0);
    console.log(
      `initial sync: ${proxies} proxies (at most ${window} syncing at a time) hold ${mesh.expected.workloads} workloads, ${mesh.expected.services} services, ` +
        `${mesh.expected.authorizations} authorizations each (${encoding} encoding, ${streamsPerConnection} per TLS connection: ${mib(bytesPerProxy)} MiB per proxy on the wire` +
        `${inflatedPerProxy ? `, packed snapshots inflating to ${mib(inflatedPerProxy)} MiB` : ''}) after ${syncSeconds.toFixed(1)} s; ` +
        `per proxy p50 ${perProxySync.p50} ms, p99 ${perProxySync.p99} ms; controller CPU ${syncCpuSeconds.toFixed(1)} s, proxy process(es) CPU ${simSyncCpuSeconds.toFixed(1)} s; other processes ${syncOtherCores} cores; /debug/syncz: ${syncz.inSync}/${syncz.streams} in sync`,
    );
    console.log(`controller RSS after sync ${mib(afterSync.rss)} MiB (highest sampled during sync ${mib(rssDuringSync)} MiB, VmHWM ${mib(afterSync.peak)} MiB); proxy process(es) RSS ${mib(simRssAfterSync)} MiB`);

    let stallInfo: Record<string, number> | undefined;
    if (stalledCount !== undefined) {
      // The stalled proxies stopped reading at their sync; a Workload push larger than their window makes it real.
      mesh.relabelAllPods('pre-round', 1);
      await sleep(4000);
      const text = await c.get('/metrics');
      stallInfo = {
        stalledProxies: stalledCount,
        stallsCounted: promValue(text, 'strait_xds_stalls_total', 'kind', 'ztunnel'),
      };
      console.log(`${stalledCount} stalled proxies; after a one-namespace Workload push the controller counts ${stallInfo.stallsCounted} stalled streams; controller RSS ${mib(c.memory().rss)} MiB`);
    }

    // --- rounds ---------------------------------------------------------------------------------------------
    const results: RoundResult[] = [];
    const all: number[] = [];
    for (let r = 1; r <= rounds; r++) {
      const variant: 'a' | 'b' = r % 2 === 1 ? 'b' : 'a'; // the files start as 'a'
      const marker = `/sa/edit-${variant}`;
      sims.forEach((s) => s.send({ type: 'watch', round: r, name: mesh.editTarget.resourceName, marker }));
      await Promise.all(sims.map((s) => s.next('armed', 10_000, (x) => x.round === r)));
      const before = await metricsSnapshot(c);
      await sleep(50);
      const others = otherCpuMeter(c, sims);
      const t0 = Date.now();
      mesh.writeEditVariant(variant);
      const collected = await Promise.all(
        sims.map(async (s) => {
          const timer = setTimeout(() => s.send({ type: 'collect', round: r }), roundTimeoutMs);
          const msg = await s.next<RoundMessage>('round', roundTimeoutMs + 10_000, (x) => x.round === r);
          clearTimeout(timer);
          return msg;
        }),
      );
      const otherCores = others();
      const times = collected.flatMap((x) => x.times); // stalled proxies are not in here
      const lat = times.filter((t) => !Number.isNaN(t)).map((t) => t - t0);
      const errors = collected.flatMap((x) => x.errors);
      if (errors.length) throw new Error(`round ${r}: ${errors.length} proxy streams failed, e.g. ${errors[0]}`);
      // Wait for the controller to have counted every ACK (it reads them a moment after the proxies sent them).
      let after = await metricsSnapshot(c);
      for (let i = 0; i < 50 && after.hist.count - before.hist.count < lat.length; i++) {
        await sleep(100);
        after = await metricsSnapshot(c);
      }
      const h = histogramDelta(before.hist, after.hist);
      const seenLine = [...c.lines].reverse().find((l) => l.msg === 'configuration changed' && logTime(l) >= t0);
      const pushLine = c.lines.find((l) => l.msg === 'xDS push round' && logTime(l) >= t0 && Number(l.responses) > 0);
      const responsesSeen: Record<string, number> = {};
      for (const x of collected) for (const [t, n] of Object.entries(x.responsesByType)) responsesSeen[shortType(t)] = (responsesSeen[shortType(t)] ?? 0) + n;
      const s = summarize(lat);
      all.push(...lat);
      const res: RoundResult = {
        round: r,
        variant,
        acked: lat.length,
        missing: times.length - lat.length,
        latencyMs: { min: lat.length ? Math.min(...lat) : NaN, p50: s.p50, p99: s.p99, max: s.max, mean: round(s.mean, 1) },
        configSeenMs: seenLine ? logTime(seenLine) - t0 : NaN,
        pushRoundStartMs: pushLine ? logTime(pushLine) - Number(pushLine.durationMs) - t0 : NaN,
        pushRoundMs: pushLine ? Number(pushLine.durationMs) : NaN,
        controllerHistogram: {
          acks: h.count,
          meanMs: h.count ? round((h.sum / h.count) * 1000, 1) : NaN,
          p50BucketLeMs: histogramQuantileBound(h, 0.5) * 1000,
          p99BucketLeMs: histogramQuantileBound(h, 0.99) * 1000,
        },
        pushes: Object.fromEntries(Object.entries(after.pushes).map(([t, n]) => [t, n - (before.pushes[t] ?? 0)])),
        responsesSeenByProxies: responsesSeen,
        otherProcessesCores: otherCores,
      };
      results.push(res);
      console.log(
        `round ${r}: ${res.acked}/${proxies - (stalledCount ?? 0)} ACKed; p50 ${s.p50} ms, p99 ${s.p99} ms, max ${s.max} ms; ` +
          `controller: change seen after ${res.configSeenMs} ms, push round at ${res.pushRoundStartMs} ms took ${res.pushRoundMs} ms, histogram ${h.count} ACKs mean ${res.controllerHistogram.meanMs} ms; pushes ${JSON.stringify(res.pushes)}`,
      );
      if (res.missing) console.log(`  ${res.missing} proxies never saw the change within ${roundTimeoutMs} ms`);
      await sleep(1000);
    }

    global.gc?.();
    await sleep(1000);
    const afterRounds = c.memory();
    if (stallInfo) {
      const text = await c.get('/metrics');
      stallInfo.stallsCounted = promValue(text, 'strait_xds_stalls_total', 'kind', 'ztunnel');
      stallInfo.disconnectedUnread = promValueLabels(text, 'strait_xds_stall_disconnects_total', { kind: 'ztunnel', why: 'unread' });
      stallInfo.disconnectedUnanswered = promValueLabels(text, 'strait_xds_stall_disconnects_total', { kind: 'ztunnel', why: 'unanswered' });
      console.log(`stalled proxies after the rounds: ${JSON.stringify(stallInfo)}`);
    }
    const simRss = (await Promise.all(sims.map(async (s) => { s.send({ type: 'rss' }); return (await s.next<{ rss: number }>('rss', 10_000)).rss; }))).reduce((a, b) => a + b, 0);
    const overall = summarize(all);
    const missing = results.reduce((n, r) => n + r.missing, 0);
    const rssWorst = Math.max(afterSync.rss, afterRounds.rss);

    // Where the time goes: the controller's own parse/store/view code on the same files, in this process,
    // with the controller and the proxies stopped so nothing else competes for the CPU.
    await stopSims(sims);
    await c.stop();
    const bd = measureBreakdown(mesh);
    const med = (f: (x: RoundResult) => number) => summarize(results.map(f).filter((x) => !Number.isNaN(x))).p50;
    const timeline = {
      seen: med((x) => x.configSeenMs),
      pushStart: med((x) => x.pushRoundStartMs),
      pushRound: med((x) => x.pushRoundMs),
      pushEnd: med((x) => x.pushRoundStartMs + x.pushRoundMs),
      first: med((x) => x.latencyMs.min),
      last: med((x) => x.latencyMs.max),
    };

    console.log();
    console.log(
      table([
        ['round', 'edit', 'proxies ACKed', 'p50 ms', 'p99 ms', 'max ms', 'ctrl saw change @ms', 'push round @ms', 'push round ms', 'ctrl hist ACKs', 'ctrl hist mean ms', 'ctrl hist p99 <= ms', 'pushes W/S/A', 'other procs cores'],
        ...results.map((x) => [
          x.round, `-> ${x.variant}`, `${x.acked}/${proxies}`, x.latencyMs.p50, x.latencyMs.p99, x.latencyMs.max, x.configSeenMs, x.pushRoundStartMs, x.pushRoundMs,
          x.controllerHistogram.acks, x.controllerHistogram.meanMs, x.controllerHistogram.p99BucketLeMs,
          `${x.pushes['Workload']}/${x.pushes['Service']}/${x.pushes['Authorization']}`, x.otherProcessesCores,
        ]),
        ['all', '', `${all.length}/${(proxies - (stalledCount ?? 0)) * rounds}`, overall.p50, overall.p99, overall.max, '', '', '', '', '', '', '', ''],
      ]),
    );
    console.log();
    console.log(
      table([
        ['figure', 'value', 'goal', 'ratio to goal'],
        ['p99 file write -> ACK, all rounds', `${overall.p99} ms`, `< ${P99_GOAL_MS} ms`, `${round(overall.p99 / P99_GOAL_MS, 2)} ${overall.p99 < P99_GOAL_MS && missing === 0 ? 'met' : 'MISSED'}`],
        ['max file write -> ACK, all rounds', `${overall.max} ms`, '', ''],
        ['controller RSS after sync', `${mib(afterSync.rss)} MiB`, '< 1024 MiB', `${round(afterSync.rss / RSS_GOAL_BYTES, 2)} ${afterSync.rss < RSS_GOAL_BYTES ? 'met' : 'MISSED'}`],
        ['controller RSS after rounds', `${mib(afterRounds.rss)} MiB`, '< 1024 MiB', `${round(afterRounds.rss / RSS_GOAL_BYTES, 2)} ${afterRounds.rss < RSS_GOAL_BYTES ? 'met' : 'MISSED'}`],
        ['controller peak RSS (VmHWM)', `${mib(afterRounds.peak)} MiB`, '', `${round(afterRounds.peak / RSS_GOAL_BYTES, 2)}`],
        [`initial sync, ${proxies} proxies`, `${syncSeconds.toFixed(1)} s`, '', ''],
      ]),
    );

    console.log();
    console.log('where the time goes (ms after the file write, median over the rounds; from the controller\'s log lines and the proxies\' clocks):');
    console.log(
      table([
        ['step', 'at ms', 'takes ms'],
        ['controller logs "configuration changed" (fs.watch, 50 ms file debounce, rescan of the directory, store update)', timeline.seen, timeline.seen],
        [`xDS push round begins (push debounce ${DEFAULT_XDS_DEBOUNCE_MS} ms after the change)`, timeline.pushStart, timeline.pushStart - timeline.seen],
        [`push round ends (view recompute + ${proxies} stream writes)`, timeline.pushEnd, timeline.pushRound],
        ['first proxy has ACKed', timeline.first, timeline.first - timeline.pushEnd],
        [`last proxy has ACKed (fan-out to ${proxies})`, timeline.last, timeline.last - timeline.first],
      ]),
    );
    console.log(
      `in-process, same files, controller and proxies stopped: one policy edit costs a view recompute of ${bd.viewRecomputeMs.p50} ms ` +
        `(MeshViewSource.refresh, as the push round runs it); computeViews from scratch, as after a pod or service change, timed separately: ${bd.computeViewsMs.p50} ms; store update ${bd.storeUpdateMs} ms; ` +
        `full parse of all ${mesh.files} files ${bd.parseAllMs} ms; first computation of every view ${bd.firstViewsMs} ms`,
    );

    const file = writeResults(stalledCount === undefined ? 'propagation' : `propagation-stalled-${stalledCount}`, {
      bench: 'propagation',
      at: new Date().toISOString(),
      machine: m,
      goals: { p99Ms: P99_GOAL_MS, rssBytes: RSS_GOAL_BYTES },
      settings: { proxies, rounds, window, procs, nodes: mesh.nodes.length, stalled: stalledCount ?? null, encoding, streamsPerConnection },
      stalled: stallInfo ?? null,
      mesh: { ...mesh.shape, files: mesh.files, bytes: mesh.bytes, expected: mesh.expected, editTarget: mesh.editTarget.resourceName },
      controller: {
        loadSeconds: round(loadSeconds, 2),
        rssMiB: { afterLoad: mib(afterLoad.rss), maxSampledDuringSync: mib(rssDuringSync), afterSync: mib(afterSync.rss), afterRounds: mib(afterRounds.rss), peak: mib(afterRounds.peak) },
      },
      initialSync: {
        seconds: round(syncSeconds, 2),
        controllerCpuSeconds: round(syncCpuSeconds, 1),
        proxyProcessesCpuSeconds: round(simSyncCpuSeconds, 1),
        otherProcessesCores: syncOtherCores,
        bytesPerProxy: Math.round(bytesPerProxy),
        inflatedBytesPerProxy: Math.round(inflatedPerProxy),
        perProxyMs: perProxySync,
        syncz,
      },
      rounds: results,
      overall: { ...overall, mean: round(overall.mean, 1), missing },
      goalRatios: { p99: round(overall.p99 / P99_GOAL_MS, 3), rss: round(rssWorst / RSS_GOAL_BYTES, 3) },
      met: { p99: overall.p99 < P99_GOAL_MS && missing === 0, rss: rssWorst < RSS_GOAL_BYTES },
      proxyProcessesRssMiB: mib(simRss),
      timelineMsMedian: timeline,
      inProcess: bd,
    });
    console.log(`results: ${file}`);
  } finally {
    await stopSims(sims);
    await controller?.stop();
    rmSync(cfgDir, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
