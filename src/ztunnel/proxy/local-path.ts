/**
 * The same-node fast path (`--same-node-fast-path`, on by default): an outbound connection whose destination is an
 * HBONE workload of this very node, with no waypoint in between, is not sent through TLS + HTTP/2 to this ztunnel's
 * own 15008. The inbound side admits it in-process, as the HBONE CONNECT from the source's identity it would have
 * received (same decision: STRICT/PERMISSIVE, L4 authorization on the source principal; same refusals, answered
 * with the status the CONNECT would have got), and one relay joins the client to the pod.
 *
 * As Istio's ztunnel did with its "node local fast path" (shared mode, before in-pod redirection), the connection
 * keeps reporting connection_security_policy="mutual_tls" on both reporters: the source's identity is the one this
 * ztunnel holds the certificate for and would have presented, and the bytes never leave the node. Operators who
 * want TLS on the loopback too turn it off; `strait_ztunnel_same_node_connections_total{path}` says which path
 * same-node connections took.
 *
 * Invariants: a fast-path connection is recorded as the two connections the HBONE path records (outbound, reporter
 * source; inbound, reporter destination), opened together and finished together with the same byte counts and
 * error; closing either one (a policy re-check, the drain) resets the client and the pod.
 */
import type { Duplex } from 'node:stream';
import type net from 'node:net';
import { Counter, type Registry } from 'prom-client';
import { errorMessage } from '../../common/errors.js';
import { formatHostPort, normalizeIp, type HostPort } from '../../common/net.js';
import type { ConnectionTracker, TrackedConnection } from '../../dataplane/connections.js';
import { HboneRefusedError, relay, resetStream, sanitizeReason } from '../../hbone/index.js';
import type { InboundHandler, InboundTracked } from './inbound.js';

/** Which path a same-node connection took: in-process (`fast`) or through this ztunnel's own 15008 (`hbone`). */
export type SameNodePath = 'fast' | 'hbone';

/** `strait_ztunnel_same_node_connections_total{path}`: same-node connections proxied, by path. */
export function sameNodeConnectionsCounter(registry: Registry): Counter<'path'> {
  return new Counter({
    name: 'strait_ztunnel_same_node_connections_total',
    help: 'Connections between two pods of this node that were proxied, by path: fast (in-process, --same-node-fast-path) or hbone (mTLS to this ztunnel\'s own 15008).',
    labelNames: ['path'], registers: [registry],
  });
}

export interface LocalPathDeps {
  inbound: Pick<InboundHandler, 'admitLocal'>;
  tracker: ConnectionTracker;
  /** What the inbound side sees as the TCP peer: this ztunnel's own address, as for an HBONE connection it made. */
  nodeAddress: string;
}

/** What the outbound side asks for: the request as the HBONE path would send it. */
export interface LocalRequest {
  /** The workload's address and port (the CONNECT :authority). */
  target: HostPort;
  /** The source workload's identity (the HBONE path's client certificate). */
  sourceIdentity: string;
  /** The source pod's address (the HBONE path's `forwarded` header). */
  sourceAddress: string;
  /** The service address the source asked for, when the HBONE path would send it (x-strait-original-dst). */
  originalDestination?: HostPort;
}

export type LocalAdmission =
  | { ok: true; upstream: net.Socket; inbound: InboundTracked }
  /** Refused as the CONNECT would have been: `err` is what the HBONE pool would have thrown. */
  | { ok: false; err: HboneRefusedError };

export class LocalPath {
  private liveCount = 0;

  constructor(private readonly d: LocalPathDeps) {}

  /** Fast-path connections being relayed now (each is one of the tracker's live 'inbound' connections, with no HBONE stream). */
  get live(): number {
    return this.liveCount;
  }

  /** The inbound side's decision and its dial of the pod. */
  async admit(r: LocalRequest): Promise<LocalAdmission> {
    const a = await this.d.inbound.admitLocal({
      target: r.target, peerIdentity: r.sourceIdentity, remoteAddress: this.d.nodeAddress, forwardedFor: normalizeIp(r.sourceAddress),
      ...(r.originalDestination ? { originalDestination: r.originalDestination } : {}),
    });
    if (a.ok) return { ok: true, upstream: a.upstream, inbound: a.tracked };
    const authority = formatHostPort(r.target);
    const reason = sanitizeReason(a.reason);
    return { ok: false, err: new HboneRefusedError(a.status, reason, `same-node destination refused ${authority} with status ${a.status}: ${reason}`) };
  }

  /** Relays client <-> pod as both tracked connections (see the invariants). */
  async proxy(client: Duplex, upstream: net.Socket, outbound: Omit<TrackedConnection, 'id' | 'startedAt' | 'bytesSent' | 'bytesRecv' | 'close'>, inbound: InboundTracked): Promise<void> {
    let closeReason: string | undefined;
    const close = (reason: string) => {
      closeReason ??= reason;
      resetStream(upstream);
      resetStream(client);
    };
    const out = this.d.tracker.open({ ...outbound, close });
    const inn = this.d.tracker.open({ ...inbound, close });
    this.liveCount++;
    const r = await relay(client, upstream); // never rejects: failures come back in r.error
    const error = closeReason ?? (r.error ? errorMessage(r.error) : undefined);
    for (const c of [inn, out]) {
      c.bytesSent = r.bToA;
      c.bytesRecv = r.aToB;
      this.d.tracker.finish(c, error);
    }
    this.liveCount--;
  }
}
