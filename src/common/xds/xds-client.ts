/**
 * The proxy side of Strait's delta xDS (DESIGN.md §5): one ADS stream to the controller, one subscription
 * per type URL, ACK/NACK of every response, reconnects with capped exponential backoff and jitter.
 *
 * Invariants:
 * - `held` changes only when a subscription's `apply` accepted a response, so it is exactly what the proxy
 *   serves; it survives disconnects (proxies keep their last good config) and is sent back on reconnect as
 *   initial_resource_versions, so the controller sends only the difference.
 * - Each response is answered exactly once, in order: ACK if apply returned, NACK with its message if it threw.
 * - What a controller can make it hold is bounded: a message over maxReceiveBytes ends the stream before it is
 *   read in full (gRPC's receive limit), a response with too many resources or too long a name, or one that
 *   would make a type hold more than maxResourcesHeld, is NACKed with the reason and not applied; requests the
 *   controller does not read pile up to MAX_UNSENT_REQUESTS, then the stream is replaced.
 */
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { StraitError, errorMessage } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type { ProxyInfo, ResourceEntry, XdsUpdate } from './types.js';
import {
  ACCEPT_PACKED_DEFLATE,
  ACCEPT_PROTO_BODIES,
  decodePackedResources,
  loadXdsProto,
  type WireDeltaRequest,
  type WireDeltaResponse,
  type WireResource,
} from './xds-proto.js';
import { decodeBody } from './body-codec.js';

export const DEFAULT_XDS_INITIAL_BACKOFF_MS = 200;
export const DEFAULT_XDS_MAX_BACKOFF_MS = 10_000;
/** Ten times a full Workload snapshot of a 10,000-pod mesh (about 5 MiB) in one response; gRPC's default is 4 MiB. */
export const DEFAULT_XDS_MAX_RECEIVE_BYTES = 64 * 1024 * 1024;
/** Resources (added + removed) in one response: 16 times a 10,000-pod mesh's largest type. */
export const DEFAULT_XDS_MAX_RESOURCES_PER_RESPONSE = 160_000;
/** Resources held per type, all responses together. */
export const DEFAULT_XDS_MAX_RESOURCES_HELD = 160_000;
/** Bytes of a resource name or version (Kubernetes names are at most 253 bytes; ours join two or three). */
export const DEFAULT_XDS_MAX_NAME_BYTES = 1024;
/** What a proxy asks the controller for (Node.accept): protobuf bodies and packed snapshots. */
export const DEFAULT_XDS_ACCEPT: readonly string[] = [ACCEPT_PROTO_BODIES, ACCEPT_PACKED_DEFLATE];
/** Requests (ACKs, subscriptions) written and not yet taken by the transport before the stream is replaced. */
export const MAX_UNSENT_REQUESTS = 1_000;

export interface XdsClientLimits {
  maxReceiveBytes: number;
  maxResourcesPerResponse: number;
  maxResourcesHeld: number;
  maxNameBytes: number;
}

export interface XdsSubscription {
  typeUrl: string;
  /** Explicit resource names; omitted = wildcard (everything of the type the view holds). */
  names?: string[];
  /** Applies one response. Throw to NACK it with the error's message; the held state is then unchanged. */
  apply: (update: XdsUpdate) => void;
}

export interface XdsClientOptions {
  address: string;
  credentials: grpc.ChannelCredentials;
  /** Called on every (re)connect, so a rotated token is picked up. */
  metadata?: () => grpc.Metadata | Record<string, string>;
  node: ProxyInfo;
  subscriptions: XdsSubscription[];
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  logger?: Logger;
  /** Extra gRPC channel options (merged over Strait's defaults). */
  channelOptions?: grpc.ChannelOptions;
  /** What a response may make the proxy hold (defaults DEFAULT_XDS_MAX_*). */
  limits?: Partial<XdsClientLimits>;
  /**
   * Encodings asked for in Node.accept (default DEFAULT_XDS_ACCEPT). [] asks for JSON bodies only, as proxies before
   * the field did. Whatever is asked, every encoding the controller sends is read (a controller that does not know
   * the field sends JSON).
   */
  accept?: readonly string[];
}

