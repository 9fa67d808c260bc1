/**
 * The compiled L7 model a waypoint receives (DESIGN §6): HTTPRoute and VirtualService normalised into one route
 * table per service, DestinationRule into backend policies, AuthorizationPolicy into L7 policies, Telemetry and mesh
 * config into tracing settings. The controller resolves names, precedence and conflicts; the waypoint never parses
 * Istio or Gateway API YAML, it only evaluates these in order.
 *
 * Bodies are JSON (see xds.proto). Durations are milliseconds, percentages 0..100, header names lower case.
 */

// ---------- TYPE_ROUTE: resource name "<service ns>/<service name>" ----------

/** Where the route table of a service came from (shown in /config_dump and /debug/configz). */
export interface RouteOrigin {
  /** "HTTPRoute" | "VirtualService"; "default" when nothing routes the service (its own endpoints). */
  kind: 'HTTPRoute' | 'VirtualService' | 'default';
  /** "ns/name" of each object whose rules are in the table, in precedence order. */
  objects: string[];
  /** Objects that also target this service but lost, with why (e.g. an HTTPRoute wins over a VirtualService). */
  shadowed?: { object: string; reason: string }[];
}

/** The route table of one service bound to the waypoint. First rule whose match fits wins; none → 404 (flag NR). */
export interface ServiceRoutesResource {
  /** "ns/name" */
  service: string;
  hostname: string;
  origin: RouteOrigin;
  rules: RouteRule[];
}

export interface RouteRule {
  /** Stable name for logs, metrics and traces: "HTTPRoute/ns/name/rules[0]/matches[1]", "VirtualService/ns/name/http[2]". */
  name: string;
  match: RequestMatch;
  action: RouteAction;
}

export type StringMatchKind = 'exact' | 'prefix' | 'regex';

export interface ValueMatch {
  type: StringMatchKind | 'present';
  /** Unused for "present". Regexes are RE2-style full matches (anchored at both ends), as Envoy/Istio apply them. */
  value?: string;
  /** VirtualService headers `absent`-style negation (withoutHeaders). */
  invert?: boolean;
}

/** All conditions must hold (AND). An empty match matches every request. */
export interface RequestMatch {
  /** Path without query string. prefix follows Gateway API PathPrefix semantics when `segments` is true ("/foo" matches "/foo/bar" but not "/foobar"). */
  path?: { type: StringMatchKind; value: string; ignoreCase?: boolean; segments?: boolean };
  method?: ValueMatch;
  authority?: ValueMatch;
  /** Header names lower case. */
  headers?: ({ name: string } & ValueMatch)[];
  queryParams?: ({ name: string } & ValueMatch)[];
  /** The service port the request arrived for. */
  port?: number;
}

export interface HeaderOps {
  set?: [string, string][];
  add?: [string, string][];
  remove?: string[];
}

export interface RetryPolicy {
  /** Retries after the first try (Istio `attempts`; Gateway API retry `attempts`). Always at least 1 (no retries: no policy). */
  retries: number;
  /**
   * Envoy retry_on conditions: "5xx", "gateway-error", "connect-failure", "retriable-4xx", "reset",
   * "reset-before-request", "refused-stream", "retriable-status-codes", "envoy-ratelimited", "retriable-headers",
   * "http3-post-connect-failure", and on a gRPC response's grpc-status: "cancelled", "deadline-exceeded", "internal",
   * "resource-exhausted", "unavailable". Bare status codes are moved to `retriableStatusCodes`.
   */
  retryOn: string[];
  /** For retriable-status-codes (and bare status codes written in retryOn). */
  retriableStatusCodes?: number[];
  /** Base interval of the exponential backoff between tries (Envoy default 25 ms). */
  backoffBaseMs?: number;
}

export interface FaultPolicy {
  delay?: { percentage: number; delayMs: number };
  abort?: { percentage: number; httpStatus?: number; grpcStatus?: number };
}

