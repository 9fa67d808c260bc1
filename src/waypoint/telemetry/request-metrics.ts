/**
 * Istio's HTTP request metrics as a waypoint reports them (`reporter="waypoint"`), with Istio's names, label set,
 * label values for missing data and histogram buckets, so Istio's dashboards and queries work unchanged.
 */
import { Counter, type Registry } from 'prom-client';
import { StraitError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { RateLimitedLog } from '../../common/rate-limited-log.js';
import type { RequestRecord } from './request-record.js';
import { formatResponseFlags } from './response-flags.js';
import { SeriesStore, registerStore } from './series-store.js';

/** Istio's standard request labels, in Istio's order (istio/proxy istio_stats). */
export const REQUEST_LABELS = [
  'reporter', 'source_workload', 'source_workload_namespace', 'source_principal', 'source_app', 'source_version',
  'source_canonical_service', 'source_canonical_revision', 'source_cluster', 'destination_workload',
  'destination_workload_namespace', 'destination_principal', 'destination_app', 'destination_version',
  'destination_service', 'destination_service_name', 'destination_service_namespace',
  'destination_canonical_service', 'destination_canonical_revision', 'destination_cluster', 'request_protocol',
  'response_code', 'grpc_response_status', 'response_flags', 'connection_security_policy',
] as const;
export type RequestLabel = (typeof REQUEST_LABELS)[number];
export type RequestLabels = Record<RequestLabel, string>;

/**
 * Envoy's default histogram buckets, which Istio's proxies use for all three histograms (milliseconds for the
 * duration, bytes for the sizes) unless a pod overrides them with `sidecar.istio.io/statsHistogramBuckets`.
 */
export const ISTIO_DEFAULT_BUCKETS: readonly number[] = [
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
];

/** Distinct label sets kept per metric before further ones are folded into the overflow series. */
export const DEFAULT_METRIC_MAX_SERIES = 1000;
/** A label value longer than this is cut (values come from identities and config, which are shorter). */
export const MAX_LABEL_VALUE_CHARS = 256;
/** Istio's default cluster id (CLUSTER_ID), reported as source_cluster / destination_cluster for known workloads. */
export const DEFAULT_CLUSTER_ID = 'Kubernetes';

const UNKNOWN = 'unknown';
/** The label value every label but `reporter` takes in the overflow series. */
export const OVERFLOW = 'overflow';

export interface RequestMetricsOptions {
  /** Cluster id reported for workloads the waypoint knows (default DEFAULT_CLUSTER_ID). */
  clusterId?: string;
  /** Cap on distinct label sets (default DEFAULT_METRIC_MAX_SERIES). */
  maxSeries?: number;
  /** Where the overflow is reported (one line, then rate-limited summaries). */
  log: Logger;
}

/**
 * The four request metrics of one waypoint.
 * Invariants: every recorded request adds exactly 1 to istio_requests_total and one observation to each histogram,
 * so the counts stay right even past the cap; at most `maxSeries` distinct label sets plus one overflow set exist
 * per metric, whatever label values requests bring; the store only grows (a label set, once made, stays).
 */
export class RequestMetrics {
  /** Requests recorded into the overflow series because the cap was reached. */
  readonly overflowed: Counter<string>;
  readonly maxSeries: number;
  private readonly clusterId: string;
  private readonly store = new SeriesStore<RequestLabel>(3, ISTIO_DEFAULT_BUCKETS);
  private readonly values = [0, 0, 0];
  private readonly overflowLog: RateLimitedLog;

  constructor(registry: Registry, opts: RequestMetricsOptions) {
    this.maxSeries = opts.maxSeries ?? DEFAULT_METRIC_MAX_SERIES;
    if (!Number.isInteger(this.maxSeries) || this.maxSeries < 1) {
      throw new StraitError('STRAIT_ERR_CONFIG', `request metrics: maxSeries must be a positive integer, got ${opts.maxSeries}`);
    }
    this.clusterId = opts.clusterId ?? DEFAULT_CLUSTER_ID;
    registerStore(registry, this.store, { name: 'istio_requests_total', help: 'Requests handled, by source, destination and outcome.' }, [
      { name: 'istio_request_duration_milliseconds', help: 'Duration of requests in milliseconds (headers received to last response byte).' },
      { name: 'istio_request_bytes', help: 'Request sizes in bytes (header block and body as received).' },
      { name: 'istio_response_bytes', help: 'Response sizes in bytes (header block and body as sent).' },
    ]);
    this.overflowed = new Counter({ name: 'strait_waypoint_metric_series_overflow_total', help: 'Requests counted in the overflow series of the istio_request* metrics because their label set was over the cap.', registers: [registry] });
    this.overflowLog = new RateLimitedLog({ logger: opts.log, level: 'warn', msg: 'request metrics: too many label sets; further ones are counted with every label "overflow"', what: 'requests counted as overflow' });
  }

  record(r: RequestRecord): void {
    const labels = requestLabels(r, this.clusterId);
    const key = seriesKey(labels);
    let series = this.store.get(key);
    if (!series) {
      if (this.store.series.size - (this.store.get(OVERFLOW_KEY) ? 1 : 0) < this.maxSeries) {
        series = this.store.add(key, labels);
      } else {
        series = this.store.get(OVERFLOW_KEY) ?? this.store.add(OVERFLOW_KEY, overflowLabels());
        this.overflowed.inc();
        this.overflowLog.record('max_series', { maxSeries: this.maxSeries, hint: 'raise the waypoint\'s metric series cap, or check what makes so many label sets (response codes, workloads)' });
      }
    }
    this.values[0] = nonNegative(r.durationMs);
    this.values[1] = nonNegative(r.requestBytes);
    this.values[2] = nonNegative(r.responseBytes);
    this.store.record(series, this.values);
  }

  /** Distinct label sets in use (the overflow set not included). */
  seriesCount(): number {
    return this.store.series.size - (this.store.get(OVERFLOW_KEY) ? 1 : 0);
  }

  close(): void {
    this.overflowLog.close();
  }
}

/** Istio's label values for one request, reported by a waypoint. */
export function requestLabels(r: RequestRecord, clusterId = DEFAULT_CLUSTER_ID): RequestLabels {
  const s = r.source;
  const d = r.destination;
  const [svcNs, svcName] = splitService(d.service);
  const srcNs = s.namespace ?? namespaceOf(s.principal);
  const dstKnown = d.workload !== undefined || d.canonicalName !== undefined;
  return {
    reporter: 'waypoint',
    source_workload: v(s.workloadName ?? s.canonicalName),
    source_workload_namespace: v(srcNs),
    source_principal: v(s.principal),
    source_app: v(s.app),
    source_version: v(s.version),
    source_canonical_service: v(s.canonicalName),
    source_canonical_revision: s.canonicalRevision ? v(s.canonicalRevision) : 'latest',
    source_cluster: s.workload !== undefined || s.canonicalName !== undefined ? v(clusterId) : UNKNOWN,
    destination_workload: v(d.workloadName ?? d.canonicalName),
    destination_workload_namespace: v(d.namespace),
    destination_principal: v(d.principal),
    destination_app: v(d.app),
    destination_version: v(d.version),
    destination_service: v(d.serviceHost),
    destination_service_name: v(svcName),
    destination_service_namespace: v(svcNs),
    destination_canonical_service: v(d.canonicalName),
    destination_canonical_revision: v(d.canonicalRevision),
    destination_cluster: dstKnown ? v(clusterId) : UNKNOWN,
    request_protocol: r.grpc ? 'grpc' : 'http',
    response_code: responseCode(r.status),
    grpc_response_status: r.grpc ? grpcStatus(r.grpcStatus) : '',
    response_flags: formatResponseFlags(r.responseFlags),
    connection_security_policy: r.connectionSecurityPolicy === 'mutual_tls' ? 'mutual_tls' : 'none',
  };
}

/** A status Envoy could have sent (100..999) as is; anything else as "0" (no response). */
function responseCode(status: number): string {
  return Number.isInteger(status) && status >= 100 && status <= 999 ? String(status) : '0';
}

/** gRPC codes 0..16 as is; absent → "" (as Istio); any other value → "2" (UNKNOWN, as gRPC clients treat it). */
function grpcStatus(code: number | undefined): string {
  if (code === undefined) return '';
  return Number.isInteger(code) && code >= 0 && code <= 16 ? String(code) : '2';
}

function v(value: string | undefined): string {
  if (value === undefined || value === '') return UNKNOWN;
  return value.length > MAX_LABEL_VALUE_CHARS ? value.slice(0, MAX_LABEL_VALUE_CHARS) : value;
}

function splitService(service: string | undefined): [string | undefined, string | undefined] {
  if (!service) return [undefined, undefined];
  const i = service.indexOf('/');
  return i < 0 ? [undefined, service] : [service.slice(0, i), service.slice(i + 1)];
}

function namespaceOf(principal?: string): string | undefined {
  return principal ? /\/ns\/([^/]+)\//.exec(principal)?.[1] : undefined;
}

function nonNegative(n: number): number {
  return Number.isFinite(n) && n > 0 ? n : 0;
}

function seriesKey(l: RequestLabels): string {
  let key = '';
  for (const name of REQUEST_LABELS) key += l[name] + '\u0000';
  return key;
}

/** The overflow set's key cannot collide with a real one: real keys hold 25 NUL-terminated values. */
const OVERFLOW_KEY = '\u0000overflow';

function overflowLabels(): RequestLabels {
  const l = Object.fromEntries(REQUEST_LABELS.map((n) => [n, OVERFLOW])) as RequestLabels;
  l.reporter = 'waypoint';
  return l;
}