export interface XdsClientEvents {
  /** The controller accepted the stream. */
  connected: [];
  /** The stream ended; a reconnect is scheduled unless the client was closed. */
  disconnected: [error: StraitError];
  /** A response was applied and ACKed. */
  update: [typeUrl: string, update: XdsUpdate];
  /** A response was rejected and NACKed. */
  nack: [typeUrl: string, error: Error, nonce: string];
}

type DuplexCall = grpc.ClientDuplexStream<Partial<WireDeltaRequest>, WireDeltaResponse>;

interface SubscriptionState {
  readonly typeUrl: string;
  /** null = wildcard. */
  names: Set<string> | null;
  readonly apply: XdsSubscription['apply'];
  readonly held: Map<string, string>;
}

export class XdsClient extends EventEmitter<XdsClientEvents> {
  private readonly opts: XdsClientOptions;
  private readonly log: Logger;
  private readonly subs = new Map<string, SubscriptionState>();
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly limits: XdsClientLimits;
  private client: grpc.Client | undefined;
  private call: DuplexCall | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private isConnected = false;
  private started = false;
  private closed = false;

  constructor(opts: XdsClientOptions) {
    super();
    if (opts.subscriptions.length === 0) {
      throw new StraitError('STRAIT_ERR_CONFIG', 'XdsClient needs at least one subscription (typeUrl + apply)');
    }
    if (!opts.node.id) throw new StraitError('STRAIT_ERR_CONFIG', 'XdsClient node.id must not be empty');
    this.initialBackoffMs = opts.initialBackoffMs ?? DEFAULT_XDS_INITIAL_BACKOFF_MS;
    this.maxBackoffMs = opts.maxBackoffMs ?? DEFAULT_XDS_MAX_BACKOFF_MS;
    if (!(this.initialBackoffMs > 0) || !(this.maxBackoffMs >= this.initialBackoffMs)) {
      throw new StraitError(
        'STRAIT_ERR_CONFIG',
        `xDS backoff must satisfy 0 < initialBackoffMs <= maxBackoffMs (got ${this.initialBackoffMs}, ${this.maxBackoffMs})`,
      );
    }
    for (const s of opts.subscriptions) {
      if (this.subs.has(s.typeUrl)) {
        throw new StraitError('STRAIT_ERR_CONFIG', `XdsClient has two subscriptions for ${s.typeUrl}; merge them`);
      }
      this.subs.set(s.typeUrl, {
        typeUrl: s.typeUrl,
        names: s.names ? new Set(s.names) : null,
        apply: s.apply,
        held: new Map(),
      });
    }
    this.opts = opts;
    this.log = opts.logger ?? silentLogger();
    this.limits = {
      maxReceiveBytes: DEFAULT_XDS_MAX_RECEIVE_BYTES,
      maxResourcesPerResponse: DEFAULT_XDS_MAX_RESOURCES_PER_RESPONSE,
      maxResourcesHeld: DEFAULT_XDS_MAX_RESOURCES_HELD,
      maxNameBytes: DEFAULT_XDS_MAX_NAME_BYTES,
      ...opts.limits,
    };
    for (const [k, v] of Object.entries(this.limits)) {
      if (!Number.isInteger(v) || v < 1) throw new StraitError('STRAIT_ERR_CONFIG', `XdsClient limit ${k} must be an integer >= 1 (got ${v})`);
    }
  }

  /** Opens the stream (and keeps reopening it until close()). */
  start(): void {
    if (this.started) return;
    this.started = true;
    const { Client } = loadXdsProto();
    this.client = new Client(this.opts.address, this.opts.credentials, {
      'grpc.max_receive_message_length': this.limits.maxReceiveBytes,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      ...this.opts.channelOptions,
    });
    this.connect();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const call = this.call;
    this.call = undefined;
    call?.cancel();
    this.client?.close();
    this.isConnected = false;
  }

