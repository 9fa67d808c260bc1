/**
 * Decide, then do: the pure inbound decision (DESIGN §6). Given the state and what is known of an arrival on 15008
 * (HBONE) or 15006 (plaintext), says whether to connect it to the local pod and with what the access log and metrics
 * name on both ends; inbound.ts does the I/O.
 */
import { formatHostPort, normalizeIp, type HostPort } from '../../common/net.js';
import type { ServiceResource, WorkloadResource } from '../../common/xds/resources.js';
import type { OutcomeCode } from '../../dataplane/outcomes.js';
import { authorize, type AuthzDecision, type ConnectionAttrs } from '../../dataplane/policy/authorize.js';
import { effectiveMtlsMode } from '../../dataplane/policy/peer-authentication.js';
import type { ProxyStateView } from '../../dataplane/state/proxy-state.js';

export interface InboundArrival {
  /** The target the connection asks for (the CONNECT :authority, or the captured original destination). */
  target: HostPort;
  /** The verified SPIFFE id of the HBONE peer; undefined for plaintext (15006), which has no principal. */
  peerIdentity?: string;
  /** The TCP peer: the source node's ztunnel (HBONE) or the source pod itself (plaintext). */
  remoteAddress: string;
  /** HBONE: the `forwarded` source address. Trusted only when it is the very workload whose identity connected. */
  forwardedFor?: string;
  /** HBONE: the service address the source asked for (x-strait-original-dst), naming the service. */
  originalDestination?: HostPort;
}

/** What both ends are, as far as the state knows them (for the access log and the metrics' labels). */
export interface InboundPeers {
  /** The source address policies see. */
  sourceIp: string;
  source?: WorkloadResource;
  workload?: WorkloadResource;
  service?: ServiceResource;
}

export type InboundDecision =
  | ({ kind: 'allow'; workload: WorkloadResource; authz: AuthzDecision; attrs: ConnectionAttrs } & InboundPeers)
  | ({ kind: 'refuse'; code: OutcomeCode; reason: string } & InboundPeers);

/**
 * Who is calling and which local pod they want:
 * - the target must be an enrolled workload of this node (else unknown_target);
 * - a workload bound to a waypoint accepts only its waypoint (else waypoint_required);
 * - plaintext is refused where PeerAuthentication is STRICT (mtls_required);
 * - then L4 authorization with Istio's semantics (policy_denied, or allow).
 */
export function decideInbound(state: ProxyStateView, node: string, a: InboundArrival): InboundDecision {
  const peers = inboundPeers(state, a);
  const targetHost = normalizeIp(a.target.host);
  const w = state.workloadByAddress(targetHost);
  if (!w || w.protocol !== 'HBONE' || w.node !== node) {
    return { kind: 'refuse', code: 'unknown_target', reason: `${formatHostPort(a.target)} is not an enrolled workload on node ${node}`, ...peers, ...(w ? { workload: w } : {}) };
  }
  const service = serviceOfTarget(state, w, a.target.port, a.originalDestination);
  const known = { ...peers, workload: w, ...(service ? { service } : {}) };
  if (w.waypoint && a.peerIdentity !== w.waypoint.identity) {
    return { kind: 'refuse', code: 'waypoint_required', reason: `workload ${w.uid} is bound to waypoint ${w.waypoint.namespace}/${w.waypoint.name}; only ${w.waypoint.identity} may connect to it directly`, ...known };
  }
  const target = { namespace: w.namespace, labels: w.labels };
  if (!a.peerIdentity && effectiveMtlsMode(state.policies.values(), target, a.target.port) === 'STRICT') {
    return { kind: 'refuse', code: 'mtls_required', reason: `plaintext to ${w.uid} port ${a.target.port} refused: PeerAuthentication requires mTLS (STRICT)`, ...known };
  }
  const attrs: ConnectionAttrs = { ...(a.peerIdentity ? { sourceIdentity: a.peerIdentity } : {}), sourceIp: peers.sourceIp, destinationIp: targetHost, destinationPort: a.target.port };
  const authz = authorize(state.policies.values(), target, attrs);
  if (!authz.allowed) return { kind: 'refuse', code: 'policy_denied', reason: authz.reason, ...known };
  return { kind: 'allow', authz, attrs, ...known };
}

/** The source: over HBONE the `forwarded` workload when its identity is the peer's; in plaintext, by address. */
function inboundPeers(state: ProxyStateView, a: InboundArrival): InboundPeers {
  const remote = normalizeIp(a.remoteAddress);
  if (a.peerIdentity === undefined) {
    const source = state.workloadByAddress(remote);
    return { sourceIp: remote, ...(source ? { source } : {}) };
  }
  const fwd = a.forwardedFor ? normalizeIp(a.forwardedFor) : undefined;
  const claimed = fwd ? state.workloadByAddress(fwd) : undefined;
  if (fwd && claimed?.identity === a.peerIdentity) return { sourceIp: fwd, source: claimed };
  return { sourceIp: remote };
}

/**
 * The service a connection to `w` port `port` was for, as the source named it: the service of the original
 * destination the source sent, if `w` is one of its endpoints on that port; otherwise the first service of `w`
 * that maps one of its ports to `port`. Undefined when `w` serves that port for no service (direct pod traffic).
 */
export function serviceOfTarget(state: ProxyStateView, w: WorkloadResource, port: number, original?: HostPort): ServiceResource | undefined {
  const servesPort = (s: ServiceResource, servicePort?: number) => s.endpoints.some((e) => e.workload === w.uid
    && (servicePort === undefined ? Object.values(e.ports).includes(port) : e.ports[String(servicePort)] === port));
  if (original) {
    const named = state.serviceByVip(original.host);
    if (named && servesPort(named, original.port)) return named;
  }
  for (const key of w.services) {
    const s = state.services.get(key);
    if (s && servesPort(s)) return s;
  }
  return undefined;
}
