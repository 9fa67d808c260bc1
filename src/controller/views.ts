/**
 * Pure computation of what each proxy needs from the current config objects (DESIGN §3, §5):
 * workloads, services with endpoints, waypoint bindings, L4 authorization for ztunnels, and per-waypoint
 * route and policy views. No I/O and no state: the same objects always give the same views.
 */
import type {
  AuthorizationPolicy, AuthzRule, ConfigMap, EndpointSlice, Gateway, MtlsMode, HTTPRoute, Labels, MeshObject, Namespace, PeerAuthentication, Pod,
  Service, VirtualService, DestinationRule, Telemetry,
} from '../common/model/types.js';
import type {
  AuthorizationResource, EndpointResource, L4Match, L4Rule, PolicyResource, RouteResource, ServiceResource,
  WaypointRef, WorkloadResource,
} from '../common/xds/resources.js';
import { KUBE_ENDPOINTSLICE_CONTROLLER, LABEL_MANAGED_BY, LABEL_SERVICE_NAME } from '../common/model/validate-discovery.js';
import { compileWaypoints, type L7Report } from './waypoint/index.js';

export const LABEL_DATAPLANE_MODE = 'istio.io/dataplane-mode';
export const LABEL_USE_WAYPOINT = 'istio.io/use-waypoint';
export const LABEL_USE_WAYPOINT_NAMESPACE = 'istio.io/use-waypoint-namespace';
export const LABEL_WAYPOINT_FOR = 'istio.io/waypoint-for';
export const LABEL_GATEWAY_NAME = 'gateway.networking.k8s.io/gateway-name';
export const WAYPOINT_GATEWAY_CLASS = 'istio-waypoint';

export interface ViewOptions {
  trustDomain: string;
  /** Istio's root namespace: policies here without a selector are mesh-wide. */
  rootNamespace: string;
}

/** A problem in how objects relate (not in one object's syntax), shown in /debug/configz. */
export interface BindingProblem {
  object: string;
  message: string;
}

export interface WaypointView {
  gateway: string; // "ns/name"
  ref: WaypointRef;
  /** TYPE_ROUTE: the compiled route table of each bound service, by "ns/name". */
  routes: Map<string, RouteResource>;
  /** TYPE_POLICY: compiled backend, L7 authorization and tracing policies, by resource name. */
  policies: Map<string, PolicyResource>;
  /** Service keys bound to this waypoint. */
  services: string[];
}

export interface MeshViews {
  workloads: Map<string, WorkloadResource>;
  services: Map<string, ServiceResource>;
  authorizations: Map<string, AuthorizationResource>;
  waypoints: Map<string, WaypointView>;
  /** What the waypoint compiler reports: HTTPRoute status, which waypoint applies what, notes. */
  l7: L7Report;
  problems: BindingProblem[];
  /** The problems found while computing workloads and services (kept when they are reused). */
  endpointProblems: BindingProblem[];
}

/**
 * Kinds whose changes can alter workloads and services. When none of them changed, the previous workloads and
 * services can be passed back to computeViews as `reuse`.
 */
export const ENDPOINT_KINDS: ReadonlySet<string> = new Set(['Namespace', 'Node', 'Pod', 'Service', 'EndpointSlice', 'Gateway']);

export function spiffeIdFor(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

export function matchesSelector(selector: Labels | undefined, labels: Labels): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}

type WaypointFor = 'service' | 'workload' | 'all' | 'none';

/** Index of the objects by kind and namespace, built once per computation. */
class MeshIndex {
  readonly namespaces = new Map<string, Namespace>();
  readonly pods: Pod[] = [];
  /** Pods by namespace: a service selects only pods of its own namespace. */
  readonly podsByNamespace = new Map<string, Pod[]>();
  readonly services: Service[] = [];
  readonly waypoints = new Map<string, Gateway>();
  readonly authz: AuthorizationPolicy[] = [];
  readonly peerAuthn: PeerAuthentication[] = [];
  readonly httpRoutes: HTTPRoute[] = [];
  readonly virtualServices: VirtualService[] = [];
  readonly destinationRules: DestinationRule[] = [];
  readonly telemetry: Telemetry[] = [];
  readonly configMaps: ConfigMap[] = [];
  /** EndpointSlices by the "ns/name" of the Service they name (label kubernetes.io/service-name), sorted by name. */
  readonly slicesByService = new Map<string, EndpointSlice[]>();

