/**
 * Pure planning of a local mesh from manifests: which nodes run a ztunnel and on which loopback address,
 * which pods run the built-in demo app, which waypoints exist, and what cannot run on this machine at all. No I/O.
 */
import { isIP } from 'node:net';
import type { ContainerPort, MeshObject, Pod, Service } from '../common/model/types.js';
import { WAYPOINT_GATEWAY_CLASS } from '../common/model/index.js';
import { demoBehaviourOf, type DemoBehaviour } from './demo-annotations.js';

/** Nodes without a loopback InternalIP get one from <prefix>1..254 (127.N.100.0/24 for address base 127.N.0.0). */
export const DEFAULT_NODE_POOL_PREFIX = '127.0.100.';
/** Waypoints without a loopback address in the Gateway's spec.addresses get one from <prefix>1..254 (127.N.101.0/24). */
export const DEFAULT_WAYPOINT_POOL_PREFIX = '127.0.101.';
/** The service-account annotation Istio reads on a waypoint Gateway; else the Gateway's name. */
export const ANNOTATION_WAYPOINT_SERVICE_ACCOUNT = 'gateway.istio.io/service-account';
/** Image name that makes `strait up` run the built-in demo app for a pod's containers. */
export const DEMO_APP_IMAGE = 'strait/demo-app';

export interface PlannedNode {
  name: string;
  address: string;
}

export interface PlannedApp {
  /** "ns/pod/container:port" */
  key: string;
  namespace: string;
  pod: string;
  node: string;
  address: string;
  port: number;
  serviceAccount: string;
  version: string;
  app: string;
  /** From the pod's strait.dev/demo-* annotations. */
  behaviour: DemoBehaviour;
  /** The port also serves the demo gRPC service (see isGrpcPort). */
  grpc: boolean;
}

/** A pod with loopback addresses on a node: its ztunnel answers HBONE on each address's port 15008. */
export interface PlannedPod {
  /** "ns/name" */
  key: string;
  node: string;
  addresses: string[];
}

/** A waypoint Gateway the local mesh runs: its own loopback address for 15008, 15000, 15020 and 15021. */
export interface PlannedWaypoint {
  /** "ns/name" */
  key: string;
  namespace: string;
  name: string;
  address: string;
  serviceAccount: string;
  /** The node its pod runs on (the lab's first node); the local mesh's waypoints are on none. */
  node?: string;
}

export interface LocalPlan {
  nodes: PlannedNode[];
  apps: PlannedApp[];
  pods: PlannedPod[];
  waypoints: PlannedWaypoint[];
  /** Things that run differently locally, said plainly (logged as warnings). */
  problems: string[];
  /** Things that cannot run locally at all, each naming the object and the fix: `strait up` refuses to start. */
  errors: string[];
}

export interface PlanOptions {
  /** Addresses already given to running nodes; they keep them, so a new node never takes a running one's address. */
  previous?: ReadonlyMap<string, string>;
  nodePoolPrefix?: string;
  /** Addresses already given to running waypoints ("ns/name" → address). */
  previousWaypoints?: ReadonlyMap<string, string>;
  waypointPoolPrefix?: string;
}

const isLoopback = (ip: string) => isIP(ip) === 4 && ip.startsWith('127.');

