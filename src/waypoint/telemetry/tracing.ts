/**
 * Tracing of one request through the waypoint, as Envoy does it in Istio: the request's trace context is read
 * (W3C or B3), a sampling decision is made (the caller's when it made one, else the Telemetry's
 * randomSamplingPercentage), the waypoint's server span gets a new id, and every upstream attempt a client span whose
 * context the attempt's request carries in both W3C and B3 headers. The spans themselves are built when the request
 * is finished (spanSpecs), from what the RequestRecord and the attempts say, so nothing the SDK owns lives for the
 * length of a request.
 */
import type { TracingPolicyResource, TracingProvider } from '../../common/xds/waypoint-resources.js';
import { boundedText } from './access-log.js';
import type { RequestRecord } from './request-record.js';
import { formatResponseFlags } from './response-flags.js';
import type { SpanSpec } from './span-export.js';
import { TRACE_HEADER_NAMES, newSpanId, outgoingTraceHeaders, type IncomingTrace } from './trace-context.js';

/** Istio's default cap on the length of the http.url tag (max_path_tag_length). */
export const DEFAULT_MAX_TAG_LENGTH = 256;
/** Attempts of one request that get a client span; further ones still get ids and headers, not spans. */
export const MAX_TRACED_ATTEMPTS = 32;

/** Who is reporting: Istio's node and workload tags on every span. */
export interface TracingSelf {
  /** Envoy-style node id, e.g. "waypoint~127.0.10.5~waypoint.default~default.svc.cluster.local". */
  nodeId: string;
  /** The waypoint's canonical service (its Gateway's name) and namespace. */
  canonicalService: string;
  canonicalRevision: string;
  namespace: string;
  meshId: string;
  clusterId: string;
}

/** Milliseconds since the epoch with sub-millisecond precision. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * The sampling decision: a B3 debug flag or the caller's decision when it made one (as Envoy honours x-b3-sampled and
 * the traceparent sampled flag), otherwise `random() * 100 < percentage` (percentage 0..100; 0 never, 100 always).
 */
export function decideSampling(incoming: IncomingTrace, percentage: number, random: () => number): boolean {
  if (incoming.debug) return true;
  if (incoming.sampled !== undefined) return incoming.sampled;
  if (!(percentage > 0)) return false;
  if (percentage >= 100) return true;
  return random() * 100 < percentage;
}

/**
 * The tracing policy of each service: the first policy that lists the service, else the first that lists none (it
 * applies to every service of the waypoint), in the controller's order.
 */
export class TracingPolicies {
  private readonly byService = new Map<string, TracingPolicyResource>();
  private readonly fallback: TracingPolicyResource | undefined;

  constructor(readonly all: readonly TracingPolicyResource[]) {
    for (const p of all) for (const s of p.services ?? []) if (!this.byService.has(s)) this.byService.set(s, p);
    this.fallback = all.find((p) => !p.services || p.services.length === 0);
  }

  for(service: string | undefined): TracingPolicyResource | undefined {
    return (service !== undefined ? this.byService.get(service) : undefined) ?? this.fallback;
  }
}

/** Where one upstream attempt goes. */
export interface AttemptInfo {
  /** "ip:port" of the endpoint. */
  upstream: string;
  /** Istio-style cluster: "outbound|<port>|<subset>|<service host>". */
  cluster?: string;
  /** Default: now. */
  startMs?: number;
}

/** How one upstream attempt ended. */
export interface AttemptResult {
  /** Response status from upstream; 0 when none (connect failure, reset, timeout). */
  status: number;
  responseFlags?: readonly string[];
  grpcStatus?: number;
  /** Default: now. */
  endMs?: number;
}

/** One upstream try: its client span's id and the headers its request must carry. */
export class AttemptTrace {
  endMs: number | undefined;
  result: AttemptResult | undefined;

  constructor(
    readonly info: AttemptInfo & { startMs: number },
    /** The client span id; undefined when the request is not traced (no tracing policy applies). */
    readonly spanId: string | undefined,
    /** Headers to set on the upstream request (x-request-id always; trace context when traced). */
    readonly headers: Readonly<Record<string, string>>,
    /** Headers to remove from the upstream request before setting `headers` (the received trace context, when traced). */
    readonly removeHeaders: readonly string[],
    readonly traced: boolean,
  ) {}

  /** Rewrites a header object with lower-case names (as Node gives them) for the upstream request: removes `removeHeaders`, then sets `headers`. */
  apply(h: Record<string, unknown>): void {
    for (const name of this.removeHeaders) delete h[name];
    Object.assign(h, this.headers);
  }

  end(r: AttemptResult): void {
    if (this.result) return;
    this.result = r;
    this.endMs = r.endMs ?? nowMs();
  }
}

/**
 * The trace of one request, from begin() to finish().
 * Invariants: ids never change once made; when `propagate` is false the received trace headers pass upstream untouched
 * and only x-request-id is set; spans are made only when `sampled` and a provider is set.
 */
export class RequestTrace {
  readonly attempts: AttemptTrace[] = [];

