/**
 * Pure planning of a local mesh from manifests: which nodes run a ztunnel and on which loopback address,
 * which pods run the built-in demo app, which waypoints exist. No I/O.
 */
import { isIP } from 'node:net';
import type { MeshObject, Pod } from '../common/model/types.js';
import { WAYPOINT_GATEWAY_CLASS } from '../common/model/index.js';

export const NODE_ADDRESS_POOL_PREFIX = '127.0.100.';
/** Image name that makes `strait up` run the built-in demo app for a pod's containers. */
export const DEMO_APP_IMAGE = 'strait/demo-app';

export interface PlannedNode {
  name: string;
  address: string;
}

export interface PlannedApp {
  /** "ns/pod/container" */
  key: string;
  namespace: string;
  pod: string;
  node: string;
  address: string;
  port: number;
  serviceAccount: string;
  version: string;
  app: string;
}

export interface LocalPlan {
  nodes: PlannedNode[];
  apps: PlannedApp[];
  waypoints: string[];
  /** Things that cannot run locally, said plainly. */
  problems: string[];
}

const isLoopback = (ip: string) => isIP(ip) === 4 && ip.startsWith('127.');

/** `previous`: addresses already given to running nodes; they keep them, so a new node never takes a running one's address. */
export function planLocalMesh(objects: MeshObject[], previous: ReadonlyMap<string, string> = new Map()): LocalPlan {
  const problems: string[] = [];
  const explicit = new Map<string, string>();
  const names = new Set<string>();
  for (const o of objects) {
    if (o.kind === 'Node') {
      names.add(o.metadata.name);
      const ip = o.status.addresses.find((a) => a.type === 'InternalIP')?.address;
      if (ip && isLoopback(ip)) explicit.set(o.metadata.name, ip);
      else if (ip) problems.push(`Node ${o.metadata.name}: InternalIP ${ip} is not in 127.0.0.0/8; the local mesh assigns it one from ${NODE_ADDRESS_POOL_PREFIX}0/24 instead`);
    }
  }
  const pods = objects.filter((o): o is Pod => o.kind === 'Pod');
  for (const p of pods) {
    if (p.spec.nodeName) names.add(p.spec.nodeName);
    else problems.push(`Pod ${p.metadata.namespace}/${p.metadata.name} has no spec.nodeName; no ztunnel serves it`);
  }
  for (const [name, ip] of previous) if (!explicit.has(name) && ![...explicit.values()].includes(ip)) explicit.set(name, ip);
  const used = new Set(explicit.values());
  let next = 1;
  const nodes: PlannedNode[] = [...names].sort().map((name) => {
    let address = explicit.get(name);
    if (!address) {
      while (used.has(`${NODE_ADDRESS_POOL_PREFIX}${next}`)) next++;
      if (next > 254) throw new Error(`more than 254 nodes: the local mesh assigns node addresses from ${NODE_ADDRESS_POOL_PREFIX}0/24`);
      address = `${NODE_ADDRESS_POOL_PREFIX}${next++}`;
      used.add(address);
    }
    return { name, address };
  });
  const apps: PlannedApp[] = [];
  for (const p of pods) {
    const ip = p.status.podIP;
    const ns = p.metadata.namespace!;
    for (const c of p.spec.containers) {
      if (c.image !== DEMO_APP_IMAGE && !c.image?.startsWith(`${DEMO_APP_IMAGE}:`)) continue;
      if (!ip || !isLoopback(ip)) {
        problems.push(`Pod ${ns}/${p.metadata.name}: status.podIP ${ip ?? '(none)'} is not in 127.0.0.0/8, so its demo app cannot run locally`);
        continue;
      }
      for (const port of c.ports.length ? c.ports : [{ containerPort: 8080 }]) {
        apps.push({
          key: `${ns}/${p.metadata.name}/${c.name}:${port.containerPort}`, namespace: ns, pod: p.metadata.name, node: p.spec.nodeName ?? '',
          address: ip, port: port.containerPort, serviceAccount: p.spec.serviceAccountName,
          version: p.metadata.labels['version'] ?? 'v1', app: p.metadata.labels['app'] ?? p.metadata.name,
        });
      }
    }
    if (ip && !isLoopback(ip)) problems.push(`Pod ${ns}/${p.metadata.name}: status.podIP ${ip} is not in 127.0.0.0/8; in the local mesh nothing can listen there`);
  }
  const waypoints = objects
    .filter((o) => o.kind === 'Gateway' && o.spec.gatewayClassName === WAYPOINT_GATEWAY_CLASS)
    .map((o) => `${o.metadata.namespace}/${o.metadata.name}`)
    .sort();
  return { nodes, apps, waypoints, problems };
}