export function planLocalMesh(objects: MeshObject[], opts: PlanOptions = {}): LocalPlan {
  const pool = opts.nodePoolPrefix ?? DEFAULT_NODE_POOL_PREFIX;
  const previous = opts.previous ?? new Map<string, string>();
  const problems: string[] = [];
  const errors: string[] = [];
  const explicit = new Map<string, string>();
  const names = new Set<string>();
  for (const o of objects) {
    if (o.kind === 'Node') {
      names.add(o.metadata.name);
      const ip = o.status.addresses.find((a) => a.type === 'InternalIP')?.address;
      if (ip && isLoopback(ip)) explicit.set(o.metadata.name, ip);
      else if (ip) problems.push(`Node ${o.metadata.name}: InternalIP ${ip} is not in 127.0.0.0/8; the local mesh assigns it one from ${pool}0/24 instead`);
    }
  }
  const pods = objects.filter((o): o is Pod => o.kind === 'Pod');
  for (const p of pods) {
    if (p.spec.nodeName) names.add(p.spec.nodeName);
    else problems.push(`Pod ${p.metadata.namespace}/${p.metadata.name} has no spec.nodeName; no ztunnel serves it`);
    errors.push(...notLoopback(p));
  }
  for (const [name, ip] of previous) if (!explicit.has(name) && ![...explicit.values()].includes(ip)) explicit.set(name, ip);
  const used = new Set(explicit.values());
  let next = 1;
  const nodes: PlannedNode[] = [...names].sort().map((name) => {
    let address = explicit.get(name);
    if (!address) {
      while (used.has(`${pool}${next}`)) next++;
      if (next > 254) throw new Error(`more than 254 nodes: the local mesh assigns node addresses from ${pool}0/24`);
      address = `${pool}${next++}`;
      used.add(address);
    }
    return { name, address };
  });
  const planned: PlannedPod[] = pods
    .filter((p) => p.spec.nodeName)
    .map((p) => ({ key: `${p.metadata.namespace}/${p.metadata.name}`, node: p.spec.nodeName!, addresses: podAddresses(p).filter(isLoopback) }))
    .filter((p) => p.addresses.length > 0);
  const services = objects.filter((o): o is Service => o.kind === 'Service');
  const apps: PlannedApp[] = [];
  for (const p of pods) {
    const ip = p.status.podIP;
    if (!ip || !isLoopback(ip)) continue; // a pod without an address runs nothing; one off loopback is in `errors`
    apps.push(...planDemoApps(p, ip, services, errors));
  }
  const waypoints = planWaypoints(objects, loopbackWaypointPool(opts), problems);
  return { nodes, apps, pods: planned, waypoints, problems, errors };
}

/**
 * The demo apps a pod runs at `address` (the local mesh's or the lab's): one per port of each container whose image is
 * strait/demo-app, none otherwise. What is wrong with its demo annotations goes to `errors` (and then it runs none).
 */
export function planDemoApps(p: Pod, address: string, services: readonly Service[], errors: string[]): PlannedApp[] {
  const ns = p.metadata.namespace!;
  const demo = p.spec.containers.filter((c) => c.image === DEMO_APP_IMAGE || c.image?.startsWith(`${DEMO_APP_IMAGE}:`));
  if (demo.length === 0) return [];
  const { behaviour, errors: bad } = demoBehaviourOf(p.metadata.annotations, `Pod ${ns}/${p.metadata.name}`);
  if (bad.length > 0) {
    errors.push(...bad);
    return [];
  }
  const apps: PlannedApp[] = [];
  for (const c of demo) {
    for (const port of c.ports.length ? c.ports : [{ containerPort: 8080 }]) {
      apps.push({
        key: `${ns}/${p.metadata.name}/${c.name}:${port.containerPort}`, namespace: ns, pod: p.metadata.name, node: p.spec.nodeName ?? '',
        address, port: port.containerPort, serviceAccount: p.spec.serviceAccountName,
        version: p.metadata.labels['version'] ?? 'v1', app: p.metadata.labels['app'] ?? p.metadata.name,
        behaviour, grpc: isGrpcPort(p, port, services),
      });
    }
  }
  return apps;
}

/** Where waypoints get their address: which Gateway addresses are usable, and the pool for the others. */
export interface WaypointPool {
  /** Addresses already given to running waypoints ("ns/name" → address). */
  previous: ReadonlyMap<string, string>;
  /** Whether a Gateway's spec.addresses value can be the waypoint's address here. */
  usable: (ip: string) => boolean;
  /** Said (as a problem) of a Gateway IP address that is not usable. */
  unusable: (key: string, ip: string) => string;
  /** The k-th (0-based) address of the pool; undefined past its end. */
  address: (k: number) => string | undefined;
  /** "127.0.101.0/24", for the error when the pool runs out. */
  range: string;
}

function loopbackWaypointPool(opts: PlanOptions): WaypointPool {
  const pool = opts.waypointPoolPrefix ?? DEFAULT_WAYPOINT_POOL_PREFIX;
  return {
    previous: opts.previousWaypoints ?? new Map(), usable: isLoopback, range: `${pool}0/24`,
    unusable: (key, ip) => `Gateway ${key}: address ${ip} is not in 127.0.0.0/8; the local mesh runs the waypoint on a loopback address instead`,
    address: (k) => (k < 254 ? `${pool}${k + 1}` : undefined),
  };
}

