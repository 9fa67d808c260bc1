/**
 * Pure planning of a lab (`strait lab up`) from manifests already translated into 198.18.0.0/15 (labAddressText):
 * which nodes there are and their fabric addresses, which pods get a namespace and what runs in each, where the
 * waypoints run, and what each Service VIP is DNATed to. What cannot run in the lab is an error naming the object and
 * the fix; what the lab leaves out is a warning (nothing the user wrote is dropped silently). No I/O.
 */
import { isIPv4 } from 'node:net';
import type { AuthzSource, MeshObject, Pod, Service } from '../../common/model/types.js';
import { LAB_NET } from '../address-base.js';
import { DEMO_ANNOTATIONS } from '../demo-annotations.js';
import { DEMO_APP_IMAGE, planDemoApps, planWaypoints, type PlannedApp, type PlannedWaypoint } from '../plan.js';
import { editDistance } from '../../common/edit-distance.js';

/** The pod annotation naming a shell command the lab runs in the pod's namespace (`/bin/sh -c`). */
export const ANNOTATION_LAB_COMMAND = 'strait.dev/lab-command';
/** The pod annotations of Strait's own domain that the lab reads; any other strait.dev/ one is a warning (a typo?). */
const KNOWN_POD_ANNOTATIONS: readonly string[] = [ANNOTATION_LAB_COMMAND, ...DEMO_ANNOTATIONS];
/** Kept for the lab itself; an error when the manifests use it. */
export const LAB_RESERVED = '198.19.252.0/22';
/** Nodes and the controller, on one bridge. Node i (0-based) is .(i+1). */
export const FABRIC_PREFIX = '198.19.254.';
export const FABRIC_PREFIX_LENGTH = 24;
export const CONTROLLER_ADDRESS = '198.19.254.250';
/** Node i's pod gateway (on each of its pod veths, /32) is .(i+1). */
export const GATEWAY_PREFIX = '198.19.253.';
/** Waypoints without a lab address in the Gateway's spec.addresses: .(k+1). */
export const WAYPOINT_PREFIX = '198.19.252.';
/** Node addresses .1 to .249: .250 is the controller's. */
export const MAX_LAB_NODES = 249;
/** Linux's limit on a network namespace name (a file name under /run/netns). */
const MAX_NETNS_NAME = 255;

export interface LabNode {
  name: string;
  /** Position on the fabric: address FABRIC_PREFIX(index+1), pod gateway GATEWAY_PREFIX(index+1). */
  index: number;
  address: string;
  gateway: string;
}

export interface LabPod {
  /** "ns/name" */
  key: string;
  namespace: string;
  name: string;
  node: string;
  address: string;
  /** The strait.dev/lab-command annotation: run with /bin/sh -c in the pod's namespace. */
  command?: string;
  /** The TCP container ports the pod declares: its command is ready once each accepts connections. */
  ports: number[];
  /** Otherwise the demo apps of its strait/demo-app containers (none: nothing runs). */
  apps: PlannedApp[];
}

export interface LabWaypoint extends PlannedWaypoint {
  node: string;
}

export interface LabServicePort {
  name?: string;
  port: number;
  /** As written: a number, or the name of a container port. */
  targetPort: number | string;
  protocol: 'TCP' | 'UDP' | 'SCTP';
}

export interface LabEndpoint {
  /** "ns/name" of the pod. */
  pod: string;
  address: string;
  /** The pod's port for each of the service's ports (same order); null where a named targetPort is not on the pod. */
  ports: (number | null)[];
}

export interface LabService {
  /** "ns/name" */
  key: string;
  clusterIP: string;
  ports: LabServicePort[];
  /** The ready pods its selector picks that have a lab namespace, by address. */
  endpoints: LabEndpoint[];
}

export interface LabPlan {
  nodes: LabNode[];
  pods: LabPod[];
  waypoints: LabWaypoint[];
  services: LabService[];
  /** What the lab leaves out or runs differently, said plainly (logged as warnings). */
  problems: string[];
  /** What cannot run in the lab at all, each naming the object and the fix: `strait lab up` refuses to start. */
  errors: string[];
}

export interface LabPlanOptions {
  /** Namespace name prefix ("strait-lab1a2b-"), to check that node namespace names fit. */
  prefix?: string;
  /** Fabric positions of running nodes: they keep them, so a node added later never takes a running one's address. */
  previousNodes?: ReadonlyMap<string, number>;
  /** Addresses of running waypoints ("ns/name" → address). */
  previousWaypoints?: ReadonlyMap<string, string>;
  /** Nodes running waypoints ("ns/name" → node), kept while the node is there. */
  previousWaypointNodes?: ReadonlyMap<string, string>;
}

// ---- addresses ----

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

