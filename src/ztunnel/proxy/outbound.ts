/**
 * Outbound: a connection from a local pod (captured on 15001, or explicit through SOCKS5 on 15080).
 * buildRequest (request.ts) decides; this file does: plain TCP passthrough, HBONE through the pool, or, for a
 * workload of this same node, the in-process fast path (local-path.ts) when it is on. When the
 * endpoint picked for a service cannot be reached, another ready one is tried (at most `maxAttempts` in all)
 * before the client is told, and the failing one is reported for passive ejection (endpoint-health.ts).
 */
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { bug, errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { formatHostPort, normalizeIp } from '../../common/net.js';
import type { ServiceResource, WorkloadResource } from '../../common/xds/resources.js';
import type { ConnectionTracker } from '../../dataplane/connections.js';
import type { TargetConnector } from '../../dataplane/connector.js';
import { outcome, outcomeOfConnectError, type OutcomeCode } from '../../dataplane/outcomes.js';
import type { ProxyStateView } from '../../dataplane/state/proxy-state.js';
import type { Counter } from 'prom-client';
import type { HbonePool } from '../../hbone/index.js';
import { HEADER_ORIGINAL_DST, formatForwarded } from '../../hbone/wire.js';
import type { ZtunnelIdentities } from '../identities.js';
import type { InboundTracked } from './inbound.js';
import type { LocalPath, SameNodePath } from './local-path.js';
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
  /** The same-node fast path; undefined when it is off (--no-same-node-fast-path): same-node traffic goes over HBONE. */
  local?: LocalPath;
  /** Counts same-node connections by the path they took. */
  sameNodeConnections?: Pick<Counter<'path'>, 'inc'>;
  log: Logger;
}

function baggage(w: WorkloadResource): string {
  return `k8s.namespace.name=${w.namespace},k8s.pod.name=${w.name},service.name=${w.canonicalName},service.version=${w.canonicalRevision}`;
}

/** The service address the destination is told (x-strait-original-dst) so that it names the service the source asked for. */
function viaService(d: HboneRequest): boolean {
  return d.dstService !== undefined && !d.waypoint && d.originalDestination.host !== d.actualDestination.host;
}

function traceparent(): string {
  return `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
}

type Attempt =
  | { ok: true; upstream: Duplex; bind: { host: string; port: number }; dstAddress: string; dstIdentity?: string; mtls: boolean; sameNode?: SameNodePath; local?: { path: LocalPath; pod: net.Socket; inbound: InboundTracked } }
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
      const r = decision.kind === 'passthrough' ? await this.connectTcp(decision)
        : decision.sameNode && this.d.local ? await this.connectLocal(this.d.local, decision, decision.sameNode, sourceAddress)
          : await this.connectHbone(decision, sourceAddress);
      if (r.ok) {
        if (decision.endpoint) this.d.endpoints.succeeded(decision.endpoint.key);
        respond.connected(r.bind);
        const tracked = { direction: 'outbound' as const, srcAddress: sourceAddress, ...ends, dstAddress: r.dstAddress, ...(r.dstIdentity ? { dstIdentity: r.dstIdentity } : {}), mtls: r.mtls };
        if (r.sameNode) this.d.sameNodeConnections?.inc({ path: r.sameNode });
        if (r.local) await r.local.path.proxy(client, r.local.pod, tracked, r.local.inbound);
        else await this.d.tracker.proxy(client, r.upstream, tracked);
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

  /**
   * Same node, fast path: the inbound side decides in-process. The source's certificate is still required, as for
   * HBONE (no_certificate otherwise): the identity the inbound side is told is the one this ztunnel could present.
   */
  private async connectLocal(local: LocalPath, decision: HboneRequest, target: { host: string; port: number }, sourceAddress: string): Promise<Attempt> {
    const cert = await this.sourceCertificate(decision);
    if (!cert.ok) return cert;
    const dstAddress = decision.authority;
    const a = await local.admit({
      target, sourceIdentity: decision.source.identity, sourceAddress,
      ...(viaService(decision) ? { originalDestination: decision.originalDestination } : {}),
    });
    if (!a.ok) return { ok: false, err: a.err, reason: errorMessage(a.err), code: outcomeOfConnectError(a.err), dstAddress, dstIdentity: decision.expectedPeerSans[0]! };
    return { ok: true, upstream: a.upstream, bind: { host: '0.0.0.0', port: 0 }, dstAddress, dstIdentity: decision.expectedPeerSans[0]!, mtls: true, sameNode: 'fast', local: { path: local, pod: a.upstream, inbound: a.inbound } };
  }

  private async sourceCertificate(decision: HboneRequest): Promise<{ ok: true; keyPem: string; certChainPem: string[] } | Extract<Attempt, { ok: false }>> {
    const { source } = decision;
    try {
      return { ok: true, ...await this.d.identities.get(source.identity) };
    } catch (err) {
      const expected = decision.expectedPeerSans[0] ? { dstIdentity: decision.expectedPeerSans[0] } : {};
      return { ok: false, err, reason: `no certificate for ${source.identity}: ${errorMessage(err)}`, code: 'no_certificate', dstAddress: decision.authority, ...expected };
    }
  }

  private async connectHbone(decision: HboneRequest, sourceAddress: string): Promise<Attempt> {
    const { source } = decision;
    const dstAddress = decision.authority;
    const expected = decision.expectedPeerSans[0] ? { dstIdentity: decision.expectedPeerSans[0] } : {};
    const cert = await this.sourceCertificate(decision);
    if (!cert.ok) return cert;
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
          ...(viaService(decision) ? { [HEADER_ORIGINAL_DST]: formatHostPort(decision.originalDestination) } : {}),
        },
      });
      return { ok: true, upstream: res.stream, bind: { host: '0.0.0.0', port: 0 }, dstAddress, dstIdentity: res.peerIdentity, mtls: true, ...(decision.sameNode ? { sameNode: 'hbone' as const } : {}) };
    } catch (err) {
      return { ok: false, err, reason: errorMessage(err), code: outcomeOfConnectError(err), dstAddress, ...expected };
    }
  }
}
