/**
 * Decide, then do: the pure outbound decision (DESIGN §6). Given the state and a connection's source and
 * target, returns where and how to send it; the I/O lives in outbound.ts.
 */
import { isIP } from 'node:net';
import type { ServiceResource, WaypointRef, WorkloadResource } from '../../common/xds/resources.js';
import type { OutcomeCode } from '../../dataplane/outcomes.js';
import { formatHostPort, isThisHostAddress, normalizeIp } from '../../common/net.js';
import { HBONE_PORT } from '../../hbone/wire.js';
import type { ProxyStateView } from '../../dataplane/state/proxy-state.js';

export interface OutboundTarget {
  /** An IP literal (captured original destination, SOCKS5 IP) or a host name (SOCKS5 domain). */
  host: string;
  port: number;
  /**
   * The kernel's original destination of a connection captured from a pod (15001), not one a local client asked
   * for over SOCKS5: it came from another host, so it can never legitimately be this host's own address.
   */
  captured?: boolean;
}

/** The outcomes (dataplane/outcomes.ts) the outbound decision itself can give. */
export type RefusalCode = Extract<OutcomeCode, 'unknown_source' | 'source_not_local' | 'loopback_destination' | 'no_endpoint' | 'no_port' | 'waypoint_unready'>;

export interface Refusal {
  kind: 'refuse';
  code: RefusalCode;
  message: string;
  /** The source workload, once it is known (every refusal but unknown_source). */
  source?: WorkloadResource;
  dstService?: ServiceResource;
  dstWorkload?: WorkloadResource;
}

export interface Passthrough {
  kind: 'passthrough';
  source: WorkloadResource;
  /** Where the TCP connection goes (plain TCP). */
  actualDestination: { host: string; port: number };
  dstService?: ServiceResource;
  dstWorkload?: WorkloadResource;
  endpoint?: PickedEndpoint;
}

/** Set when the destination was picked among a service's endpoints (so another one could be tried instead). */
export interface PickedEndpoint {
  /** Names the endpoint for passive ejection: "<workload uid>@<pod address>:<pod port>". */
  key: string;
  /** Other ready endpoints this connection has not tried yet. */
  untried: number;
}

export interface HboneRequest {
  kind: 'hbone';
  source: WorkloadResource;
  /** What the application asked for: the service's VIP:port when it asked for a service, else pod:port. */
  originalDestination: { host: string; port: number };
  /** Where the HBONE (mTLS) connection goes: a pod address or a waypoint, port 15008. */
  actualDestination: { host: string; port: number };
  /** HTTP/2 CONNECT :authority — the target the far side connects to (or the VIP:port for a waypoint). */
  authority: string;
  /** The SPIFFE id(s) the peer certificate must carry. */
  expectedPeerSans: string[];
  dstService?: ServiceResource;
  dstWorkload?: WorkloadResource;
  waypoint?: WaypointRef;
  endpoint?: PickedEndpoint;
  /**
   * Set when the destination is an HBONE workload of this very node, reached directly (no waypoint): the pod
   * address and port the far (inbound) side would be asked for. The same-node fast path (local-path.ts) hands such
   * a connection to the inbound side in-process instead of through TLS + HTTP/2 to this ztunnel's own 15008.
   */
  sameNode?: { host: string; port: number };
}

export type OutboundDecision = Refusal | Passthrough | HboneRequest;

/** Chooses one endpoint index among `n` candidates for a service (round robin, random, ...). */
export type EndpointPicker = (serviceKey: string, candidates: number) => number;

/** How a service endpoint is chosen: the balancer, and which endpoints to avoid. */
export interface EndpointChoice {
  pick: EndpointPicker;
  /**
   * Endpoints out of the pick for now (passive ejection). Honoured while at least one untried candidate is not
   * ejected; when every one is, the pick falls back to all of them (better a likely failure than a certain one).
   */
  ejected?: (endpointKey: string) => boolean;
  /** Endpoints this connection already failed to reach: never picked again. */
  tried?: ReadonlySet<string>;
}

export function endpointKey(workload: string, address: string, port: number): string {
  return `${workload}@${formatHostPort({ host: address, port })}`;
}

export function roundRobin(): EndpointPicker {
  const next = new Map<string, number>();
  return (key, n) => {
    const i = next.get(key) ?? 0;
    next.set(key, (i + 1) % 1_000_000_000);
    return i % n;
  };
}

function viaWaypoint(source: WorkloadResource, wp: WaypointRef, original: { host: string; port: number }, dst: Pick<HboneRequest, 'dstService' | 'dstWorkload'>): OutboundDecision {
  if (!wp.address) {
    return { kind: 'refuse', code: 'waypoint_unready', message: `destination ${formatHostPort(original)} is bound to waypoint ${wp.namespace}/${wp.name}, which has no address yet (is the waypoint deployed and ready?)`, source, ...dst };
  }
  return {
    kind: 'hbone', source, originalDestination: original,
    actualDestination: { host: wp.address, port: HBONE_PORT },
    authority: formatHostPort(original),
    expectedPeerSans: [wp.identity], waypoint: wp, ...dst,
  };
}