/** [first, last] of an IPv4 CIDR (or single address); undefined for anything else. */
function cidrRange(cidr: string): [number, number] | undefined {
  const [ip, len] = cidr.trim().split('/');
  if (!ip || !isIPv4(ip)) return undefined;
  const bits = len === undefined ? 32 : Number(len);
  if (!Number.isInteger(bits) || bits < 0 || bits > 32) return undefined;
  const size = 2 ** (32 - bits);
  const first = Math.floor(ipv4ToInt(ip) / size) * size;
  return [first, first + size - 1];
}

const LAB_RANGE = cidrRange(LAB_NET)!;
const RESERVED_RANGE = cidrRange(LAB_RESERVED)!;
const inRange = (ip: string, [a, b]: [number, number]) => isIPv4(ip) && ipv4ToInt(ip) >= a && ipv4ToInt(ip) <= b;

/** An IPv4 address in 198.18.0.0/15. */
export function isLabAddress(ip: string): boolean {
  return inRange(ip, LAB_RANGE);
}

export function isReservedLabAddress(ip: string): boolean {
  return inRange(ip, RESERVED_RANGE);
}

/** What is wrong with `ip` as an address of `what` in the lab ("Pod shop/web-1: status.podIP"), or undefined. */
function addressError(what: string, ip: string): string | undefined {
  if (!isLabAddress(ip)) {
    return `${what} ${ip} is outside the lab's addresses: write it in 127.0.0.0/8 (the lab reads 127.a.b.c as 198.18.b.c; 127.0.0.1 stays `
      + `the namespace's own loopback) or in ${LAB_NET}`;
  }
  if (isReservedLabAddress(ip)) {
    return `${what} ${ip} is in ${LAB_RESERVED}, which the lab keeps for itself (fabric ${FABRIC_PREFIX}0/24: nodes and controller; `
      + `pod gateways ${GATEWAY_PREFIX}0/24; waypoints ${WAYPOINT_PREFIX}0/24): pick another address in ${LAB_NET}`;
  }
  return undefined;
}

// ---- the plan ----

export function planLab(objects: readonly MeshObject[], opts: LabPlanOptions = {}): LabPlan {
  const problems: string[] = [];
  const errors: string[] = [];
  const nodes = planNodes(objects, opts, problems, errors);
  const nodeNames = nodes.map((n) => n.name);
  const services = objects.filter((o): o is Service => o.kind === 'Service');
  const pods = objects.filter((o): o is Pod => o.kind === 'Pod');

  const owners = new Map<string, string>(); // address → who has it, for collisions
  const claim = (ip: string, who: string) => {
    const had = owners.get(ip);
    if (had) errors.push(`${who} has address ${ip}, which ${had} already has: every pod, waypoint and Service VIP needs its own address in the lab`);
    else owners.set(ip, who);
  };

  const labPods: LabPod[] = [];
  for (const p of pods) {
    const key = `${p.metadata.namespace}/${p.metadata.name}`;
    const command = p.metadata.annotations[ANNOTATION_LAB_COMMAND];
    const ip = p.status.podIP;
    const missing = !p.spec.nodeName ? 'spec.nodeName' : !ip ? 'status.podIP' : undefined;
    if (missing) {
      problems.push(`Pod ${key} has no ${missing}: the lab gives it no namespace, so nothing runs in it${command !== undefined ? ` (its ${ANNOTATION_LAB_COMMAND} included)` : ''}; `
        + `set ${missing}${missing === 'spec.nodeName' ? ` to one of the nodes (${nodeNames.join(', ') || 'none yet'})` : ' to an address (127.a.b.c is read as 198.18.b.c)'}`);
      continue;
    }
    const bad = addressError(`Pod ${key}: status.podIP`, ip!);
    if (bad) {
      errors.push(bad);
      continue;
    }
    const others = p.status.podIPs.filter((x) => x !== ip);
    if (others.length > 0) problems.push(`Pod ${key}: the lab gives each pod one address, its status.podIP ${ip}; status.podIPs ${others.join(', ')} are not assigned to it`);
    claim(ip!, `Pod ${key}`);
    const ports = [...new Set(p.spec.containers.flatMap((c) => c.ports).filter((cp) => !cp.protocol || cp.protocol === 'TCP').map((cp) => cp.containerPort))];
    const pod: LabPod = { key, namespace: p.metadata.namespace!, name: p.metadata.name, node: p.spec.nodeName!, address: ip!, ports, apps: [] };
    if (command !== undefined && String(command).trim() === '') {
      problems.push(`Pod ${key}: annotation ${ANNOTATION_LAB_COMMAND} is empty, so nothing runs in the pod; write the shell command to run, or remove the annotation`);
    } else if (command !== undefined) {
      pod.command = String(command);
    } else {
      pod.apps = planDemoApps(p, ip!, services, errors);
      if (pod.apps.length === 0 && !p.spec.containers.some((c) => c.image === DEMO_APP_IMAGE || c.image?.startsWith(`${DEMO_APP_IMAGE}:`))) {
        problems.push(`Pod ${key}: the lab runs no container images, so nothing runs in this pod (it is there for strait lab exec); `
          + `to run something in it, add the annotation ${ANNOTATION_LAB_COMMAND}: "<shell command>", or use image ${DEMO_APP_IMAGE}`);
      }
    }
    for (const name of Object.keys(p.metadata.annotations)) {
      if (!name.startsWith('strait.dev/') || KNOWN_POD_ANNOTATIONS.includes(name)) continue;
      const near = KNOWN_POD_ANNOTATIONS.find((k) => editDistance(k, name) <= 2);
      problems.push(`Pod ${key}: annotation ${name} is not one Strait reads, so it is ignored${near ? `; did you mean ${near}?` : ` (it reads ${KNOWN_POD_ANNOTATIONS.join(', ')})`}`);
    }
    labPods.push(pod);
  }

  const waypoints = planLabWaypoints(objects, nodes, opts, problems, errors);
  for (const w of waypoints) claim(w.address, `the waypoint of Gateway ${w.key}`);
  const labServices = planServices(services, pods, labPods, problems, errors, claim);
  warnIpBlocks(objects, problems);
  return { nodes, pods: labPods, waypoints, services: labServices, problems, errors };
}

