/**
 * Everything the waypoint's telemetry needs to know about one finished request: the waypoint's request path fills
 * one RequestRecord per downstream request (whatever the outcome: proxied, denied, no route, reset) and hands it to
 * WaypointTelemetry.finish(), which turns it into Istio's request metrics, one access-log line and the server span.
 *
 * Values come from the proxy's own state (the peer's mTLS identity, the xDS view, the route table), except the
 * request line and a few headers (method, authority, path, user agent, request id), which a client chooses freely:
 * those never become metric labels, and the access log bounds and escapes them.
 */
import type { ServiceResource, WorkloadResource } from '../../common/xds/resources.js';

/** One end of the request as the telemetry names it. Absent fields are reported as Istio does ("unknown", ...). */
export interface RequestPeer {
  /** Workload (pod) name, for the access log (`src.workload` / `dst.workload`). */
  workload?: string;
  /** The workload as Istio's metrics name it (`source_workload` / `destination_workload`): the Deployment's or the pod's name. */
  workloadName?: string;
  /** Kubernetes namespace of the workload. */
  namespace?: string;
  /** SPIFFE id proved by mTLS ("spiffe://cluster.local/ns/default/sa/frontend"); never taken from a header. */
  principal?: string;
  /** Canonical service (service.istio.io/canonical-name, app.kubernetes.io/name, app, pod name). */
  canonicalName?: string;
  /** Canonical revision (service.istio.io/canonical-revision, version label; "latest" when none). */
  canonicalRevision?: string;
  /** Istio's `app` label value (source_app / destination_app). */
  app?: string;
  /** Istio's `version` label value (source_version / destination_version). */
  version?: string;
  /** "ip:port" (the downstream client as the waypoint saw it; for the destination, the endpoint dialled). */
  address?: string;
}

/** The destination: the service the request was for and the endpoint that answered (the last attempt's). */
export interface RequestDestination extends RequestPeer {
  /** "ns/name" of the service the request was addressed to (from `:authority`, the VIP the client dialled). */
  service?: string;
  /** The service's hostname ("reviews.default.svc.cluster.local"): Istio's destination_service. */
  serviceHost?: string;
  /** The service port the request arrived for. */
  port?: number;
}

/** HTTP version of the downstream request. */
export type HttpProtocol = 'HTTP/1.0' | 'HTTP/1.1' | 'HTTP/2';

export interface RequestRecord {
  /** Wall-clock time the request's headers were received, milliseconds since the epoch (fractions allowed). */
  startMs: number;
  /** From startMs until the response's last byte was written (or the stream ended), in milliseconds. */
  durationMs: number;
  /** Request method as received (e.g. "GET"). */
  method: string;
  /** `:authority` / Host as received. */
  authority: string;
  /** Path as received, query string included (before any rewrite). */
  path: string;
  /** "http" inside HBONE (the mTLS is the tunnel's). */
  scheme: string;
  protocol: HttpProtocol;
  /** A gRPC request (content-type application/grpc...): request_protocol="grpc" instead of "http". */
  grpc: boolean;
  /** Response status sent downstream; 0 when none was sent (reset, client gone), as Envoy logs it. */
  status: number;
  /** grpc-status of the response (trailers or trailers-only headers), when it was gRPC and one was seen. */
  grpcStatus?: number;
  /**
   * Envoy short response flags ("UF", "URX", "NR", "UO", "UT", "DC", ...) for what the waypoint did or saw, in any
   * order (reported in Envoy's canonical order). Empty when none: reported as "-".
   */
  responseFlags: readonly string[];
  /** Bytes received from the downstream for this request: header block + body as read (Istio counts wire bytes). */
  requestBytes: number;
  /** Bytes sent to the downstream for this response: header block + body as written. */
  responseBytes: number;
  /** The caller: the source workload behind the HBONE connection (its identity from the client certificate). */
  source: RequestPeer;
  destination: RequestDestination;
  /** Name of the route rule that matched (RouteRule.name), absent when none (NR) or before routing. */
  route?: string;
  /** "ip:port" of the endpoint of the last attempt, absent when no attempt was made. */
  upstream?: string;
  /** Istio-style cluster of the last attempt: "outbound|<port>|<subset>|<service host>". */
  upstreamCluster?: string;
  /** Tries made upstream, first try included (0 when the request never went upstream: denied, no route, fault). */
  attempts: number;
  /** "ns/name" of the authorization policy that decided, when the request was denied. */
  policy?: string;
  /** "ns/name" of the AUDIT policies that matched the request (they decide nothing; the access log names them). */
  audited?: readonly string[];
  /** "mutual_tls" for HBONE (always, for a waypoint); "none" for plaintext. */
  connectionSecurityPolicy: 'mutual_tls' | 'none';
  /** User-Agent header as received. */
  userAgent?: string;
  /** x-request-id as forwarded upstream; absent: the access log takes the RequestTrace's. */
  requestId?: string;
  /** Trace id of the request (32 hex); absent: the access log takes the RequestTrace's. */
  traceId?: string;
  /** Short detail of a failure for the access log ("upstream connect timeout", "rbac_access_denied"). */
  error?: string;
}

/**
 * A RequestPeer from a workload of the xDS view, with the ztunnel's conventions (dataplane/tcp-metrics.ts), so the
 * TCP and HTTP metrics of one workload carry the same label values: `app` is the `app` label or the canonical name,
 * `version` the `version` label or the canonical revision.
 */
export function peerFromWorkload(w: WorkloadResource | undefined, address?: string, principal?: string): RequestPeer {
  if (!w) return { address, principal };
  return {
    workload: w.name,
    workloadName: w.workloadName ?? w.name,
    namespace: w.namespace,
    principal: principal ?? w.identity,
    canonicalName: w.canonicalName,
    canonicalRevision: w.canonicalRevision,
    app: w.labels['app'] ?? w.canonicalName,
    version: w.labels['version'] ?? w.canonicalRevision,
    address,
  };
}

/** A RequestDestination: the service addressed and the workload of the endpoint that answered. */
export function destinationOf(service: ServiceResource | undefined, port: number | undefined, endpoint?: WorkloadResource, endpointAddress?: string): RequestDestination {
  return {
    ...peerFromWorkload(endpoint, endpointAddress),
    service: service ? `${service.namespace}/${service.name}` : undefined,
    serviceHost: service?.hostname,
    port,
  };
}
