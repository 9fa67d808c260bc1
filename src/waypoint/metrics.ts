import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { TcpMetrics } from '../dataplane/tcp-metrics.js';

/**
 * The waypoint's own Prometheus metrics besides Istio's request metrics (telemetry/): TCP relays through it (Istio's
 * istio_tcp_* with reporter="waypoint"), HBONE, the controller link and outlier ejections.
 */
export class WaypointMetrics {
  readonly registry = new Registry();
  readonly tcp: TcpMetrics;
  readonly xdsConnected: Gauge;
  readonly hboneGoaway: Counter<'reason' | 'side'>;
  readonly hboneRefused: Counter<'reason'>;
  readonly hbonePoolConnections: Gauge;
  readonly tunnels: Gauge;
  readonly ejections: Counter<'cluster'>;
  readonly ejected: Gauge<'cluster'>;
  readonly malformed: Counter<'status'>;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.tcp = new TcpMetrics(this.registry, 'waypoint');
    this.xdsConnected = new Gauge({ name: 'strait_waypoint_xds_connected', help: '1 while the xDS stream to the controller is up.', registers });
    this.hboneGoaway = new Counter({ name: 'strait_hbone_goaway_total', help: 'GOAWAY frames sent on HBONE connections, by reason and side (server: inbound 15008, client: upstream pool).', labelNames: ['reason', 'side'], registers });
    this.hboneRefused = new Counter({ name: 'strait_hbone_connections_refused_total', help: 'Inbound HBONE connections closed before HTTP/2, by reason.', labelNames: ['reason'], registers });
    this.hbonePoolConnections = new Gauge({ name: 'strait_waypoint_hbone_pool_connections', help: 'Pooled upstream HBONE (TLS+HTTP/2) connections to endpoints\' ztunnels.', registers });
    this.tunnels = new Gauge({ name: 'strait_waypoint_tunnels', help: 'HBONE tunnels from clients open now (HTTP and TCP).', registers });
    this.ejections = new Counter({ name: 'strait_waypoint_outlier_ejections_total', help: 'Endpoints ejected by outlier detection (DestinationRule outlierDetection), by cluster.', labelNames: ['cluster'], registers });
    this.ejected = new Gauge({ name: 'strait_waypoint_outlier_ejected', help: 'Endpoints ejected now, by cluster.', labelNames: ['cluster'], registers });
    this.malformed = new Counter({ name: 'strait_waypoint_malformed_requests_total', help: 'Requests the HTTP parsers refused (400, 431) before any routing.', labelNames: ['status'], registers });
  }
}
