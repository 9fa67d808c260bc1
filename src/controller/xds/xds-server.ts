/**
 * The controller side of Strait's delta xDS (DESIGN.md §5): serves whatever a ViewSource holds to every
 * connected proxy, sending only differences, and tracks what each proxy holds, has ACKed and has NACKed.
 *
 * Invariants:
 * - Every stream reads exactly one view (decided once, at connect). All streams of a view are in step with
 *   the view's last pushed snapshot, apart from a per-stream `delta` of deviations (NACKed resources, or
 *   everything for explicit subscriptions): no stream holds a copy of a snapshot.
 * - A snapshot is diffed against the previous one once per push round and each resource is encoded once per body
 *   encoding (cached by ResourceEntry identity), however many streams receive it; a stream that holds nothing of a
 *   snapshot gets the whole of it as one buffer built once per (snapshot, type, encoding) and shared.
 * - Each stream is answered in the encoding its Node.accept asked for (JSON when it asked for nothing).
 * - A stream never has more than limits.maxQueuedBytes (plus the one response that crossed it) waiting in the
 *   transport, nor more than limits.maxUnackedResponses unanswered per type: while it cannot take a push, the
 *   push is not queued but coalesced, and when it can, it gets one response with the difference between what
 *   it holds (everything sent and not NACKed) and the current snapshot. An unanswered response is never assumed
 *   applied; a stream stalled longer than limits.stallTimeoutMs is disconnected.
 * - Credentials are checked when the stream opens (before any message); every refusal is counted and logged at
 *   a bounded rate.
 * - At most maxConcurrentInitialSyncs large first responses are held at once (a slot from the first request until
 *   the transport has taken the response, it is answered, or the stream ends), at most
 *   limits.maxInitialSyncsPerCredential of them per credential: that bounds the encoded buffers of proxies starting
 *   together. Every line a peer can cause in a loop goes through a RateLimitedLog.
 */
import * as grpc from '@grpc/grpc-js';
import { constants as http2constants } from 'node:http2';
import { StraitError, errorMessage, isStraitError } from '../../common/errors.js';
import { silentLogger, type Logger } from '../../common/log.js';
import { RateLimitedLog } from '../../common/rate-limited-log.js';
import { EMPTY_RESOURCE_SET, diffResourceSets, type ResourceDiff } from './resource-diff.js';
import {
  PROXY_KINDS,
  type ProxyInfo,
  type ProxyKind,
  type ResourceEntry,
  type ResourceSet,
  type SyncStatus,
  type TypeSyncStatus,
  type ViewSource,
  type XdsMetrics,
} from '../../common/xds/types.js';
import {
  XDS_LIMIT_FLAGS,
  XdsLimitError,
  checkRequest,
  resolveXdsLimits,
  type XdsLimitName,
  type XdsLimits,
} from './xds-limits.js';
import {
  XDS_METHOD_NAME,
  encodeDeltaResponse,
  loadXdsProto,
  streamEncoding,
  type WireDeltaRequest,
} from '../../common/xds/xds-proto.js';
import {
  ProxyStream,
  ResponseBuilder,
  TypeState,
  UNKNOWN_VERSION,
  ViewState,
  type DuplexCall,
  type PendingResponse,
} from './xds-stream.js';

export const DEFAULT_XDS_DEBOUNCE_MS = 100;
/** A steady stream of changes still pushes after this many debounce periods. */
export const XDS_DEBOUNCE_MAX_FACTOR = 10;
/**
 * At most this many large initial responses (see DEFAULT_XDS_LARGE_SYNC_RESOURCES) are held by the server at once:
 * from the first request until the transport has taken the response. Other first subscriptions wait their turn.
 * Each is encoded into its own buffer (megabytes for a big mesh), so a thousand ztunnels starting together would
 * otherwise hold gigabytes at once. One credential holds at most limits.maxInitialSyncsPerCredential of them.
 */
export const DEFAULT_XDS_MAX_CONCURRENT_INITIAL_SYNCS = 32;
/** A first subscription whose snapshot holds at least this many resources takes an initial-sync slot. */
export const DEFAULT_XDS_LARGE_SYNC_RESOURCES = 500;
/**
 * The gRPC transport's own receive limit is this many times limits.maxRequestBytes: a message between the two is
 * read and refused with a message naming the flag; a larger one is cut off by gRPC before it is read in full.
 */
export const XDS_TRANSPORT_RECEIVE_FACTOR = 2;
/** "proxy connected" / "proxy disconnected" lines logged one by one per 10 s; the rest are summarised. */
const CONNECTION_LOG_BURST = 20;
/** Stall disconnections logged one by one per 10 s. */
const STALL_LOG_BURST = 10;
/** Node.accept entries looked at (the request's size limit bounds the bytes). */
const MAX_ACCEPT_ENTRIES = 16;
/** Protocol errors, stream failures and NACKs logged one by one per 10 s (a proxy can cause them in a loop). */
const STREAM_EVENT_LOG_BURST = 5;

/** Who opened a stream, as established from its metadata at the start. */
export interface XdsPrincipal {
  /** Stable name of the credential (limits count streams per subject), e.g. "node/node-a". */
  subject: string;
}

export interface XdsServerOptions {
  source: ViewSource;
  /**
   * Checks the stream's credentials from its metadata when it opens, before any message. Throw a StraitError
   * (optionally with a string `reason` property for the metric label): STRAIT_ERR_AUTH_TOKEN → UNAUTHENTICATED,
   * STRAIT_ERR_TOKEN_REVIEW → UNAVAILABLE (the proxy retries), any other code → PERMISSION_DENIED. It may answer
   * later (a Kubernetes TokenReview): the stream's messages wait unread until it has. Without it every stream is
   * principal "anonymous".
   */
  authenticate?: (metadata: grpc.Metadata) => XdsPrincipal | Promise<XdsPrincipal>;
  /** Checks that the principal may connect as the node its first request names (kind, node, waypoint); throw to refuse (PERMISSION_DENIED). */
  authorize?: (principal: XdsPrincipal, proxy: ProxyInfo) => void;
  debounceMs?: number;
  logger?: Logger;
  metrics?: XdsMetrics;
  /** Large initial syncs in flight at once (default DEFAULT_XDS_MAX_CONCURRENT_INITIAL_SYNCS). */
  maxConcurrentInitialSyncs?: number;
  /** Resources from which a first subscription counts as large (default DEFAULT_XDS_LARGE_SYNC_RESOURCES). */
  largeSyncResources?: number;
  /** Per-peer limits (defaults: DEFAULT_XDS_LIMITS). */
  limits?: Partial<XdsLimits>;
  /** Where refusals are logged (shared with the CA, so both count into one summary); default: one of its own. */
  refusalLog?: RateLimitedLog;
}

