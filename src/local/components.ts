/**
 * What each process of the local mesh is: its command line, readiness URL and stop grace (ComponentSpec), and the
 * address:port pairs it listens on. Pure: from the plan and where the mesh keeps its files.
 */
import { join } from 'node:path';
import type { LocalPlan, PlannedApp, PlannedNode, PlannedWaypoint } from './plan.js';
import type { WantedAddress } from './preflight.js';
import type { ComponentSpec } from './supervisor.js';
import { DEFAULT_DRAIN_MS, ZTUNNEL_NODE_OPTIONS } from '../ztunnel/config.js';
import { WAYPOINT_NODE_OPTIONS } from '../waypoint/config.js';
import { demoBehaviourArgs } from './demo-annotations.js';

/** Standard ports of each component (DESIGN §2); the local mesh gives every component its own address. */
export const PORTS = {
  xds: 15012, controllerAdmin: 15014,
  outbound: 15001, inboundPlaintext: 15006, hbone: 15008, socks5: 15080, admin: 15000, metrics: 15020, ready: 15021,
} as const;
const STOP_GRACE_MS = 5_000;
/**
 * A ztunnel drains on SIGTERM (stops accepting, lets connections finish for its --drain, then exits 0), so it gets
 * that long plus STOP_GRACE_MS before SIGKILL: the same rule as terminationGracePeriodSeconds in a DaemonSet.
 */
const ZTUNNEL_DRAIN_MS = DEFAULT_DRAIN_MS;
const ZTUNNEL_STOP_GRACE_MS = ZTUNNEL_DRAIN_MS + STOP_GRACE_MS;

export interface MeshPlaces {
  controllerAddress: string;
  dataDir: string;
  /** What the controller watches: the manifests, or their copy in the address base. */
  configDir: string;
  /** Manifests the mesh writes itself (the waypoints' pods, with their addresses). */
  extraConfigDir?: string;
  certTtl?: string;
  /**
   * Data-plane workers of each ztunnel and waypoint (their --workers): 1 unless `strait up --workers N` says otherwise,
   * since a laptop mesh runs several ztunnels on a few cores.
   */
  workers?: number;
}

export function controllerSpec(m: MeshPlaces): ComponentSpec {
  return {
    name: 'controller', what: 'controller', stopGraceMs: STOP_GRACE_MS, readyUrl: `http://${m.controllerAddress}:${PORTS.controllerAdmin}/ready`,
    args: ['controller', '--config-dir', m.configDir, '--data-dir', m.dataDir, '--xds-address', `${m.controllerAddress}:${PORTS.xds}`,
      '--admin-address', `${m.controllerAddress}:${PORTS.controllerAdmin}`, ...(m.certTtl ? ['--cert-ttl', m.certTtl] : []),
      ...(m.extraConfigDir ? ['--extra-config-dir', m.extraConfigDir] : [])],
  };
}

/** A waypoint drains like a ztunnel (requests in flight finish), so it gets the same grace. */
export function waypointSpec(m: MeshPlaces, w: PlannedWaypoint): ComponentSpec {
  return {
    name: `waypoint/${w.key}`, what: `waypoint ${w.key}`, stopGraceMs: ZTUNNEL_STOP_GRACE_MS, readyUrl: `http://${w.address}:${PORTS.ready}/healthz/ready`,
    nodeOptions: WAYPOINT_NODE_OPTIONS,
    args: ['waypoint', '--waypoint', w.key, '--xds-address', `${m.controllerAddress}:${PORTS.xds}`,
      '--token-file', join(m.dataDir, 'tokens', `waypoint-${w.namespace}-${w.name}.token`), '--root-cert', join(m.dataDir, 'root-cert.pem'),
      '--listen-address', w.address, '--service-account', w.serviceAccount, '--drain', `${ZTUNNEL_DRAIN_MS}ms`, '--workers', String(m.workers ?? 1)],
  };
}

/**
 * The pods Kubernetes would run for the waypoints (a Deployment per waypoint Gateway): the controller learns each
 * waypoint's address and service account from them, as it would from a cluster. YAML for the extra config directory.
 */
export function waypointPodsManifest(waypoints: readonly PlannedWaypoint[]): string {
  const docs = waypoints.map((w) => [
    '# Written by strait up (or strait lab): the pod of the waypoint it runs for this Gateway.',
    'apiVersion: v1', 'kind: Pod', 'metadata:', `  name: ${w.name}-waypoint`, `  namespace: ${w.namespace}`,
    '  labels:', `    gateway.networking.k8s.io/gateway-name: ${w.name}`, '    istio.io/dataplane-mode: none',
    'spec:', ...(w.node ? [`  nodeName: ${w.node}`] : []), `  serviceAccountName: ${w.serviceAccount}`, '  containers:', '    - name: waypoint', '      image: strait/waypoint',
    '      ports:', '        - name: hbone', `          containerPort: ${PORTS.hbone}`,
    'status:', '  phase: Running', `  podIP: ${w.address}`, '  podIPs:', `    - ip: ${w.address}`,
  ].join('\n'));
  return docs.join('\n---\n') + '\n';
}

