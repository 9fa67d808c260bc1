/**
 * Typed configuration objects, as users write them for Kubernetes, Istio (ambient) and Gateway API.
 * Field names follow the upstream APIs exactly; optional upstream fields stay optional here. Validation
 * (validate.ts) turns untrusted YAML into these types or into Problems; nothing else constructs them from input.
 */

import type { ErrorCode } from '../errors.js';

export type Labels = Record<string, string>;

export interface ObjectMeta {
  name: string;
  /** Set for namespaced kinds (defaulted to "default" when the document omits it); undefined for Namespace, Node. */
  namespace?: string;
  labels: Labels;
  annotations: Labels;
  /**
   * RFC 3339 time the API server created the object; absent in hand-written manifests. Where Istio and Gateway API
   * let the oldest object win, objects without it count as older than any with it, then by "namespace/name".
   */
  creationTimestamp?: string;
  /** The API server's id of this object (absent in hand-written manifests); a pod's binds its projected tokens. */
  uid?: string;
}

/** Where an object came from, for messages. */
export interface SourceRef {
  file: string;
  /** 1-based position of the document in its file (0 in a Problem about the whole file). */
  doc: number;
}

export interface LabelSelector {
  matchLabels?: Labels;
}

// ---------- core/v1 ----------

export interface Namespace {
  apiVersion: 'v1';
  kind: 'Namespace';
  metadata: ObjectMeta;
}

export interface NodeAddress {
  type: string; // InternalIP, ExternalIP, Hostname, ...
  address: string;
}
export interface Node {
  apiVersion: 'v1';
  kind: 'Node';
  metadata: ObjectMeta;
  status: { addresses: NodeAddress[] };
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: string;
}
export interface Pod {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: ObjectMeta;
  spec: {
    nodeName?: string;
    /** Defaults to "default" as in Kubernetes. */
    serviceAccountName: string;
    containers: { name: string; image?: string; ports: ContainerPort[] }[];
  };
  status: {
    podIP?: string;
    podIPs: string[];
    /** Pod phase; absent means Running for hand-written local manifests. */
    phase?: string;
    /** false when the Ready condition says False. Defaults to true. */
    ready: boolean;
  };
}

export interface ServicePort {
  name?: string;
  port: number;
  /** Number or named container port; defaults to `port`. */
  targetPort: number | string;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  appProtocol?: string;
}
export interface Service {
  apiVersion: 'v1';
  kind: 'Service';
  metadata: ObjectMeta;
  spec: {
    clusterIP?: string;
    clusterIPs: string[];
    ports: ServicePort[];
    /** Absent selector: endpoints are not derived from pods. */
    selector?: Labels;
    type?: string;
  };
}

// ---------- discovery.k8s.io/v1 ----------

/** One endpoint of an EndpointSlice: in practice its first address is the one used (Kubernetes: "fungible"). */
export interface EndpointSliceEndpoint {
  addresses: string[];
  conditions: {
    /** Absent means unknown, which Kubernetes tells consumers to treat as ready. */
    ready?: boolean;
    serving?: boolean;
    terminating?: boolean;
  };
  /** The object behind the endpoint (usually a Pod). */
  targetRef?: { kind: string; name: string; namespace?: string };
  nodeName?: string;
}
export interface EndpointSlicePort {
  /** Matches the Service port of the same name ("" or absent for an unnamed port). */
  name?: string;
  /** Absent means "all ports", which Strait cannot route (no destination port): such a port is warned and unused. */
  port?: number;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  appProtocol?: string;
}
export interface EndpointSlice {
  apiVersion: 'discovery.k8s.io/v1';
  kind: 'EndpointSlice';
  metadata: ObjectMeta;
  addressType: 'IPv4' | 'IPv6' | 'FQDN';
  endpoints: EndpointSliceEndpoint[];
  ports: EndpointSlicePort[];
}

export interface ConfigMap {
  apiVersion: 'v1';
  kind: 'ConfigMap';
  metadata: ObjectMeta;
  data: Record<string, string>;
  /** The `mesh` key parsed, for a ConfigMap named "istio" (Istio's mesh config; read from the root namespace only). */
  mesh?: MeshConfig;
}

// ---------- Istio mesh config (the `mesh` key of the `istio` ConfigMap) ----------

