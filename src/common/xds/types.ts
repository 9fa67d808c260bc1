/**
 * The contract between the generic delta-xDS transport (XdsServer / XdsClient) and whatever produces the
 * resources. The transport knows nothing of meshes: a ViewSource decides which view a proxy reads and what
 * is in it; the server only diffs, encodes, pushes and tracks ACKs.
 */

/** Every Strait type URL starts with this, e.g. `type.strait.dev/Workload`. */
export const TYPE_URL_PREFIX = 'type.strait.dev/';

export const PROXY_KINDS = ['ztunnel', 'waypoint', 'debug'] as const;
export type ProxyKind = (typeof PROXY_KINDS)[number];

/** Who is on the other end of a stream; decoded from the `node` of the stream's first request. */
export interface ProxyInfo {
  id: string;
  kind: ProxyKind;
  nodeName: string;
  namespace?: string;
  name?: string;
}

export interface ResourceEntry {
  readonly name: string;
  readonly version: string;
  /** Any JSON-serialisable value; sent as UTF-8 JSON bytes. */
  readonly body: unknown;
}

/**
 * Immutable map per (viewKey, typeUrl). The source REUSES the same ResourceEntry object for unchanged
 * resources across snapshots, so the server can diff two snapshots by object identity/version cheaply.
 * A source must return the very same ResourceSet object while nothing in it changed.
 */
export type ResourceSet = ReadonlyMap<string, ResourceEntry>;

export interface ViewSource {
  /** Which shared view this proxy reads (e.g. all ztunnels share "ztunnel"). Throw StraitError to refuse the proxy (stream ends with PERMISSION_DENIED and the message). */
  viewKeyFor(proxy: ProxyInfo): string;
  /** The type URLs a proxy of this kind may subscribe to; others are a protocol error (NACK-free: the server answers by ending the stream with INVALID_ARGUMENT naming the allowed types). */
  typeUrlsFor(proxy: ProxyInfo): readonly string[];
  /** Current resources of a view. */
  resources(viewKey: string, typeUrl: string): ResourceSet;
  /** Current generation (monotonic number); used as system_version_info. */
  generation(): number;
  /** Called after every change of the source; `changedAt` = ms timestamp of the triggering config change (for push-latency metrics). Returns an unsubscribe function. */
  onChange(listener: (changedAt: number) => void): () => void;
}

/**
 * Metrics hooks; the controller implements them with prom-client. All methods are called synchronously on
 * the push path, so they must be cheap.
 */
export interface XdsMetrics {
  proxyConnected(kind: ProxyKind): void;
  proxyDisconnected(kind: ProxyKind): void;
  /** One response written to one stream; `resources` = resources sent + names removed in it. */
  pushed(typeUrl: string, resources: number): void;
  /**
   * A pushed config change was ACKed. `latencyMs` = ms from the triggering config change (`changedAt`, the
   * earliest of a coalesced burst) to the ACK. Not called for responses no config change caused (initial
   * sync on connect, newly subscribed names).
   */
  acked(typeUrl: string, latencyMs: number): void;
  nacked(typeUrl: string): void;
  /** A stream or request went over a limit and was refused or ended (label: XdsLimitName). */
  limitExceeded?(limit: string): void;
  /** A stream was refused at its start or first request; `reason` e.g. no_token, wrong_token, wrong_node, wrong_kind. */
  refused?(reason: string): void;
  /** A stream stopped taking pushes in time (unread bytes or unanswered responses) and its pushes are being coalesced. */
  stalled?(kind: ProxyKind): void;
  /** A stalled stream was disconnected; `why`: unread (it did not read what was sent) or unanswered (no ACK/NACK). */
  stallDisconnected?(kind: ProxyKind, why: 'unread' | 'unanswered'): void;
}

export interface NackInfo {
  nonce: string;
  message: string;
  /** ISO timestamp. */
  at: string;
}

export interface TypeSyncStatus {
  subscribed: '*' | string[];
  /** system_version_info of the last response sent ('' before any). */
  versionSent: string;
  /** system_version_info of the last response ACKed ('' before any). */
  versionAcked: string;
  lastAckedNonce?: string;
  /** Resources the proxy holds once it ACKs what was sent (NACKed responses are rolled back). */
  resourcesHeld: number;
  lastNack?: NackInfo;
  /** How the proxy answered the latest response it answered: NACK means it still runs the version before it. */
  lastAnswer?: 'ACK' | 'NACK';
  /** Nonce of the latest response not yet ACKed or NACKed. */
  pendingNonce?: string;
  /** Responses sent and not yet answered. */
  unanswered: number;
  /** ISO timestamp of the last ACK of this type. */
  lastAckedAt?: string;
  /** Pushes are being coalesced (the stream could not take them); the difference is sent when it can. */
  coalesced: boolean;
}

/** One connected stream, as shown by /debug/syncz. */
export interface SyncStatus {
  proxy: ProxyInfo;
  viewKey: string;
  /** ISO timestamp. */
  connectedAt: string;
  peer: string;
  /** Bytes handed to the transport that the proxy has not read yet. */
  queuedBytes: number;
  /** ISO timestamp since when the proxy has had something unread or unanswered (null: caught up). */
  stalledSince: string | null;
  /** ISO timestamp of the last ACK on this stream (null: none yet). */
  lastAckAt: string | null;
  types: Record<string, TypeSyncStatus>;
}

/** What an XdsClient subscription receives for one response. */
export interface XdsUpdate {
  added: ResourceEntry[];
  removed: string[];
  systemVersion: string;
}