/** What the request deserializer returns for a message over limits.maxRequestBytes. */
class OversizedRequest {
  constructor(readonly bytes: number) {}
}

/** The reason label a refusal carries (a `reason` string property on the error), else a default. */
function reasonOf(err: unknown, fallback: string): string {
  const r = (err as { reason?: unknown } | null)?.reason;
  return typeof r === 'string' && r ? r : fallback;
}

/**
 * Resets the HTTP/2 stream under a grpc-js server call. A stream whose peer does not read cannot be ended with a
 * status (trailers wait behind the unread data), so the only way to free what it holds is RST_STREAM; the peer's
 * grpc-js reports ENHANCE_YOUR_CALM as RESOURCE_EXHAUSTED. grpc-js has no public API for it: this walks its call
 * chain to the http2 stream. Returns false if it found none (then the caller ends the call normally).
 */
function resetTransport(call: DuplexCall): boolean {
  let c = (call as unknown as { call?: unknown }).call as Record<string, unknown> | undefined;
  for (let i = 0; c && i < 8; i++) {
    const s = c['stream'] as { close?: (code: number) => void; rstCode?: unknown } | undefined;
    if (s && typeof s.close === 'function' && 'rstCode' in s) {
      s.close(http2constants.NGHTTP2_ENHANCE_YOUR_CALM);
      return true;
    }
    c = c['nextCall'] as Record<string, unknown> | undefined;
  }
  return false;
}

export class XdsServer {
  private readonly source: ViewSource;
  private readonly authenticate: XdsServerOptions['authenticate'];
  private readonly authorize: XdsServerOptions['authorize'];
  private readonly debounceMs: number;
  private readonly log: Logger;
  private readonly metrics: XdsMetrics | undefined;
  readonly limits: XdsLimits;
  private readonly refusals: RateLimitedLog;
  private readonly connections: RateLimitedLog;
  private readonly stalls: RateLimitedLog;
  private readonly views = new Map<string, ViewState>();
  private readonly streams = new Set<ProxyStream>();
  /** Open streams (accepted or still waiting for their first request) per credential subject and per connection. */
  private readonly perCredential = new Map<string, number>();
  private readonly perConnection = new Map<string, number>();
  private readonly unsubscribe: () => void;
  private readonly sweeper: NodeJS.Timeout;
  private nonceSeq = 0;
  private timer: NodeJS.Timeout | undefined;
  private burstStartedAt = 0;
  private pendingChangedAt: number | null = null;
  private closed = false;
  private readonly maxInitialSyncs: number;
  private readonly largeSyncResources: number;
  private slotsInUse = 0;
  /** Slots held per credential subject (entries > 0 only). */
  private readonly slotsPerCredential = new Map<string, number>();
  /**
   * First subscriptions waiting for a slot: a slot goes to the first entry whose credential holds fewer than
   * limits.maxInitialSyncsPerCredential. Holds no entry of a closed stream.
   */
  private slotQueue: Array<{ stream: ProxyStream; typeUrl: string }> = [];
  private dispatching = false;
  private readonly protocolErrors: RateLimitedLog;
  private readonly streamFailures: RateLimitedLog;
  private readonly nackLog: RateLimitedLog;
  private readonly fallbackLog: RateLimitedLog;

  constructor(opts: XdsServerOptions) {
    const debounceMs = opts.debounceMs ?? DEFAULT_XDS_DEBOUNCE_MS;
    if (!Number.isFinite(debounceMs) || debounceMs < 0) {
      throw new StraitError('STRAIT_ERR_CONFIG', `xDS debounceMs must be a number >= 0 (got ${debounceMs})`);
    }
    const maxInitial = opts.maxConcurrentInitialSyncs ?? DEFAULT_XDS_MAX_CONCURRENT_INITIAL_SYNCS;
    if (!Number.isInteger(maxInitial) || maxInitial < 1) {
      throw new StraitError('STRAIT_ERR_CONFIG', `xDS maxConcurrentInitialSyncs must be an integer >= 1 (got ${maxInitial})`);
    }
    const large = opts.largeSyncResources ?? DEFAULT_XDS_LARGE_SYNC_RESOURCES;
    if (!Number.isInteger(large) || large < 0) {
      throw new StraitError('STRAIT_ERR_CONFIG', `xDS largeSyncResources must be an integer >= 0 (got ${large})`);
    }
    this.limits = resolveXdsLimits(opts.limits);
    this.maxInitialSyncs = maxInitial;
    this.largeSyncResources = large;
    this.source = opts.source;
    this.authenticate = opts.authenticate;
    this.authorize = opts.authorize;
    this.debounceMs = debounceMs;
    this.log = opts.logger ?? silentLogger();
    this.metrics = opts.metrics;
    this.refusals = opts.refusalLog ?? new RateLimitedLog({ logger: this.log, level: 'warn', msg: 'xDS stream refused', what: 'refused xDS streams' });
    this.connections = new RateLimitedLog({ logger: this.log, level: 'info', msg: 'proxy connected', what: 'proxy connections and disconnections', burst: CONNECTION_LOG_BURST });
    this.stalls = new RateLimitedLog({ logger: this.log, level: 'warn', msg: 'xDS stream stalled; disconnecting it', what: 'stalled xDS streams disconnected', burst: STALL_LOG_BURST });
    this.protocolErrors = new RateLimitedLog({ logger: this.log, level: 'warn', msg: 'xDS protocol error; ending the stream', what: 'xDS streams ended for protocol errors', burst: STREAM_EVENT_LOG_BURST });
    this.streamFailures = new RateLimitedLog({ logger: this.log, level: 'error', msg: 'xDS stream failed', what: 'xDS streams failed', burst: STREAM_EVENT_LOG_BURST });
    this.fallbackLog = new RateLimitedLog({ logger: this.log, level: 'warn', msg: 'resource body not representable in resources.proto; sent as JSON', what: 'JSON fallbacks', burst: 1 });
    this.nackLog = new RateLimitedLog({ logger: this.log, level: 'warn', msg: 'proxy rejected a config push (NACK); it keeps its previous resources', what: 'NACKs', burst: STREAM_EVENT_LOG_BURST });
    this.unsubscribe = this.source.onChange((changedAt) => this.onSourceChange(changedAt));
    this.sweeper = setInterval(() => this.sweepStalled(), Math.max(10, Math.min(1000, Math.floor(this.limits.stallTimeoutMs / 4))));
    this.sweeper.unref();
  }