  constructor(objects: Iterable<MeshObject>) {
    for (const o of objects) {
      switch (o.kind) {
        case 'Namespace': this.namespaces.set(o.metadata.name, o); break;
        case 'Pod': this.pods.push(o); break;
        case 'Service': this.services.push(o); break;
        case 'Gateway':
          if (o.spec.gatewayClassName === WAYPOINT_GATEWAY_CLASS) this.waypoints.set(`${o.metadata.namespace}/${o.metadata.name}`, o);
          break;
        case 'AuthorizationPolicy': this.authz.push(o); break;
        case 'PeerAuthentication': this.peerAuthn.push(o); break;
        case 'HTTPRoute': this.httpRoutes.push(o); break;
        case 'VirtualService': this.virtualServices.push(o); break;
        case 'DestinationRule': this.destinationRules.push(o); break;
        case 'Telemetry': this.telemetry.push(o); break;
        case 'ConfigMap': this.configMaps.push(o); break;
        case 'EndpointSlice': {
          const svc = o.metadata.labels[LABEL_SERVICE_NAME];
          if (!svc) break; // warned by validation: it belongs to no Service
          const key = `${o.metadata.namespace}/${svc}`;
          (this.slicesByService.get(key) ?? this.slicesByService.set(key, []).get(key)!).push(o);
          break;
        }
        case 'Node': break;
      }
    }
    const byKey = (a: { metadata: { namespace?: string; name: string } }, b: { metadata: { namespace?: string; name: string } }) =>
      `${a.metadata.namespace}/${a.metadata.name}` < `${b.metadata.namespace}/${b.metadata.name}` ? -1 : 1;
    this.pods.sort(byKey);
    this.services.sort(byKey);
    for (const slices of this.slicesByService.values()) slices.sort(byKey);
    for (const p of this.pods) {
      const ns = p.metadata.namespace!;
      (this.podsByNamespace.get(ns) ?? this.podsByNamespace.set(ns, []).get(ns)!).push(p);
    }
  }

  nsLabels(ns: string): Labels {
    return this.namespaces.get(ns)?.metadata.labels ?? {};
  }
}

/** Pod label overrides the namespace's (DESIGN §3). Waypoint pods are never captured. */
export function isEnrolled(pod: Pod, nsLabels: Labels): boolean {
  if (pod.metadata.labels[LABEL_GATEWAY_NAME]) return false;
  const own = pod.metadata.labels[LABEL_DATAPLANE_MODE];
  if (own !== undefined) return own === 'ambient';
  return nsLabels[LABEL_DATAPLANE_MODE] === 'ambient';
}

function isTerminated(pod: Pod): boolean {
  return pod.status.phase === 'Succeeded' || pod.status.phase === 'Failed';
}

function waypointForOf(gw: Gateway): WaypointFor {
  const v = gw.metadata.labels[LABEL_WAYPOINT_FOR];
  return v === 'workload' || v === 'all' || v === 'none' ? v : 'service';
}

