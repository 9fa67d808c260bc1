/**
 * xDS fan-out: N proxies on one view of R resources; one resource changes; how long until every proxy ACKed.
 *
 *   node dist/bench/xds-fanout.js [--clients 1000] [--resources 12000] [--rounds 5] [--debounce-ms 100] [--raw]
 *
 * The controller side (XdsServer + an in-memory ViewSource) runs in this process; the proxies run in one
 * child process, each an XdsClient (or, with --raw, a bare ADS stream that only ACKs) on its own HTTP/2
 * connection. Latency is measured by the server: from the change's `changedAt` to each stream's ACK, as
 * reported through XdsMetrics.acked (so it includes the debounce). Not a test: it prints numbers.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import {
  XdsClient,
  loadXdsProto,
  type ResourceEntry,
  type ViewSource,
  type WireDeltaResponse,
  type XdsMetrics,
} from '../src/common/xds/index.js';
import { DEFAULT_XDS_MAX_CONCURRENT_INITIAL_SYNCS, XdsServer } from '../src/controller/xds/xds-server.js';
import type { WorkloadResource } from '../src/common/xds/resources.js';

const TYPE = 'type.strait.dev/Workload';
const VIEW = 'ztunnel';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const mb = (n: number) => `${Math.round(n / 1024 / 1024)} MB`;

// --- proxies (child process) ----------------------------------------------------------------------------

async function runProxies(address: string, count: number, raw: boolean): Promise<void> {
  const send = (m: unknown) => process.send!(m);
  const closers: (() => void)[] = [];
  const channelOptions = { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': -1 };
  const openOne = (i: number): Promise<void> =>
    new Promise((resolve) => {
      if (!raw) {
        const client = new XdsClient({
          address,
          credentials: grpc.credentials.createInsecure(),
          node: { id: `ztunnel~node-${i}~bench`, kind: 'ztunnel', nodeName: `node-${i}` },
          subscriptions: [{ typeUrl: TYPE, apply: () => {} }],
          channelOptions,
        });
        client.once('update', () => resolve());
        client.start();
        closers.push(() => client.close());
        return;
      }
      const { Client } = loadXdsProto();
      const c = new Client(address, grpc.credentials.createInsecure(), channelOptions);
      const call = (c as unknown as Record<string, () => grpc.ClientDuplexStream<object, WireDeltaResponse>>)[
        'DeltaAggregatedResources'
      ]!.call(c);
      let first = true;
      call.on('data', (r: WireDeltaResponse) => {
        call.write({ type_url: r.type_url, response_nonce: r.nonce });
        if (first) {
          first = false;
          resolve();
        }
      });
      call.on('error', () => {});
      call.write({
        node: { id: `ztunnel~node-${i}~bench`, kind: 'ztunnel', node_name: `node-${i}` },
        type_url: TYPE,
      });
      closers.push(() => {
        call.cancel();
        c.close();
      });
    });

  const BATCH = 50;
  for (let i = 0; i < count; i += BATCH) {
    const batch: Promise<void>[] = [];
    for (let j = i; j < Math.min(count, i + BATCH); j++) batch.push(openOne(j));
    await Promise.all(batch);
    send({ type: 'progress', connected: Math.min(count, i + BATCH) });
  }
  send({ type: 'ready', rss: process.memoryUsage().rss, heap: process.memoryUsage().heapUsed });
  process.on('message', (m: { type: string }) => {
    if (m.type === 'rss') send({ type: 'rss', rss: process.memoryUsage().rss });
    if (m.type === 'exit') {
      for (const c of closers) c();
      process.exit(0);
    }
  });
}

// --- controller (this process) --------------------------------------------------------------------------

class BenchSource implements ViewSource {
  gen = 1;
  set: Map<string, ResourceEntry>;
  private listeners = new Set<(t: number) => void>();
  constructor(resources: number) {
    this.set = new Map();
    for (let i = 0; i < resources; i++) {
      const name = `ns-${i % 200}/pod-${i}`;
      this.set.set(name, { name, version: 'v1', body: workload(i, 1) });
    }
  }
  viewKeyFor(): string {
    return VIEW;
  }
  typeUrlsFor(): readonly string[] {
    return [TYPE];
  }
  resources(): Map<string, ResourceEntry> {
    return this.set;
  }
  generation(): number {
    return this.gen;
  }
  onChange(l: (t: number) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  /** Copy-on-write change of one resource, reusing every other entry (as the real source does). */
  change(i: number): number {
    this.gen++;
    const name = `ns-${i % 200}/pod-${i}`;
    const next = new Map(this.set);
    next.set(name, { name, version: `v${this.gen}`, body: workload(i, this.gen) });
    this.set = next;
    const now = Date.now();
    for (const l of this.listeners) l(now);
    return now;
  }
}

