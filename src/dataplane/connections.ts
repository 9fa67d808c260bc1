import type { Duplex } from 'node:stream';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { relay } from '../hbone/index.js';
import type { ServiceResource, WorkloadResource } from '../common/xds/resources.js';
import type { ConnectionAttrs } from './policy/authorize.js';
import { outcome, type OutcomeCode } from './outcomes.js';
import { tcpLabels, type TcpMetrics } from './tcp-metrics.js';

export type Direction = 'inbound' | 'outbound' | 'inbound-plaintext';

/** One proxied connection, from accept to close. */
export interface TrackedConnection {
  id: number;
  direction: Direction;
  startedAt: number;
  src?: WorkloadResource;
  srcIdentity?: string;
  srcAddress: string;
  dst?: WorkloadResource;
  dstIdentity?: string;
  dstService?: ServiceResource;
  dstAddress: string;
  mtls: boolean;
  /** Inbound: the ztunnel's own end of the connection to the pod ("ip:port"), so the pod's app can ask who called it. */
  upstreamLocal?: string;
  /** For inbound connections: what policy is re-checked against when it changes. */
  authz?: { attrs: ConnectionAttrs; target: { namespace: string; labels: Record<string, string> } };
  /** Ends the connection (both sides) with a reason that the access log records. */
  close(reason: string): void;
  /** Bytes of the response: upstream → client (Istio's istio_tcp_sent_bytes_total). */
  bytesSent: number;
  /** Bytes of the request: client → upstream (Istio's istio_tcp_received_bytes_total). */
  bytesRecv: number;
}

/**
 * Live connections, their metrics and their access-log line.
 * Invariants: every tracked connection is opened once and finished once; its `istio_tcp_*` counters and the
 * access-log line are written by finish() and nowhere else, so counts and logs agree.
 */
export class ConnectionTracker {
  private nextId = 1;
  readonly live = new Map<number, TrackedConnection>();
  /** Connections finished since start (the drain reports how many finished during it). */
  finishedCount = 0;
  private readonly liveBy: Record<Direction, number> = { inbound: 0, outbound: 0, 'inbound-plaintext': 0 };

  constructor(private readonly access: Logger, private readonly metrics: TcpMetrics) {}

  open(c: Omit<TrackedConnection, 'id' | 'startedAt' | 'bytesSent' | 'bytesRecv'>): TrackedConnection {
    const conn: TrackedConnection = { ...c, id: this.nextId++, startedAt: Date.now(), bytesSent: 0, bytesRecv: 0 };
    this.live.set(conn.id, conn);
    this.liveBy[conn.direction]++;
    this.metrics.opened.inc(this.labels(conn));
    this.metrics.activeConnections.inc({ direction: conn.direction });
    return conn;
  }

  finish(conn: TrackedConnection, error?: string): void {
    if (!this.live.delete(conn.id)) return;
    this.finishedCount++;
    this.liveBy[conn.direction]--;
    const labels = this.labels(conn);
    this.metrics.closed.inc(labels);
    if (conn.bytesSent) this.metrics.sent.inc(labels, conn.bytesSent);
    if (conn.bytesRecv) this.metrics.received.inc(labels, conn.bytesRecv);
    this.metrics.activeConnections.dec({ direction: conn.direction });
    this.access.info({
      'src.addr': conn.srcAddress,
      'src.workload': conn.src?.name,
      'src.namespace': conn.src?.namespace,
      'src.identity': conn.srcIdentity,
      'dst.addr': conn.dstAddress,
      'dst.service': conn.dstService?.hostname,
      'dst.workload': conn.dst?.name,
      'dst.namespace': conn.dst?.namespace,
      'dst.identity': conn.dstIdentity,
      direction: conn.direction,
      bytes_sent: conn.bytesSent,
      bytes_recv: conn.bytesRecv,
      duration_ms: Date.now() - conn.startedAt,
      ...(error ? { error } : {}),
    }, 'connection complete');
  }

  /**
   * Relays `client` <-> `upstream` as one tracked connection: opened now, finished (metrics + access log) when both
   * directions are done. As Istio counts them, bytes_sent is the response (upstream → client) and bytes_recv the
   * request (client → upstream), the same in the access log and the metrics, for both reporters. A policy re-check may
   * close it; the reason then becomes the access log's error.
   */
  async proxy(client: Duplex, upstream: Duplex, c: Omit<TrackedConnection, 'id' | 'startedAt' | 'bytesSent' | 'bytesRecv' | 'close'>): Promise<void> {
    let closeReason: string | undefined;
    const conn = this.open({
      ...c,
      close: (reason) => {
        closeReason = reason;
        // A socket peer should see a reset, not an orderly close.
        if ('resetAndDestroy' in upstream && typeof upstream.resetAndDestroy === 'function') upstream.resetAndDestroy();
        else upstream.destroy();
        client.destroy();
      },
    });
    const r = await relay(client, upstream);
    conn.bytesSent = r.bToA;
    conn.bytesRecv = r.aToB;
    this.finish(conn, closeReason ?? (r.error ? errorMessage(r.error) : undefined));
  }

  /**
   * A connection refused before it was proxied (or whose upstream could not be opened): access log + denial
   * counter, no open/close counters. `code` is the outcome (dataplane/outcomes.ts): the line's `reason` and the
   * counter's label; `message` says what exactly, `hint` what to check.
   */
  refused(c: { direction: Direction; srcAddress: string; dstAddress: string; src?: WorkloadResource; srcIdentity?: string; dst?: WorkloadResource; dstIdentity?: string; dstService?: ServiceResource }, message: string, code: OutcomeCode): void {
    this.metrics.denied.inc({ reason: code });
    this.access.info({
      'src.addr': c.srcAddress, 'src.workload': c.src?.name, 'src.namespace': c.src?.namespace, 'src.identity': c.srcIdentity,
      'dst.addr': c.dstAddress, 'dst.service': c.dstService?.hostname, 'dst.workload': c.dst?.name, 'dst.namespace': c.dst?.namespace, 'dst.identity': c.dstIdentity,
      direction: c.direction, bytes_sent: 0, bytes_recv: 0, duration_ms: 0, reason: code, error: message, hint: outcome(code).hint,
    }, 'connection refused');
  }

  /** Live connections in one direction (O(1), for the fd guard on every accept). */
  liveCount(direction: Direction): number {
    return this.liveBy[direction];
  }

  /** Live connections for the admin API (no secrets). */
  snapshot(): Record<string, unknown>[] {
    return [...this.live.values()].map((c) => ({
      id: c.id, direction: c.direction, 'src.addr': c.srcAddress, 'src.identity': c.srcIdentity, 'src.workload': c.src?.uid,
      'dst.addr': c.dstAddress, 'dst.identity': c.dstIdentity, 'dst.workload': c.dst?.uid, 'dst.service': c.dstService?.hostname,
      mtls: c.mtls, upstreamLocal: c.upstreamLocal, started: new Date(c.startedAt).toISOString(), bytes_sent: c.bytesSent, bytes_recv: c.bytesRecv,
    }));
  }

  private labels(c: TrackedConnection) {
    return tcpLabels({
      reporter: c.direction === 'outbound' ? 'source' : 'destination',
      src: c.src, srcIdentity: c.srcIdentity, dst: c.dst, dstIdentity: c.dstIdentity, dstService: c.dstService, mtls: c.mtls,
    });
  }
}