  /** Registers the AggregatedDiscoveryService on a grpc server (whose receive limit should be grpcReceiveLimit()). */
  addTo(server: grpc.Server): void {
    const method = loadXdsProto().serverService[XDS_METHOD_NAME] as grpc.MethodDefinition<WireDeltaRequest, Buffer>;
    const max = this.limits.maxRequestBytes;
    const deserialize = method.requestDeserialize;
    server.addService(
      {
        [XDS_METHOD_NAME]: {
          ...method,
          requestDeserialize: (buf: Buffer) => (buf.length > max ? (new OversizedRequest(buf.length) as unknown as WireDeltaRequest) : deserialize(buf)),
        },
      },
      { DeltaAggregatedResources: (call: DuplexCall) => this.handleStream(call) },
    );
  }

  /** The receive limit to give the gRPC server this service runs on ('grpc.max_receive_message_length'). */
  grpcReceiveLimit(): number {
    return this.limits.maxRequestBytes * XDS_TRANSPORT_RECEIVE_FACTOR;
  }

  /** Ends every stream with UNAVAILABLE (proxies reconnect and keep their config meanwhile). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    clearInterval(this.sweeper);
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const stream of [...this.streams]) {
      this.endStream(stream.call, grpc.status.UNAVAILABLE, 'the xDS server is shutting down', stream);
      this.detach(stream);
    }
    this.connections.close();
    this.stalls.close();
    this.protocolErrors.close();
    this.streamFailures.close();
    this.nackLog.close();
    this.fallbackLog.close();
  }

  /** One entry per connected stream, for /debug/syncz. */
  status(): SyncStatus[] {
    const out: SyncStatus[] = [];
    const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
    for (const stream of this.streams) {
      const types: Record<string, TypeSyncStatus> = {};
      for (const [typeUrl, ts] of stream.types) {
        const t: TypeSyncStatus = {
          subscribed: ts.subscribed === '*' ? '*' : [...ts.subscribed].sort(),
          versionSent: ts.versionSent,
          versionAcked: ts.versionAcked,
          resourcesHeld: ts.heldCount(),
          unanswered: ts.pending.length,
          coalesced: ts.coalesced,
        };
        if (ts.lastAckedNonce !== undefined) t.lastAckedNonce = ts.lastAckedNonce;
        if (ts.lastAckedAt !== undefined) t.lastAckedAt = iso(ts.lastAckedAt)!;
        if (ts.lastNack) t.lastNack = { ...ts.lastNack };
        if (ts.lastAnswer) t.lastAnswer = ts.lastAnswer;
        const pending = ts.pending[ts.pending.length - 1];
        if (pending) t.pendingNonce = pending.nonce;
        types[typeUrl] = t;
      }
      out.push({
        proxy: { ...stream.proxy },
        viewKey: stream.view.key,
        connectedAt: stream.connectedAt.toISOString(),
        peer: stream.peer,
        queuedBytes: stream.queuedBytes,
        stalledSince: iso(stream.behindSince()),
        lastAckAt: iso(stream.lastAckAt),
        types,
      });
    }
    return out;
  }

  // --- stream lifecycle ---------------------------------------------------------------------------------

  private handleStream(call: DuplexCall): void {
    if (this.closed) {
      this.endStream(call, grpc.status.UNAVAILABLE, 'the xDS server is shutting down');
      return;
    }
    const peer = call.getPeer();
    // Credentials first: a stream without valid ones is refused before it can send (or hold) anything.
    if (!this.authenticate) {
      this.admitStream(call, { subject: 'anonymous' }, peer);
      return;
    }
    let answer: XdsPrincipal | Promise<XdsPrincipal>;
    try {
      answer = this.authenticate(call.metadata);
    } catch (err) {
      this.refuseCredentials(call, err, peer);
      return;
    }
    if (!(answer instanceof Promise)) {
      this.admitStream(call, answer, peer);
      return;
    }
    // Until the answer comes, no 'data' listener: what the proxy sends waits in the stream, unread (grpc-js flow
    // control bounds it). A stream that ends meanwhile is forgotten.
    let gone = false;
    const forget = () => { gone = true; };
    call.once('cancelled', forget);
    call.once('close', forget);
    call.once('error', forget);
    answer.then(
      (principal) => {
        call.off('cancelled', forget).off('close', forget).off('error', forget);
        if (gone || this.closed || call.writableEnded) {
          if (!gone && !call.writableEnded) this.endStream(call, grpc.status.UNAVAILABLE, 'the xDS server is shutting down');
          return;
        }
        this.admitStream(call, principal, peer);
      },
      (err) => {
        call.off('cancelled', forget).off('close', forget).off('error', forget);
        if (!gone && !call.writableEnded) this.refuseCredentials(call, err, peer);
      },
    );
  }

  private refuseCredentials(call: DuplexCall, err: unknown, peer: string): void {
    const code = isStraitError(err, 'STRAIT_ERR_AUTH_TOKEN') ? grpc.status.UNAUTHENTICATED
      : isStraitError(err, 'STRAIT_ERR_TOKEN_REVIEW') ? grpc.status.UNAVAILABLE
      : isStraitError(err) ? grpc.status.PERMISSION_DENIED : grpc.status.INTERNAL;
    this.refuse(call, code, errorMessage(err), reasonOf(err, 'unauthenticated'), { peer });
  }

