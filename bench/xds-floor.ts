/**
 * The transport's floor under bench/propagation.ts's initial sync: the SAME response bytes the controller sends a
 * ztunnel of the 10,000-pod mesh (computed here in-process with the controller's own classes and encoders), served
 * by a bare grpc-js server over TLS 1.3 (bench/lib/xds-floor-server.ts: no XdsServer, no diffing, no slots) to the
 * same simulated proxies (bench/lib/controller-xds-sim.ts), N of them, at most --window syncing at a time.
 *
 *   node dist/bench/xds-floor.js [--proxies 1000] [--window 50] [--encoding proto|json] [--streams-per-connection 1]
 *
 * Reports the sync time, the bare server's CPU and the proxies' CPU: what gRPC + HTTP/2 + TLS in Node cost for these
 * bytes, to put beside the controller's figures. Not a test: it prints numbers.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseManifests } from '../src/common/model/parse.js';
import type { LoadedObject } from '../src/common/model/types.js';
import {
  decodePackedResources,
  encodeDeltaResponse,
  encodedSnapshot,
  loadXdsProto,
  streamEncoding,
  JSON_ENCODING,
  type WireDeltaResponse,
} from '../src/common/xds/xds-proto.js';
import { decodeBody } from '../src/common/xds/body-codec.js';
import { DEFAULT_XDS_ACCEPT } from '../src/common/xds/xds-client.js';
import { ConfigStore } from '../src/controller/store.js';
import { MeshViewSource } from '../src/controller/view-source.js';
import { FULL_MESH, generateMesh } from './lib/controller-mesh.js';
import { procCpuMs } from './lib/controller-proc.js';
import { mib, numArg, warnIfBusy } from './lib/controller-report.js';
import { SIM_TYPES, type StartMessage, type SyncedMessage } from './lib/controller-xds-sim.js';

const proxies = numArg('proxies', 1000);
const window = numArg('window', 50);
const streamsPerConnection = numArg('streams-per-connection', 1);
const encoding = process.argv.includes('--encoding') ? process.argv[process.argv.indexOf('--encoding') + 1] : 'proto';
const SIM = fileURLToPath(new URL('./lib/controller-xds-sim.js', import.meta.url));
const SERVER = fileURLToPath(new URL('./lib/xds-floor-server.js', import.meta.url));

function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...yamlFiles(p));
    else if (/\.ya?ml$/.test(e)) out.push(p);
  }
  return out.sort();
}

function next<T>(child: ReturnType<typeof fork>, type: string, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${type} within ${timeoutMs} ms`)), timeoutMs);
    const on = (m: { type: string }) => {
      if (m.type === 'failed') reject(new Error(JSON.stringify(m)));
      if (m.type !== type) return;
      clearTimeout(t);
      child.off('message', on);
      resolve(m as T);
    };
    child.on('message', on);
  });
}

async function main(): Promise<void> {
  const busy = await warnIfBusy();
  const dir = mkdtempSync(join(tmpdir(), 'strait-bench-floor-'));
  try {
    const mesh = generateMesh(join(dir, 'mesh'), FULL_MESH);
    const objects: LoadedObject[] = yamlFiles(mesh.dir).flatMap((f) => parseManifests(readFileSync(f, 'utf8'), relative(mesh.dir, f)).objects);
    const store = new ConfigStore();
    const views = new MeshViewSource(store, { trustDomain: 'cluster.local', rootNamespace: 'istio-system' });
    store.replaceSource('bench', { objects, problems: [] });
    const enc = encoding === 'json' ? JSON_ENCODING : streamEncoding(DEFAULT_XDS_ACCEPT);
    const responses: Record<string, string> = {};
    let total = 0;
    for (const t of SIM_TYPES) {
      const snapshot = views.resources('ztunnel', t);
      const body = encodedSnapshot(snapshot, t, enc);
      const file = join(dir, `${t.slice(t.lastIndexOf('/') + 1)}.bin`);
      const bytes = encodeDeltaResponse({ systemVersionInfo: '1', typeUrl: t, resources: [body], removed: [], nonce: 'n1' });
      writeFileSync(file, bytes);
      responses[t] = file;
      total += bytes.length;
    }
    // What one real proxy spends turning these responses into objects (XdsClient's decode path), each encoding.
    const deserialize = loadXdsProto().service['DeltaAggregatedResources']!.responseDeserialize;
    const decodeMs = (e: typeof enc): number => {
      const msgs = SIM_TYPES.map((t) => encodeDeltaResponse({ systemVersionInfo: '1', typeUrl: t, resources: [encodedSnapshot(views.resources('ztunnel', t), t, e)], removed: [], nonce: 'n' }));
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        const a = performance.now();
        for (const m of msgs) {
          const r = deserialize(m) as WireDeltaResponse;
          const res = r.packed_resources?.length ? decodePackedResources(r.packed_resources, 64 << 20, 1e6).resources : r.resources;
          for (const x of res) (x.body.length ? JSON.parse(x.body.toString('utf8')) : decodeBody(r.type_url, x.proto_body!));
        }
        times.push(performance.now() - a);
      }
      return Math.round(times.sort((x, y) => x - y)[2]!);
    };
    const wireBytes = (e: typeof enc) => mib(SIM_TYPES.reduce((n, t) => n + encodedSnapshot(views.resources('ztunnel', t), t, e).length, 0));
    const encs: [string, typeof enc][] = [['JSON', JSON_ENCODING], ['JSON packed', streamEncoding(['packed-deflate'])], ['protobuf', streamEncoding(['proto-bodies'])], ['protobuf packed', streamEncoding(['proto-bodies', 'packed-deflate'])]];
    console.log(`one proxy decoding the whole snapshot into objects (gRPC message, inflate, bodies; median of 5): ${encs.map(([n, e]) => `${n} ${decodeMs(e)} ms (${wireBytes(e)} MiB)`).join(', ')}`);
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    const ossl = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
      '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8' });
    if (ossl.status !== 0) throw new Error(`openssl: ${ossl.stderr}`);

    const server = fork(SERVER, ['--strait-xds-floor'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    await next(server, 'hello', 10_000);
    server.send({ type: 'start', cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8'), responses });
    const { port } = await next<{ port: number }>(server, 'listening', 10_000);
    const sim = fork(SIM, ['--strait-xds-sim'], { execArgv: ['--max-old-space-size=4096'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    await next(sim, 'hello', 10_000);
    const serverCpu0 = procCpuMs(server.pid!);
    const simCpu0 = procCpuMs(sim.pid!);
    const t0 = Date.now();
    sim.send({
      type: 'start', address: `127.0.0.1:${port}`, rootPem: readFileSync(cert, 'utf8'), window, streamsPerConnection,
      proxies: Array.from({ length: proxies }, (_, i) => ({ id: `ztunnel~floor~${i}`, node: 'floor', token: 'none' })),
      ...(encoding === 'json' ? {} : { accept: [...DEFAULT_XDS_ACCEPT] }),
    } satisfies StartMessage);
    const synced = await next<SyncedMessage>(sim, 'synced', Math.max(150_000, proxies * 60));
    const seconds = (synced.doneAt - t0) / 1000;
    const counts = synced.counts[0]!;
    if (synced.counts.some((c) => c.join() !== counts.join())) throw new Error('proxies got different resource counts');
    console.log(
      `xds-floor: ${proxies} proxies (${encoding}, at most ${window} syncing, ${streamsPerConnection} per TLS connection), ` +
        `${mib(total)} MiB of responses each (${counts.join('/')} workloads/services/authorizations): in sync after ${seconds.toFixed(1)} s; ` +
        `bare grpc-js server CPU ${((procCpuMs(server.pid!) - serverCpu0) / 1000).toFixed(1)} s, proxy process CPU ${((procCpuMs(sim.pid!) - simCpu0) / 1000).toFixed(1)} s; ` +
        `machine busy at start ${busy} cores`,
    );
    sim.send({ type: 'exit' });
    server.send({ type: 'exit' });
    await new Promise((r) => setTimeout(r, 300));
    sim.kill('SIGKILL');
    server.kill('SIGKILL');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