export function computeViews(objects: Iterable<MeshObject>, opts: ViewOptions, reuse?: Pick<MeshViews, 'workloads' | 'services' | 'endpointProblems'>): MeshViews {
  const idx = new MeshIndex(objects);
  const problems: BindingProblem[] = [];
  const waypointRefs = new Map<string, WaypointRef>();
  for (const [key, gw] of idx.waypoints) waypointRefs.set(key, waypointRef(gw, idx, opts));

  /** Resolve `istio.io/use-waypoint` for an object whose own labels win over its namespace's. */
  const bindingFor = (
    what: 'service' | 'workload', objKey: string, ns: string, own: Labels,
  ): WaypointRef | undefined => {
    const nsl = idx.nsLabels(ns);
    const fromOwn = own[LABEL_USE_WAYPOINT] !== undefined;
    const name = fromOwn ? own[LABEL_USE_WAYPOINT] : nsl[LABEL_USE_WAYPOINT];
    if (!name || name === 'none') return undefined;
    const wpNs = (fromOwn ? own[LABEL_USE_WAYPOINT_NAMESPACE] : nsl[LABEL_USE_WAYPOINT_NAMESPACE]) ?? ns;
    const key = `${wpNs}/${name}`;
    const gw = idx.waypoints.get(key);
    if (!gw) {
      problems.push({ object: objKey, message: `uses waypoint ${key}, but no Gateway ${key} with gatewayClassName ${WAYPOINT_GATEWAY_CLASS} exists; traffic to it is refused until it does (create the waypoint, or set ${LABEL_USE_WAYPOINT}=none)` });
      return { namespace: wpNs, name, identity: spiffeIdFor(opts.trustDomain, wpNs, name) };
    }
    const wf = waypointForOf(gw);
    // A label on the object itself always binds to the waypoint when that waypoint serves its kind;
    // a namespace label binds only the kinds the waypoint is for (Istio's waypoint-for).
    if (wf === 'all' || wf === what) return waypointRefs.get(key);
    if (fromOwn) problems.push({ object: objKey, message: `uses waypoint ${key}, which is for ${wf} traffic (label ${LABEL_WAYPOINT_FOR}); the binding is ignored` });
    return undefined;
  };

  let services: Map<string, ServiceResource>;
  let workloads: Map<string, WorkloadResource>;
  if (reuse) {
    ({ services, workloads } = reuse);
    problems.push(...reuse.endpointProblems);
  } else {
    ({ services, workloads } = computeEndpoints(idx, opts, bindingFor, problems));
  }
  const endpointProblems = [...problems];

  const compiled = compileWaypoints(
    { httpRoutes: idx.httpRoutes, virtualServices: idx.virtualServices, destinationRules: idx.destinationRules, authz: idx.authz, telemetry: idx.telemetry, configMaps: idx.configMaps },
    waypointRefs, services, workloads, opts.rootNamespace,
  );
  const waypoints = new Map<string, WaypointView>();
  for (const [key, c] of compiled.perWaypoint) {
    waypoints.set(key, { gateway: key, ref: waypointRefs.get(key)!, routes: c.routes, policies: c.policies, services: c.services });
  }

  const authorizations = new Map<string, AuthorizationResource>();
  for (const p of idx.authz) {
    const r = toZtunnelAuthz(p, opts, compiled.report.waypointEnforced.get(`${p.metadata.namespace}/${p.metadata.name}`));
    if (r) authorizations.set(`authz/${p.metadata.namespace}/${p.metadata.name}`, r);
  }
  for (const pa of idx.peerAuthn) {
    const ns = pa.metadata.namespace!;
    const selector = pa.spec.selector?.matchLabels;
    const hasSelector = !!selector && Object.keys(selector).length > 0;
    if (hasSelector && ns === opts.rootNamespace) {
      // As in Istio: a workload selector in the root namespace has no meaning for PeerAuthentication.
      problems.push({ object: `PeerAuthentication/${ns}/${pa.metadata.name}`, message: `has a selector in the root namespace ${ns}; Istio ignores such a policy, and so does Strait (put it in the workloads' namespace)` });
      continue;
    }
    const portLevel: Record<string, MtlsMode> = {};
    for (const [port, v] of Object.entries(pa.spec.portLevelMtls ?? {})) portLevel[port] = v.mode;
    authorizations.set(`peerauthn/${ns}/${pa.metadata.name}`, {
      type: 'peerauthn',
      name: pa.metadata.name,
      namespace: ns,
      scope: ns === opts.rootNamespace && !hasSelector ? 'global' : hasSelector ? 'workload' : 'namespace',
      ...(hasSelector ? { selector } : {}),
      mode: pa.spec.mtls?.mode ?? 'UNSET',
      portLevel,
    });
  }

  return { workloads, services, authorizations, waypoints, l7: compiled.report, problems, endpointProblems };
}

type BindingFor = (what: 'service' | 'workload', objKey: string, ns: string, own: Labels) => WaypointRef | undefined;