  /** Counts an authenticated stream against its limits and serves it. */
  private admitStream(call: DuplexCall, principal: XdsPrincipal, peer: string): void {
    const credStreams = this.perCredential.get(principal.subject) ?? 0;
    if (credStreams >= this.limits.maxStreamsPerCredential) {
      this.limitRefusal(call, new XdsLimitError('streams_per_credential', grpc.status.RESOURCE_EXHAUSTED,
        `${principal.subject} already has ${credStreams} xDS streams open; the limit is ${this.limits.maxStreamsPerCredential} per credential (raise it with ${XDS_LIMIT_FLAGS.maxStreamsPerCredential})`), { peer, credential: principal.subject });
      return;
    }
    const connStreams = this.perConnection.get(peer) ?? 0;
    if (connStreams >= this.limits.maxStreamsPerConnection) {
      this.limitRefusal(call, new XdsLimitError('streams_per_connection', grpc.status.RESOURCE_EXHAUSTED,
        `the connection from ${peer} already carries ${connStreams} xDS streams; the limit is ${this.limits.maxStreamsPerConnection} per connection (raise it with ${XDS_LIMIT_FLAGS.maxStreamsPerConnection})`), { peer, credential: principal.subject });
      return;
    }
    this.perCredential.set(principal.subject, credStreams + 1);
    this.perConnection.set(peer, connStreams + 1);

    let stream: ProxyStream | undefined;
    let released = false;
    const firstRequestTimer = setTimeout(() => {
      if (stream || released) return;
      this.limitRefusal(call, new XdsLimitError('first_request_timeout', grpc.status.DEADLINE_EXCEEDED,
        `no DeltaDiscoveryRequest within ${this.limits.firstRequestTimeoutMs} ms of opening the stream (raise it with ${XDS_LIMIT_FLAGS.firstRequestTimeoutMs})`), { peer, credential: principal.subject });
    }, this.limits.firstRequestTimeoutMs);
    firstRequestTimer.unref();
    const done = () => {
      clearTimeout(firstRequestTimer);
      if (!released) {
        released = true;
        const c = (this.perCredential.get(principal.subject) ?? 1) - 1;
        if (c > 0) this.perCredential.set(principal.subject, c);
        else this.perCredential.delete(principal.subject);
        const k = (this.perConnection.get(peer) ?? 1) - 1;
        if (k > 0) this.perConnection.set(peer, k);
        else this.perConnection.delete(peer);
      }
      if (stream) this.detach(stream);
    };
    call.on('data', (req: WireDeltaRequest | OversizedRequest) => {
      if (stream?.closed || call.writableEnded || released) return;
      try {
        if (req instanceof OversizedRequest) {
          throw new XdsLimitError('message_size', grpc.status.RESOURCE_EXHAUSTED,
            `a DeltaDiscoveryRequest of ${req.bytes} bytes is over the limit of ${this.limits.maxRequestBytes} bytes (raise it with ${XDS_LIMIT_FLAGS.maxRequestBytes})`);
        }
        const violation = checkRequest(req, this.limits);
        if (violation) throw violation;
        if (!stream) {
          clearTimeout(firstRequestTimer);
          stream = this.accept(call, req, principal, peer);
          if (!stream) return;
        }
        this.handleRequest(stream, req);
      } catch (err) {
        this.failStream(call, stream, err, { peer, credential: principal.subject });
      }
    });
    // The proxy half-closed: we are done too.
    call.on('end', () => {
      if (!call.writableEnded) call.end();
      done();
    });
    call.on('finish', done);
    call.on('cancelled', done);
    call.on('close', done);
    call.on('error', (err) => {
      this.log.debug({ proxy: stream?.proxy.id, err: errorMessage(err) }, 'xDS stream error');
      done();
    });
  }

  /** Validates the first request of a stream; returns undefined after ending the stream on refusal. */
  private accept(call: DuplexCall, req: WireDeltaRequest, principal: XdsPrincipal, peer: string): ProxyStream | undefined {
    const node = req.node;
    if (!node || !node.id) {
      this.endStream(call, grpc.status.INVALID_ARGUMENT, 'the first DeltaDiscoveryRequest of a stream must carry node (id, kind, node_name)');
      return undefined;
    }
    if (!(PROXY_KINDS as readonly string[]).includes(node.kind)) {
      this.endStream(call, grpc.status.INVALID_ARGUMENT, `node.kind "${node.kind}" is not one of ${PROXY_KINDS.join(', ')}`);
      return undefined;
    }
    const proxy: ProxyInfo = { id: node.id, kind: node.kind as ProxyKind, nodeName: node.node_name };
    if (node.namespace) proxy.namespace = node.namespace;
    if (node.name) proxy.name = node.name;

    if (this.authorize) {
      try {
        this.authorize(principal, proxy);
      } catch (err) {
        const code = isStraitError(err, 'STRAIT_ERR_AUTH_TOKEN') ? grpc.status.UNAUTHENTICATED : isStraitError(err) ? grpc.status.PERMISSION_DENIED : grpc.status.INTERNAL;
        this.refuse(call, code, errorMessage(err), reasonOf(err, 'denied'), { peer, credential: principal.subject, proxy: proxy.id, kind: proxy.kind });
        return undefined;
      }
    }
    let viewKey: string;
    let allowed: ReadonlySet<string>;
    try {
      viewKey = this.source.viewKeyFor(proxy);
      allowed = new Set(this.source.typeUrlsFor(proxy));
    } catch (err) {
      const code = isStraitError(err, 'STRAIT_ERR_XDS_PROTOCOL') ? grpc.status.INVALID_ARGUMENT : isStraitError(err) ? grpc.status.PERMISSION_DENIED : grpc.status.INTERNAL;
      this.refuse(call, code, errorMessage(err), 'no_view', { peer, credential: principal.subject, proxy: proxy.id });
      return undefined;
    }

    let view = this.views.get(viewKey);
    if (!view) {
      view = new ViewState(viewKey);
      this.views.set(viewKey, view);
    }
    const stream = new ProxyStream(call, proxy, view, allowed, peer, principal.subject, streamEncoding(node.accept?.slice(0, MAX_ACCEPT_ENTRIES)));
    view.streams.add(stream);
    this.streams.add(stream);
    this.metrics?.proxyConnected(proxy.kind);
    this.connections.record('connected', { proxy: proxy.id, kind: proxy.kind, node: proxy.nodeName, viewKey, peer });
    // Headers now, so the client learns the stream was accepted before the first response.
    call.sendMetadata(new grpc.Metadata());
    return stream;
  }

  private detach(stream: ProxyStream): void {
    if (stream.closed) return;
    stream.closed = true;
    if (stream.deferred.size > 0) this.slotQueue = this.slotQueue.filter((q) => q.stream !== stream);
    stream.deferred.clear();
    for (const ts of stream.types.values()) this.releaseSlot(stream, ts);
    this.streams.delete(stream);
    stream.view.streams.delete(stream);
    if (stream.view.streams.size === 0) this.views.delete(stream.view.key);
    this.metrics?.proxyDisconnected(stream.proxy.kind);
    this.connections.record('disconnected', { proxy: stream.proxy.id, viewKey: stream.view.key }, 'proxy disconnected');
  }