export interface ZipkinProvider {
  /** "name.namespace.svc.cluster.local" or "namespace/name". */
  service: string;
  port: number;
  maxTagLength?: number;
  /** Strait and newer Istio: the collector's path (default "/api/v2/spans"). */
  path?: string;
}
export interface OpenTelemetryProvider {
  service: string;
  port: number;
  maxTagLength?: number;
  /** OTLP/HTTP when present (path default "/v1/traces"); otherwise OTLP/gRPC. */
  http?: { path?: string; timeout?: string };
  grpc?: { timeout?: string };
}
/** One `extensionProviders` entry; `kind` names its provider type (the one key besides `name`). */
export type ExtensionProvider =
  | { name: string; kind: 'zipkin'; zipkin: ZipkinProvider }
  | { name: string; kind: 'opentelemetry'; opentelemetry: OpenTelemetryProvider }
  /** A provider type Strait does not implement (envoyExtAuthzHttp, prometheus, skywalking, ...): kept for messages. */
  | { name: string; kind: 'unsupported'; type: string };

/** Strait's own mesh-config section (`strait:` in the `mesh` key). */
export interface StraitMeshSettings {
  /**
   * Who enforces AuthorizationPolicies attached by selector (or namespace / mesh-wide) to workloads served by a
   * waypoint. "waypoint" (default): that waypoint enforces the whole policy with the caller's identity, and the
   * workloads' ztunnels let the waypoint's own connections through that policy. "istio": Istio's ambient behaviour,
   * the ztunnel alone enforces them at L4 and rules with HTTP attributes are dropped.
   */
  selectorPolicies?: 'waypoint' | 'istio';
}

export interface MeshConfig {
  extensionProviders: ExtensionProvider[];
  defaultProviders?: { tracing?: string[]; metrics?: string[]; accessLogging?: string[] };
  strait?: StraitMeshSettings;
}

// ---------- security.istio.io ----------

export interface PolicyTargetRef {
  group?: string;
  kind: string;
  name: string;
  namespace?: string;
}

export interface AuthzSource {
  principals?: string[];
  notPrincipals?: string[];
  requestPrincipals?: string[];
  notRequestPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  serviceAccounts?: string[];
  notServiceAccounts?: string[];
  ipBlocks?: string[];
  notIpBlocks?: string[];
  remoteIpBlocks?: string[];
  notRemoteIpBlocks?: string[];
}
export interface AuthzOperation {
  hosts?: string[];
  notHosts?: string[];
  /** Ports as strings, as Istio's API declares them. */
  ports?: string[];
  notPorts?: string[];
  methods?: string[];
  notMethods?: string[];
  paths?: string[];
  notPaths?: string[];
}
export interface AuthzCondition {
  key: string;
  values?: string[];
  notValues?: string[];
}
export interface AuthzRule {
  from?: { source: AuthzSource }[];
  to?: { operation: AuthzOperation }[];
  when?: AuthzCondition[];
}
export type AuthzAction = 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';
export interface AuthorizationPolicy {
  apiVersion: 'security.istio.io/v1' | 'security.istio.io/v1beta1';
  kind: 'AuthorizationPolicy';
  metadata: ObjectMeta;
  spec: {
    selector?: LabelSelector;
    targetRef?: PolicyTargetRef;
    targetRefs?: PolicyTargetRef[];
    /** Defaults to ALLOW. */
    action: AuthzAction;
    provider?: { name: string };
    /** Absent/empty rules: an ALLOW policy matches nothing; a DENY policy matches nothing. */
    rules: AuthzRule[];
  };
}

export type MtlsMode = 'UNSET' | 'DISABLE' | 'PERMISSIVE' | 'STRICT';
export interface PeerAuthentication {
  apiVersion: 'security.istio.io/v1' | 'security.istio.io/v1beta1';
  kind: 'PeerAuthentication';
  metadata: ObjectMeta;
  spec: {
    selector?: LabelSelector;
    mtls?: { mode: MtlsMode };
    portLevelMtls?: Record<string, { mode: MtlsMode }>;
  };
}

// ---------- networking.istio.io ----------