/** A WorkloadResource (every required field, so it goes as protobuf to proxies that ask for it). */
function workload(i: number, gen: number): WorkloadResource {
  const ns = `ns-${i % 200}`;
  return {
    uid: `uid-${i}-${gen}`,
    name: `pod-${i}`,
    namespace: ns,
    addresses: [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`],
    node: `node-${i % 1000}`,
    serviceAccount: 'default',
    identity: `spiffe://cluster.local/ns/${ns}/sa/default`,
    labels: { app: `app-${i % 500}`, version: 'v1' },
    protocol: 'HBONE',
    healthy: true,
    canonicalName: `app-${i % 500}`,
    canonicalRevision: 'v1',
    namedPorts: {},
    services: [],
  };
}

async function runController(): Promise<void> {
  const clients = arg('clients', 1000);
  const resources = arg('resources', 12_000);
  const rounds = arg('rounds', 5);
  const debounceMs = arg('debounce-ms', 100);
  const raw = process.argv.includes('--raw');

  const source = new BenchSource(resources);
  let acks: number[] = [];
  const metrics: XdsMetrics = {
    proxyConnected() {},
    proxyDisconnected() {},
    pushed() {},
    acked: (_t, latencyMs) => acks.push(latencyMs),
    nacked() {},
  };
  const pushRounds: { durationMs: number; responses: number }[] = [];
  const logSink = new Writable({
    write(chunk, _enc, cb) {
      const line = JSON.parse(String(chunk)) as { msg?: string; durationMs?: number; responses?: number };
      if (line.msg === 'xDS push round') pushRounds.push({ durationMs: line.durationMs!, responses: line.responses! });
      cb();
    },
  });
  // Every simulated proxy is the one anonymous credential: give it all initial-sync slots, as distinct nodes would have.
  const xds = new XdsServer({
    source, metrics, debounceMs, logger: pino({ level: 'debug' }, logSink),
    limits: { maxInitialSyncsPerCredential: DEFAULT_XDS_MAX_CONCURRENT_INITIAL_SYNCS },
  });
  const server = new grpc.Server();
  xds.addTo(server);
  const port = await new Promise<number>((res, rej) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
  );

  console.log(
    `xds-fanout: ${clients} ${raw ? 'raw ADS streams' : 'XdsClients'}, ${resources} resources/view, debounce ${debounceMs} ms, node ${process.version}`,
  );
  const setupStart = Date.now();
  const child = fork(fileURLToPath(import.meta.url), ['--child', `127.0.0.1:${port}`, String(clients), raw ? 'raw' : 'xds'], {
    execArgv: ['--max-old-space-size=8192'],
  });
  const ready = await new Promise<{ rss: number }>((resolve, reject) => {
    child.on('message', (m: { type: string; connected?: number; rss?: number }) => {
      if (m.type === 'progress' && m.connected! % 250 === 0) process.stdout.write(`  connected ${m.connected}\n`);
      if (m.type === 'ready') resolve(m as { rss: number });
    });
    child.on('exit', (code) => reject(new Error(`proxy process exited with ${code}`)));
  });
  const gen = String(source.generation());
  while (!xds.status().every((s) => s.types[TYPE]?.versionAcked === gen) || xds.status().length < clients) {
    await new Promise((r) => setTimeout(r, 50));
  }
  console.log(
    `initial sync of ${clients} proxies (batches of 50): ${((Date.now() - setupStart) / 1000).toFixed(1)} s; ` +
      `controller RSS ${mb(process.memoryUsage().rss)} (heap ${mb(process.memoryUsage().heapUsed)}), proxies process RSS ${mb(ready.rss)}`,
  );

  global.gc?.();
  for (let r = 1; r <= rounds; r++) {
    acks = [];
    pushRounds.length = 0;
    const t0 = source.change((r * 7919) % resources);
    while (acks.length < clients) {
      if (Date.now() - t0 > 30_000) throw new Error(`round ${r}: only ${acks.length} ACKs after 30 s`);
      await new Promise((res) => setImmediate(res));
    }
    const all = Date.now() - t0;
    const sorted = [...acks].sort((a, b) => a - b);
    const push = pushRounds[0];
    console.log(
      `round ${r}: 1 of ${resources} changed -> ${clients} ACKs: p50 ${percentile(sorted, 50)} ms, p99 ${percentile(sorted, 99)} ms, ` +
        `max ${sorted.at(-1)} ms, all ACKed after ${all} ms (incl. ${debounceMs} ms debounce); ` +
        `push round (diff + ${push?.responses} writes) ${push?.durationMs} ms`,
    );
    await new Promise((res) => setTimeout(res, 300));
  }
  child.send({ type: 'rss' });
  const childRss = await new Promise<number>((resolve) =>
    child.on('message', (m: { type: string; rss?: number }) => m.type === 'rss' && resolve(m.rss!)),
  );
  console.log(
    `controller RSS ${mb(process.memoryUsage().rss)} (heap ${mb(process.memoryUsage().heapUsed)}); proxies process RSS ${mb(childRss)}`,
  );
  child.send({ type: 'exit' });
  xds.close();
  server.forceShutdown();
}

if (process.argv[2] === '--child') {
  await runProxies(process.argv[3]!, Number(process.argv[4]), process.argv[5] === 'raw');
} else {
  await runController();
}
