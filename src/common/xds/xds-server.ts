/**
 * The controller side of Strait's delta xDS (DESIGN.md §5): serves whatever a ViewSource holds to every
 * connected proxy, sending only differences, and tracks what each proxy holds, has ACKed and has NACKed.
 *
 * Invariants:
 * - Every stream reads exactly one view (decided once, at connect). All streams of a view are in step with
 *   the view's last pushed snapshot, apart from a per-stream `delta` of deviations (NACKed resources, or
 *   everything for explicit subscriptions): no stream holds a copy of a snapshot.
 * - A snapshot is diffed against the previous one once per push round and each resource is encoded once
 *   (cached by ResourceEntry identity), however many streams receive it.
 */
import * as grpc from '@grpc/grpc-js';
import { StraitError, errorMessage, isStraitError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { EMPTY_RESOURCE_SET, diffResourceSets, type ResourceDiff } from './resource-diff.js';
import {
  PROXY_KINDS,
  type NackInfo,
  type ProxyInfo,
  type ProxyKind,
  type ResourceEntry,
  type ResourceSet,
  type SyncStatus,
  type TypeSyncStatus,
  type ViewSource,
  type XdsMetrics,
} from './types.js';
import {
  encodedResourceField,
  loadXdsProto,
  type OutgoingDeltaResponse,
  type WireDeltaRequest,
} from './xds-proto.js';

export const DEFAULT_XDS_DEBOUNCE_MS = 100;
/** A steady stream of changes still pushes after this many debounce periods. */
export const XDS_DEBOUNCE_MAX_FACTOR = 10;
/** Responses a proxy may leave unanswered per type before the oldest are assumed applied. */
const MAX_PENDING_RESPONSES = 64;
/**
 * At most this many large initial syncs (see DEFAULT_XDS_LARGE_SYNC_RESOURCES) are unacknowledged at once; other
 * proxies' first subscriptions wait their turn. Each is encoded into its own buffer (megabytes for a big mesh), so
 * a thousand ztunnels starting together would otherwise hold gigabytes at once.
 */
export const DEFAULT_XDS_MAX_CONCURRENT_INITIAL_SYNCS = 32;
/** A first subscription whose snapshot holds at least this many resources takes an initial-sync slot. */
export const DEFAULT_XDS_LARGE_SYNC_RESOURCES = 500;
/** A slot whose response is not answered within this time is released anyway (a stuck proxy does not block others). */
export const XDS_INITIAL_SYNC_SLOT_TIMEOUT_MS = 10_000;

export interface XdsServerOptions {
  source: ViewSource;
  /** Checks the stream's credentials once its node is known. Throw StraitError: STRAIT_ERR_AUTH_TOKEN → UNAUTHENTICATED, any other code → PERMISSION_DENIED. */
  authenticate?: (metadata: grpc.Metadata, proxy: ProxyInfo) => void;
  debounceMs?: number;
  logger?: Logger;
  metrics?: XdsMetrics;
  /** Large initial syncs in flight at once (default DEFAULT_XDS_MAX_CONCURRENT_INITIAL_SYNCS). */
  maxConcurrentInitialSyncs?: number;
  /** Resources from which a first subscription counts as large (default DEFAULT_XDS_LARGE_SYNC_RESOURCES). */
  largeSyncResources?: number;
}

type DuplexCall = grpc.ServerDuplexStream<WireDeltaRequest, OutgoingDeltaResponse>;

interface PendingResponse {
  nonce: string;
  systemVersion: string;
  /** Timestamp of the config change that caused it; null for initial sync / subscribe responses. */
  changedAt: number | null;
  /** For every name in the response, what the proxy held before it (undefined: nothing). */
  prev: Map<string, string | undefined>;
  /** Holds an initial-sync slot until answered (or its timer fires). */
  slot?: NodeJS.Timeout;
}

/** What one stream holds of one type. */
class TypeState {
  subscribed: '*' | Set<string>;
  /** Wildcard: the snapshot the proxy is in step with, apart from `delta`. Explicit: null. */
  base: ResourceSet | null = null;
  /** Wildcard: deviations from `base` (null: not held). Explicit: everything held. */
  delta = new Map<string, string | null>();
  pending: PendingResponse[] = [];
  versionSent = '';
  versionAcked = '';
  lastAckedNonce: string | undefined;
  lastNack: NackInfo | undefined;

  constructor(
    readonly typeUrl: string,
    subscribed: '*' | Set<string>,
  ) {
    this.subscribed = subscribed;
  }

  isSubscribed(name: string): boolean {
    return this.subscribed === '*' || this.subscribed.has(name);
  }

  held(name: string): string | undefined {
    const d = this.delta.get(name);
    if (d !== undefined) return d ?? undefined;
    return this.base?.get(name)?.version;
  }

  setHeld(name: string, version: string | undefined): void {
    if (this.base) {
      if (this.base.get(name)?.version === version) this.delta.delete(name);
      else this.delta.set(name, version ?? null);
    } else if (version === undefined) {
      this.delta.delete(name);
    } else {
      this.delta.set(name, version);
    }
  }

  /** Everything held, as a plain map (mode switches only: O(held)). */
  heldMap(): Map<string, string> {
    const out = new Map<string, string>();
    if (this.base) for (const [name, e] of this.base) out.set(name, e.version);
    for (const [name, v] of this.delta) {
      if (v === null) out.delete(name);
      else out.set(name, v);
    }
    return out;
  }

  heldCount(): number {
    if (!this.base) return this.delta.size;
    let n = this.base.size;
    for (const [name, v] of this.delta) {
      const inBase = this.base.has(name);
      if (v === null && inBase) n--;
      else if (v !== null && !inBase) n++;
    }
    return n;
  }
}

class ProxyStream {
  readonly types = new Map<string, TypeState>();
  /** First requests per type waiting for an initial-sync slot (in arrival order, with what followed them). */
  readonly deferred = new Map<string, WireDeltaRequest[]>();
  /** Has had an initial-sync slot: its other large types go to the front of the queue, so proxies finish one by one. */
  hadSlot = false;
  readonly connectedAt = new Date();
  closed = false;
  constructor(
    readonly call: DuplexCall,
    readonly proxy: ProxyInfo,
    readonly view: ViewState,
    readonly allowedTypes: ReadonlySet<string>,
    readonly peer: string,
  ) {}
}

class ViewState {
  readonly streams = new Set<ProxyStream>();
  /** Last snapshot pushed to (or read for) this view, per type URL. */
  readonly snapshots = new Map<string, ResourceSet>();
  constructor(readonly key: string) {}
}

/** A response being assembled for one stream. */
class ResponseBuilder {
  readonly resources: Buffer[] = [];
  readonly removed: string[] = [];
  readonly prev = new Map<string, string | undefined>();
  get size(): number {
    return this.resources.length + this.removed.length;
  }
}

export class XdsServer {
  private readonly source: ViewSource;
  private readonly authenticate: XdsServerOptions['authenticate'];
  private readonly debounceMs: number;
  private readonly log: Logger;
  private readonly metrics: XdsMetrics | undefined;
  private readonly views = new Map<string, ViewState>();
  private readonly streams = new Set<ProxyStream>();
  private readonly unsubscribe: () => void;
  private nonceSeq = 0;
  private timer: NodeJS.Timeout | undefined;
  private burstStartedAt = 0;
  private pendingChangedAt: number | null = null;
  private closed = false;
  private readonly maxInitialSyncs: number;
  private readonly largeSyncResources: number;
  private slotsInUse = 0;
  private readonly slotQueue: Array<{ stream: ProxyStream; typeUrl: string }> = [];

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
    this.maxInitialSyncs = maxInitial;
    this.largeSyncResources = large;
    this.source = opts.source;
    this.authenticate = opts.authenticate;
    this.debounceMs = debounceMs;
    this.log = opts.logger ?? silentLogger();
    this.metrics = opts.metrics;
    this.unsubscribe = this.source.onChange((changedAt) => this.onSourceChange(changedAt));
  }

  /** Registers the AggregatedDiscoveryService on a grpc server. */
  addTo(server: grpc.Server): void {
    server.addService(loadXdsProto().serverService, {
      DeltaAggregatedResources: (call: DuplexCall) => this.handleStream(call),
    });
  }

  /** Ends every stream with UNAVAILABLE (proxies reconnect and keep their config meanwhile). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const stream of [...this.streams]) {
      this.endStream(stream.call, grpc.status.UNAVAILABLE, 'the xDS server is shutting down');
      this.detach(stream);
    }
  }

  /** One entry per connected stream, for /debug/syncz. */
  status(): SyncStatus[] {
    const out: SyncStatus[] = [];
    for (const stream of this.streams) {
      const types: Record<string, TypeSyncStatus> = {};
      for (const [typeUrl, ts] of stream.types) {
        const t: TypeSyncStatus = {
          subscribed: ts.subscribed === '*' ? '*' : [...ts.subscribed].sort(),
          versionSent: ts.versionSent,
          versionAcked: ts.versionAcked,
          resourcesHeld: ts.heldCount(),
        };
        if (ts.lastAckedNonce !== undefined) t.lastAckedNonce = ts.lastAckedNonce;
        if (ts.lastNack) t.lastNack = { ...ts.lastNack };
        const pending = ts.pending[ts.pending.length - 1];
        if (pending) t.pendingNonce = pending.nonce;
        types[typeUrl] = t;
      }
      out.push({
        proxy: { ...stream.proxy },
        viewKey: stream.view.key,
        connectedAt: stream.connectedAt.toISOString(),
        peer: stream.peer,
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
    let stream: ProxyStream | undefined;
    const done = () => {
      if (stream) this.detach(stream);
    };
    call.on('data', (req: WireDeltaRequest) => {
      if (stream?.closed || call.writableEnded) return;
      try {
        if (!stream) {
          stream = this.accept(call, req);
          if (!stream) return;
        }
        this.handleRequest(stream, req);
      } catch (err) {
        this.failStream(call, stream, err);
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
  private accept(call: DuplexCall, req: WireDeltaRequest): ProxyStream | undefined {
    const node = req.node;
    if (!node || !node.id) {
      this.endStream(
        call,
        grpc.status.INVALID_ARGUMENT,
        'the first DeltaDiscoveryRequest of a stream must carry node (id, kind, node_name)',
      );
      return undefined;
    }
    if (!(PROXY_KINDS as readonly string[]).includes(node.kind)) {
      this.endStream(
        call,
        grpc.status.INVALID_ARGUMENT,
        `node.kind "${node.kind}" is not one of ${PROXY_KINDS.join(', ')}`,
      );
      return undefined;
    }
    const proxy: ProxyInfo = { id: node.id, kind: node.kind as ProxyKind, nodeName: node.node_name };
    if (node.namespace) proxy.namespace = node.namespace;
    if (node.name) proxy.name = node.name;
    const peer = call.getPeer();

    if (this.authenticate) {
      try {
        this.authenticate(call.metadata, proxy);
      } catch (err) {
        const code = isStraitError(err, 'STRAIT_ERR_AUTH_TOKEN')
          ? grpc.status.UNAUTHENTICATED
          : isStraitError(err)
            ? grpc.status.PERMISSION_DENIED
            : grpc.status.INTERNAL;
        this.log.warn({ proxy: proxy.id, peer, err: errorMessage(err) }, 'xDS stream refused by authentication');
        this.endStream(call, code, errorMessage(err));
        return undefined;
      }
    }
    let viewKey: string;
    let allowed: ReadonlySet<string>;
    try {
      viewKey = this.source.viewKeyFor(proxy);
      allowed = new Set(this.source.typeUrlsFor(proxy));
    } catch (err) {
      const code = isStraitError(err, 'STRAIT_ERR_XDS_PROTOCOL')
        ? grpc.status.INVALID_ARGUMENT
        : isStraitError(err)
          ? grpc.status.PERMISSION_DENIED
          : grpc.status.INTERNAL;
      this.log.warn({ proxy: proxy.id, peer, err: errorMessage(err) }, 'xDS stream refused by the view source');
      this.endStream(call, code, errorMessage(err));
      return undefined;
    }

    let view = this.views.get(viewKey);
    if (!view) {
      view = new ViewState(viewKey);
      this.views.set(viewKey, view);
    }
    const stream = new ProxyStream(call, proxy, view, allowed, peer);
    view.streams.add(stream);
    this.streams.add(stream);
    this.metrics?.proxyConnected(proxy.kind);
    this.log.info({ proxy: proxy.id, kind: proxy.kind, node: proxy.nodeName, viewKey, peer }, 'proxy connected');
    // Headers now, so the client learns the stream was accepted before the first response.
    call.sendMetadata(new grpc.Metadata());
    return stream;
  }

  private detach(stream: ProxyStream): void {
    if (stream.closed) return;
    stream.closed = true;
    stream.deferred.clear();
    for (const ts of stream.types.values()) for (const p of ts.pending) this.releaseSlot(p);
    this.streams.delete(stream);
    stream.view.streams.delete(stream);
    if (stream.view.streams.size === 0) this.views.delete(stream.view.key);
    this.metrics?.proxyDisconnected(stream.proxy.kind);
    this.log.info({ proxy: stream.proxy.id, viewKey: stream.view.key }, 'proxy disconnected');
  }

  private endStream(call: DuplexCall, code: grpc.status, details: string): void {
    if (call.destroyed || call.writableEnded) return;
    const err = Object.assign(new Error(details), { code, details });
    call.emit('error', err);
  }

  private failStream(call: DuplexCall, stream: ProxyStream | undefined, err: unknown): void {
    if (isStraitError(err, 'STRAIT_ERR_XDS_PROTOCOL')) {
      this.log.warn({ proxy: stream?.proxy.id, err: err.message }, 'xDS protocol error; ending the stream');
      this.endStream(call, grpc.status.INVALID_ARGUMENT, err.message);
    } else {
      this.log.error({ proxy: stream?.proxy.id, err }, 'xDS stream failed');
      this.endStream(call, grpc.status.INTERNAL, errorMessage(err));
    }
    if (stream) this.detach(stream);
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
      waiting.push(req); // handled in order once the first one gets its slot
      return;
    }
    const ts = stream.types.get(typeUrl);
    if (!ts) {
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
      this.changeSubscription(stream, ts, req.resource_names_subscribe, req.resource_names_unsubscribe);
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
    const out = new ResponseBuilder();
    if (wildcard) {
      for (const [name, version] of Object.entries(initial)) if (version) ts.delta.set(name, version);
      this.collectWildcard(ts, snapshot, out);
    } else {
      for (const name of names) {
        const version = initial[name];
        if (version) ts.delta.set(name, version);
      }
      this.collectNames(ts, snapshot, names, out);
    }
    // Always answer the first request, even with nothing, so the proxy knows it is in sync.
    const p = this.send(stream, ts, out, String(this.source.generation()), null);
    if (out.size >= this.largeSyncResources) {
      stream.hadSlot = true;
      this.takeSlot(p);
    }
  }

  // --- initial-sync slots -------------------------------------------------------------------------------

  private mustWaitForSlot(stream: ProxyStream, typeUrl: string): boolean {
    if (this.slotQueue.length === 0 && this.slotsInUse < this.maxInitialSyncs) return false;
    return this.viewSnapshot(stream.view, typeUrl).size >= this.largeSyncResources;
  }

  private takeSlot(p: PendingResponse): void {
    this.slotsInUse++;
    p.slot = setTimeout(() => this.releaseSlot(p), XDS_INITIAL_SYNC_SLOT_TIMEOUT_MS);
    p.slot.unref();
  }

  private releaseSlot(p: PendingResponse): void {
    if (p.slot === undefined) return;
    clearTimeout(p.slot);
    p.slot = undefined;
    this.slotsInUse--;
    while (!this.closed && this.slotsInUse < this.maxInitialSyncs && this.slotQueue.length > 0) {
      const { stream, typeUrl } = this.slotQueue.shift()!;
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
    }
  }

  private changeSubscription(
    stream: ProxyStream,
    ts: TypeState,
    subscribe: readonly string[],
    unsubscribe: readonly string[],
  ): void {
    const snapshot = this.viewSnapshot(stream.view, ts.typeUrl);
    const out = new ResponseBuilder();
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
      this.collectNames(ts, snapshot, keep, out);
    } else if (subscribe.includes('*')) {
      ts.subscribed = '*';
      this.collectWildcard(ts, snapshot, out);
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
      this.collectNames(ts, snapshot, added, out);
    }
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
    // Responses before this one that the proxy did not answer: it went past them, so they were applied.
    for (const skipped of ts.pending.splice(0, idx)) this.releaseSlot(skipped);
    const p = ts.pending.shift()!;
    this.releaseSlot(p);
    const error = req.error_detail;
    if (!error) {
      ts.versionAcked = p.systemVersion;
      ts.lastAckedNonce = nonce;
      if (p.changedAt !== null) this.metrics?.acked(ts.typeUrl, Math.max(0, Date.now() - p.changedAt));
      return;
    }
    const message = error.message || `NACK with code ${error.code} and no message`;
    ts.lastNack = { nonce, message, at: new Date().toISOString() };
    this.metrics?.nacked(ts.typeUrl);
    this.log.warn(
      { proxy: stream.proxy.id, typeUrl: ts.typeUrl, nonce, version: p.systemVersion, error: message },
      'proxy rejected a config push (NACK); it keeps its previous resources',
    );
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
        out.resources.push(encodedResourceField(entry));
        out.prev.set(name, held);
        ts.setHeld(name, entry.version);
      } else if (held !== undefined) {
        out.removed.push(name);
        out.prev.set(name, held);
        ts.setHeld(name, undefined);
      }
    }
  }

  /** Brings a wildcard subscription fully in step with `snapshot` (O(snapshot + held)). */
  private collectWildcard(ts: TypeState, snapshot: ResourceSet, out: ResponseBuilder): void {
    const held = ts.heldMap();
    for (const entry of snapshot.values()) this.collectOne(ts, entry, held.get(entry.name), out);
    for (const [name, version] of held) {
      if (!snapshot.has(name)) {
        out.removed.push(name);
        out.prev.set(name, version);
      }
    }
    ts.base = snapshot;
    ts.delta = new Map();
  }

  private collectOne(ts: TypeState, entry: ResourceEntry, held: string | undefined, out: ResponseBuilder): void {
    if (held === entry.version) return;
    out.resources.push(encodedResourceField(entry));
    out.prev.set(entry.name, held);
  }

  private send(
    stream: ProxyStream,
    ts: TypeState,
    out: ResponseBuilder,
    systemVersion: string,
    changedAt: number | null,
  ): PendingResponse {
    const nonce = (++this.nonceSeq).toString(36);
    const response: OutgoingDeltaResponse = {
      systemVersionInfo: systemVersion,
      typeUrl: ts.typeUrl,
      resources: out.resources,
      removed: out.removed,
      nonce,
    };
    stream.call.write(response);
    const p: PendingResponse = { nonce, systemVersion, changedAt, prev: out.prev };
    ts.pending.push(p);
    if (ts.pending.length > MAX_PENDING_RESPONSES) this.releaseSlot(ts.pending.shift()!);
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
            if (this.pushDiff(stream, ts, prev, next, diff, systemVersion, changedAt)) responses++;
          } catch (err) {
            this.failStream(stream.call, stream, err);
          }
        }
      }
    }
    this.log.debug({ systemVersion, responses, durationMs: Date.now() - started }, 'xDS push round');
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
    const out = new ResponseBuilder();
    if (ts.subscribed === '*') {
      // Normally the stream is in step with `prev`; if not (it subscribed in an odd order), diff its own base.
      const d = ts.base === prev ? diff : diffResourceSets(ts.base ?? EMPTY_RESOURCE_SET, next);
      for (const entry of d.changed) this.collectOne(ts, entry, ts.held(entry.name), out);
      for (const name of d.removed) {
        const held = ts.held(name);
        if (held !== undefined) {
          out.removed.push(name);
          out.prev.set(name, held);
        }
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
