/**
 * Outbound: a connection from a local pod (captured on 15001, or explicit through SOCKS5 on 15080).
 * buildRequest (request.ts) decides; this file does: plain TCP passthrough or HBONE through the pool. When the
 * endpoint picked for a service cannot be reached, another ready one is tried (at most `maxAttempts` in all)
 * before the client is told, and the failing one is reported for passive ejection (endpoint-health.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { bug, errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { formatHostPort, normalizeIp } from '../../common/net.js';
import type { ServiceResource, WorkloadResource } from '../../common/xds/resources.js';
import type { ConnectionTracker } from '../../dataplane/connections.js';
import type { TargetConnector } from '../../dataplane/connector.js';
import { outcome, outcomeOfConnectError, type OutcomeCode } from '../../dataplane/outcomes.js';
import type { ProxyStateView } from '../../dataplane/state/proxy-state.js';
import type { HbonePool } from '../../hbone/index.js';
import { HEADER_ORIGINAL_DST, formatForwarded } from '../../hbone/wire.js';
import type { ZtunnelIdentities } from '../identities.js';
import { buildRequest, type EndpointPicker, type HboneRequest, type OutboundTarget, type Passthrough } from './request.js';

/** How the caller tells its client the outcome before bytes flow (SOCKS5 reply; a reset for captured sockets). */
export interface OutboundResponder {
  connected(bind: { host: string; port: number }): void;
  refused(code: OutcomeCode, reason: string): void;
}

/** What the outbound path tells about, and asks of, endpoint health (ejector.ts keeps the clock, logs and metrics). */
export interface EndpointOutcomes {
  isEjected(endpointKey: string): boolean;
  failed(endpointKey: string, reason: string): void;
  succeeded(endpointKey: string): void;
  /** Another endpoint is being tried for a connection whose first pick failed. */
  retried(): void;
}

/** Told when an HBONE connect failed because this process is out of file descriptors (fd-guard.ts). */
export type FdExhaustionSink = (op: 'connect', err: unknown) => void;

export interface OutboundDeps {
  state: ProxyStateView;
  node: string;
  tracker: ConnectionTracker;
  identities: ZtunnelIdentities;
  pool: HbonePool;
  connect: TargetConnector;
  connectTimeoutMs: number;
  pick: EndpointPicker;
  endpoints: EndpointOutcomes;
  /** Endpoints tried per connection before the client is refused (1 = no retry). */
  maxAttempts: number;
  onFdExhausted?: FdExhaustionSink;
  /** Source address of the ztunnel's own HBONE sockets (the node address). */
  localAddress?: string;
  log: Logger;
}

function baggage(w: WorkloadResource): string {
  return `k8s.namespace.name=${w.namespace},k8s.pod.name=${w.name},service.name=${w.canonicalName},service.version=${w.canonicalRevision}`;
}