/** Services with their endpoints, and workloads (with the services selecting them and their waypoint bindings). */
function computeEndpoints(idx: MeshIndex, opts: ViewOptions, bindingFor: BindingFor, problems: BindingProblem[]): { services: Map<string, ServiceResource>; workloads: Map<string, WorkloadResource> } {
  // Services first (workloads list the services that select them).
  const services = new Map<string, ServiceResource>();
  const servicesOfPod = new Map<string, string[]>();
  const addService = (uid: string, key: string) => {
    const list = servicesOfPod.get(uid) ?? servicesOfPod.set(uid, []).get(uid)!;
    if (!list.includes(key)) list.push(key);
  };
  const podByAddress = new Map<string, Pod>();
  for (const pod of idx.pods) {
    if (isTerminated(pod)) continue;
    for (const a of pod.status.podIPs.length > 0 ? pod.status.podIPs : pod.status.podIP ? [pod.status.podIP] : []) podByAddress.set(a, pod);
  }
  for (const svc of idx.services) {
    const ns = svc.metadata.namespace!;
    const key = `${ns}/${svc.metadata.name}`;
    let endpoints: EndpointResource[] = [];
    const slices = idx.slicesByService.get(key) ?? [];
    if (svc.spec.selector && Object.keys(svc.spec.selector).length > 0) {
      for (const pod of idx.podsByNamespace.get(ns) ?? []) {
        if (isTerminated(pod)) continue;
        if (!matchesSelector(svc.spec.selector, pod.metadata.labels)) continue;
        const uid = `${ns}/${pod.metadata.name}`;
        addService(uid, key);
        const address = pod.status.podIP;
        if (!address) continue;
        const named = namedPorts(pod);
        const ports: Record<string, number> = {};
        for (const p of svc.spec.ports) {
          const target = typeof p.targetPort === 'number' ? p.targetPort : named[p.targetPort];
          if (target !== undefined) ports[String(p.port)] = target;
        }
        endpoints.push({ workload: uid, address, ports, healthy: pod.status.ready });
      }
      // Kubernetes mirrors the selected pods into its own slices; a slice someone else wrote would be a second,
      // conflicting source of endpoints, which Strait does not merge.
      for (const slice of slices) {
        if (slice.metadata.labels[LABEL_MANAGED_BY] === KUBE_ENDPOINTSLICE_CONTROLLER) continue;
        problems.push({ object: `EndpointSlice/${ns}/${slice.metadata.name}`, message: `names Service ${key}, which has a selector: Strait takes that Service's endpoints from the pods it selects, so this slice is not used (remove the selector to list the endpoints by hand, or delete the slice)` });
      }
    } else {
      endpoints = sliceEndpoints(svc, slices, podByAddress, (uid) => addService(uid, key));
    }
    const vips = svc.spec.clusterIPs.length > 0 ? svc.spec.clusterIPs : svc.spec.clusterIP && svc.spec.clusterIP !== 'None' ? [svc.spec.clusterIP] : [];
    const res: ServiceResource = {
      name: svc.metadata.name,
      namespace: ns,
      hostname: `${svc.metadata.name}.${ns}.svc.cluster.local`,
      vips: vips.filter((v) => v !== 'None'),
      ports: svc.spec.ports.map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port, targetPort: p.targetPort, ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}) })),
      endpoints,
    };
    const wp = bindingFor('service', `Service/${key}`, ns, svc.metadata.labels);
    if (wp) res.waypoint = wp;
    services.set(key, res);
  }

  const workloads = new Map<string, WorkloadResource>();
  for (const pod of idx.pods) {
    if (isTerminated(pod)) continue;
    const ns = pod.metadata.namespace!;
    const uid = `${ns}/${pod.metadata.name}`;
    const addresses = pod.status.podIPs.length > 0 ? pod.status.podIPs : pod.status.podIP ? [pod.status.podIP] : [];
    const nsl = idx.nsLabels(ns);
    const enrolled = isEnrolled(pod, nsl);
    const labels = pod.metadata.labels;
    const w: WorkloadResource = {
      uid,
      name: pod.metadata.name,
      namespace: ns,
      node: pod.spec.nodeName ?? '',
      serviceAccount: pod.spec.serviceAccountName,
      identity: spiffeIdFor(opts.trustDomain, ns, pod.spec.serviceAccountName),
      addresses,
      labels,
      protocol: enrolled ? 'HBONE' : 'TCP',
      healthy: pod.status.ready,
      canonicalName: labels['service.istio.io/canonical-name'] ?? labels['app.kubernetes.io/name'] ?? labels['app'] ?? pod.metadata.name,
      canonicalRevision: labels['service.istio.io/canonical-revision'] ?? labels['app.kubernetes.io/version'] ?? labels['version'] ?? 'latest',
      workloadName: workloadNameOf(pod.metadata.name),
      namedPorts: namedPorts(pod),
      services: servicesOfPod.get(uid) ?? [],
    };
    if (enrolled) {
      const wp = bindingFor('workload', `Pod/${uid}`, ns, labels);
      if (wp) w.waypoint = wp;
    }
    const gwName = labels[LABEL_GATEWAY_NAME];
    if (gwName && idx.waypoints.has(`${ns}/${gwName}`)) w.waypointFor = `${ns}/${gwName}`;
    workloads.set(uid, w);
  }

  return { services, workloads };
}