  get connected(): boolean {
    return this.isConnected;
  }

  /** name → version of what the proxy holds (applied and ACKed) for a type. */
  held(typeUrl: string): ReadonlyMap<string, string> {
    const sub = this.subs.get(typeUrl);
    if (!sub) throw new StraitError('STRAIT_ERR_CONFIG', `XdsClient has no subscription for ${typeUrl}`);
    return sub.held;
  }

  /** Adds names to an explicit subscription; the controller sends them. No-op for wildcard subscriptions. */
  subscribe(typeUrl: string, names: readonly string[]): void {
    const sub = this.sub(typeUrl);
    if (!sub.names) return;
    const added = names.filter((n) => !sub.names!.has(n));
    if (added.length === 0) return;
    for (const n of added) sub.names.add(n);
    this.write({ type_url: typeUrl, resource_names_subscribe: added });
  }

  /** Removes names from an explicit subscription and drops what was held for them (apply sees them removed). */
  unsubscribe(typeUrl: string, names: readonly string[]): void {
    const sub = this.sub(typeUrl);
    if (!sub.names) return;
    const gone = names.filter((n) => sub.names!.has(n));
    if (gone.length === 0) return;
    for (const n of gone) sub.names.delete(n);
    this.write({ type_url: typeUrl, resource_names_unsubscribe: gone });
    const removed = gone.filter((n) => sub.held.has(n));
    if (removed.length === 0) return;
    try {
      sub.apply({ added: [], removed, systemVersion: '' });
    } catch (err) {
      this.log.warn({ typeUrl, err: errorMessage(err) }, 'apply failed while dropping unsubscribed resources');
    }
    for (const n of removed) sub.held.delete(n);
  }

  // --- stream ---------------------------------------------------------------------------------------------

  private sub(typeUrl: string): SubscriptionState {
    const sub = this.subs.get(typeUrl);
    if (!sub) throw new StraitError('STRAIT_ERR_CONFIG', `XdsClient has no subscription for ${typeUrl}`);
    return sub;
  }

  private metadata(): grpc.Metadata {
    const md = this.opts.metadata?.();
    if (!md) return new grpc.Metadata();
    if (md instanceof grpc.Metadata) return md;
    const out = new grpc.Metadata();
    for (const [k, v] of Object.entries(md)) out.set(k, v);
    return out;
  }

  private connect(): void {
    if (this.closed || !this.client) return;
    let metadata: grpc.Metadata;
    try {
      metadata = this.metadata();
    } catch (err) {
      this.onStreamEnd(undefined, new StraitError('STRAIT_ERR_AUTH_TOKEN', `could not build xDS credentials: ${errorMessage(err)}`, { cause: err }));
      return;
    }
    const call = (this.client as unknown as Record<string, (md: grpc.Metadata) => DuplexCall>)['DeltaAggregatedResources']!.call(
      this.client,
      metadata,
    );
    this.call = call;
    let ended = false;
    const end = (err: StraitError) => {
      if (ended) return;
      ended = true;
      this.onStreamEnd(call, err);
    };
    call.on('metadata', () => this.onConnected(call));
    call.on('data', (res: WireDeltaResponse) => {
      if (this.call !== call) return;
      this.onConnected(call);
      this.attempt = 0; // only a stream that delivers config resets the backoff
      this.onResponse(res);
    });
    call.on('error', (err: grpc.ServiceError) => end(streamError(this.opts.address, err, this.limits.maxReceiveBytes)));
    call.on('end', () =>
      end(new StraitError('STRAIT_ERR_XDS_CONNECT', `the controller at ${this.opts.address} ended the xDS stream`)),
    );

    let first = true;
    for (const sub of this.subs.values()) {
      const req: Partial<WireDeltaRequest> = {
        type_url: sub.typeUrl,
        resource_names_subscribe: sub.names ? [...sub.names] : [],
        initial_resource_versions: Object.fromEntries(sub.held),
      };
      if (first) {
        req.node = {
          id: this.opts.node.id,
          kind: this.opts.node.kind,
          node_name: this.opts.node.nodeName,
          namespace: this.opts.node.namespace ?? '',
          name: this.opts.node.name ?? '',
          accept: [...(this.opts.accept ?? DEFAULT_XDS_ACCEPT)],
        };
        first = false;
      }
      call.write(req);
    }
  }