/**
 * How a ztunnel meets its node's pods: `loopback` (strait up) listens on the node's loopback address and on each local
 * pod's; `capture` (strait lab) runs in the node's network namespace and captures the enrolled pods' traffic with
 * iptables (DESIGN §6a), listening on every address of the namespace.
 */
export type ZtunnelPlacement = 'loopback' | 'capture';

/**
 * The lab's ztunnels capture for real: they install the node's iptables rules and each enrolled pod's (listening on
 * 0.0.0.0, admin on the node's 127.0.0.1), and remove them when they stop.
 */
const CAPTURE_ARGS: readonly string[] = ['--capture'];

export function ztunnelSpec(m: MeshPlaces, n: PlannedNode, placement: ZtunnelPlacement = 'loopback'): ComponentSpec {
  return {
    name: `ztunnel/${n.name}`, what: `ztunnel on ${n.name}`, stopGraceMs: ZTUNNEL_STOP_GRACE_MS, readyUrl: `http://${n.address}:${PORTS.ready}/healthz/ready`,
    nodeOptions: ZTUNNEL_NODE_OPTIONS,
    args: ['ztunnel', '--node', n.name, '--xds-address', `${m.controllerAddress}:${PORTS.xds}`, '--token-file', join(m.dataDir, 'tokens', `node-${n.name}.token`),
      '--root-cert', join(m.dataDir, 'root-cert.pem'), ...(placement === 'capture' ? CAPTURE_ARGS : ['--listen-address', n.address, '--local-pod-listeners']),
      '--drain', `${ZTUNNEL_DRAIN_MS}ms`, '--workers', String(m.workers ?? 1)],
  };
}

/** `node`: the app's node, whose ztunnel it asks who called. The pod's demo annotations become flags. */
export function appSpec(a: PlannedApp, node: PlannedNode | undefined): ComponentSpec {
  return {
    name: `app/${a.key}`, what: `demo app ${a.key}`, stopGraceMs: STOP_GRACE_MS, readyUrl: `http://${a.address}:${a.port}/healthz`,
    args: ['demo-app', '--address', a.address, '--port', String(a.port), '--pod', a.pod, '--namespace', a.namespace, '--app', a.app, `--version=${a.version}`,
      '--node', a.node, ...(node ? ['--ztunnel-admin', `${node.address}:${PORTS.admin}`] : []),
      ...demoBehaviourArgs(a.behaviour), ...(a.grpc ? ['--grpc'] : [])],
  };
}

/** Every address:port the mesh of this plan listens on: controller, each node's ports, each pod's HBONE, each app. */
export function listenAddresses(controllerAddress: string, plan: Pick<LocalPlan, 'nodes' | 'apps' | 'pods'> & Partial<Pick<LocalPlan, 'waypoints'>>): WantedAddress[] {
  const out: WantedAddress[] = [
    { host: controllerAddress, port: PORTS.xds, what: 'controller xDS' }, { host: controllerAddress, port: PORTS.controllerAdmin, what: 'controller admin' },
  ];
  for (const n of plan.nodes) {
    for (const [port, what] of [[PORTS.socks5, 'SOCKS5'], [PORTS.hbone, 'HBONE'], [PORTS.outbound, 'outbound'], [PORTS.inboundPlaintext, 'inbound plaintext'],
      [PORTS.admin, 'admin'], [PORTS.metrics, 'metrics'], [PORTS.ready, 'readiness']] as const) {
      out.push({ host: n.address, port, what: `ztunnel ${n.name} ${what}` });
    }
  }
  const served = new Set(plan.nodes.map((n) => n.name));
  for (const p of plan.pods) if (served.has(p.node)) for (const ip of p.addresses) out.push({ host: ip, port: PORTS.hbone, what: `HBONE of pod ${p.key}` });
  for (const a of plan.apps) out.push({ host: a.address, port: a.port, what: `demo app ${a.namespace}/${a.pod}` });
  for (const w of plan.waypoints ?? []) {
    for (const [port, what] of [[PORTS.hbone, 'HBONE'], [PORTS.admin, 'admin'], [PORTS.metrics, 'metrics'], [PORTS.ready, 'readiness']] as const) {
      out.push({ host: w.address, port, what: `waypoint ${w.key} ${what}` });
    }
  }
  return out;
}