  constructor(
    readonly requestId: string,
    readonly requestIdGenerated: boolean,
    readonly incoming: IncomingTrace,
    /** A tracing policy applies: the waypoint takes part in the trace (new span ids, headers rewritten). */
    readonly propagate: boolean,
    /** The trace id (the received one, or a new one when tracing and none came); undefined when not traced and none came. */
    readonly traceId: string | undefined,
    /** The waypoint's server span. */
    readonly spanId: string | undefined,
    readonly sampled: boolean,
    /** Where spans go (the policy's provider), when sampled spans are reported. */
    readonly provider: TracingProvider | undefined,
    readonly startMs: number,
  ) {}

  /** Starts an upstream attempt: its client span id and the headers to put on its request. */
  attempt(info: AttemptInfo): AttemptTrace {
    const startMs = info.startMs ?? nowMs();
    let a: AttemptTrace;
    if (!this.propagate || !this.traceId || !this.spanId) {
      a = new AttemptTrace({ ...info, startMs }, undefined, { 'x-request-id': this.requestId }, [], false);
    } else {
      const spanId = newSpanId();
      const headers = outgoingTraceHeaders({
        traceId: this.traceId, spanId, parentSpanId: this.spanId, sampled: this.sampled, debug: this.incoming.debug,
        traceState: this.incoming.traceState, traceId64: this.incoming.traceId64, b3Single: this.incoming.format === 'b3-single',
      });
      headers['x-request-id'] = this.requestId;
      a = new AttemptTrace({ ...info, startMs }, spanId, headers, TRACE_HEADER_NAMES, true);
    }
    if (this.attempts.length < MAX_TRACED_ATTEMPTS) this.attempts.push(a);
    return a;
  }
}

/**
 * The spans of a finished, sampled request: the server span (parent: the caller's span, if any) and one client span
 * per attempt (parent: the server span), with Envoy's and Istio's tags. Pure.
 */
export function spanSpecs(t: RequestTrace, r: RequestRecord, self: TracingSelf, maxTagLength = DEFAULT_MAX_TAG_LENGTH): SpanSpec[] {
  if (!t.traceId || !t.spanId) return [];
  const endMs = r.startMs + Math.max(0, r.durationMs);
  const url = boundedText(`${r.scheme}://${r.authority}${r.path}`, maxTagLength);
  const method = boundedText(r.method, 32);
  const common: Record<string, string> = {
    component: 'proxy',
    node_id: self.nodeId,
    'guid:x-request-id': boundedText(t.requestId, 128),
    'http.url': url,
    'http.method': method,
    'http.protocol': r.protocol,
    'istio.canonical_service': self.canonicalService,
    'istio.canonical_revision': self.canonicalRevision,
    'istio.namespace': self.namespace,
    'istio.mesh_id': self.meshId,
    'istio.cluster_id': self.clusterId,
  };
  const server: Record<string, string> = {
    ...common,
    downstream_cluster: '-',
    'http.status_code': String(r.status),
    response_flags: formatResponseFlags(r.responseFlags),
    request_size: String(r.requestBytes),
    response_size: String(r.responseBytes),
    upstream_cluster: r.upstreamCluster ?? '-',
  };
  if (r.userAgent !== undefined) server.user_agent = boundedText(r.userAgent, 256);
  if (r.source.address) server['peer.address'] = r.source.address;
  if (r.upstream) server.upstream_address = r.upstream;
  if (r.grpc && r.grpcStatus !== undefined) server['grpc.status_code'] = String(r.grpcStatus);
  const specs: SpanSpec[] = [{
    name: `${r.destination.serviceHost ?? boundedText(r.authority, 256)}${r.destination.port !== undefined && r.destination.serviceHost ? `:${r.destination.port}` : ''}/*`,
    kind: 'server', traceId: t.traceId, spanId: t.spanId, parentSpanId: t.incoming.parentSpanId, parentRemote: true,
    startMs: r.startMs, endMs, attributes: server, error: isError(r.status),
  }];
  for (const a of t.attempts) {
    if (!a.spanId) continue;
    const status = a.result?.status ?? 0;
    const client: Record<string, string> = {
      ...common,
      upstream_cluster: a.info.cluster ?? '-',
      upstream_address: a.info.upstream,
      'peer.address': a.info.upstream,
      'http.status_code': String(status),
      response_flags: formatResponseFlags(a.result?.responseFlags ?? []),
    };
    if (r.grpc && a.result?.grpcStatus !== undefined) client['grpc.status_code'] = String(a.result.grpcStatus);
    specs.push({
      name: `router ${a.info.cluster ?? a.info.upstream} egress`,
      kind: 'client', traceId: t.traceId, spanId: a.spanId, parentSpanId: t.spanId, parentRemote: false,
      startMs: a.info.startMs, endMs: a.endMs ?? endMs, attributes: client, error: isError(status),
    });
  }
  for (const s of specs) if (s.error) (s.attributes as Record<string, string>).error = 'true';
  return specs;
}

/** Envoy marks a span as an error when no response was sent or it was a 5xx. */
function isError(status: number): boolean {
  return !(status > 0) || status >= 500;
}