/** A Deployment's pod is "<deployment>-<pod-template-hash>-<5 chars>": its workload is the Deployment; else the pod. */
export function workloadNameOf(podName: string): string {
  const m = /^(.+)-[bcdfghjklmnpqrstvwxz2456789]{6,10}-[bcdfghjklmnpqrstvwxz2456789]{5}$/.exec(podName);
  return m ? m[1]! : podName;
}

function namedPorts(pod: Pod): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of pod.spec.containers) for (const p of c.ports) if (p.name) out[p.name] = p.containerPort;
  return out;
}

/**
 * Where a waypoint answers: Gateway spec.addresses, else a Service named after the Gateway, else its first
 * ready pod. Unresolved → no address (proxies refuse traffic bound to it, with a clear error).
 */
/**
 * The endpoints of a Service without a selector, from its EndpointSlices: the first address of each endpoint (the
 * addresses are fungible), each Service port mapped to the slice port of the same name, an address listed twice (as
 * happens while slices are rewritten) counted once. An address that is a pod's (by targetRef, else by IP) is that
 * pod's workload, so HBONE and policy apply to it; any other address is reached as plain TCP.
 */
function sliceEndpoints(svc: Service, slices: EndpointSlice[], podByAddress: Map<string, Pod>, selects: (uid: string) => void): EndpointResource[] {
  const ns = svc.metadata.namespace!;
  const out = new Map<string, EndpointResource>();
  for (const slice of slices) {
    if (slice.addressType === 'FQDN') continue; // warned by validation
    const portByName = new Map<string, number>();
    for (const p of slice.ports) if (p.port !== undefined && p.protocol === 'TCP') portByName.set(p.name ?? '', p.port);
    const ports: Record<string, number> = {};
    for (const p of svc.spec.ports) {
      const target = portByName.get(p.name ?? '');
      if (target !== undefined) ports[String(p.port)] = target;
    }
    for (const e of slice.endpoints) {
      const address = e.addresses[0];
      if (!address || out.has(address)) continue;
      const ref = e.targetRef?.kind === 'Pod' ? `${e.targetRef.namespace ?? ns}/${e.targetRef.name}` : undefined;
      const byIp = podByAddress.get(address);
      const uid = ref ?? (byIp ? `${byIp.metadata.namespace}/${byIp.metadata.name}` : '');
      if (uid) selects(uid);
      out.set(address, { workload: uid, address, ports, healthy: e.conditions.ready !== false });
    }
  }
  return [...out.values()];
}

function waypointRef(gw: Gateway, idx: MeshIndex, opts: ViewOptions): WaypointRef {
  const ns = gw.metadata.namespace!;
  const name = gw.metadata.name;
  const ref: WaypointRef = { namespace: ns, name, identity: spiffeIdFor(opts.trustDomain, ns, name) };
  const fromSpec = gw.spec.addresses?.find((a) => !a.type || a.type === 'IPAddress')?.value;
  const svc = idx.services.find((s) => s.metadata.namespace === ns && s.metadata.name === name);
  const svcIp = svc?.spec.clusterIP && svc.spec.clusterIP !== 'None' ? svc.spec.clusterIP : undefined;
  const pod = idx.pods.find((p) => p.metadata.namespace === ns && p.metadata.labels[LABEL_GATEWAY_NAME] === name && p.status.podIP && !isTerminated(p));
  const address = fromSpec ?? svcIp ?? pod?.status.podIP;
  if (address) ref.address = address;
  // Waypoint pods run as a service account named after the Gateway, unless its pods say otherwise.
  if (pod) ref.identity = spiffeIdFor(opts.trustDomain, ns, pod.spec.serviceAccountName === 'default' ? name : pod.spec.serviceAccountName);
  return ref;
}