export interface BackendRef {
  /** "ns/name" of a Service. */
  service: string;
  /** Service port to reach; absent: the port the request arrived for. */
  port?: number;
  /** DestinationRule subset name. */
  subset?: string;
  /** Relative weight; 0 gets nothing. */
  weight: number;
  requestHeaders?: HeaderOps;
  responseHeaders?: HeaderOps;
  /**
   * The backend cannot be used (a Service that does not exist, a subset no DestinationRule defines, a reference
   * refused): the requests the weights send to it get this answer, the others go to the remaining backends
   * (Gateway API: "the proportion of requests that would otherwise have been routed to an invalid backend").
   */
  fail?: { status: number; flag: string; reason: string };
}

export interface RewritePolicy {
  /** Replace the whole path. */
  fullPath?: string;
  /** Replace the matched prefix (the rule's path match must be a prefix). */
  prefix?: string;
  authority?: string;
}

export interface RedirectPolicy {
  scheme?: string;
  host?: string;
  port?: number;
  fullPath?: string;
  prefix?: string;
  /** Default 302 (Gateway API) / 301 (VirtualService). */
  statusCode: number;
}

export interface MirrorPolicy {
  backend: Omit<BackendRef, 'weight'>;
  /** 0..100; default 100. */
  percentage: number;
}

export type RouteAction =
  | {
      kind: 'forward';
      backends: BackendRef[];
      requestHeaders?: HeaderOps;
      responseHeaders?: HeaderOps;
      rewrite?: RewritePolicy;
      mirrors?: MirrorPolicy[];
      /** Whole request, all tries included (HTTPRoute timeouts.request, VirtualService timeout). */
      timeoutMs?: number;
      /** One try (HTTPRoute timeouts.backendRequest, VirtualService retries.perTryTimeout). */
      perTryTimeoutMs?: number;
      /** Absent: no retries. The controller has already applied Istio's default (2 retries on connect-failure, refused-stream, unavailable, cancelled) where one applies. */
      retry?: RetryPolicy;
      fault?: FaultPolicy;
    }
  | { kind: 'redirect'; redirect: RedirectPolicy; responseHeaders?: HeaderOps }
  /** A rule whose backends cannot be used (missing service, unresolved refs): answered with `status`, flag and reason. */
  | { kind: 'fail'; status: number; flag: string; reason: string };

// ---------- TYPE_POLICY: resource names "backend/<ns>/<svc>", "authz/<ns>/<name>", "tracing/<ns>/<name>" (the most specific Telemetry; "tracing/<root ns>/meshConfig" for defaultProviders alone) ----------

export type LoadBalancerKind = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM';

export interface ConnectionPoolPolicy {
  /** tcp.maxConnections: connections to all endpoints of the backend at once (Envoy default 2^32-1). */
  maxConnections?: number;
  /** http.http1MaxPendingRequests: requests waiting for a connection. */
  maxPendingRequests?: number;
  /** http.http2MaxRequests: requests in flight to the backend at once. */
  maxRequests?: number;
  /** http.maxRequestsPerConnection: 0 = unlimited. */
  maxRequestsPerConnection?: number;
  /** http.maxRetries: retries in flight at once across the backend. */
  maxRetries?: number;
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
}

/** Istio's defaults are filled in (5 consecutive 5xx, interval 10 s, base ejection 30 s, at most 10 % ejected). */
export interface OutlierPolicy {
  /** Absent or 0: this check is off. */
  consecutive5xxErrors?: number;
  /** Absent or 0: this check is off (502, 503, 504 and connection failures). */
  consecutiveGatewayErrors?: number;
  intervalMs: number;
  baseEjectionTimeMs: number;
  maxEjectionPercent: number;
}

export interface TrafficPolicyCompiled {
  /** Absent: LEAST_REQUEST, Istio's default. */
  loadBalancer?: LoadBalancerKind;
  connectionPool?: ConnectionPoolPolicy;
  outlierDetection?: OutlierPolicy;
}

/** DestinationRule compiled for one service: subsets by labels, per-subset overrides already merged over the top level. */
export interface BackendPolicyResource {
  type: 'backend';
  /** "ns/name" of the Service. */
  service: string;
  /** "ns/name" of the DestinationRule. */
  origin: string;
  policy: TrafficPolicyCompiled;
  subsets: Record<string, { labels: Record<string, string>; policy: TrafficPolicyCompiled }>;
}

