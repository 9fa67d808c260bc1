/**
 * Inbound: HBONE (15008) and plaintext (15006) arrivals for this node's pods. decideInbound (inbound-decision.ts)
 * decides; this file does: connect to the pod, answer, relay. Live connections are re-checked when policy changes
 * and closed if now denied.
 */
import type net from 'node:net';
import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { formatHostPort, normalizeIp, type HostPort } from '../../common/net.js';
import type { WorkloadResource } from '../../common/xds/resources.js';
import type { ConnectionTracker, Direction, TrackedConnection } from '../../dataplane/connections.js';
import type { TargetConnector } from '../../dataplane/connector.js';
import { outcome, outcomeOfConnectError, type OutcomeCode } from '../../dataplane/outcomes.js';
import { authorize } from '../../dataplane/policy/authorize.js';
import { effectiveMtlsMode } from '../../dataplane/policy/peer-authentication.js';
import type { ProxyStateView } from '../../dataplane/state/proxy-state.js';
import type { HboneInboundRequest } from '../../hbone/index.js';
import { HEADER_ORIGINAL_DST, parseAuthority } from '../../hbone/wire.js';
import { decideInbound, type InboundArrival, type InboundDecision } from './inbound-decision.js';

export interface InboundDeps {
  state: ProxyStateView;
  node: string;
  tracker: ConnectionTracker;
  log: Logger;
  connect: TargetConnector;
  connectTimeoutMs: number;
}

/** What one refused or failed arrival tells the access log. */
type Refused = { code: OutcomeCode; reason: string };

/** An inbound connection as the tracker records it (access log, metrics, policy re-check). */
export type InboundTracked = Omit<TrackedConnection, 'id' | 'startedAt' | 'bytesSent' | 'bytesRecv' | 'close'>;

/**
 * What an HBONE-style arrival leads to: the pod dialled (`upstream`) and the tracked connection to record, or a refusal
 * with the CONNECT status it is answered with. `abandoned`: the client went away while the pod was being dialled.
 */
export type Admission =
  | { ok: true; upstream: net.Socket; tracked: InboundTracked }
  | { ok: false; code: OutcomeCode; reason: string; status: number; ends: Parameters<ConnectionTracker['refused']>[0]; abandoned: boolean };

export class InboundHandler {
  constructor(private readonly d: InboundDeps) {
    d.state.on('policies', () => this.recheck());
  }

  /** An HBONE CONNECT that reached 15008. */
  async handleHbone(req: HboneInboundRequest): Promise<void> {
    const original = req.headers[HEADER_ORIGINAL_DST];
    const a = await this.admit({
      target: { host: req.targetHost, port: req.targetPort }, peerIdentity: req.peerIdentity, remoteAddress: req.remoteAddress,
      ...(req.forwardedFor ? { forwardedFor: req.forwardedFor } : {}), ...(typeof original === 'string' ? { originalDestination: parseAuthority(original) } : {}),
    }, req.signal);
    if (!a.ok) {
      // Abandoned: the client reset the stream while we dialled; nobody to answer, nothing to log.
      if (!a.abandoned) {
        this.d.tracker.refused(a.ends, a.reason, a.code);
        req.reject(a.status, a.reason);
      }
      return;
    }
    const stream = req.accept();
    await this.d.tracker.proxy(stream, a.upstream, a.tracked);
  }

  /**
   * The inbound half of a same-node connection (local-path.ts): decided and dialled exactly as an HBONE CONNECT from
   * `peerIdentity` would be, refusals logged and counted as such. On success the caller relays and tracks `tracked`.
   */
  async admitLocal(arrival: InboundArrival & { peerIdentity: string }): Promise<Admission> {
    const a = await this.admit(arrival);
    if (!a.ok) this.d.tracker.refused(a.ends, a.reason, a.code);
    return a;
  }