/** Exactly one of exact, prefix, regex; none (`{}`) in `headers` / `withoutHeaders` means "the header is present". */
export interface StringMatch {
  exact?: string;
  prefix?: string;
  regex?: string;
}
export interface HTTPMatchRequest {
  name?: string;
  uri?: StringMatch;
  method?: StringMatch;
  authority?: StringMatch;
  headers?: Record<string, StringMatch>;
  queryParams?: Record<string, StringMatch>;
  port?: number;
  ignoreUriCase?: boolean;
  /** Negated header matches: the request must not match any of them. */
  withoutHeaders?: Record<string, StringMatch>;
  /** Conditions on the source or on gateways, which a waypoint cannot apply: a match using them is left out. */
  sourceLabels?: Labels;
  sourceNamespace?: string;
  gateways?: string[];
  scheme?: StringMatch;
}
export interface Destination {
  host: string;
  subset?: string;
  port?: { number: number };
}
export interface HeaderOperations {
  set?: Labels;
  add?: Labels;
  remove?: string[];
}
export interface HTTPRouteDestination {
  destination: Destination;
  weight?: number;
  headers?: { request?: HeaderOperations; response?: HeaderOperations };
}
export interface HTTPRetry {
  attempts: number;
  perTryTimeout?: string;
  retryOn?: string;
  /** Base interval of the backoff between tries (newer Istio). */
  backoff?: string;
}
export interface HTTPFaultInjection {
  delay?: { percentage?: { value: number }; fixedDelay: string };
  abort?: { percentage?: { value: number }; httpStatus?: number; grpcStatus?: string };
}
export interface HTTPMirrorPolicy {
  destination: Destination;
  percentage?: { value: number };
}
export interface VSHTTPRoute {
  name?: string;
  match?: HTTPMatchRequest[];
  route?: HTTPRouteDestination[];
  redirect?: { uri?: string; authority?: string; redirectCode?: number; scheme?: string; port?: number };
  rewrite?: { uri?: string; authority?: string };
  timeout?: string;
  retries?: HTTPRetry;
  fault?: HTTPFaultInjection;
  headers?: { request?: HeaderOperations; response?: HeaderOperations };
  mirror?: Destination;
  /** Percentage of requests mirrored to `mirror`; absent: 100. */
  mirrorPercentage?: { value: number };
  mirrors?: HTTPMirrorPolicy[];
  /** What the rule does instead of route/redirect when it has neither (fields Strait does not implement). */
  unsupportedAction?: 'directResponse' | 'delegate';
}
export interface VirtualService {
  apiVersion: 'networking.istio.io/v1' | 'networking.istio.io/v1beta1' | 'networking.istio.io/v1alpha3';
  kind: 'VirtualService';
  metadata: ObjectMeta;
  spec: {
    hosts: string[];
    gateways?: string[];
    http?: VSHTTPRoute[];
    tcp?: { match?: { port?: number }[]; route?: { destination: Destination; weight?: number }[] }[];
    exportTo?: string[];
  };
}

export interface ConnectionPoolSettings {
  tcp?: { maxConnections?: number; connectTimeout?: string };
  http?: {
    http1MaxPendingRequests?: number;
    http2MaxRequests?: number;
    maxRequestsPerConnection?: number;
    maxRetries?: number;
    idleTimeout?: string;
  };
}
export interface OutlierDetection {
  consecutive5xxErrors?: number;
  consecutiveGatewayErrors?: number;
  interval?: string;
  baseEjectionTime?: string;
  maxEjectionPercent?: number;
}
export interface TrafficPolicy {
  connectionPool?: ConnectionPoolSettings;
  loadBalancer?: { simple?: 'UNSPECIFIED' | 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'PASSTHROUGH' | 'LEAST_CONN' };
  outlierDetection?: OutlierDetection;
}
export interface DestinationRule {
  apiVersion: 'networking.istio.io/v1' | 'networking.istio.io/v1beta1' | 'networking.istio.io/v1alpha3';
  kind: 'DestinationRule';
  metadata: ObjectMeta;
  spec: {
    host: string;
    trafficPolicy?: TrafficPolicy;
    subsets?: { name: string; labels?: Labels; trafficPolicy?: TrafficPolicy }[];
    exportTo?: string[];
  };
}

// ---------- telemetry.istio.io ----------

export interface Telemetry {
  apiVersion: 'telemetry.istio.io/v1' | 'telemetry.istio.io/v1alpha1';
  kind: 'Telemetry';
  metadata: ObjectMeta;
  spec: {
    selector?: LabelSelector;
    targetRef?: PolicyTargetRef;
    targetRefs?: PolicyTargetRef[];
    accessLogging?: { providers?: { name: string }[]; disabled?: boolean; filter?: { expression: string } }[];
    metrics?: { providers?: { name: string }[]; overrides?: unknown[] }[];
    tracing?: { providers?: { name: string }[]; randomSamplingPercentage?: number; disableSpanReporting?: boolean }[];
  };
}

// ---------- gateway.networking.k8s.io ----------

export interface GatewayListener {
  name: string;
  port: number;
  protocol: string; // HBONE for waypoints; HTTP, HTTPS, TCP, TLS otherwise
  hostname?: string;
  allowedRoutes?: unknown;
}
export interface Gateway {
  apiVersion: 'gateway.networking.k8s.io/v1' | 'gateway.networking.k8s.io/v1beta1';
  kind: 'Gateway';
  metadata: ObjectMeta;
  spec: {
    gatewayClassName: string;
    listeners: GatewayListener[];
    addresses?: { type?: string; value: string }[];
  };
}