/** The waypoint Gateways of the manifests, sorted by "ns/name", each with its address from `pool`. */
export function planWaypoints(objects: readonly MeshObject[], pool: WaypointPool, problems: string[]): PlannedWaypoint[] {
  const gateways = objects
    .filter((o): o is Extract<MeshObject, { kind: 'Gateway' }> => o.kind === 'Gateway' && o.spec.gatewayClassName === WAYPOINT_GATEWAY_CLASS)
    .sort((a, b) => (`${a.metadata.namespace}/${a.metadata.name}` < `${b.metadata.namespace}/${b.metadata.name}` ? -1 : 1));
  const chosen = new Map<string, string>();
  for (const g of gateways) {
    const key = `${g.metadata.namespace}/${g.metadata.name}`;
    const ips = (g.spec.addresses ?? []).filter((a) => !a.type || a.type === 'IPAddress').map((a) => a.value);
    const given = ips.find(pool.usable);
    const other = ips.find((ip) => !pool.usable(ip));
    if (other) problems.push(pool.unusable(key, other));
    if (given) chosen.set(key, given);
    else if (pool.previous.has(key)) chosen.set(key, pool.previous.get(key)!);
  }
  const used = new Set(chosen.values());
  let next = 0;
  return gateways.map((g) => {
    const key = `${g.metadata.namespace}/${g.metadata.name}`;
    let address = chosen.get(key);
    if (!address) {
      while (pool.address(next) !== undefined && used.has(pool.address(next)!)) next++;
      address = pool.address(next++);
      if (address === undefined) throw new Error(`too many waypoints: waypoint addresses are assigned from ${pool.range}`);
      used.add(address);
    }
    const sa = g.metadata.annotations?.[ANNOTATION_WAYPOINT_SERVICE_ACCOUNT] ?? g.metadata.name;
    return { key, namespace: g.metadata.namespace!, name: g.metadata.name, address, serviceAccount: sa };
  });
}

const grpcName = (name: string | undefined) => !!name && (name === 'grpc' || name.startsWith('grpc-'));

/**
 * Whether a demo app's port speaks gRPC: its name is `grpc` or `grpc-*` (Istio's port naming), or a Service of the
 * pod's namespace that selects the pod has a port with `appProtocol: grpc` (or such a name) targeting it.
 */
export function isGrpcPort(p: Pod, port: ContainerPort, services: readonly Service[]): boolean {
  if (grpcName(port.name)) return true;
  return services.some((s) => s.metadata.namespace === p.metadata.namespace && s.spec.selector && Object.keys(s.spec.selector).length > 0
    && Object.entries(s.spec.selector).every(([k, v]) => p.metadata.labels[k] === v)
    && s.spec.ports.some((sp) => (sp.appProtocol === 'grpc' || grpcName(sp.name))
      && (sp.targetPort === port.containerPort || (typeof sp.targetPort === 'string' && sp.targetPort === port.name))));
}

/**
 * A pod address off loopback cannot be served here: its ztunnel's HBONE listener and its app would fail to bind
 * it (EADDRNOTAVAIL) once running. Said before anything starts instead.
 */
function notLoopback(p: Pod): string[] {
  const bad = podAddresses(p).filter((ip) => !isLoopback(ip));
  if (bad.length === 0) return [];
  const which = p.status.podIP && bad.includes(p.status.podIP) ? `status.podIP ${p.status.podIP}` : `status.podIPs ${bad.join(', ')}`;
  return [`Pod ${p.metadata.namespace}/${p.metadata.name}: ${which} is not a loopback address. In the local mesh every pod lives on `
    + `127.0.0.0/8, where its node's ztunnel and its app listen; ${bad[0]} is not on this machine's loopback, so nothing could `
    + `listen there (EADDRNOTAVAIL). Give the pod a status.podIP in 127.0.0.0/8 (the demo uses 127.0.10.0/24), or remove it from the directory.`];
}

function podAddresses(p: Pod): string[] {
  return [...new Set([p.status.podIP, ...p.status.podIPs].filter((ip): ip is string => !!ip))];
}