function planNodes(objects: readonly MeshObject[], opts: LabPlanOptions, problems: string[], errors: string[]): LabNode[] {
  const names = new Set<string>();
  const internal = new Map<string, string>();
  for (const o of objects) {
    if (o.kind === 'Node') {
      names.add(o.metadata.name);
      const ip = o.status.addresses.find((a) => a.type === 'InternalIP')?.address;
      if (ip) internal.set(o.metadata.name, ip);
    }
    if (o.kind === 'Pod' && o.spec.nodeName) names.add(o.spec.nodeName);
  }
  const prefix = opts.prefix ?? 'strait-lab0000-';
  for (const name of names) {
    if (`${prefix}n-${name}`.length > MAX_NETNS_NAME) {
      errors.push(`Node ${name}: the name is too long for the lab's namespace name (${prefix}n-<node> must fit in ${MAX_NETNS_NAME} characters): use a shorter node name`);
      names.delete(name);
    }
  }
  const previous = opts.previousNodes ?? new Map<string, number>();
  const taken = new Set<number>();
  const index = new Map<string, number>();
  for (const [name, i] of previous) {
    if (names.has(name)) {
      index.set(name, i);
      taken.add(i);
    }
  }
  let next = 0;
  const nodes: LabNode[] = [];
  for (const name of [...names].sort()) {
    let i = index.get(name);
    if (i === undefined) {
      while (taken.has(next)) next++;
      i = next++;
      taken.add(i);
    }
    if (i >= MAX_LAB_NODES) {
      errors.push(`Node ${name}: the lab has room for ${MAX_LAB_NODES} nodes (fabric addresses ${FABRIC_PREFIX}1-${MAX_LAB_NODES}); `
        + `the manifests name ${names.size}: remove nodes (or move their pods to fewer nodes)`);
      continue;
    }
    nodes.push({ name, index: i, address: `${FABRIC_PREFIX}${i + 1}`, gateway: `${GATEWAY_PREFIX}${i + 1}` });
  }
  const moved = nodes.filter((n) => internal.has(n.name) && internal.get(n.name) !== n.address);
  if (moved.length > 0) {
    problems.push(`the lab puts every node on its fabric ${FABRIC_PREFIX}0/24, so the InternalIP of ${moved.map((n) => `Node ${n.name} (${internal.get(n.name)})`).join(', ')} `
      + `is not used: ${moved.map((n) => `${n.name} is ${n.address}`).join(', ')}`);
  }
  return nodes;
}

function planLabWaypoints(objects: readonly MeshObject[], nodes: readonly LabNode[], opts: LabPlanOptions, problems: string[], errors: string[]): LabWaypoint[] {
  const bad: string[] = [];
  const planned = planWaypoints(objects, {
    previous: opts.previousWaypoints ?? new Map(),
    usable: (ip) => isLabAddress(ip) && !isReservedLabAddress(ip),
    unusable: (key, ip) => addressError(`Gateway ${key}: spec.addresses`, ip) ?? `Gateway ${key}: spec.addresses ${ip} cannot be used`,
    address: (k) => (k < 254 ? `${WAYPOINT_PREFIX}${k + 1}` : undefined),
    range: `${WAYPOINT_PREFIX}0/24`,
  }, bad);
  // An address the lab cannot give the waypoint is the user's to fix (in the local mesh it is only a warning).
  errors.push(...bad);
  const first = [...nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))[0];
  const out: LabWaypoint[] = [];
  for (const w of planned) {
    const kept = opts.previousWaypointNodes?.get(w.key);
    const node = kept && nodes.some((n) => n.name === kept) ? kept : first?.name;
    if (!node) {
      problems.push(`Gateway ${w.key}: the lab has no node to run its waypoint on; add a Node (or a pod with spec.nodeName)`);
      continue;
    }
    out.push({ ...w, node });
  }
  return out;
}

