import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ConfigStore } from './store.js';

/**
 * The controller's Prometheus metrics. Names follow istiod's (pilot_*, citadel_*) so existing dashboards
 * and alerts keep working.
 */
export class ControllerMetrics {
  readonly registry = new Registry();
  readonly connectedProxies: Gauge<'kind'>;
  readonly pushes: Counter<'type'>;
  readonly pushedResources: Counter<'type'>;
  readonly convergence: Histogram<'type'>;
  readonly nacks: Counter<'type'>;
  readonly csrReceived: Counter;
  readonly certsIssued: Counter;
  readonly csrParseErrors: Counter;
  readonly csrRefused: Counter<'reason'>;
  readonly configObjects: Gauge<'kind'>;
  readonly configRejected: Gauge;
  readonly authRefused: Counter<'service' | 'reason'>;
  readonly limitExceeded: Counter<'limit'>;
  readonly stalls: Counter<'kind'>;
  readonly stallDisconnects: Counter<'kind' | 'why'>;
  readonly leader: Gauge;
  readonly tokenReviews: Counter<'result'>;
  readonly kubeWrites: Counter<'verb' | 'kind'>;
  readonly kubeEvents: Counter<'resource' | 'type'>;
  readonly kubeRelists: Counter<'resource' | 'reason'>;
  readonly kubeErrors: Counter<'resource' | 'status'>;
  readonly kubeWatchUp: Gauge<'resource'>;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.connectedProxies = new Gauge({ name: 'pilot_xds', help: 'Proxies connected over xDS, by kind.', labelNames: ['kind'], registers });
    this.pushes = new Counter({ name: 'pilot_xds_pushes', help: 'xDS responses sent, by resource type.', labelNames: ['type'], registers });
    this.pushedResources = new Counter({ name: 'strait_xds_pushed_resources_total', help: 'Resources carried by xDS responses.', labelNames: ['type'], registers });
    this.convergence = new Histogram({
      name: 'pilot_proxy_convergence_time', help: 'Seconds from a config change to the proxy ACKing the push that carries it.',
      labelNames: ['type'], buckets: [0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10], registers,
    });
    this.nacks = new Counter({ name: 'pilot_total_xds_rejects', help: 'xDS responses rejected (NACKed) by proxies.', labelNames: ['type'], registers });
    this.csrReceived = new Counter({ name: 'citadel_server_csr_count', help: 'Certificate signing requests received.', registers });
    this.certsIssued = new Counter({ name: 'citadel_server_success_cert_issuance_count', help: 'Workload certificates issued.', registers });
    this.csrParseErrors = new Counter({ name: 'citadel_server_csr_parsing_err_count', help: 'CSRs that could not be parsed or verified.', registers });
    this.csrRefused = new Counter({ name: 'strait_ca_refused_total', help: 'Certificate requests refused, by reason.', labelNames: ['reason'], registers });
    this.configObjects = new Gauge({ name: 'strait_config_objects', help: 'Valid config objects in force, by kind.', labelNames: ['kind'], registers });
    this.configRejected = new Gauge({ name: 'strait_config_rejected', help: 'Config documents currently rejected with an error.', registers });
    this.authRefused = new Counter({
      name: 'strait_auth_refused_total', help: 'xDS streams and CA calls refused at the door (credentials or what they may do), by service and reason.',
      labelNames: ['service', 'reason'], registers,
    });
    this.limitExceeded = new Counter({ name: 'strait_xds_limit_exceeded_total', help: 'Streams or requests refused or ended for going over a limit, by limit.', labelNames: ['limit'], registers });
    this.stalls = new Counter({ name: 'strait_xds_stalls_total', help: 'Times an xDS stream could not take pushes (unread bytes or unanswered responses) and its pushes were coalesced.', labelNames: ['kind'], registers });
    this.stallDisconnects = new Counter({
      name: 'strait_xds_stall_disconnects_total', help: 'xDS streams disconnected for stalling longer than --xds-stall-timeout, by what they did not do (unread, unanswered).',
      labelNames: ['kind', 'why'], registers,
    });
    this.leader = new Gauge({ name: 'strait_controller_leader', help: '1 while this replica holds the leader Lease (it alone writes to the cluster), else 0; always 1 without leader election.', registers });
    this.tokenReviews = new Counter({
      name: 'strait_token_reviews_total', help: 'Proxy tokens checked with a Kubernetes TokenReview, by result (accepted, refused, error, cached, busy).',
      labelNames: ['result'], registers,
    });
    this.kubeWrites = new Counter({ name: 'strait_kube_writes_total', help: 'Writes to the Kubernetes API by this replica (create, update, delete, status), by kind.', labelNames: ['verb', 'kind'], registers });
    this.kubeEvents = new Counter({ name: 'strait_kube_watch_events_total', help: 'Kubernetes watch events received, by resource and type (ADDED, MODIFIED, DELETED, BOOKMARK).', labelNames: ['resource', 'type'], registers });
    this.kubeRelists = new Counter({ name: 'strait_kube_relists_total', help: 'Full listings of a Kubernetes resource, by reason (start, expired = 410 Gone, recovered after errors, crd = its CRD appeared).', labelNames: ['resource', 'reason'], registers });
    this.kubeErrors = new Counter({ name: 'strait_kube_errors_total', help: 'Failed Kubernetes list/watch requests, by resource and HTTP status (0: no answer); each is retried with backoff.', labelNames: ['resource', 'status'], registers });
    this.kubeWatchUp = new Gauge({ name: 'strait_kube_watch_up', help: '1 while the watch of a Kubernetes resource is open, 0 while it backs off or its CRD is missing.', labelNames: ['resource'], registers });
  }

  /** The adapter the Kubernetes source reports through. */
  kube() {
    return {
      event: (resource: string, type: string) => this.kubeEvents.inc({ resource, type }),
      relist: (resource: string, reason: string) => this.kubeRelists.inc({ resource, reason }),
      error: (resource: string, status: string) => this.kubeErrors.inc({ resource, status }),
      up: (resource: string, up: boolean) => this.kubeWatchUp.set({ resource }, up ? 1 : 0),
    };
  }

  /** The adapter the xDS server reports through. */
  /** Objects in force by kind, and documents rejected with an error, after a config change. */
  countConfig(store: ConfigStore): void {
    this.configObjects.reset();
    for (const o of store.list()) this.configObjects.inc({ kind: o.object.kind });
    this.configRejected.set(store.problems().filter((p) => p.severity === 'error').length);
  }

  xds() {
    return {
      proxyConnected: (kind: string) => this.connectedProxies.inc({ kind }),
      proxyDisconnected: (kind: string) => this.connectedProxies.dec({ kind }),
      pushed: (typeUrl: string, resources: number) => {
        this.pushes.inc({ type: shortType(typeUrl) });
        this.pushedResources.inc({ type: shortType(typeUrl) }, resources);
      },
      acked: (typeUrl: string, latencyMs: number) => this.convergence.observe({ type: shortType(typeUrl) }, latencyMs / 1000),
      nacked: (typeUrl: string) => this.nacks.inc({ type: shortType(typeUrl) }),
      limitExceeded: (limit: string) => this.limitExceeded.inc({ limit }),
      refused: (reason: string) => this.authRefused.inc({ service: 'xds', reason }),
      stalled: (kind: string) => this.stalls.inc({ kind }),
      stallDisconnected: (kind: string, why: string) => this.stallDisconnects.inc({ kind, why }),
    };
  }
}

function shortType(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}
