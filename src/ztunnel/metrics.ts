import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { droppedLogLines } from '../common/log.js';
import { TcpMetrics } from '../dataplane/tcp-metrics.js';

/** The ztunnel's Prometheus metrics (Istio names). */
export class ZtunnelMetrics {
  readonly registry = new Registry();
  /** Istio's TCP metrics, the connection counters and the refusals (shared with the waypoint). */
  readonly tcp: TcpMetrics;
  readonly hbonePoolConnections: Gauge;
  readonly hboneHandshakes: Gauge;
  readonly certificates: Gauge;
  readonly xdsConnected: Gauge;
  readonly hboneGoaway: Counter<'reason' | 'side'>;
  readonly hboneRefused: Counter<'reason'>;
  readonly endpointEjections: Counter;
  readonly endpointReadmissions: Counter;
  readonly endpointsEjected: Gauge;
  readonly endpointRetries: Counter;
  readonly fdExhausted: Counter<'op' | 'reason'>;
  readonly logDropped: Counter;
  readonly captureOperations: Counter<'operation' | 'result'>;
  readonly capturePods: Gauge<'state'>;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.tcp = new TcpMetrics(this.registry, 'ztunnel');
    this.hbonePoolConnections = new Gauge({ name: 'strait_ztunnel_hbone_pool_connections', help: 'Pooled outbound HBONE (TLS+HTTP/2) connections.', registers });
    this.hboneHandshakes = new Gauge({ name: 'strait_ztunnel_hbone_handshakes', help: 'Outbound HBONE TLS handshakes since start (pooling keeps this low).', registers });
    this.certificates = new Gauge({ name: 'strait_ztunnel_certificates', help: 'Workload certificates held.', registers });
    this.xdsConnected = new Gauge({ name: 'strait_ztunnel_xds_connected', help: '1 while the xDS stream to the controller is up.', registers });
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
    this.captureOperations = new Counter({
      name: 'strait_capture_operations_total',
      help: 'Capture scripts run by the ztunnel (--capture), by operation (setup, add, remove, list, teardown) and result (ok, error).',
      labelNames: ['operation', 'result'], registers,
    });
    this.capturePods = new Gauge({
      name: 'strait_capture_pods',
      help: 'Pod addresses of this node by the state of their capture rules (present, adding, removing, failed, unsupported).',
      labelNames: ['state'], registers,
    });
  }
}
