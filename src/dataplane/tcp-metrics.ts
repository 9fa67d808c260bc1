/**
 * Istio's TCP metrics with Istio's names and labels (so existing dashboards work unchanged), plus the proxy's live
 * connection gauge and refusal counter. One instance per proxy process; the ConnectionTracker is its only writer.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
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
    source_workload: p.src?.workloadName ?? p.src?.canonicalName ?? UNKNOWN,
    source_workload_namespace: p.src?.namespace ?? namespaceOf(p.srcIdentity) ?? UNKNOWN,
    source_principal: principal(p.srcIdentity),
    source_app: p.src?.canonicalName ?? UNKNOWN,
    source_version: p.src?.canonicalRevision ?? UNKNOWN,
    destination_workload: p.dst?.workloadName ?? p.dst?.canonicalName ?? UNKNOWN,
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

/** The TCP counters of one proxy; `component` names its own metrics (`strait_<component>_active_connections`). */
export class TcpMetrics {
  readonly opened: Counter<TcpLabel>;
  readonly closed: Counter<TcpLabel>;
  readonly sent: Counter<TcpLabel>;
  readonly received: Counter<TcpLabel>;
  readonly activeConnections: Gauge<'direction'>;
  readonly denied: Counter<'reason'>;

  constructor(registry: Registry, component: 'ztunnel' | 'waypoint') {
    const registers = [registry];
    const labelNames = [...TCP_LABELS];
    this.opened = new Counter({ name: 'istio_tcp_connections_opened_total', help: 'TCP connections opened.', labelNames, registers });
    this.closed = new Counter({ name: 'istio_tcp_connections_closed_total', help: 'TCP connections closed.', labelNames, registers });
    this.sent = new Counter({ name: 'istio_tcp_sent_bytes_total', help: 'Bytes sent during the response of TCP connections (server to client).', labelNames, registers });
    this.received = new Counter({ name: 'istio_tcp_received_bytes_total', help: 'Bytes received during the request of TCP connections (client to server).', labelNames, registers });
    this.activeConnections = new Gauge({ name: `strait_${component}_active_connections`, help: 'Connections being proxied now.', labelNames: ['direction'], registers });
    this.denied = new Counter({ name: `strait_${component}_connections_denied_total`, help: 'Connections refused, by reason.', labelNames: ['reason'], registers });
  }
}
