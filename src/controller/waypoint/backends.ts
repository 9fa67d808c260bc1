/**
 * DestinationRule → BackendPolicyResource, one per Service, with Istio's semantics:
 * - the host is resolved like every Istio host (short names in the rule's namespace); an exact host wins over a
 *   wildcard, then a rule in the Service's own namespace, then the oldest; the others are reported as shadowed;
 * - a subset's trafficPolicy replaces the top-level connectionPool / loadBalancer / outlierDetection it sets, each
 *   as a whole (Istio's MergeTrafficPolicy), never field by field inside them;
 * - outlier detection gets Envoy's defaults as Istio leaves them: 5 consecutive 5xx, interval 10 s, base ejection
 *   30 s, at most 10 % ejected (maxEjectionPercent 0 also means 10 %, as Istio passes only values above 0);
 * - connectionPool.http.maxRetries 0 is unset (no limit), as Istio passes it only when above 0.
 * Pure.
 */
import { parseDurationMs } from '../../common/model/duration.js';
import type { DestinationRule, TrafficPolicy } from '../../common/model/types.js';
import type { BackendPolicyResource, LoadBalancerKind, OutlierPolicy, TrafficPolicyCompiled, ConnectionPoolPolicy } from '../../common/xds/waypoint-resources.js';
import { byAge, keyOf, resolveHost, serviceKey, type Notes, type Registry } from './registry.js';

export const DEFAULT_OUTLIER_CONSECUTIVE_5XX = 5;
export const DEFAULT_OUTLIER_INTERVAL_MS = 10_000;
export const DEFAULT_OUTLIER_BASE_EJECTION_MS = 30_000;
export const DEFAULT_OUTLIER_MAX_EJECTION_PERCENT = 10;

/** The backend policy of each Service that a DestinationRule covers, by service key. */
export type BackendPolicies = ReadonlyMap<string, BackendPolicyResource>;

export function compileDestinationRules(rules: readonly DestinationRule[], registry: Registry, notes: Notes): BackendPolicies {
  const candidates = new Map<string, { dr: DestinationRule; exact: boolean }[]>();
  for (const dr of rules) {
    const ns = dr.metadata.namespace!;
    const host = resolveHost(dr.spec.host, ns);
    const covered = registry.servicesCovered(host);
    if (covered.length === 0) {
      notes.unapplied(keyOf('DestinationRule', dr.metadata), 'spec.host', `${JSON.stringify(dr.spec.host)} (${host}) names no Service in the mesh, so this rule applies to nothing${registry.hostHint(dr.spec.host)}`);
      continue;
    }
    if (dr.spec.exportTo && !dr.spec.exportTo.includes('*')) {
      notes.add(keyOf('DestinationRule', dr.metadata), 'spec.exportTo', 'not applied by Strait: the waypoint applies this rule to every caller, whatever their namespace');
    }
    for (const s of covered) {
      const k = serviceKey(s);
      (candidates.get(k) ?? candidates.set(k, []).get(k)!).push({ dr, exact: !host.includes('*') });
    }
  }
  const out = new Map<string, BackendPolicyResource>();
  for (const [svc, list] of candidates) {
    const svcNs = svc.slice(0, svc.indexOf('/'));
    list.sort((a, b) => Number(b.exact) - Number(a.exact)
      || Number(b.dr.metadata.namespace === svcNs) - Number(a.dr.metadata.namespace === svcNs)
      || byAge(a.dr, b.dr));
    const winner = list[0]!.dr;
    for (const { dr } of list.slice(1)) {
      notes.unapplied(keyOf('DestinationRule', dr.metadata), 'spec.host', `shadowed for Service ${svc} by DestinationRule ${winner.metadata.namespace}/${winner.metadata.name}: one DestinationRule applies per service (an exact host before a wildcard, then the service's own namespace, then the oldest); merge the two`);
    }
    out.set(svc, backendPolicy(svc, winner, notes));
  }
  return out;
}

function backendPolicy(svc: string, dr: DestinationRule, notes: Notes): BackendPolicyResource {
  const key = keyOf('DestinationRule', dr.metadata);
  const top = dr.spec.trafficPolicy;
  const subsets: BackendPolicyResource['subsets'] = {};
  dr.spec.subsets?.forEach((s, i) => {
    subsets[s.name] = { labels: s.labels ?? {}, policy: compilePolicy(mergeSubset(top, s.trafficPolicy), key, `spec.subsets[${i}].trafficPolicy`, notes) };
  });
  return {
    type: 'backend',
    service: svc,
    origin: `${dr.metadata.namespace}/${dr.metadata.name}`,
    policy: compilePolicy(top, key, 'spec.trafficPolicy', notes),
    subsets,
  };
}

