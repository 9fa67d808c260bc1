/**
 * Outbound: a connection from a local pod (captured on 15001, or explicit through SOCKS5 on 15080).
 * buildRequest (request.ts) decides; this file does: plain TCP passthrough or HBONE through the pool. When the
 * endpoint picked for a service cannot be reached, another ready one is tried (at most `maxAttempts` in all)
 * before the client is told, and the failing one is reported for passive ejection (endpoint-health.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { bug, errorMessage, isStraitError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import type { HbonePool } from '../../hbone/index.js';
import type { WorkloadResource } from '../../common/xds/resources.js';
import type { ZtunnelIdentities } from '../identities.js';
import type { ProxyStateView } from '../../dataplane/state/proxy-state.js';
import type { ConnectionTracker } from '../../dataplane/connections.js';
import { failureBlame } from './endpoint-health.js';
import type { TargetConnector } from '../../dataplane/connector.js';
import { buildRequest, type EndpointPicker, type HboneRequest, type OutboundTarget, type Passthrough, type RefusalCode } from './request.js';

/** How the caller tells its client the outcome before bytes flow (SOCKS5 reply; nothing for captured sockets). */
export interface OutboundResponder {
  connected(bind: { host: string; port: number }): void;
  refused(kind: 'not-allowed' | 'unreachable' | 'refused' | 'failure', reason: string): void;
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

type Attempt =
  | { ok: true; upstream: Duplex; bind: { host: string; port: number }; dstAddress: string; dstIdentity?: string; mtls: boolean }
  | { ok: false; err: unknown; reason: string; code: string; kind: 'not-allowed' | 'unreachable' | 'refused' | 'failure'; dstAddress: string; dstIdentity?: string };

export class OutboundHandler {
  constructor(private readonly d: OutboundDeps) {}

  async handle(client: Duplex, sourceAddress: string, target: OutboundTarget, respond: OutboundResponder): Promise<void> {
    const tried = new Set<string>();
    let failure: Extract<Attempt, { ok: false }> | undefined;
    let base: { direction: 'outbound'; srcAddress: string; src?: WorkloadResource; srcIdentity?: string } = { direction: 'outbound', srcAddress: sourceAddress };
    for (let attempt = 1; ; attempt++) {
      const decision = buildRequest(this.d.state, this.d.node, sourceAddress, target, { pick: this.d.pick, ejected: (k) => this.d.endpoints.isEjected(k), tried });
      if (decision.kind === 'refuse') {
        if (failure) break; // every endpoint failed (the endpoints changed under us): report the last failure
        this.d.tracker.refused({ direction: 'outbound', srcAddress: sourceAddress, dstAddress: `${target.host}:${target.port}` }, decision.message, decision.code.replace(/-/g, '_'));
        respond.refused(REFUSAL_KIND[decision.code], decision.message);
        return;
      }
      const { source } = decision;
      base = { direction: 'outbound', srcAddress: sourceAddress, src: source, srcIdentity: source.identity };
      const r = decision.kind === 'passthrough' ? await this.connectTcp(decision) : await this.connectHbone(decision, sourceAddress);
      const dst = { dst: decision.dstWorkload, dstService: decision.dstService };
      if (r.ok) {
        if (decision.endpoint) this.d.endpoints.succeeded(decision.endpoint.key);
        respond.connected(r.bind);
        await this.d.tracker.proxy(client, r.upstream, { ...base, ...dst, dstAddress: r.dstAddress, ...(r.dstIdentity ? { dstIdentity: r.dstIdentity } : {}), mtls: r.mtls });
        return;
      }
      failure = r;
      const blame = failureBlame(r.err);
      // TCP connects go through the injected connector, which reports its own; the pool's are reported here.
      if (blame === 'local' && decision.kind === 'hbone') this.d.onFdExhausted?.('connect', r.err);
      if (!decision.endpoint || blame !== 'endpoint') break;
      this.d.endpoints.failed(decision.endpoint.key, r.reason);
      tried.add(decision.endpoint.key);
      if (decision.endpoint.untried === 0 || attempt >= this.d.maxAttempts) break;
      this.d.endpoints.retried();
      this.d.log.debug({ 'src.addr': sourceAddress, endpoint: decision.endpoint.key, err: r.reason, attempt }, 'endpoint unreachable; trying another');
    }
    if (!failure) throw bug('outbound attempt loop ended without a failure to report');
    this.d.tracker.refused({ ...base, dstAddress: failure.dstAddress, ...(failure.dstIdentity ? { dstIdentity: failure.dstIdentity } : {}) }, failure.reason, failure.code);
    respond.refused(failure.kind, failure.reason);
  }

  private async connectTcp(decision: Passthrough): Promise<Attempt> {
    const { host, port } = decision.actualDestination;
    const dstAddress = `${host}:${port}`;
    try {
      const upstream = await this.d.connect(host, port, this.d.connectTimeoutMs);
      return { ok: true, upstream, bind: { host: upstream.localAddress ?? '0.0.0.0', port: upstream.localPort ?? 0 }, dstAddress, mtls: false };
    } catch (err) {
      const reason = `cannot reach ${dstAddress} (outside the mesh): ${errorMessage(err)}`;
      const local = failureBlame(err) === 'local';
      return { ok: false, err, reason, code: local ? 'fd_exhausted' : 'connect_failed', dstAddress, kind: (err as NodeJS.ErrnoException).code === 'ECONNREFUSED' ? 'refused' : 'unreachable' };
    }
  }

  private async connectHbone(decision: HboneRequest, sourceAddress: string): Promise<Attempt> {
    const { source } = decision;
    const hostPort = `${decision.actualDestination.host}:${decision.actualDestination.port}`;
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
      return { ok: true, upstream: res.stream, bind: { host: '0.0.0.0', port: 0 }, dstAddress: decision.authority, dstIdentity: res.peerIdentity, mtls: true };
    } catch (err) {
      const status = (err as { status?: number }).status;
      const local = failureBlame(err) === 'local';
      return {
        ok: false, err, reason: errorMessage(err), dstAddress: decision.authority, ...(decision.expectedPeerSans[0] ? { dstIdentity: decision.expectedPeerSans[0] } : {}),
        code: local ? 'fd_exhausted' : isStraitError(err) ? err.code.replace('STRAIT_ERR_', '').toLowerCase() : 'hbone_failed',
        kind: status === 401 || status === 403 ? 'not-allowed' : status === 503 ? 'refused' : 'unreachable',
      };
    }
  }
}