function traceparent(): string {
  return `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
}

type Attempt =
  | { ok: true; upstream: Duplex; bind: { host: string; port: number }; dstAddress: string; dstIdentity?: string; mtls: boolean }
  | { ok: false; err: unknown; reason: string; code: OutcomeCode; dstAddress: string; dstIdentity?: string };

/** What the access log knows of both ends once a decision named them. */
type Ends = { src?: WorkloadResource; srcIdentity?: string; dst?: WorkloadResource; dstService?: ServiceResource };

function endsOf(d: { source?: WorkloadResource; dstWorkload?: WorkloadResource; dstService?: ServiceResource }): Ends {
  return {
    ...(d.source ? { src: d.source, srcIdentity: d.source.identity } : {}),
    ...(d.dstWorkload ? { dst: d.dstWorkload } : {}), ...(d.dstService ? { dstService: d.dstService } : {}),
  };
}

export class OutboundHandler {
  constructor(private readonly d: OutboundDeps) {}

  async handle(client: Duplex, sourceAddress: string, target: OutboundTarget, respond: OutboundResponder): Promise<void> {
    const tried = new Set<string>();
    let failure: (Extract<Attempt, { ok: false }> & { ends: Ends }) | undefined;
    for (let attempt = 1; ; attempt++) {
      const decision = buildRequest(this.d.state, this.d.node, sourceAddress, target, { pick: this.d.pick, ejected: (k) => this.d.endpoints.isEjected(k), tried });
      if (decision.kind === 'refuse') {
        if (failure) break; // every endpoint failed (the endpoints changed under us): report the last failure
        this.d.tracker.refused({ direction: 'outbound', srcAddress: sourceAddress, dstAddress: formatHostPort(target), ...endsOf(decision) }, decision.message, decision.code);
        respond.refused(decision.code, decision.message);
        return;
      }
      const ends = endsOf(decision);
      const r = decision.kind === 'passthrough' ? await this.connectTcp(decision) : await this.connectHbone(decision, sourceAddress);
      if (r.ok) {
        if (decision.endpoint) this.d.endpoints.succeeded(decision.endpoint.key);
        respond.connected(r.bind);
        await this.d.tracker.proxy(client, r.upstream, { direction: 'outbound', srcAddress: sourceAddress, ...ends, dstAddress: r.dstAddress, ...(r.dstIdentity ? { dstIdentity: r.dstIdentity } : {}), mtls: r.mtls });
        return;
      }
      failure = { ...r, ends };
      const blame = outcome(r.code).blame;
      // TCP connects go through the injected connector, which reports its own; the pool's are reported here.
      if (r.code === 'fd_exhausted' && decision.kind === 'hbone') this.d.onFdExhausted?.('connect', r.err);
      if (!decision.endpoint || blame !== 'endpoint') break;
      this.d.endpoints.failed(decision.endpoint.key, r.reason);
      tried.add(decision.endpoint.key);
      if (decision.endpoint.untried === 0 || attempt >= this.d.maxAttempts) break;
      this.d.endpoints.retried();
      this.d.log.debug({ 'src.addr': sourceAddress, endpoint: decision.endpoint.key, err: r.reason, attempt }, 'endpoint unreachable; trying another');
    }
    if (!failure) throw bug('outbound attempt loop ended without a failure to report');
    this.d.tracker.refused({ direction: 'outbound', srcAddress: sourceAddress, ...failure.ends, dstAddress: failure.dstAddress, ...(failure.dstIdentity ? { dstIdentity: failure.dstIdentity } : {}) }, failure.reason, failure.code);
    respond.refused(failure.code, failure.reason);
  }

  private async connectTcp(decision: Passthrough): Promise<Attempt> {
    const dstAddress = formatHostPort(decision.actualDestination);
    try {
      const upstream = await this.d.connect(decision.actualDestination.host, decision.actualDestination.port, this.d.connectTimeoutMs);
      return { ok: true, upstream, bind: { host: upstream.localAddress ?? '0.0.0.0', port: upstream.localPort ?? 0 }, dstAddress, mtls: false };
    } catch (err) {
      return { ok: false, err, reason: `cannot reach ${dstAddress} (outside the mesh): ${errorMessage(err)}`, code: outcomeOfConnectError(err), dstAddress };
    }
  }

  private async connectHbone(decision: HboneRequest, sourceAddress: string): Promise<Attempt> {
    const { source } = decision;
    const dstAddress = decision.authority;
    const expected = decision.expectedPeerSans[0] ? { dstIdentity: decision.expectedPeerSans[0] } : {};
    let cert: { keyPem: string; certChainPem: string[] };
    try {
      cert = await this.d.identities.get(source.identity);
    } catch (err) {
      return { ok: false, err, reason: `no certificate for ${source.identity}: ${errorMessage(err)}`, code: 'no_certificate', dstAddress, ...expected };
    }
    const viaService = decision.dstService !== undefined && !decision.waypoint && decision.originalDestination.host !== decision.actualDestination.host;
    try {
      const res = await this.d.pool.connect({
        key: `${source.identity}|${decision.expectedPeerSans.join(',')}|${formatHostPort(decision.actualDestination)}`,
        address: decision.actualDestination,
        ...(this.d.localAddress ? { localAddress: this.d.localAddress } : {}),
        cert: { keyPem: cert.keyPem, certChainPem: cert.certChainPem },
        expectedPeerSans: decision.expectedPeerSans,
        authority: decision.authority,
        headers: {
          forwarded: formatForwarded(normalizeIp(sourceAddress)), baggage: baggage(source), traceparent: traceparent(),
          ...(viaService ? { [HEADER_ORIGINAL_DST]: formatHostPort(decision.originalDestination) } : {}),
        },
      });
      return { ok: true, upstream: res.stream, bind: { host: '0.0.0.0', port: 0 }, dstAddress, dstIdentity: res.peerIdentity, mtls: true };
    } catch (err) {
      return { ok: false, err, reason: errorMessage(err), code: outcomeOfConnectError(err), dstAddress, ...expected };
    }
  }
}