// ---------- L4 authorization for ztunnels ----------

const L4_WHEN_KEYS = new Set(['source.ip', 'source.namespace', 'source.principal', 'destination.ip', 'destination.port']);

/**
 * A policy attached with targetRef(s) belongs to a waypoint; ztunnels enforce selector/namespace/global ones.
 * `waypointEnforced`: the waypoints that enforce this policy whole, whose own connections the ztunnels let through it.
 */
export function toZtunnelAuthz(p: AuthorizationPolicy, opts: ViewOptions, waypointEnforced?: string[]): AuthorizationResource | undefined {
  if (p.spec.targetRef || (p.spec.targetRefs && p.spec.targetRefs.length > 0)) return undefined;
  if (p.spec.action === 'CUSTOM') return undefined;
  const ns = p.metadata.namespace!;
  const selector = p.spec.selector?.matchLabels;
  const hasSelector = !!selector && Object.keys(selector).length > 0;
  const notes: string[] = [];
  const rules: L4Rule[] = [];
  p.spec.rules.forEach((rule, i) => {
    const converted = toL4Rule(rule);
    if (converted.l7Fields.length === 0) {
      rules.push(converted.rule);
    } else if (p.spec.action === 'ALLOW' || p.spec.action === 'AUDIT') {
      notes.push(`rules[${i}] dropped: ${converted.l7Fields.join(', ')} need a waypoint (an ALLOW rule with L7 fields never matches at L4)`);
    } else {
      notes.push(`rules[${i}] enforced without ${converted.l7Fields.join(', ')} (a DENY rule with L7 fields denies at L4 regardless of them)`);
      rules.push(converted.rule);
    }
  });
  return {
    type: 'authz',
    name: p.metadata.name,
    namespace: ns,
    scope: ns === opts.rootNamespace ? 'global' : hasSelector ? 'workload' : 'namespace',
    ...(hasSelector ? { selector } : {}),
    action: p.spec.action,
    rules,
    notes,
    ...(waypointEnforced && waypointEnforced.length > 0 ? { waypointEnforced } : {}),
  };
}

/** The HTTP (L7) fields of a rule, which a ztunnel cannot check: "to[0].operation.methods", "when[1].key request.headers[x]". */
export function l7FieldsOfRule(rule: AuthzRule): string[] {
  return toL4Rule(rule).l7Fields;
}

function toL4Rule(rule: AuthzRule): { rule: L4Rule; l7Fields: string[] } {
  const l7: string[] = [];
  const out: L4Rule = {};
  if (rule.from) {
    out.from = rule.from.map(({ source }, j) => {
      const m: L4Match = {};
      for (const f of ['principals', 'notPrincipals', 'namespaces', 'notNamespaces', 'serviceAccounts', 'notServiceAccounts', 'ipBlocks', 'notIpBlocks'] as const) {
        if (source[f]) m[f] = source[f];
      }
      for (const f of ['requestPrincipals', 'notRequestPrincipals', 'remoteIpBlocks', 'notRemoteIpBlocks'] as const) {
        if (source[f]) l7.push(`from[${j}].source.${f}`);
      }
      return m;
    });
  }
  if (rule.to) {
    out.to = rule.to.map(({ operation }, j) => {
      const m: L4Match = {};
      if (operation.ports) m.ports = operation.ports;
      if (operation.notPorts) m.notPorts = operation.notPorts;
      for (const f of ['hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths'] as const) {
        if (operation[f]) l7.push(`to[${j}].operation.${f}`);
      }
      return m;
    });
  }
  if (rule.when) {
    const kept = rule.when.filter((c, j) => {
      if (L4_WHEN_KEYS.has(c.key)) return true;
      l7.push(`when[${j}].key ${c.key}`);
      return false;
    });
    if (kept.length) out.when = kept.map((c) => ({ key: c.key, ...(c.values ? { values: c.values } : {}), ...(c.notValues ? { notValues: c.notValues } : {}) }));
  }
  return { rule: out, l7Fields: l7 };
}