  /**
   * Ends a call with a status. A stream with unread data cannot deliver a status (it would wait behind that data
   * forever), so it is reset instead.
   */
  private endStream(call: DuplexCall, code: grpc.status, details: string, stream?: ProxyStream): void {
    if (call.destroyed || call.writableEnded) return;
    if (stream && stream.queuedBytes > 0 && resetTransport(call)) return;
    const err = Object.assign(new Error(details), { code, details });
    call.emit('error', err);
  }

  /** Refuses a stream at its door: counted by reason, logged at a bounded rate, ended with `code`. */
  private refuse(call: DuplexCall, code: grpc.status, details: string, reason: string, fields: Record<string, unknown>): void {
    this.metrics?.refused?.(reason);
    this.refusals.record(reason, { ...fields, service: 'xds', status: grpc.status[code], err: details });
    this.endStream(call, code, details);
  }

  private limitRefusal(call: DuplexCall, err: XdsLimitError, fields: Record<string, unknown>, stream?: ProxyStream): void {
    this.metrics?.limitExceeded?.(err.limit);
    this.refusals.record(err.limit, { ...fields, service: 'xds', proxy: stream?.proxy.id, status: grpc.status[err.status], err: err.message }, 'xDS stream ended: over a limit');
    this.endStream(call, err.status, err.message, stream);
  }

  private failStream(call: DuplexCall, stream: ProxyStream | undefined, err: unknown, fields: Record<string, unknown> = {}): void {
    if (err instanceof XdsLimitError) {
      this.limitRefusal(call, err, { peer: stream?.peer, ...fields }, stream);
    } else if (isStraitError(err, 'STRAIT_ERR_XDS_PROTOCOL')) {
      this.protocolErrors.record('protocol_error', { ...fields, proxy: stream?.proxy.id, err: err.message });
      this.endStream(call, grpc.status.INVALID_ARGUMENT, err.message, stream);
    } else {
      this.streamFailures.record('internal', { ...fields, proxy: stream?.proxy.id, err: errorMessage(err) });
      this.endStream(call, grpc.status.INTERNAL, errorMessage(err), stream);
    }
    if (stream) this.detach(stream);
  }

  /** Disconnects streams that have not read what they were sent, or not answered a response, for too long. */
  private sweepStalled(): void {
    const deadline = Date.now() - this.limits.stallTimeoutMs;
    for (const stream of [...this.streams]) {
      if (stream.closed) continue;
      const writeAt = stream.oldestWriteAt();
      const pending = stream.oldestPending();
      let why: 'unread' | 'unanswered';
      let reason: string;
      if (writeAt !== undefined && writeAt < deadline) {
        why = 'unread';
        reason = `it has not read ${stream.queuedBytes} bytes sent ${Math.round((Date.now() - writeAt) / 1000)} s ago`;
      } else if (pending && pending.p.sentAt < deadline) {
        why = 'unanswered';
        reason = `it has not answered response ${pending.p.nonce} (${pending.typeUrl}) sent ${Math.round((Date.now() - pending.p.sentAt) / 1000)} s ago`;
      } else continue;
      const details = `${stream.proxy.id} stalled: ${reason}; streams stalled longer than ${this.limits.stallTimeoutMs} ms are disconnected (${XDS_LIMIT_FLAGS.stallTimeoutMs})`;
      this.metrics?.stallDisconnected?.(stream.proxy.kind, why);
      this.stalls.record(why, { proxy: stream.proxy.id, kind: stream.proxy.kind, node: stream.proxy.nodeName, peer: stream.peer, queuedBytes: stream.queuedBytes, err: details });
      this.endStream(stream.call, grpc.status.RESOURCE_EXHAUSTED, details, stream);
      this.detach(stream);
    }
  }

  // --- requests -----------------------------------------------------------------------------------------

  private handleRequest(stream: ProxyStream, req: WireDeltaRequest): void {
    const typeUrl = req.type_url;
    if (!typeUrl) {
      throw new StraitError('STRAIT_ERR_XDS_PROTOCOL', 'DeltaDiscoveryRequest.type_url is empty');
    }
    if (!stream.allowedTypes.has(typeUrl)) {
      throw new StraitError(
        'STRAIT_ERR_XDS_PROTOCOL',
        `type ${typeUrl} is not served to ${stream.proxy.kind} proxies; allowed: ${[...stream.allowedTypes].join(', ') || '(none)'}`,
      );
    }
    const waiting = stream.deferred.get(typeUrl);
    if (waiting) {
      // Handled in order once the first one gets its slot; bounded like everything a stream may make us hold.
      if (waiting.length >= this.limits.maxUnackedResponses) {
        throw new StraitError('STRAIT_ERR_XDS_PROTOCOL', `more than ${this.limits.maxUnackedResponses} requests for ${typeUrl} while its initial sync waits for a slot; wait for the first response`);
      }
      waiting.push(req);
      return;
    }
    const ts = stream.types.get(typeUrl);
    if (!ts) {
      this.checkStreamNames(stream, undefined, req.resource_names_subscribe, []);
      if (this.mustWaitForSlot(stream, typeUrl)) {
        stream.deferred.set(typeUrl, [req]);
        // A proxy that already had its turn for another type is nearly in sync: finish it before starting others.
        if (stream.hadSlot) this.slotQueue.unshift({ stream, typeUrl });
        else this.slotQueue.push({ stream, typeUrl });
        this.log.debug({ proxy: stream.proxy.id, typeUrl, queued: this.slotQueue.length }, 'initial sync waits for a slot');
        return;
      }
      this.subscribeType(stream, req);
      return;
    }
    if (req.response_nonce) this.settle(stream, ts, req);
    if (req.resource_names_subscribe.length > 0 || req.resource_names_unsubscribe.length > 0) {
      this.checkStreamNames(stream, ts, req.resource_names_subscribe, req.resource_names_unsubscribe);
      this.changeSubscription(stream, ts, req.resource_names_subscribe, req.resource_names_unsubscribe);
    }
    this.flushCoalesced(stream);
  }