/** One L7 authorization condition list, compiled from AuthorizationPolicy from/to/when (ANDed within a rule). */
export interface L7Source {
  principals?: string[];
  notPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  serviceAccounts?: string[];
  notServiceAccounts?: string[];
  ipBlocks?: string[];
  notIpBlocks?: string[];
  remoteIpBlocks?: string[];
  notRemoteIpBlocks?: string[];
  requestPrincipals?: string[];
  notRequestPrincipals?: string[];
}
export interface L7Operation {
  hosts?: string[];
  notHosts?: string[];
  ports?: string[];
  notPorts?: string[];
  methods?: string[];
  notMethods?: string[];
  paths?: string[];
  notPaths?: string[];
}
export interface L7Rule {
  from?: L7Source[];
  to?: L7Operation[];
  when?: { key: string; values?: string[]; notValues?: string[] }[];
}

export interface L7PolicyResource {
  type: 'authz';
  /** "ns/name" of the AuthorizationPolicy. */
  policy: string;
  action: 'ALLOW' | 'DENY' | 'AUDIT';
  /**
   * What it applies to: every request through the waypoint, the requests for some services, or (Strait's
   * sidecar-compatibility) the requests whose destination workloads its selector picks.
   */
  scope:
    | { kind: 'waypoint' }
    | { kind: 'services'; services: string[] }
    | {
        kind: 'workloads';
        /** The policy's selector ({} for a namespace-wide policy). */
        selector: Record<string, string>;
        /** The policy's namespace; the root namespace means workloads of every namespace. */
        namespace: string;
        /** The services bound to this waypoint that the selected workloads are endpoints of ("ns/name"). */
        services: string[];
        /**
         * The selected workloads ("ns/pod") this waypoint sends to: the endpoints of `services` (and workloads bound
         * to the waypoint directly). A request for one of `services` is checked when the endpoint it goes to is one
         * of them.
         */
        workloads?: string[];
      };
  rules: L7Rule[];
  /** How it was bound (targetRefs to the Gateway, to a Service, or a selector), for config_dump. */
  binding: string;
}

export interface TracingProvider {
  /** The `extensionProviders` entry name. */
  name: string;
  kind: 'zipkin' | 'opentelemetry';
  /** The collector, resolved through the mesh's registry: "ns/name" of its Service, and an address the waypoint can dial. */
  service: string;
  host: string;
  port: number;
  /** "vip": host/port are the Service's cluster IP and port; "endpoint": its first ready endpoint's address and target port (a Service without a VIP). */
  address?: 'vip' | 'endpoint';
  /** zipkin: "/api/v2/spans" default; opentelemetry (OTLP/HTTP): "/v1/traces" default. */
  path: string;
  /** opentelemetry: "http" (OTLP/HTTP JSON) or "grpc" (OTLP/gRPC). */
  protocol?: 'http' | 'grpc';
  maxTagLength?: number;
}

/**
 * Tracing for the requests of some (or all) services the waypoint serves. A request uses the resource whose
 * `services` names its service, else the one without `services` (Telemetry's most specific wins). Each resource is
 * already merged field by field (root namespace, then the waypoint's namespace, then targetRefs), as Istio does.
 */
export interface TracingPolicyResource {
  type: 'tracing';
  /** "ns/name" of the most specific Telemetry object (or "meshConfig" for defaultProviders alone). */
  origin: string;
  /** Every object merged into this one, least specific first ("ns/name"; "meshConfig" for defaultProviders). */
  origins?: string[];
  /** Absent: every service the waypoint serves. */
  services?: string[];
  samplingPercentage: number;
  provider?: TracingProvider;
  /** Why there is no provider (not found in mesh config, service missing), shown in config_dump. */
  problem?: string;
  disableSpanReporting?: boolean;
}

export type WaypointPolicyResource = BackendPolicyResource | L7PolicyResource | TracingPolicyResource;
