/**
 * Outbound: a connection from a local pod (captured on 15001, or explicit through SOCKS5 on 15080).
 * buildRequest (request.ts) decides; this file does: plain TCP passthrough or HBONE through the pool.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { errorMessage, isStraitError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import type { HbonePool } from '../../common/hbone/index.js';
import type { WorkloadResource } from '../../common/xds/resources.js';
import type { ZtunnelIdentities } from '../identities.js';
import type { ZtunnelState } from '../state/state.js';
import type { ConnectionTracker } from './connections.js';
import type { TargetConnector } from './inbound.js';
import { buildRequest, type EndpointPicker, type OutboundTarget, type RefusalCode } from './request.js';

/** How the caller tells its client the outcome before bytes flow (SOCKS5 reply; nothing for captured sockets). */
export interface OutboundResponder {
  connected(bind: { host: string; port: number }): void;
  refused(kind: 'not-allowed' | 'unreachable' | 'refused' | 'failure', reason: string): void;
}

export interface OutboundDeps {
  state: ZtunnelState;
  node: string;
  tracker: ConnectionTracker;
  identities: ZtunnelIdentities;
  pool: HbonePool;
  connect: TargetConnector;
  connectTimeoutMs: number;
  pick: EndpointPicker;
  /** Source address of the ztunnel's own HBONE sockets (the node address). */
  localAddress?: string;
  log: Logger;
}

const REFUSAL_KIND: Record<RefusalCode, 'not-allowed' | 'unreachable'> = {
  'unknown-source': 'not-allowed',
  'source-not-local': 'not-allowed',
  'unknown-host': 'unreachable',
  'no-endpoint': 'unreachable',
  'no-port': 'unreachable',
  'waypoint-unready': 'unreachable',
};

function baggage(w: WorkloadResource): string {
  return `k8s.namespace.name=${w.namespace},k8s.pod.name=${w.name},service.name=${w.canonicalName},service.version=${w.canonicalRevision}`;
}

function traceparent(): string {
  return `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
}

export class OutboundHandler {
  constructor(private readonly d: OutboundDeps) {}

  async handle(client: Duplex, sourceAddress: string, target: OutboundTarget, respond: OutboundResponder): Promise<void> {
    const decision = buildRequest(this.d.state, this.d.node, sourceAddress, target, this.d.pick);
    const dstAddress = `${target.host}:${target.port}`;
    if (decision.kind === 'refuse') {
      this.d.tracker.refused({ direction: 'outbound', srcAddress: sourceAddress, dstAddress }, decision.message, decision.code.replace(/-/g, '_'));
      respond.refused(REFUSAL_KIND[decision.code], decision.message);
      return;
    }
    const { source } = decision;
    const base = { direction: 'outbound' as const, srcAddress: sourceAddress, src: source, srcIdentity: source.identity, dst: decision.dstWorkload, dstService: decision.dstService };

    if (decision.kind === 'passthrough') {
      const { host, port } = decision.actualDestination;
      let upstream: net.Socket;
      try {
        upstream = await this.d.connect(host, port, this.d.connectTimeoutMs);
      } catch (err) {
        const reason = `cannot reach ${host}:${port} (outside the mesh): ${errorMessage(err)}`;
        this.d.tracker.refused({ ...base, dstAddress: `${host}:${port}` }, reason, 'connect_failed');
        respond.refused((err as NodeJS.ErrnoException).code === 'ECONNREFUSED' ? 'refused' : 'unreachable', reason);
        return;
      }
      respond.connected({ host: upstream.localAddress ?? '0.0.0.0', port: upstream.localPort ?? 0 });
      await this.d.tracker.proxy(client, upstream, { ...base, dstAddress: `${host}:${port}`, mtls: false });
      return;
    }

    // HBONE
    const hostPort = `${decision.actualDestination.host}:${decision.actualDestination.port}`;
    let stream: Duplex;
    let peerIdentity: string;
    try {
      const cert = await this.d.identities.get(source.identity);
      const res = await this.d.pool.connect({
        key: `${source.identity}|${decision.expectedPeerSans.join(',')}|${hostPort}`,
        address: decision.actualDestination,
        ...(this.d.localAddress ? { localAddress: this.d.localAddress } : {}),
        cert: { keyPem: cert.keyPem, certChainPem: cert.certChainPem },
        expectedPeerSans: decision.expectedPeerSans,
        authority: decision.authority,
        headers: { forwarded: `for="${sourceAddress.includes(':') ? `[${sourceAddress}]` : sourceAddress}"`, baggage: baggage(source), traceparent: traceparent() },
      });
      stream = res.stream;
      peerIdentity = res.peerIdentity;
    } catch (err) {
      const reason = errorMessage(err);
      const status = (err as { status?: number }).status;
      this.d.tracker.refused({ ...base, dstAddress: decision.authority, dstIdentity: decision.expectedPeerSans[0] }, reason,
        isStraitError(err) ? err.code.replace('STRAIT_ERR_', '').toLowerCase() : 'hbone_failed');
      respond.refused(status === 401 || status === 403 ? 'not-allowed' : status === 503 ? 'refused' : 'unreachable', reason);
      return;
    }
    respond.connected({ host: '0.0.0.0', port: 0 });
    await this.d.tracker.proxy(client, stream, { ...base, dstAddress: decision.authority, dstIdentity: peerIdentity, mtls: true });
  }
}
