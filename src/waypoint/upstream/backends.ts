/**
 * Backend choice (DESIGN §6: "subset → ready endpoints − ejected → load balancer → pool limits"). A cluster is one
 * (service, port, subset); each has its traffic policy (DestinationRule, subset overrides merged by the
 * controller), a load balancer, an outlier detector and a circuit breaker, made on first use and rebuilt when its
 * policy changes.
 *
 * Invariants: a cluster's endpoints are always computed from the current state (never cached across a state
 * change); ejection and balancing state survive endpoint changes for the endpoints that stay; clusters of
 * services that are gone are dropped by `retain`.
 */
import type { ProxyStateView } from '../../dataplane/state/proxy-state.js';
import type { EndpointResource, ServiceResource, WorkloadResource } from '../../common/xds/resources.js';
import type { TrafficPolicyCompiled } from '../../common/xds/waypoint-resources.js';
import type { WaypointState } from '../waypoint-state.js';
import { EndpointBalancer } from './balancer.js';
import { OutlierDetector } from './outlier.js';
import { CircuitBreaker } from './circuit-breaker.js';

export interface Endpoint {
  /** "ip:port" of the app: the balancer's and detector's key. */
  key: string;
  address: string;
  /** The app's port on the endpoint (the service port's target). */
  port: number;
  workload: WorkloadResource | undefined;
  identity: string;
  /** Not enrolled in the mesh: reached in plain TCP, not over HBONE. */
  plaintext: boolean;
}

export interface Cluster {
  /** "ns/name:port" or "ns/name:port/subset". */
  name: string;
  service: ServiceResource;
  port: number;
  subset?: string;
  policy: TrafficPolicyCompiled;
  balancer: EndpointBalancer<Endpoint>;
  outlier?: OutlierDetector;
  breaker: CircuitBreaker;
  /** Calls outlier.sweep() every outlierDetection.interval. */
  sweepTimer?: NodeJS.Timeout;
  /** Requests in flight per endpoint key (LEAST_REQUEST). */
  active: Map<string, number>;
  policyJson: string;
}

export type ClusterProblem = { kind: 'no-service'; message: string } | { kind: 'no-subset'; message: string };

export interface BackendsOptions {
  state: ProxyStateView;
  waypoint: WaypointState;
  now: () => number;
  random: () => number;
  onEject?: (cluster: string, endpoint: string, untilMs: number) => void;
  onReadmit?: (cluster: string, endpoint: string) => void;
}

export class Backends {
  private readonly clusters = new Map<string, Cluster>();

  constructor(private readonly o: BackendsOptions) {}

  /** The cluster for (service, port, subset), or why there is none. */
  cluster(serviceKey: string, port: number, subset: string | undefined): Cluster | ClusterProblem {
    const service = this.o.state.services.get(serviceKey);
    if (!service) return { kind: 'no-service', message: `service ${serviceKey} does not exist` };
    const backend = this.o.waypoint.backendPolicy(serviceKey);
    let policy: TrafficPolicyCompiled = backend?.policy ?? {};
    if (subset !== undefined) {
      const s = backend?.subsets[subset];
      if (!s) return { kind: 'no-subset', message: `subset ${subset} of ${serviceKey} is defined by no DestinationRule` };
      policy = s.policy;
    }
    const name = `${serviceKey}:${port}${subset !== undefined ? `/${subset}` : ''}`;
    const policyJson = JSON.stringify(policy);
    let c = this.clusters.get(name);
    if (!c || c.policyJson !== policyJson) {
      if (c) stopCluster(c);
      c = {
        name, service, port, ...(subset !== undefined ? { subset } : {}), policy, policyJson,
        // No loadBalancer: LEAST_REQUEST, Istio's default.
        balancer: new EndpointBalancer<Endpoint>(policy.loadBalancer ?? 'LEAST_REQUEST', this.o.random),
        breaker: new CircuitBreaker(policy.connectionPool ?? {}),
        active: new Map(),
      };
      if (policy.outlierDetection) {
        const clusterName = name;
        const outlier = new OutlierDetector(policy.outlierDetection, {
          now: this.o.now,
          onEject: (e) => this.o.onEject?.(clusterName, e.endpoint, e.until),
          onReadmit: (e) => this.o.onReadmit?.(clusterName, e.endpoint),
        });
        c.outlier = outlier;
        c.sweepTimer = setInterval(() => outlier.sweep(), Math.max(10, outlier.intervalMs));
        c.sweepTimer.unref();
      }
      this.clusters.set(name, c);
    }
    c.service = service;
    return c;
  }

  /** Ready endpoints of the cluster that serve its port and match its subset, with the ejected ones left out. */
  endpoints(c: Cluster): { usable: Endpoint[]; total: number } {
    const subsetLabels = c.subset !== undefined ? this.o.waypoint.backendPolicy(`${c.service.namespace}/${c.service.name}`)?.subsets[c.subset]?.labels : undefined;
    const all: Endpoint[] = [];
    for (const ep of c.service.endpoints) {
      const e = this.toEndpoint(c, ep, subsetLabels);
      if (e) all.push(e);
    }
    c.outlier?.retain(new Set(all.map((e) => e.key)));
    const usable = c.outlier ? all.filter((e) => !c.outlier!.isEjected(e.key)) : all;
    return { usable, total: all.length };
  }

  pick(c: Cluster, usable: readonly Endpoint[], exclude?: ReadonlySet<string>): Endpoint | undefined {
    const list = exclude && exclude.size > 0 && usable.some((e) => !exclude.has(e.key)) ? usable.filter((e) => !exclude.has(e.key)) : usable;
    return c.balancer.pick(list, (e) => c.active.get(e.key) ?? 0);
  }

  /** Drops clusters of services that no longer exist. */
  retain(): void {
    for (const [name, c] of this.clusters) {
      if (!this.o.state.services.has(`${c.service.namespace}/${c.service.name}`)) {
        stopCluster(c);
        this.clusters.delete(name);
      }
    }
  }

  snapshot(): Record<string, unknown>[] {
    return [...this.clusters.values()].map((c) => ({
      name: c.name,
      policy: c.policy,
      endpoints: c.service.endpoints.length,
      active: Object.fromEntries(c.active),
      circuitBreaker: c.breaker.snapshot(),
      ...(c.outlier ? { outlier: c.outlier.snapshot() } : {}),
    }));
  }

  close(): void {
    for (const c of this.clusters.values()) stopCluster(c);
    this.clusters.clear();
  }

  private toEndpoint(c: Cluster, ep: EndpointResource, subsetLabels: Record<string, string> | undefined): Endpoint | undefined {
    if (!ep.healthy) return undefined;
    const port = ep.ports[String(c.port)];
    if (port === undefined) return undefined;
    const workload = this.o.state.workloads.get(ep.workload);
    if (subsetLabels) {
      if (!workload) return undefined;
      for (const [k, v] of Object.entries(subsetLabels)) if (workload.labels[k] !== v) return undefined;
    }
    // An address that is no workload (a selector-less Service's EndpointSlice listing something outside the mesh) is
    // reached in plain TCP; a workload not (yet) in the state is skipped until it is.
    if (ep.workload === '') return { key: `${ep.address}:${port}`, address: ep.address, port, workload: undefined, identity: '', plaintext: true };
    const identity = workload?.identity;
    if (!identity) return undefined;
    return { key: `${ep.address}:${port}`, address: ep.address, port, workload, identity, plaintext: workload.protocol !== 'HBONE' };
  }
}

function stopCluster(c: Cluster): void {
  if (c.sweepTimer) clearInterval(c.sweepTimer);
}
