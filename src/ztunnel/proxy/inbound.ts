/**
 * Inbound: HBONE (15008) and plaintext (15006) arrivals for this node's pods. Decide (target, waypoint rule,
 * peer authentication, L4 authorization), then do (connect to the pod, answer, relay). Live connections are
 * re-checked when policy changes and closed if now denied.
 */
import net from 'node:net';
import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import type { HboneInboundRequest } from '../../hbone/index.js';
import type { WorkloadResource } from '../../common/xds/resources.js';
import { authorize, type AuthzDecision, type ConnectionAttrs } from '../../dataplane/policy/authorize.js';
import { effectiveMtlsMode } from '../../dataplane/policy/peer-authentication.js';
import { normalizeIp } from '../../common/net.js';
import type { ProxyStateView } from '../../dataplane/state/proxy-state.js';
import type { ConnectionTracker, Direction } from '../../dataplane/connections.js';
import type { TargetConnector } from '../../dataplane/connector.js';

export interface InboundDeps {
  state: ProxyStateView;
  node: string;
  tracker: ConnectionTracker;
  log: Logger;
  connect: TargetConnector;
  connectTimeoutMs: number;
}

type Check = { ok: true; workload: WorkloadResource; decision: AuthzDecision } | { ok: false; status: number; reason: string; code: string; workload?: WorkloadResource };

export class InboundHandler {
  constructor(private readonly d: InboundDeps) {
    d.state.on('policies', () => this.recheck());
  }

  /** The decision for one arrival; pure over the state. */
  decide(targetHost: string, targetPort: number, peerIdentity: string | undefined, sourceIp: string): Check {
    const w = this.d.state.workloadByAddress(targetHost);
    if (!w || w.protocol !== 'HBONE' || w.node !== this.d.node) {
      return { ok: false, status: 400, code: 'unknown_target', reason: `${targetHost}:${targetPort} is not an enrolled workload on node ${this.d.node}`, ...(w ? { workload: w } : {}) };
    }
    if (w.waypoint && peerIdentity !== w.waypoint.identity) {
      return { ok: false, status: 401, code: 'waypoint_required', workload: w, reason: `workload ${w.uid} is bound to waypoint ${w.waypoint.namespace}/${w.waypoint.name}; only ${w.waypoint.identity} may connect to it directly` };
    }
    if (!peerIdentity) {
      const mode = effectiveMtlsMode(this.d.state.policies.values(), { namespace: w.namespace, labels: w.labels }, targetPort);
      if (mode === 'STRICT') {
        return { ok: false, status: 401, code: 'mtls_required', workload: w, reason: `plaintext to ${w.uid} port ${targetPort} refused: PeerAuthentication requires mTLS (STRICT)` };
      }
    }
    const attrs: ConnectionAttrs = { ...(peerIdentity ? { sourceIdentity: peerIdentity } : {}), sourceIp, destinationIp: targetHost, destinationPort: targetPort };
    const decision = authorize(this.d.state.policies.values(), { namespace: w.namespace, labels: w.labels }, attrs);
    if (!decision.allowed) return { ok: false, status: 403, code: 'policy_denied', workload: w, reason: decision.reason };
    return { ok: true, workload: w, decision };
  }

  /** An HBONE CONNECT that reached 15008. */
  async handleHbone(req: HboneInboundRequest): Promise<void> {
    const peer = req.peerIdentity;
    // Trust the forwarded source address only when it belongs to the very workload whose identity connected.
    const fwd = req.forwardedFor ? normalizeIp(req.forwardedFor) : undefined;
    const srcWorkload = fwd ? this.d.state.workloadByAddress(fwd) : undefined;
    const sourceIp = fwd && srcWorkload?.identity === peer ? fwd : normalizeIp(req.remoteAddress);
    const src = srcWorkload?.identity === peer ? srcWorkload : undefined;
    const check = this.decide(req.targetHost, req.targetPort, peer, sourceIp);
    const base = { direction: 'inbound' as Direction, srcAddress: sourceIp, dstAddress: `${req.targetHost}:${req.targetPort}`, src, srcIdentity: peer };
    if (!check.ok) {
      this.d.tracker.refused({ ...base, dst: check.workload, dstIdentity: check.workload?.identity }, check.reason, check.code);
      req.reject(check.status, check.reason);
      return;
    }
    if (check.decision.audited.length) this.d.log.info({ audited: check.decision.audited, 'src.identity': peer, 'dst.workload': check.workload.uid }, 'AUDIT policy matched');
    let upstream: net.Socket;
    try {
      upstream = await this.d.connect(req.targetHost, req.targetPort, this.d.connectTimeoutMs, req.signal);
    } catch (err) {
      if (req.signal.aborted) return; // the client reset the stream while we dialled: nobody to answer, nothing to log
      const timedOut = (err as NodeJS.ErrnoException).code === 'ETIMEDOUT';
      const reason = `cannot reach ${req.targetHost}:${req.targetPort} in pod ${check.workload.uid}: ${errorMessage(err)} (is the application listening on its pod address?)`;
      this.d.tracker.refused({ ...base, dst: check.workload, dstIdentity: check.workload.identity }, reason, timedOut ? 'connect_timeout' : 'connect_failed');
      req.reject(timedOut ? 504 : 503, reason);
      return;
    }
    const stream = req.accept();
    await this.d.tracker.proxy(stream, upstream, {
      upstreamLocal: `${upstream.localAddress}:${upstream.localPort}`,
      ...base, dst: check.workload, dstIdentity: check.workload.identity, mtls: true,
      authz: { attrs: { sourceIdentity: peer, sourceIp, destinationIp: req.targetHost, destinationPort: req.targetPort }, target: { namespace: check.workload.namespace, labels: check.workload.labels } },
    });
  }

  /** A plaintext connection that reached 15006 (original destination from capture). */
  async handlePlaintext(socket: net.Socket, original: { host: string; port: number }): Promise<void> {
    const sourceIp = normalizeIp(socket.remoteAddress ?? '');
    const targetHost = normalizeIp(original.host);
    const check = this.decide(targetHost, original.port, undefined, sourceIp);
    const src = this.d.state.workloadByAddress(sourceIp);
    const base = { direction: 'inbound-plaintext' as Direction, srcAddress: sourceIp, dstAddress: `${targetHost}:${original.port}`, src };
    if (!check.ok) {
      this.d.tracker.refused({ ...base, dst: check.workload, dstIdentity: check.workload?.identity }, check.reason, check.code);
      socket.resetAndDestroy();
      return;
    }
    let upstream: net.Socket;
    try {
      upstream = await this.d.connect(targetHost, original.port, this.d.connectTimeoutMs);
    } catch (err) {
      this.d.tracker.refused({ ...base, dst: check.workload }, `cannot reach ${targetHost}:${original.port}: ${errorMessage(err)}`, 'connect_failed');
      socket.resetAndDestroy();
      return;
    }
    await this.d.tracker.proxy(socket, upstream, {
      upstreamLocal: `${upstream.localAddress}:${upstream.localPort}`,
      ...base, dst: check.workload, dstIdentity: check.workload.identity, mtls: false,
      authz: { attrs: { sourceIp, destinationIp: targetHost, destinationPort: original.port }, target: { namespace: check.workload.namespace, labels: check.workload.labels } },
    });
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
}