export interface ParentReference {
  group?: string; // "" for core (Service), "gateway.networking.k8s.io" default
  kind?: string; // "Gateway" default; "Service" for mesh (GAMMA) routes
  name: string;
  namespace?: string;
  port?: number;
  sectionName?: string;
}
export interface HTTPPathMatch {
  type: 'Exact' | 'PathPrefix' | 'RegularExpression';
  value: string;
}
export interface HTTPHeaderMatch {
  type: 'Exact' | 'RegularExpression';
  name: string;
  value: string;
}
export interface HTTPRouteMatch {
  path?: HTTPPathMatch;
  headers?: HTTPHeaderMatch[];
  queryParams?: HTTPHeaderMatch[];
  method?: string;
}
export interface HTTPHeaderFilter {
  set?: { name: string; value: string }[];
  add?: { name: string; value: string }[];
  remove?: string[];
}
export interface HTTPRouteFilter {
  type: 'RequestHeaderModifier' | 'ResponseHeaderModifier' | 'RequestRedirect' | 'URLRewrite' | 'RequestMirror' | 'ExtensionRef';
  requestHeaderModifier?: HTTPHeaderFilter;
  responseHeaderModifier?: HTTPHeaderFilter;
  requestRedirect?: { scheme?: string; hostname?: string; path?: { type: string; replaceFullPath?: string; replacePrefixMatch?: string }; port?: number; statusCode?: number };
  urlRewrite?: { hostname?: string; path?: { type: string; replaceFullPath?: string; replacePrefixMatch?: string } };
  /** `percent` (0..100) or `fraction` is normalised into `percent` (a fraction may give a non-integer). */
  requestMirror?: { backendRef: BackendRef; percent?: number };
  extensionRef?: { group: string; kind: string; name: string };
}
export interface BackendRef {
  group?: string;
  kind?: string; // Service default
  name: string;
  namespace?: string;
  port?: number;
  weight?: number; // default 1
  filters?: HTTPRouteFilter[];
}
export interface HTTPRouteRule {
  name?: string;
  matches: HTTPRouteMatch[]; // defaulted to [{ path: { type: PathPrefix, value: "/" } }]
  filters?: HTTPRouteFilter[];
  backendRefs?: BackendRef[];
  timeouts?: { request?: string; backendRequest?: string };
  /** Gateway API retry (experimental channel). */
  retry?: { codes?: number[]; attempts?: number; backoff?: string };
}
export interface HTTPRoute {
  apiVersion: 'gateway.networking.k8s.io/v1' | 'gateway.networking.k8s.io/v1beta1';
  kind: 'HTTPRoute';
  metadata: ObjectMeta;
  spec: {
    parentRefs: ParentReference[];
    hostnames?: string[];
    rules: HTTPRouteRule[];
  };
}

// ---------- unions ----------

export type MeshObject =
  | Namespace
  | Node
  | Pod
  | Service
  | ConfigMap
  | EndpointSlice
  | AuthorizationPolicy
  | PeerAuthentication
  | VirtualService
  | DestinationRule
  | Telemetry
  | Gateway
  | HTTPRoute;

export type Kind = MeshObject['kind'];
export type ObjectOfKind<K extends Kind> = Extract<MeshObject, { kind: K }>;

export const CLUSTER_SCOPED_KINDS: ReadonlySet<Kind> = new Set<Kind>(['Namespace', 'Node']);

/** "Kind/namespace/name" ("Kind//name" for cluster-scoped kinds): the store's key for an object. */
export function objectKey(obj: { kind: string; metadata: { name: string; namespace?: string } }): string {
  return `${obj.kind}/${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
}

/** A validated object with where it came from. */
export interface LoadedObject<T extends MeshObject = MeshObject> {
  key: string;
  object: T;
  source: SourceRef;
}

export type Severity = 'error' | 'warning';

/** One problem found in input; `toString()` gives the one-line message users see. */
export interface Problem {
  severity: Severity;
  file: string;
  doc: number;
  kind?: string;
  namespace?: string;
  name?: string;
  /** Field path, e.g. "spec.rules[0].from[0].source.principals[1]"; "" for the whole document. */
  path: string;
  message: string;
  /** STRAIT_ERR_MANIFEST_PARSE (YAML syntax), _SOURCE (unreadable path) or _INVALID (validation). */
  code?: ErrorCode;
}

/** "policies.yaml doc 3 AuthorizationPolicy foo/deny-get: spec.action: "BLOCK" is not one of ..." */
export function formatProblem(p: Problem): string {
  const who = p.kind ? ` ${p.kind} ${p.namespace ? `${p.namespace}/` : ''}${p.name ?? '<unnamed>'}` : '';
  const where = p.path ? `${p.path}: ` : '';
  const sev = p.severity === 'warning' ? 'warning: ' : '';
  const doc = p.doc > 0 ? ` doc ${p.doc}` : ''; // doc 0: the file or directory as a whole
  return `${p.file}${doc}${who}: ${sev}${where}${p.message}`;
}

export interface ParseResult {
  objects: LoadedObject[];
  problems: Problem[];
}
