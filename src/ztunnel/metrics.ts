import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { droppedLogLines } from '../common/log.js';
import type { ServiceResource, WorkloadResource } from '../common/xds/resources.js';

/** Istio's TCP metric labels, so existing dashboards work unchanged. */
export const TCP_LABELS = [
  'reporter', 'source_workload', 'source_workload_namespace', 'source_principal', 'source_app', 'source_version',
  'destination_workload', 'destination_workload_namespace', 'destination_service', 'destination_service_name',
  'destination_service_namespace', 'destination_principal', 'destination_app', 'destination_version',
  'connection_security_policy', 'response_flags',
] as const;
export type TcpLabel = (typeof TCP_LABELS)[number];
export type TcpLabels = Record<TcpLabel, string>;

/** What one connection's metrics and access log know about its two ends. */
export interface ConnectionPeers {
  reporter: 'source' | 'destination';
  src?: WorkloadResource;
  srcIdentity?: string;
  dst?: WorkloadResource;
  dstIdentity?: string;
  dstService?: ServiceResource;
  mtls: boolean;
}

const UNKNOWN = 'unknown';
const principal = (id?: string) => (id ? id : UNKNOWN);

export function tcpLabels(p: ConnectionPeers, responseFlags = '-'): TcpLabels {
  return {
    reporter: p.reporter,
    source_workload: p.src?.canonicalName ?? UNKNOWN,
    source_workload_namespace: p.src?.namespace ?? namespaceOf(p.srcIdentity) ?? UNKNOWN,
    source_principal: principal(p.srcIdentity),
    source_app: p.src?.canonicalName ?? UNKNOWN,
    source_version: p.src?.canonicalRevision ?? UNKNOWN,
    destination_workload: p.dst?.canonicalName ?? UNKNOWN,
    destination_workload_namespace: p.dst?.namespace ?? UNKNOWN,
    destination_service: p.dstService?.hostname ?? UNKNOWN,
    destination_service_name: p.dstService?.name ?? UNKNOWN,
    destination_service_namespace: p.dstService?.namespace ?? UNKNOWN,
    destination_principal: principal(p.dstIdentity),
    destination_app: p.dst?.canonicalName ?? UNKNOWN,
    destination_version: p.dst?.canonicalRevision ?? UNKNOWN,
    connection_security_policy: p.mtls ? 'mutual_tls' : 'none',
    response_flags: responseFlags,
  };
}

function namespaceOf(id?: string): string | undefined {
  return id ? /\/ns\/([^/]+)\//.exec(id)?.[1] : undefined;
}

/** The ztunnel's Prometheus metrics (Istio names). */
export class ZtunnelMetrics {
  readonly registry = new Registry();
  readonly opened: Counter<TcpLabel>;
  readonly closed: Counter<TcpLabel>;
  readonly sent: Counter<TcpLabel>;
  readonly received: Counter<TcpLabel>;
  readonly activeConnections: Gauge<'direction'>;
  readonly hbonePoolConnections: Gauge;
  readonly hboneHandshakes: Gauge;
  readonly certificates: Gauge;
  readonly xdsConnected: Gauge;
  readonly denied: Counter<'reason'>;
  readonly hboneGoaway: Counter<'reason' | 'side'>;
  readonly hboneRefused: Counter<'reason'>;
  readonly endpointEjections: Counter;
  readonly endpointReadmissions: Counter;
  readonly endpointsEjected: Gauge;
  readonly endpointRetries: Counter;
  readonly fdExhausted: Counter<'op' | 'reason'>;
  readonly logDropped: Counter;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    const labelNames = [...TCP_LABELS];
    this.opened = new Counter({ name: 'istio_tcp_connections_opened_total', help: 'TCP connections opened.', labelNames, registers });
    this.closed = new Counter({ name: 'istio_tcp_connections_closed_total', help: 'TCP connections closed.', labelNames, registers });
    this.sent = new Counter({ name: 'istio_tcp_sent_bytes_total', help: 'Bytes sent towards the destination during TCP connections.', labelNames, registers });
    this.received = new Counter({ name: 'istio_tcp_received_bytes_total', help: 'Bytes received from the destination during TCP connections.', labelNames, registers });
    this.activeConnections = new Gauge({ name: 'strait_ztunnel_active_connections', help: 'Connections being proxied now.', labelNames: ['direction'], registers });
    this.hbonePoolConnections = new Gauge({ name: 'strait_ztunnel_hbone_pool_connections', help: 'Pooled outbound HBONE (TLS+HTTP/2) connections.', registers });
    this.hboneHandshakes = new Gauge({ name: 'strait_ztunnel_hbone_handshakes', help: 'Outbound HBONE TLS handshakes since start (pooling keeps this low).', registers });
    this.certificates = new Gauge({ name: 'strait_ztunnel_certificates', help: 'Workload certificates held.', registers });
    this.xdsConnected = new Gauge({ name: 'strait_ztunnel_xds_connected', help: '1 while the xDS stream to the controller is up.', registers });
    this.denied = new Counter({ name: 'strait_ztunnel_connections_denied_total', help: 'Connections refused, by reason.', labelNames: ['reason'], registers });
    this.hboneGoaway = new Counter({
      name: 'strait_hbone_goaway_total',
      help: 'GOAWAY frames sent on HBONE connections, by reason (a budget the peer went past, a protocol error, idle, drain) and side (server: inbound 15008, client: outbound pool).',
      labelNames: ['reason', 'side'], registers,
    });
    this.hboneRefused = new Counter({
      name: 'strait_hbone_connections_refused_total',
      help: 'Inbound HBONE connections closed before HTTP/2, by reason (pending_handshakes, pending_handshakes_per_source, handshake_timeout, handshake_failed, peer_refused).',
      labelNames: ['reason'], registers,
    });
    this.endpointEjections = new Counter({ name: 'strait_ztunnel_endpoint_ejections_total', help: 'Service endpoints taken out of the pick after a failed connect (passive ejection).', registers });
    this.endpointReadmissions = new Counter({ name: 'strait_ztunnel_endpoint_readmissions_total', help: 'Ejected service endpoints put back in the pick.', registers });
    this.endpointsEjected = new Gauge({ name: 'strait_ztunnel_endpoints_ejected', help: 'Service endpoints out of the pick now.', registers });
    this.endpointRetries = new Counter({ name: 'strait_ztunnel_endpoint_retries_total', help: 'Outbound connections that tried another endpoint after the first one could not be reached.', registers });
    this.fdExhausted = new Counter({
      name: 'strait_ztunnel_fd_exhausted_total',
      help: 'Connections lost to file-descriptor exhaustion: op="accept" (dropped on arrival) or "connect" (could not open the upstream); reason="emfile"/"enfile" (the kernel refused a descriptor) or "reserve" (shed to keep the last descriptors for connections already accepted).',
      labelNames: ['op', 'reason'], registers,
    });
    let droppedSeen = 0;
    this.logDropped = new Counter({
      name: 'strait_ztunnel_log_lines_dropped_total',
      help: 'Log lines dropped because standard output was not read fast enough and the 4 MiB log buffer was full.',
      registers,
      collect() {
        const now = droppedLogLines();
        if (now > droppedSeen) this.inc(now - droppedSeen);
        droppedSeen = now;
      },
    });
  }
}