/** Istio's MergeTrafficPolicy: each part the subset sets replaces the top-level one whole. */
export function mergeSubset(top: TrafficPolicy | undefined, subset: TrafficPolicy | undefined): TrafficPolicy | undefined {
  if (!subset) return top;
  const merged: TrafficPolicy = { ...(top ?? {}) };
  if (subset.connectionPool) merged.connectionPool = subset.connectionPool;
  if (subset.loadBalancer) merged.loadBalancer = subset.loadBalancer;
  if (subset.outlierDetection) merged.outlierDetection = subset.outlierDetection;
  return merged;
}

const ms = (d: string | undefined): number | undefined => (d === undefined ? undefined : parseDurationMs(d));

export function compilePolicy(p: TrafficPolicy | undefined, object: string, path: string, notes: Notes): TrafficPolicyCompiled {
  const out: TrafficPolicyCompiled = {};
  const lb = loadBalancer(p?.loadBalancer?.simple, object, `${path}.loadBalancer.simple`, notes);
  if (lb) out.loadBalancer = lb;
  const pool = connectionPool(p, object, `${path}.connectionPool`, notes);
  if (pool) out.connectionPool = pool;
  if (p?.outlierDetection) out.outlierDetection = outlier(p.outlierDetection);
  return out;
}

function loadBalancer(simple: string | undefined, object: string, path: string, notes: Notes): LoadBalancerKind | undefined {
  switch (simple) {
    case 'ROUND_ROBIN': case 'LEAST_REQUEST': case 'RANDOM': return simple;
    // Istio documents LEAST_CONN as a deprecated alias of LEAST_REQUEST.
    case 'LEAST_CONN': return 'LEAST_REQUEST';
    case 'PASSTHROUGH':
      notes.add(object, path, 'PASSTHROUGH is not supported by Strait (it forwards to the address the caller dialled, and a waypoint routes by service); LEAST_REQUEST is used');
      return undefined;
    default: return undefined; // UNSPECIFIED or absent: the waypoint's default, LEAST_REQUEST as in Istio
  }
}

function connectionPool(p: TrafficPolicy | undefined, object: string, path: string, notes: Notes): ConnectionPoolPolicy | undefined {
  const tcp = p?.connectionPool?.tcp;
  const http = p?.connectionPool?.http;
  if (!tcp && !http) return undefined;
  const out: ConnectionPoolPolicy = {};
  // Istio passes these limits to Envoy only when above 0: 0 is "unset" (no limit).
  const unset = (value: number | undefined, field: string) => {
    if (value === 0) notes.add(object, `${path}.${field}`, '0 means unset, as Istio reads it: no limit');
    return value !== undefined && value > 0;
  };
  if (unset(tcp?.maxConnections, 'tcp.maxConnections')) out.maxConnections = tcp!.maxConnections!;
  const connect = ms(tcp?.connectTimeout);
  if (connect !== undefined) out.connectTimeoutMs = connect;
  if (unset(http?.http1MaxPendingRequests, 'http.http1MaxPendingRequests')) out.maxPendingRequests = http!.http1MaxPendingRequests!;
  if (unset(http?.http2MaxRequests, 'http.http2MaxRequests')) out.maxRequests = http!.http2MaxRequests!;
  if (http?.maxRequestsPerConnection !== undefined) out.maxRequestsPerConnection = http.maxRequestsPerConnection;
  // Istio passes maxRetries to Envoy only when above 0: 0 is "unset", Istio's default (no limit), not "no retries".
  if (http?.maxRetries !== undefined && http.maxRetries > 0) out.maxRetries = http.maxRetries;
  if (http?.maxRetries === 0) notes.add(object, `${path}.http.maxRetries`, '0 means unset, as Istio reads it: retries in flight are not limited; to turn retries off, set retries.attempts: 0 on the route');
  const idle = ms(http?.idleTimeout);
  if (idle !== undefined) {
    out.idleTimeoutMs = idle;
    notes.add(object, `${path}.http.idleTimeout`, 'not applied by Strait\'s waypoint yet: idle upstream connections stay open until the backend or the pool closes them (HBONE pool idle 5 min)');
  }
  return out;
}

function outlier(o: NonNullable<TrafficPolicy['outlierDetection']>): OutlierPolicy {
  const out: OutlierPolicy = {
    consecutive5xxErrors: o.consecutive5xxErrors ?? DEFAULT_OUTLIER_CONSECUTIVE_5XX,
    intervalMs: ms(o.interval) ?? DEFAULT_OUTLIER_INTERVAL_MS,
    baseEjectionTimeMs: ms(o.baseEjectionTime) ?? DEFAULT_OUTLIER_BASE_EJECTION_MS,
    maxEjectionPercent: o.maxEjectionPercent !== undefined && o.maxEjectionPercent > 0 ? o.maxEjectionPercent : DEFAULT_OUTLIER_MAX_EJECTION_PERCENT,
  };
  if (o.consecutiveGatewayErrors !== undefined) out.consecutiveGatewayErrors = o.consecutiveGatewayErrors;
  return out;
}