  /**
   * Explicit names the stream would hold, all types together, once this request for `ts` (undefined: a first
   * request) is applied: a name already subscribed is not counted again, nor one repeated within the request.
   */
  private checkStreamNames(stream: ProxyStream, ts: TypeState | undefined, subscribe: readonly string[], unsubscribe: readonly string[]): void {
    let after: number;
    if (!ts || ts.subscribed === '*') {
      // A first request with no names (or '*') is a wildcard; a wildcard stays one unless it unsubscribes '*'.
      const becomesExplicit = ts ? unsubscribe.includes('*') : subscribe.length > 0 && !subscribe.includes('*');
      after = becomesExplicit ? new Set(subscribe.filter((n) => n !== '*')).size : 0;
    } else if (subscribe.includes('*')) {
      after = 0;
    } else {
      const held = ts.subscribed;
      const dropped = new Set(unsubscribe.filter((n) => held.has(n)));
      const added = new Set(subscribe.filter((n) => !held.has(n) || dropped.has(n)));
      after = held.size - dropped.size + added.size;
    }
    const total = stream.explicitNames() - (ts?.explicitCount() ?? 0) + after;
    if (total > this.limits.maxNamesPerStream) {
      throw new XdsLimitError('names_per_stream', grpc.status.RESOURCE_EXHAUSTED,
        `this stream would subscribe to ${total} resource names; the limit is ${this.limits.maxNamesPerStream} per stream (raise it with ${XDS_LIMIT_FLAGS.maxNamesPerStream}, or use a wildcard subscription)`);
    }
  }

  /** First request for a type on this stream: send everything that differs from what the proxy holds. */
  private subscribeType(stream: ProxyStream, req: WireDeltaRequest): void {
    const names = req.resource_names_subscribe;
    const wildcard = names.length === 0 || names.includes('*');
    const ts = new TypeState(req.type_url, wildcard ? '*' : new Set(names));
    stream.types.set(req.type_url, ts);
    const snapshot = this.viewSnapshot(stream.view, req.type_url);
    const initial = req.initial_resource_versions ?? {};
    if (wildcard) {
      for (const [name, version] of Object.entries(initial)) if (version) ts.delta.set(name, version);
    } else {
      for (const name of names) {
        const version = initial[name];
        if (version) ts.delta.set(name, version);
      }
    }
    if (snapshot.size >= this.largeSyncResources) {
      stream.hadSlot = true;
      this.takeSlot(stream, ts);
    }
    // Always answer the first request, even with nothing, so the proxy knows it is in sync; if the stream cannot
    // take it now, it goes out (computed then) as soon as it can.
    this.markCoalesced(ts, null);
    this.flushCoalesced(stream);
  }

  // --- initial-sync slots -------------------------------------------------------------------------------

  /** Whether a first subscription must wait: it is large and no slot is free, globally or for its credential. */
  private mustWaitForSlot(stream: ProxyStream, typeUrl: string): boolean {
    // After every dispatch either no slot is free or no queued entry may take one, so a newcomer that finds a
    // free slot for its credential passes nobody who could have had it.
    if (this.slotsInUse < this.maxInitialSyncs && this.credentialSlots(stream.credential) < this.limits.maxInitialSyncsPerCredential) return false;
    return this.viewSnapshot(stream.view, typeUrl).size >= this.largeSyncResources;
  }

  private credentialSlots(credential: string): number {
    return this.slotsPerCredential.get(credential) ?? 0;
  }

  private takeSlot(stream: ProxyStream, ts: TypeState): void {
    if (ts.holdsSlot) return;
    ts.holdsSlot = true;
    this.slotsInUse++;
    this.slotsPerCredential.set(stream.credential, this.credentialSlots(stream.credential) + 1);
  }

  private releaseSlot(stream: ProxyStream, ts: TypeState): void {
    if (!ts.holdsSlot) return;
    ts.holdsSlot = false;
    this.slotsInUse--;
    const left = this.credentialSlots(stream.credential) - 1;
    if (left > 0) this.slotsPerCredential.set(stream.credential, left);
    else this.slotsPerCredential.delete(stream.credential);
    this.dispatchSlots();
  }

  /** Gives free slots to waiting first subscriptions, in queue order, skipping credentials that hold their share. */
  private dispatchSlots(): void {
    if (this.dispatching) return; // a slot released while dispatching (a stream failed) is picked up by the loop below
    this.dispatching = true;
    try {
      let i = 0;
      while (!this.closed && this.slotsInUse < this.maxInitialSyncs && i < this.slotQueue.length) {
        const { stream, typeUrl } = this.slotQueue[i]!;
        if (this.credentialSlots(stream.credential) >= this.limits.maxInitialSyncsPerCredential) {
          i++;
          continue;
        }
        this.slotQueue.splice(i, 1);
        const reqs = stream.deferred.get(typeUrl);
        stream.deferred.delete(typeUrl);
        if (stream.closed || !reqs) continue;
        try {
          // The first request subscribes now (it has its turn: going through handleRequest would queue it again
          // behind the others, forever); what followed it is handled as usual.
          const [first, ...rest] = reqs;
          if (!stream.types.has(typeUrl)) this.subscribeType(stream, first!);
          else this.handleRequest(stream, first!);
          for (const req of rest) this.handleRequest(stream, req);
        } catch (err) {
          this.failStream(stream.call, stream, err);
        }
        i = 0; // the queue may have changed under us (a failed stream's entries are gone): start over
      }
    } finally {
      this.dispatching = false;
    }
  }

  private changeSubscription(
    stream: ProxyStream,
    ts: TypeState,
    subscribe: readonly string[],
    unsubscribe: readonly string[],
  ): void {
    if (ts.subscribed === '*') {
      if (!unsubscribe.includes('*')) return; // names are already included in a wildcard subscription
      const held = ts.heldMap();
      const keep = new Set(subscribe.filter((n) => n !== '*'));
      ts.subscribed = keep;
      ts.base = null;
      ts.delta = new Map();
      for (const name of keep) {
        const v = held.get(name);
        if (v !== undefined) ts.delta.set(name, v);
      }
      this.pushNames(stream, ts, keep);
    } else if (subscribe.includes('*')) {
      ts.subscribed = '*';
      this.markCoalesced(ts, null); // a full comparison, sent when the stream can take it
    } else {
      const explicit = ts.subscribed;
      for (const name of unsubscribe) {
        explicit.delete(name);
        ts.delta.delete(name); // the proxy drops what it unsubscribes from
      }
      const added: string[] = [];
      for (const name of subscribe) {
        if (!explicit.has(name)) {
          explicit.add(name);
          added.push(name);
        }
      }
      this.pushNames(stream, ts, added);
    }
  }