  private onConnected(call: DuplexCall): void {
    if (this.isConnected || this.call !== call) return;
    this.isConnected = true;
    this.log.info({ address: this.opts.address }, 'xDS stream connected');
    this.emit('connected');
  }

  private onStreamEnd(call: DuplexCall | undefined, err: StraitError): void {
    if (call && this.call !== call) return; // an old stream we already replaced or closed
    this.call = undefined;
    const wasConnected = this.isConnected;
    this.isConnected = false;
    if (this.closed) return;
    call?.cancel();
    const delay = this.backoffMs();
    this.log[wasConnected ? 'warn' : 'debug'](
      { address: this.opts.address, err: err.message, retryInMs: delay },
      'xDS stream ended; keeping the last good config and reconnecting',
    );
    this.emit('disconnected', err);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect();
    }, delay);
  }

  /** Capped exponential backoff with "equal jitter": a random delay in [cap/2, cap]. */
  private backoffMs(): number {
    const cap = Math.min(this.maxBackoffMs, this.initialBackoffMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.round(cap / 2 + (Math.random() * cap) / 2);
  }

  private write(req: Partial<WireDeltaRequest>): void {
    // Not connected: the next connect sends the whole subscription with what we hold.
    const call = this.call;
    if (!call) return;
    call.write(req);
    if (call.writableLength > MAX_UNSENT_REQUESTS) {
      // The controller takes nothing we send (it stalls, or floods us faster than it reads our ACKs).
      this.onStreamEnd(call, new StraitError('STRAIT_ERR_XDS_CONNECT', `the controller at ${this.opts.address} has not read this proxy's last ${call.writableLength} requests; reconnecting`));
    }
  }

  /** Why a response must be refused before it is applied (too many resources, too long a name, too much held), or undefined. */
  private overLimits(sub: SubscriptionState, res: WireDeltaResponse, resources: readonly WireResource[], resourceCount: number): string | undefined {
    const l = this.limits;
    const count = resourceCount + res.removed_resources.length;
    if (count > l.maxResourcesPerResponse) {
      return `the response carries ${count} resources and removals; this proxy accepts at most ${l.maxResourcesPerResponse} per response`;
    }
    let adding = 0;
    for (const r of resources) {
      if (Buffer.byteLength(r.name, 'utf8') > l.maxNameBytes || Buffer.byteLength(r.version, 'utf8') > l.maxNameBytes) {
        return `resource "${r.name.slice(0, 60)}…" has a name or version longer than ${l.maxNameBytes} bytes`;
      }
      if (!sub.held.has(r.name)) adding++;
    }
    for (const name of res.removed_resources) {
      if (Buffer.byteLength(name, 'utf8') > l.maxNameBytes) return `removed name "${name.slice(0, 60)}…" is longer than ${l.maxNameBytes} bytes`;
    }
    if (sub.held.size + adding > l.maxResourcesHeld) {
      return `applying it would hold ${sub.held.size + adding} resources of ${res.type_url}; this proxy holds at most ${l.maxResourcesHeld} per type`;
    }
    return undefined;
  }

  private onResponse(res: WireDeltaResponse): void {
    const sub = this.subs.get(res.type_url);
    if (!sub) {
      this.nack(res, new StraitError('STRAIT_ERR_XDS_PROTOCOL', `received type ${res.type_url}, which this proxy did not subscribe to`));
      return;
    }
    let resources = res.resources;
    let packedCount = 0;
    if (res.packed_resources && res.packed_resources.length > 0) {
      try {
        // Inflated at most to the receive limit (what an unpacked response may be), decoded at most to the count limit.
        const room = Math.max(0, this.limits.maxResourcesPerResponse - res.resources.length - res.removed_resources.length);
        const packed = decodePackedResources(res.packed_resources, this.limits.maxReceiveBytes, room);
        resources = [...res.resources, ...packed.resources];
        packedCount = packed.total;
      } catch (err) {
        this.nack(res, err instanceof Error ? err : new Error(String(err)));
        return;
      }
    }
    const over = this.overLimits(sub, res, resources, res.resources.length + packedCount);
    if (over) {
      this.nack(res, new StraitError('STRAIT_ERR_XDS_LIMIT', over));
      return;
    }
    let update: XdsUpdate;
    try {
      const added: ResourceEntry[] = resources.map((r) => ({ name: r.name, version: r.version, body: decodeResourceBody(res.type_url, r) }));
      update = { added, removed: res.removed_resources, systemVersion: res.system_version_info };
      sub.apply(update);
    } catch (err) {
      this.nack(res, err instanceof Error ? err : new Error(String(err)));
      return;
    }
    for (const r of update.added) sub.held.set(r.name, r.version);
    for (const name of update.removed) sub.held.delete(name);
    this.write({ type_url: res.type_url, response_nonce: res.nonce });
    this.emit('update', res.type_url, update);
  }

  private nack(res: WireDeltaResponse, err: Error): void {
    this.log.warn({ typeUrl: res.type_url, nonce: res.nonce, err: err.message }, 'rejecting xDS response (NACK)');
    this.write({
      type_url: res.type_url,
      response_nonce: res.nonce,
      // The controller accepts NACK messages up to 64 KiB.
      error_detail: { code: grpc.status.INVALID_ARGUMENT, message: err.message.slice(0, 16 * 1024) },
    });
    this.emit('nack', res.type_url, err, res.nonce);
  }
}