function planServices(services: readonly Service[], pods: readonly Pod[], labPods: readonly LabPod[], problems: string[], errors: string[],
  claim: (ip: string, who: string) => void): LabService[] {
  const inLab = new Map(labPods.map((p) => [p.key, p]));
  const out: LabService[] = [];
  for (const s of services) {
    const key = `${s.metadata.namespace}/${s.metadata.name}`;
    const vip = s.spec.clusterIP;
    if (!vip || vip === 'None') {
      if (!vip) problems.push(`Service ${key} has no spec.clusterIP, so it has no VIP in the lab; give it one (127.a.b.c is read as 198.18.b.c)`);
      continue;
    }
    const bad = addressError(`Service ${key}: spec.clusterIP`, vip);
    if (bad) {
      errors.push(bad);
      continue;
    }
    claim(vip, `Service ${key}`);
    const extra = s.spec.clusterIPs.filter((x) => x !== vip);
    if (extra.length > 0) problems.push(`Service ${key}: the lab DNATs its spec.clusterIP ${vip} only; spec.clusterIPs ${extra.join(', ')} lead nowhere`);
    const ports: LabServicePort[] = s.spec.ports.map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port, targetPort: p.targetPort, protocol: p.protocol }));
    const selector = s.spec.selector;
    if (!selector || Object.keys(selector).length === 0) {
      problems.push(`Service ${key} has no selector: the lab picks its endpoints from pods by selector only, so connections to ${vip} go nowhere`);
      out.push({ key, clusterIP: vip, ports, endpoints: [] });
      continue;
    }
    const endpoints: LabEndpoint[] = [];
    for (const p of pods) {
      if (p.metadata.namespace !== s.metadata.namespace) continue;
      if (!Object.entries(selector).every(([k, v]) => p.metadata.labels[k] === v)) continue;
      const lp = inLab.get(`${p.metadata.namespace}/${p.metadata.name}`);
      if (!lp || !isReady(p)) continue;
      const resolved = ports.map((sp) => {
        if (typeof sp.targetPort === 'number') return sp.targetPort;
        const named = p.spec.containers.flatMap((c) => c.ports).find((cp) => cp.name === sp.targetPort);
        if (!named) {
          problems.push(`Service ${key} port ${sp.port}: targetPort "${sp.targetPort}" is not a container port name of Pod ${lp.key}, so the lab sends none of that port's connections to it; name the container port, or use a number`);
          return null;
        }
        return named.containerPort;
      });
      endpoints.push({ pod: lp.key, address: lp.address, ports: resolved });
    }
    endpoints.sort((a, b) => ipv4ToInt(a.address) - ipv4ToInt(b.address));
    out.push({ key, clusterIP: vip, ports, endpoints });
  }
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** As the endpoints controller sees it: Running (or no phase, as hand-written pods have) and not marked unready. */
function isReady(p: Pod): boolean {
  return (p.status.phase === undefined || p.status.phase === 'Running') && p.status.ready;
}

const IP_BLOCK_FIELDS = ['ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks'] as const;

/** A policy ipBlock that covers no lab address matches nothing in the lab: said, not left to be found out. */
function warnIpBlocks(objects: readonly MeshObject[], problems: string[]): void {
  for (const o of objects) {
    if (o.kind !== 'AuthorizationPolicy') continue;
    const sources: AuthzSource[] = (o.spec.rules ?? []).flatMap((r) => (r.from ?? []).map((f) => f.source));
    for (const src of sources) {
      for (const field of IP_BLOCK_FIELDS) {
        for (const block of src[field] ?? []) {
          const r = cidrRange(block);
          if (r && r[1] >= LAB_RANGE[0] && r[0] <= LAB_RANGE[1]) continue;
          problems.push(`AuthorizationPolicy ${o.metadata.namespace}/${o.metadata.name}: ${field} "${block}" covers no lab address (every pod is in ${LAB_NET}; `
            + `127.a.b.c is read as 198.18.b.c, CIDRs shorter than /16 are left as written), so it matches nothing in the lab`);
        }
      }
    }
  }
}