  /** Sends what differs for some names now, or leaves it to the next coalesced flush if the stream cannot take it. */
  private pushNames(stream: ProxyStream, ts: TypeState, names: Iterable<string>): void {
    if (ts.coalesced || !this.canSend(stream, ts)) {
      this.markCoalesced(ts, null);
      return;
    }
    const out = this.builder(stream, ts);
    this.collectNames(ts, this.viewSnapshot(stream.view, ts.typeUrl), names, out);
    if (out.size > 0) this.send(stream, ts, out, String(this.source.generation()), null);
  }

  /** ACK or NACK of one of our responses. */
  private settle(stream: ProxyStream, ts: TypeState, req: WireDeltaRequest): void {
    const nonce = req.response_nonce;
    const idx = ts.pending.findIndex((p) => p.nonce === nonce);
    if (idx < 0) {
      this.log.debug({ proxy: stream.proxy.id, typeUrl: ts.typeUrl, nonce }, 'ignoring an unknown or settled nonce');
      return;
    }
    const skipped = ts.pending.splice(0, idx);
    const p = ts.pending.shift()!;
    if (p.initial || skipped.some((q) => q.initial)) this.releaseSlot(stream, ts);
    // Responses before this one that the proxy did not answer: what they carried is unknown (never assumed
    // applied) unless the answered one set the same names; those names are compared again and resent.
    if (skipped.length > 0) {
      this.log.debug({ proxy: stream.proxy.id, typeUrl: ts.typeUrl, nonce, skipped: skipped.length }, 'proxy answered a response but not the ones before it; resending what they carried');
      for (const q of skipped) {
        for (const name of q.prev.keys()) {
          if (p.prev.has(name)) continue;
          const later = ts.pending.find((r) => r.prev.has(name));
          if (later) later.prev.set(name, UNKNOWN_VERSION);
          else if (ts.isSubscribed(name)) ts.setHeld(name, UNKNOWN_VERSION);
        }
      }
      this.markCoalesced(ts, null);
    }
    const error = req.error_detail;
    if (!error) {
      const now = Date.now();
      ts.versionAcked = p.systemVersion;
      ts.lastAckedNonce = nonce;
      ts.lastAckedAt = now;
      ts.lastAnswer = 'ACK';
      stream.lastAckAt = now;
      if (p.changedAt !== null) this.metrics?.acked(ts.typeUrl, Math.max(0, now - p.changedAt));
      return;
    }
    const message = error.message || `NACK with code ${error.code} and no message`;
    ts.lastNack = { nonce, message, at: new Date().toISOString() };
    ts.lastAnswer = 'NACK';
    this.metrics?.nacked(ts.typeUrl);
    this.nackLog.record(ts.typeUrl.slice(ts.typeUrl.lastIndexOf('/') + 1), { proxy: stream.proxy.id, typeUrl: ts.typeUrl, nonce, version: p.systemVersion, error: message });
    // The proxy still holds what it held before this response. A later response in flight that touched the
    // same name now starts from that older version instead. Nothing is resent until the resource changes.
    for (const [name, before] of p.prev) {
      const later = ts.pending.find((q) => q.prev.has(name));
      if (later) later.prev.set(name, before);
      else if (ts.isSubscribed(name)) ts.setHeld(name, before);
    }
  }

  // --- computing responses ------------------------------------------------------------------------------

  private viewSnapshot(view: ViewState, typeUrl: string): ResourceSet {
    let snapshot = view.snapshots.get(typeUrl);
    if (!snapshot) {
      snapshot = this.source.resources(view.key, typeUrl);
      view.snapshots.set(typeUrl, snapshot);
    }
    return snapshot;
  }

  /** Compares what the proxy holds with `snapshot` for the given names; records what to send and updates held state. */
  private collectNames(ts: TypeState, snapshot: ResourceSet, names: Iterable<string>, out: ResponseBuilder): void {
    for (const name of names) {
      const entry = snapshot.get(name);
      const held = ts.held(name);
      if (entry) {
        if (held === entry.version) continue;
        out.add(entry, held);
        ts.setHeld(name, entry.version);
      } else if (held !== undefined) {
        out.remove(name, held);
        ts.setHeld(name, undefined);
      }
    }
  }

  /** Brings a wildcard subscription fully in step with `snapshot` (O(snapshot + held)). */
  private collectWildcard(ts: TypeState, snapshot: ResourceSet, out: ResponseBuilder): void {
    if (ts.base === null && ts.delta.size === 0) {
      // Holds nothing (a first sync without initial versions): the whole snapshot, encoded once for every such stream.
      out.addSnapshot(snapshot);
    } else {
      const held = ts.heldMap();
      for (const entry of snapshot.values()) this.collectOne(entry, held.get(entry.name), out);
      for (const [name, version] of held) if (!snapshot.has(name)) out.remove(name, version);
    }
    ts.base = snapshot;
    ts.delta = new Map();
  }

  private collectOne(entry: ResourceEntry, held: string | undefined, out: ResponseBuilder): void {
    if (held === entry.version) return;
    out.add(entry, held);
  }

  private builder(stream: ProxyStream, ts: TypeState): ResponseBuilder {
    return new ResponseBuilder(ts.typeUrl, stream.encoding, this.onProtoFallback);
  }

  /** A body the protobuf schema cannot carry exactly goes as JSON; said once per type and 10 s (a schema gap to fix). */
  private readonly onProtoFallback = (typeUrl: string, name: string, why: string): void => {
    this.fallbackLog.record(typeUrl, { typeUrl, resource: name, why });
  };

  // --- backpressure -------------------------------------------------------------------------------------

  /** Whether a response for `ts` may be written now: the transport has taken what it was given and the type is not owed too many answers. */
  private canSend(stream: ProxyStream, ts: TypeState): boolean {
    return stream.queuedBytes < this.limits.maxQueuedBytes && ts.pending.length < this.limits.maxUnackedResponses;
  }

  /** Remembers that `ts` needs a full comparison once the stream can take it (the earliest change it carries). */
  private markCoalesced(ts: TypeState, changedAt: number | null): void {
    if (ts.coalescedSince === undefined) ts.coalescedSince = changedAt;
    else if (changedAt !== null && (ts.coalescedSince === null || changedAt < ts.coalescedSince)) ts.coalescedSince = changedAt;
  }