/** A resource's body: JSON in `body`, or (body empty) the protobuf `proto_body` of resources.proto. */
function decodeResourceBody(typeUrl: string, r: WireResource): unknown {
  if (r.body.length > 0 || !r.proto_body) {
    try {
      return JSON.parse(r.body.toString('utf8'));
    } catch (err) {
      throw new StraitError('STRAIT_ERR_XDS_PROTOCOL', `resource ${r.name} of ${typeUrl} has a malformed JSON body: ${errorMessage(err)}`);
    }
  }
  try {
    return decodeBody(typeUrl, r.proto_body);
  } catch (err) {
    throw new StraitError('STRAIT_ERR_XDS_PROTOCOL', `resource ${r.name} of ${typeUrl} has a malformed protobuf body: ${errorMessage(err)}`);
  }
}

function streamError(address: string, err: grpc.ServiceError, maxReceiveBytes: number): StraitError {
  const code = grpc.status[err.code] ?? String(err.code);
  const details = err.details || err.message;
  if (err.code === grpc.status.RESOURCE_EXHAUSTED && /Received message larger than max/.test(details)) {
    return new StraitError(
      'STRAIT_ERR_XDS_LIMIT',
      `the controller at ${address} sent an xDS response larger than this proxy accepts (${details}; the limit is ${maxReceiveBytes} bytes: raise it with --xds-max-message-size)`,
      { cause: err },
    );
  }
  if (err.code === grpc.status.UNAUTHENTICATED) {
    return new StraitError(
      'STRAIT_ERR_AUTH_TOKEN',
      `the controller at ${address} refused the proxy's credentials (${code}: ${details}); check the node bootstrap token`,
      { cause: err },
    );
  }
  const hint =
    err.code === grpc.status.UNAVAILABLE
      ? '; check the controller is running and STRAIT_XDS_ADDRESS points at it'
      : '';
  return new StraitError('STRAIT_ERR_XDS_CONNECT', `xDS stream to ${address} failed (${code}: ${details})${hint}`, {
    cause: err,
  });
}