/** To a workload: directly, or as the endpoint picked for a service the application asked for at `original`. */
function toWorkload(node: string, source: WorkloadResource, w: WorkloadResource, address: string, port: number, svc?: ServiceResource, endpoint?: PickedEndpoint, original?: { host: string; port: number }): OutboundDecision {
  const dst = { dstWorkload: w, ...(svc ? { dstService: svc } : {}), ...(endpoint ? { endpoint } : {}) };
  if (w.protocol !== 'HBONE') return { kind: 'passthrough', source, actualDestination: { host: address, port }, ...dst };
  return {
    kind: 'hbone', source, originalDestination: original ?? { host: address, port },
    actualDestination: { host: address, port: HBONE_PORT },
    authority: formatHostPort({ host: address, port }),
    expectedPeerSans: [w.identity], ...dst,
    ...(w.node === node ? { sameNode: { host: address, port } } : {}),
  };
}

/**
 * Where does a connection from `sourceAddress` to `target` go?
 * - the source must be an enrolled workload on this node;
 * - a captured connection to a loopback or unspecified address is refused: passed through, it would reach the
 *   node's own localhost services (the ztunnel's admin among them), which no pod may reach;
 * - a service (by VIP or host name) bound to a waypoint → HBONE to the waypoint, :authority = VIP:port;
 * - a service otherwise → one ready endpoint: HBONE to <pod>:15008 if it is in the mesh, plain TCP if not;
 * - a workload address → HBONE to it (or its waypoint, if it has one), or plain TCP if it is not in the mesh;
 * - anything else → plain TCP passthrough.
 * An HBONE request to a workload of this node that no waypoint stands before is marked `sameNode`.
 */
export function buildRequest(state: ProxyStateView, node: string, sourceAddress: string, target: OutboundTarget, choice: EndpointChoice): OutboundDecision {
  const source = state.workloadByAddress(sourceAddress);
  if (!source || source.protocol !== 'HBONE') {
    return { kind: 'refuse', code: 'unknown_source', message: `no enrolled workload has address ${normalizeIp(sourceAddress)}; only pods in the mesh may send through the ztunnel (is the pod's namespace labelled istio.io/dataplane-mode=ambient?)` };
  }
  if (source.node !== node) {
    return { kind: 'refuse', code: 'source_not_local', message: `workload ${source.uid} (${normalizeIp(sourceAddress)}) runs on node ${source.node}, not on ${node}; it must use its own node's ztunnel`, source };
  }
  if (target.captured && isThisHostAddress(target.host)) {
    return {
      kind: 'refuse', code: 'loopback_destination', source,
      message: `${formatHostPort(target)} is this node's own loopback or unspecified address: a pod's connection never reaches the node's localhost services (it was sent with a raw socket, or a route the pod should not have)`,
    };
  }
  let svc: ServiceResource | undefined;
  let ip: string | undefined;
  if (isIP(target.host)) {
    ip = normalizeIp(target.host);
    svc = state.serviceByVip(ip);
  } else {
    svc = state.serviceByHostname(target.host);
    if (!svc) return { kind: 'passthrough', source, actualDestination: { host: target.host, port: target.port } };
  }
  if (svc) {
    const svcKey = `${svc.namespace}/${svc.name}`;
    const vip = ip ?? svc.vips[0];
    if (!svc.ports.some((p) => p.port === target.port)) {
      return { kind: 'refuse', code: 'no_port', message: `service ${svcKey} has no port ${target.port} (ports: ${svc.ports.map((p) => p.port).join(', ') || 'none'})`, source, dstService: svc };
    }
    if (svc.waypoint && source.waypointFor === undefined) {
      if (!vip) return { kind: 'refuse', code: 'waypoint_unready', message: `service ${svcKey} is bound to waypoint ${svc.waypoint.namespace}/${svc.waypoint.name} but has no VIP to address it by`, source, dstService: svc };
      return viaWaypoint(source, svc.waypoint, { host: vip, port: target.port }, { dstService: svc });
    }
    const ready = svc.endpoints.filter((e) => e.healthy && e.ports[String(target.port)] !== undefined);
    if (ready.length === 0) {
      return { kind: 'refuse', code: 'no_endpoint', message: `service ${svcKey} has no ready endpoint for port ${target.port}`, source, dstService: svc };
    }
    const keyed = ready.map((e) => ({ e, port: e.ports[String(target.port)]!, key: endpointKey(e.workload, e.address, e.ports[String(target.port)]!) }));
    const untried = choice.tried?.size ? keyed.filter((c) => !choice.tried!.has(c.key)) : keyed;
    if (untried.length === 0) {
      return { kind: 'refuse', code: 'no_endpoint', message: `service ${svcKey}: none of its ${ready.length} ready endpoint(s) for port ${target.port} could be reached`, source, dstService: svc };
    }
    const admitted = choice.ejected ? untried.filter((c) => !choice.ejected!(c.key)) : untried;
    const from = admitted.length > 0 ? admitted : untried;
    const { e: ep, port, key } = from[choice.pick(svcKey, from.length)]!;
    const endpoint: PickedEndpoint = { key, untried: untried.length - 1 };
    const w = state.workloads.get(ep.workload);
    if (!w) return { kind: 'passthrough', source, actualDestination: { host: ep.address, port }, dstService: svc, endpoint };
    return toWorkload(node, source, w, ep.address, port, svc, endpoint, vip ? { host: vip, port: target.port } : undefined);
  }
  const w = state.workloadByAddress(ip!);
  if (!w) return { kind: 'passthrough', source, actualDestination: { host: ip!, port: target.port } };
  if (w.waypoint && w.protocol === 'HBONE' && source.waypointFor === undefined) {
    return viaWaypoint(source, w.waypoint, { host: ip!, port: target.port }, { dstWorkload: w });
  }
  return toWorkload(node, source, w, ip!, target.port);
}