  /**
   * Sends every coalesced type the stream can take now: one response per type with the difference between what
   * the proxy holds (sent and not NACKed) and the view's current snapshot.
   */
  private flushCoalesced(stream: ProxyStream): void {
    if (stream.flushing || stream.closed) return;
    stream.flushing = true;
    try {
      let waiting = false;
      for (const ts of stream.types.values()) {
        if (!ts.coalesced) continue;
        if (!this.canSend(stream, ts)) {
          // A first response waiting behind another type's initial sync is normal; a change that cannot go out is a stall.
          if (!ts.owesFirstResponse) waiting = true;
          continue;
        }
        const changedAt = ts.coalescedSince ?? null;
        ts.coalescedSince = undefined;
        const out = this.builder(stream, ts);
        const snapshot = this.viewSnapshot(stream.view, ts.typeUrl);
        if (ts.subscribed === '*') this.collectWildcard(ts, snapshot, out);
        else this.collectNames(ts, snapshot, ts.subscribed, out);
        if (out.size > 0 || ts.owesFirstResponse) {
          const initial = ts.owesFirstResponse;
          ts.owesFirstResponse = false;
          this.send(stream, ts, out, String(this.source.generation()), changedAt, initial);
        }
      }
      if (waiting && !stream.stalled) {
        stream.stalled = true;
        this.metrics?.stalled?.(stream.proxy.kind);
        this.log.debug({ proxy: stream.proxy.id, queuedBytes: stream.queuedBytes }, 'xDS stream cannot take pushes now; coalescing them');
      } else if (!waiting) {
        stream.stalled = false;
      }
    } finally {
      stream.flushing = false;
    }
  }

  private send(stream: ProxyStream, ts: TypeState, out: ResponseBuilder, systemVersion: string, changedAt: number | null, initial = false): PendingResponse {
    const nonce = (++this.nonceSeq).toString(36);
    const encoded = encodeDeltaResponse({
      systemVersionInfo: systemVersion,
      typeUrl: ts.typeUrl,
      resources: out.resources,
      removed: out.removed,
      nonce,
    });
    const now = Date.now();
    stream.noteWrite(encoded.length, now);
    stream.call.write(encoded, () => {
      stream.noteWritten();
      // The transport has taken the initial response: the server no longer holds its buffer, so its slot is free.
      if (initial) this.releaseSlot(stream, ts);
      if (!stream.closed && !stream.flushing) this.flushCoalesced(stream);
    });
    const p: PendingResponse = { nonce, systemVersion, changedAt, prev: out.prev, sentAt: now, initial };
    ts.pending.push(p);
    ts.versionSent = systemVersion;
    this.metrics?.pushed(ts.typeUrl, out.size);
    return p;
  }

  // --- pushes -------------------------------------------------------------------------------------------

  private onSourceChange(changedAt: number): void {
    if (this.closed) return;
    if (this.pendingChangedAt === null || changedAt < this.pendingChangedAt) this.pendingChangedAt = changedAt;
    const now = Date.now();
    if (this.timer) clearTimeout(this.timer);
    else this.burstStartedAt = now;
    const deadline = this.burstStartedAt + this.debounceMs * XDS_DEBOUNCE_MAX_FACTOR;
    const delay = Math.max(0, Math.min(this.debounceMs, deadline - now));
    this.timer = setTimeout(() => this.flush(), delay);
    this.timer.unref();
  }

  /** One push round: per view and type, diff once, then send each stream what it is subscribed to. */
  private flush(): void {
    this.timer = undefined;
    const changedAt = this.pendingChangedAt;
    this.pendingChangedAt = null;
    if (this.closed) return;
    const started = Date.now();
    const systemVersion = String(this.source.generation());
    let responses = 0;
    let coalesced = 0;
    for (const view of this.views.values()) {
      for (const [typeUrl, prev] of view.snapshots) {
        let next: ResourceSet;
        try {
          next = this.source.resources(view.key, typeUrl);
        } catch (err) {
          this.log.error({ viewKey: view.key, typeUrl, err }, 'view source failed; keeping the last pushed snapshot');
          continue;
        }
        if (next === prev) continue;
        const diff = diffResourceSets(prev, next);
        view.snapshots.set(typeUrl, next);
        for (const stream of view.streams) {
          const ts = stream.types.get(typeUrl);
          if (!ts || stream.closed) continue;
          try {
            if (ts.coalesced || !this.canSend(stream, ts)) {
              // Not queued: the difference from what it holds goes out in one response once it can take it.
              this.markCoalesced(ts, changedAt);
              this.flushCoalesced(stream);
              coalesced++;
              continue;
            }
            if (this.pushDiff(stream, ts, prev, next, diff, systemVersion, changedAt)) responses++;
          } catch (err) {
            this.failStream(stream.call, stream, err);
          }
        }
      }
    }
    this.log.debug({ systemVersion, responses, coalesced, durationMs: Date.now() - started }, 'xDS push round');
  }

  private pushDiff(
    stream: ProxyStream,
    ts: TypeState,
    prev: ResourceSet,
    next: ResourceSet,
    diff: ResourceDiff,
    systemVersion: string,
    changedAt: number | null,
  ): boolean {
    const out = this.builder(stream, ts);
    if (ts.subscribed === '*') {
      // Normally the stream is in step with `prev`; if not (it subscribed in an odd order), diff its own base.
      const d = ts.base === prev ? diff : diffResourceSets(ts.base ?? EMPTY_RESOURCE_SET, next);
      for (const entry of d.changed) this.collectOne(entry, ts.held(entry.name), out);
      for (const name of d.removed) {
        const held = ts.held(name);
        if (held !== undefined) out.remove(name, held);
      }
      // Every name in the diff is now held at its `next` version (sent, or already there), so rebasing onto
      // `next` just drops their deviations.
      ts.base = next;
      for (const entry of d.changed) ts.delta.delete(entry.name);
      for (const name of d.removed) ts.delta.delete(name);
    } else {
      const explicit = ts.subscribed;
      const touched = diff.changed.length + diff.removed.length;
      if (touched <= explicit.size) {
        const names: string[] = [];
        for (const entry of diff.changed) if (explicit.has(entry.name)) names.push(entry.name);
        for (const name of diff.removed) if (explicit.has(name)) names.push(name);
        this.collectNames(ts, next, names, out);
      } else {
        this.collectNames(ts, next, explicit, out);
      }
    }
    if (out.size === 0) return false;
    this.send(stream, ts, out, systemVersion, changedAt);
    return true;
  }
}