  /** Decide, then dial the pod: what an HBONE arrival leads to, before anything is answered. */
  private async admit(arrival: InboundArrival, signal?: AbortSignal): Promise<Admission> {
    const { target, peerIdentity } = arrival;
    const decision = decideInbound(this.d.state, this.d.node, arrival);
    const base = this.base('inbound', decision, target, peerIdentity);
    if (decision.kind === 'refuse') {
      return { ok: false, code: decision.code, reason: decision.reason, status: outcome(decision.code).hboneStatus ?? 400, ends: base, abandoned: false };
    }
    if (decision.authz.audited.length) this.d.log.info({ audited: decision.authz.audited, 'src.identity': peerIdentity, 'dst.workload': decision.workload.uid }, 'AUDIT policy matched');
    const upstream = await this.dial(decision.workload, target, signal);
    if ('code' in upstream) {
      return { ok: false, code: upstream.code, reason: upstream.reason, status: outcome(upstream.code).hboneStatus ?? 503, ends: base, abandoned: signal?.aborted === true };
    }
    const upstreamLocal = formatHostPort({ host: upstream.localAddress ?? '', port: upstream.localPort ?? 0 });
    return { ok: true, upstream, tracked: { ...base, upstreamLocal, mtls: true, authz: this.recheckable(decision) } };
  }

  /** A plaintext connection that reached 15006 (original destination from capture). */
  async handlePlaintext(socket: net.Socket, original: { host: string; port: number }): Promise<void> {
    const target = { host: normalizeIp(original.host), port: original.port };
    const decision = decideInbound(this.d.state, this.d.node, { target, remoteAddress: socket.remoteAddress ?? '' });
    const base = this.base('inbound-plaintext', decision, target);
    if (decision.kind === 'refuse') {
      this.d.tracker.refused(base, decision.reason, decision.code);
      socket.resetAndDestroy();
      return;
    }
    const upstream = await this.dial(decision.workload, target);
    if ('code' in upstream) {
      this.d.tracker.refused(base, upstream.reason, upstream.code);
      socket.resetAndDestroy();
      return;
    }
    await this.d.tracker.proxy(socket, upstream, { ...base, upstreamLocal: formatHostPort({ host: upstream.localAddress ?? '', port: upstream.localPort ?? 0 }), mtls: false, authz: this.recheckable(decision) });
  }

  /** Policy changed: close every live inbound connection the new policy denies, saying why. */
  recheck(): void {
    for (const conn of this.d.tracker.live.values()) {
      if (!conn.authz || conn.direction === 'outbound') continue;
      const { attrs, target } = conn.authz;
      const w = this.d.state.workloadByAddress(attrs.destinationIp);
      let denied: string | undefined;
      if (!conn.mtls && w) {
        const mode = effectiveMtlsMode(this.d.state.policies.values(), target, attrs.destinationPort);
        if (mode === 'STRICT') denied = 'PeerAuthentication now requires mTLS (STRICT)';
      }
      if (!denied) {
        const d = authorize(this.d.state.policies.values(), target, attrs);
        if (!d.allowed) denied = d.reason;
      }
      if (denied) {
        this.d.log.info({ connection: conn.id, 'src.identity': conn.srcIdentity, 'dst.addr': conn.dstAddress, reason: denied }, 'closing connection: policy changed');
        conn.close(`closed by policy change: ${denied}`);
      }
    }
  }

  /** The access log's view of both ends. */
  private base(direction: Direction, d: InboundDecision, target: HostPort, peerIdentity?: string) {
    return {
      direction, srcAddress: d.sourceIp, dstAddress: formatHostPort(target),
      ...(d.source ? { src: d.source } : {}), ...(peerIdentity ? { srcIdentity: peerIdentity } : {}),
      ...(d.workload ? { dst: d.workload, dstIdentity: d.workload.identity } : {}), ...(d.service ? { dstService: d.service } : {}),
    };
  }

  private recheckable(d: Extract<InboundDecision, { kind: 'allow' }>) {
    return { attrs: d.attrs, target: { namespace: d.workload.namespace, labels: d.workload.labels } };
  }

  /** Connects to the pod; a failure comes back as what the access log and the CONNECT answer say. */
  private async dial(w: WorkloadResource, target: HostPort, signal?: AbortSignal): Promise<net.Socket | Refused> {
    try {
      return await this.d.connect(target.host, target.port, this.d.connectTimeoutMs, signal);
    } catch (err) {
      const code = outcomeOfConnectError(err);
      return { code, reason: `cannot reach ${formatHostPort(target)} in pod ${w.uid}: ${errorMessage(err)} (is the application listening on its pod address?)` };
    }
  }
}
