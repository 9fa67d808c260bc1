/**
 * Bench helper (child process): simulated ztunnel proxies for bench/propagation.ts.
 *
 * Each proxy is a bare delta-ADS stream on its own gRPC channel (own TLS connection to the controller, or one per
 * StartMessage.streamsPerConnection proxies),
 * authenticated as the node it claims (`authorization: Bearer <node token>`, `x-strait-node`), subscribing
 * (wildcard) to Workload, Service and Authorization and ACKing every response at once. Responses are not
 * decoded into objects: a hand-written protobuf scanner reads the envelope (type_url, nonce, version),
 * counts resources and removals, and checks whether the response carries one watched resource name whose
 * JSON body contains a marker string. So 1,000 proxies receiving a multi-megabyte snapshot each cost
 * transient buffers only, never 1,000 copies of 12,500 parsed objects. A packed snapshot (proxies that send
 * StartMessage.accept) is inflated and scanned once per distinct content: the others are compared byte for byte
 * with it (what one real proxy spends decoding it is measured by bench/xds-floor.ts).
 *
 * IPC protocol (parent → child):
 *   { type: 'start', address, rootPem, proxies: [{ id, node, token }], window }
 *   { type: 'watch', round, name, marker }   → { type: 'armed', round }
 *   { type: 'collect', round }                → { type: 'round', round, times, ... } (sent on its own when all hit)
 *   { type: 'rss' }                           → { type: 'rss', rss }
 *   { type: 'exit' }
 * child → parent: { type: 'progress', synced }, { type: 'synced', ... }, { type: 'failed', message }
 */
import { inflateRawSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { TYPE_AUTHORIZATION, TYPE_SERVICE, TYPE_WORKLOAD } from '../../src/common/xds/resources.js';
import { XDS_METHOD_NAME, XDS_SERVICE_NAME, loadXdsProto, type WireDeltaRequest } from '../../src/common/xds/index.js';

export const SIM_TYPES = [TYPE_WORKLOAD, TYPE_SERVICE, TYPE_AUTHORIZATION] as const;

export interface SimProxySpec {
  id: string;
  node: string;
  token: string;
}

export interface StartMessage {
  type: 'start';
  address: string;
  rootPem: string;
  proxies: SimProxySpec[];
  /** At most this many proxies in their initial sync at a time (0: all at once). */
  window: number;
  /** Indices (into `proxies`) of proxies that stop reading once their initial sync is done: never ACK, never drain. */
  stalled?: number[];
  /** Node.accept of every proxy (undefined: none sent, as proxies before the field: JSON bodies, nothing packed). */
  accept?: string[];
  /** Proxies sharing one TLS connection (1: one each, as separate ztunnels have; more: for runs of 10,000). */
  streamsPerConnection?: number;
}

export interface SyncedMessage {
  type: 'synced';
  /** ms timestamps (Date.now) of the first connect and of the last proxy being in sync. */
  startedAt: number;
  doneAt: number;
  /** Per proxy: ms from opening its stream to having ACKed the first response of every type. */
  perProxyMs: number[];
  /** Resources in the first response of each type, per proxy (as [workloads, services, authorizations]). */
  counts: [number, number, number][];
  bytesReceived: number;
  /** Bytes the packed snapshots inflated to (0: nothing packed). */
  inflatedReceived: number;
  /** Distinct packed snapshots inflated and scanned (the others were byte-identical to one of them). */
  packedInflated: number;
  rss: number;
}

export interface RoundMessage {
  type: 'round';
  round: number;
  /** Per proxy that still reads: Date.now() right after it ACKed the response carrying the watched change (NaN: not seen). */
  times: number[];
  /** Responses of each type received since the watch was armed (all proxies). */
  responsesByType: Record<string, number>;
  errors: string[];
}

// --- minimal protobuf scanning of DeltaDiscoveryResponse --------------------------------------------------

interface Watch {
  name: Buffer;
  marker: Buffer;
}

/** What the proxies look for in responses (set per round by the parent). */
let watch: Watch | undefined;

interface Scanned {
  typeUrl: string;
  nonce: string;
  version: string;
  resources: number;
  removed: number;
  /** The response carries the watched name with a body containing the marker. */
  hit: boolean;
  bytes: number;
  /** Bytes of packed_resources once inflated (0: none packed). */
  inflatedBytes: number;
}

function readVarint(buf: Buffer, pos: { o: number }): number {
  let result = 0;
  let shift = 1;
  for (;;) {
    if (pos.o >= buf.length) throw new Error('truncated varint');
    const b = buf[pos.o++]!;
    result += (b & 0x7f) * shift;
    if (b < 0x80) return result;
    shift *= 128;
  }
}

function skipField(buf: Buffer, wireType: number, pos: { o: number }): void {
  switch (wireType) {
    case 0: readVarint(buf, pos); return;
    case 1: pos.o += 8; return;
    case 2: { const len = readVarint(buf, pos); pos.o += len; return; }
    case 5: pos.o += 4; return;
    default: throw new Error(`unsupported wire type ${wireType}`);
  }
}

/** Resource{1 name, 2 version, 3 body (JSON), 4 proto_body}: is it the watched name, with the marker in its body? */
function resourceHits(buf: Buffer, start: number, end: number, w: Watch): boolean {
  const pos = { o: start };
  let nameOk = false;
  let bodyStart = -1;
  let bodyEnd = -1;
  while (pos.o < end) {
    const tag = readVarint(buf, pos);
    const field = tag >>> 3;
    const wt = tag & 7;
    if (wt !== 2) { skipField(buf, wt, pos); continue; }
    const len = readVarint(buf, pos);
    if (field === 1) nameOk = len === w.name.length && buf.compare(w.name, 0, len, pos.o, pos.o + len) === 0;
    else if ((field === 3 || field === 4) && len > 0) { bodyStart = pos.o; bodyEnd = pos.o + len; }
    pos.o += len;
  }
  return nameOk && bodyStart >= 0 && buf.subarray(bodyStart, bodyEnd).indexOf(w.marker) >= 0;
}

/** Packed snapshots already inflated and scanned (newest first), and how many were. */
const packedSeen: { bytes: Buffer; watch: Watch | undefined; resources: number; hit: boolean; inflatedBytes: number }[] = [];
let packedInflated = 0;

/** Counts the Resource fields (3) of an inflated packed_resources, checking each for the watch like scanDeltaResponse. */
function scanPacked(plain: Buffer, out: Scanned, w: Watch | undefined): void {
  const pos = { o: 0 };
  while (pos.o < plain.length) {
    const tag = readVarint(plain, pos);
    if (tag !== 0x1a) { skipField(plain, tag & 7, pos); continue; }
    const len = readVarint(plain, pos);
    out.resources++;
    if (w && !out.hit && resourceHits(plain, pos.o, pos.o + len, w)) out.hit = true;
    pos.o += len;
  }
}

export function scanDeltaResponse(buf: Buffer): Scanned {
  const out: Scanned = { typeUrl: '', nonce: '', version: '', resources: 0, removed: 0, hit: false, bytes: buf.length, inflatedBytes: 0 };
  const w = watch;
  const pos = { o: 0 };
  while (pos.o < buf.length) {
    const tag = readVarint(buf, pos);
    const field = tag >>> 3;
    const wt = tag & 7;
    if (wt !== 2) { skipField(buf, wt, pos); continue; }
    const len = readVarint(buf, pos);
    const start = pos.o;
    pos.o += len;
    switch (field) {
      case 1: out.version = buf.toString('utf8', start, start + len); break;
      case 2: out.typeUrl = buf.toString('utf8', start, start + len); break;
      case 3:
        out.resources++;
        if (w && !out.hit && resourceHits(buf, start, start + len, w)) out.hit = true;
        break;
      case 4: out.removed++; break;
      case 5: out.nonce = buf.toString('utf8', start, start + len); break;
      case 6: {
        // A packed snapshot: inflated and its resources counted (and watched for), unless it is byte for byte one
        // already inflated under the same watch (the controller sends one shared snapshot to every proxy).
        const packed = buf.subarray(start, start + len);
        let known = packedSeen.find((k) => k.watch === w && k.bytes.equals(packed));
        if (!known) {
          const plain = inflateRawSync(packed);
          const scanned: Scanned = { ...out, resources: 0, hit: false };
          scanPacked(plain, scanned, w);
          known = { bytes: Buffer.from(packed), watch: w, resources: scanned.resources, hit: scanned.hit, inflatedBytes: plain.length };
          packedSeen.unshift(known);
          packedSeen.length = Math.min(packedSeen.length, 8);
          packedInflated++;
        }
        out.resources += known.resources;
        out.hit ||= known.hit;
        out.inflatedBytes += known.inflatedBytes;
        break;
      }
    }
  }
  return out;
}

// --- the proxies -------------------------------------------------------------------------------------------

class SimProxy {
  call: grpc.ClientDuplexStream<Partial<WireDeltaRequest>, Scanned> | undefined;
  client: grpc.Client | undefined;
  openedAt = 0;
  syncedAt = 0;
  readonly firstCounts = new Map<string, number>();
  hitAt = NaN;
  ended = false;
  stalls = false;
  constructor(readonly spec: SimProxySpec, readonly index: number) {}
}

function runChild(): void {
  // grpc-js sets the TLS servername to the IP address it dials; Node warns about it once. Noise here.
  process.noDeprecation = true;
  const send = (m: unknown) => process.send!(m);
  const proxies: SimProxy[] = [];
  let bytesReceived = 0;
  let inflatedReceived = 0;
  let round = 0;
  let hits = 0;
  let roundSent = true;
  let responsesByType: Record<string, number> = {};
  const errors: string[] = [];

  const reportRound = () => {
    if (roundSent) return;
    roundSent = true;
    send({ type: 'round', round, times: proxies.filter((p) => !p.stalls).map((p) => p.hitAt), responsesByType, errors: errors.splice(0) } satisfies RoundMessage);
  };

  const start = (m: StartMessage) => {
    const { requestSerialize } = (loadXdsProto().service as Record<string, grpc.MethodDefinition<Partial<WireDeltaRequest>, unknown>>)[XDS_METHOD_NAME]!;
    const path = `/${XDS_SERVICE_NAME}/${XDS_METHOD_NAME}`;
    const credentials = grpc.credentials.createSsl(Buffer.from(m.rootPem));
    const options: grpc.ChannelOptions = {
      'grpc.use_local_subchannel_pool': 1, // one connection per proxy, as separate ztunnels have
      'grpc.max_receive_message_length': -1,
    };
    const perConnection = Math.max(1, m.streamsPerConnection ?? 1);
    let shared: grpc.Client | undefined;
    let onShared = 0;
    const startedAt = Date.now();
    let next = 0;
    let synced = 0;
    let inInitial = 0;
    const window = m.window > 0 ? m.window : m.proxies.length;

    const open = (p: SimProxy) => {
      inInitial++;
      p.openedAt = Date.now();
      // One channel (one TLS connection) per proxy, or per group of streamsPerConnection proxies.
      if (!shared || onShared >= perConnection) {
        shared = new grpc.Client(m.address, credentials, options);
        onShared = 0;
      }
      onShared++;
      const client = shared;
      const md = new grpc.Metadata();
      md.set('authorization', `Bearer ${p.spec.token}`);
      md.set('x-strait-node', p.spec.node);
      const call = client.makeBidiStreamRequest(path, requestSerialize as (v: Partial<WireDeltaRequest>) => Buffer, scanDeltaResponse, md);
      p.client = client;
      p.call = call;
      call.on('data', (r: Scanned) => {
        bytesReceived += r.bytes;
        inflatedReceived += r.inflatedBytes;
        call.write({ type_url: r.typeUrl, response_nonce: r.nonce });
        if (p.syncedAt === 0) {
          if (!p.firstCounts.has(r.typeUrl)) p.firstCounts.set(r.typeUrl, r.resources);
          if (p.firstCounts.size === SIM_TYPES.length) {
            p.syncedAt = Date.now();
            synced++;
            inInitial--;
            if (synced % 100 === 0) send({ type: 'progress', synced });
            // A stalled proxy stops reading here: grpc-js stops taking data once 16 responses wait unread, and the
            // controller's writes to it then stay in its HTTP/2 window.
            if (p.stalls) call.pause();
            if (synced === proxies.length) {
              send({
                type: 'synced', startedAt, doneAt: Date.now(), bytesReceived, inflatedReceived, packedInflated, rss: process.memoryUsage().rss,
                perProxyMs: proxies.map((q) => q.syncedAt - q.openedAt),
                counts: proxies.map((q) => SIM_TYPES.map((t) => q.firstCounts.get(t) ?? -1) as [number, number, number]),
              } satisfies SyncedMessage);
            }
            pump();
          }
          return;
        }
        responsesByType[r.typeUrl] = (responsesByType[r.typeUrl] ?? 0) + 1;
        if (r.hit && Number.isNaN(p.hitAt)) {
          p.hitAt = Date.now();
          hits++;
          if (hits === proxies.filter((q) => !q.stalls).length) reportRound();
        }
      });
      call.on('error', (err: grpc.ServiceError) => {
        p.ended = true;
        if (p.stalls) return; // the controller disconnects stalled proxies; that is expected
        const msg = `${p.spec.id}: stream failed: ${grpc.status[err.code] ?? err.code}: ${err.details}`;
        errors.push(msg);
        if (p.syncedAt === 0) send({ type: 'failed', message: msg });
      });
      call.on('end', () => (p.ended = true));
      SIM_TYPES.forEach((typeUrl, i) => {
        const node = { id: p.spec.id, kind: 'ztunnel', node_name: p.spec.node, namespace: '', name: '', ...(m.accept ? { accept: m.accept } : {}) };
        call.write(i === 0 ? { node, type_url: typeUrl } : { type_url: typeUrl });
      });
    };
    const pump = () => {
      while (inInitial < window && next < proxies.length) open(proxies[next++]!);
    };
    m.proxies.forEach((spec, i) => proxies.push(new SimProxy(spec, i)));
    for (const i of m.stalled ?? []) if (proxies[i]) proxies[i]!.stalls = true;
    pump();
  };

  process.on('message', (m: { type: string; [k: string]: unknown }) => {
    switch (m.type) {
      case 'start':
        start(m as unknown as StartMessage);
        break;
      case 'watch':
        round = m.round as number;
        watch = { name: Buffer.from(m.name as string), marker: Buffer.from(m.marker as string) };
        hits = 0;
        roundSent = false;
        responsesByType = {};
        for (const p of proxies) p.hitAt = NaN;
        send({ type: 'armed', round });
        break;
      case 'collect':
        reportRound();
        break;
      case 'rss':
        send({ type: 'rss', rss: process.memoryUsage().rss });
        break;
      case 'exit':
        for (const p of proxies) {
          p.call?.cancel();
          p.client?.close();
        }
        setTimeout(() => process.exit(0), 100).unref();
        break;
    }
  });
  send({ type: 'hello' });
}

if (process.send && process.argv.includes('--strait-xds-sim')) runChild();
