/**
 * The one object the waypoint's request path calls for telemetry:
 *
 *     const t = telemetry.begin(req.headers, { service: 'ns/name' });   // when the request's headers are in
 *     const a = t.attempt({ upstream: '10.0.0.7:8080', cluster });      // per upstream try
 *     a.apply(upstreamHeaders);                                          // x-request-id + trace context
 *     a.end({ status: 200 });
 *     telemetry.finish(t, record);                                       // once, when the response is done
 *
 * finish() writes Istio's request metrics, one access-log line and, for sampled requests, the spans. Nothing here
 * throws into the request path.
 */
import type { Registry } from 'prom-client';
import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { RateLimitedLog } from '../../common/rate-limited-log.js';
import type { TracingPolicyResource, TracingProvider } from '../../common/xds/waypoint-resources.js';
import { ACCESS_LOG_MSG, formatAccessLog } from './access-log.js';
import { RequestMetrics } from './request-metrics.js';
import type { RequestRecord } from './request-record.js';
import { SpanExporters, endpointOf, type ExporterStatus, type SpanExportOptions } from './span-export.js';
import { parseIncomingTrace, newSpanId, newTraceId, requestIdOf, type Headers } from './trace-context.js';
import { RequestTrace, TracingPolicies, decideSampling, nowMs, spanSpecs, type TracingSelf } from './tracing.js';

export interface WaypointTelemetryOptions {
  registry: Registry;
  /** The access-log logger (one line per request, message "request complete"). */
  accessLog: Logger;
  /** The waypoint's logger for telemetry problems (overflow, export failures), rate-limited. */
  log: Logger;
  /** Who reports: tags on every span; clusterId is also the metrics' source_cluster / destination_cluster. */
  self: TracingSelf;
  /** Tracing service name of the waypoint's spans (Istio: "<app>.<namespace>"); default "<canonicalService>.<namespace>". */
  serviceName?: string;
  /** Cap on distinct label sets of the istio_request* metrics (default DEFAULT_METRIC_MAX_SERIES). */
  maxSeries?: number;
  /** Cap on the logged path (default DEFAULT_ACCESS_LOG_PATH_MAX_CHARS). */
  accessLogPathMaxChars?: number;
  /** Add Istio's default text format as `line` to each access-log line (default false). */
  accessLogIstioLine?: boolean;
  spanExport?: SpanExportOptions;
  /** Random source for sampling, [0, 1) (tests inject one). */
  random?: () => number;
}

/** What config_dump shows about one tracing policy. */
export interface TracingPolicyStatus {
  origin: string;
  services: string[] | 'all';
  samplingPercentage: number;
  provider?: string;
  endpoint?: string;
  /** Why spans of this policy go nowhere (no provider, span reporting disabled). */
  problem?: string;
}

export class WaypointTelemetry {
  readonly metrics: RequestMetrics;
  private readonly exporters: SpanExporters;
  private policies = new TracingPolicies([]);
  private statuses: TracingPolicyStatus[] = [];
  private readonly random: () => number;
  private readonly spanLog: RateLimitedLog;

  constructor(private readonly opts: WaypointTelemetryOptions) {
    this.metrics = new RequestMetrics(opts.registry, { clusterId: opts.self.clusterId, maxSeries: opts.maxSeries, log: opts.log });
    this.exporters = new SpanExporters(opts.registry, opts.serviceName ?? `${opts.self.canonicalService}.${opts.self.namespace}`, opts.log, opts.spanExport);
    this.random = opts.random ?? Math.random;
    this.spanLog = new RateLimitedLog({ logger: opts.log, level: 'warn', msg: 'span not recorded', what: 'spans not recorded' });
  }

  /**
   * A request's headers are in: its request id, trace context and sampling decision. `service` ("ns/name") picks the
   * tracing policy; none applies → the request is not traced (only x-request-id is added upstream).
   */
  begin(headers: Headers, target: { service?: string }, startMs = nowMs()): RequestTrace {
    const rid = requestIdOf(headers);
    const incoming = parseIncomingTrace(headers);
    const policy = this.policies.for(target.service);
    if (!policy) {
      return new RequestTrace(rid.id, rid.generated, incoming, false, incoming.traceId, undefined, incoming.sampled ?? false, undefined, startMs);
    }
    const sampled = decideSampling(incoming, policy.samplingPercentage, this.random);
    const provider = policy.provider && !policy.disableSpanReporting ? policy.provider : undefined;
    return new RequestTrace(rid.id, rid.generated, incoming, true, incoming.traceId ?? newTraceId(), newSpanId(), sampled, provider, startMs);
  }

  /** The request is done: metrics, the access-log line, and the spans when sampled. */
  finish(trace: RequestTrace | undefined, record: RequestRecord): void {
    this.metrics.record(record);
    this.opts.accessLog.info(formatAccessLog(record, {
      traceId: trace?.traceId, requestId: trace?.requestId, pathMaxChars: this.opts.accessLogPathMaxChars, istioLine: this.opts.accessLogIstioLine,
    }), ACCESS_LOG_MSG);
    if (trace?.sampled && trace.provider) this.emitSpans(trace, record, trace.provider);
  }

  /**
   * The tracing policies of the waypoint changed (xDS): they apply to requests begun from now on; providers are built,
   * kept or shut down to match. The returned promise resolves when the providers are built (at once, except the first
   * time, which loads the OpenTelemetry SDK); spans of requests finished before then are counted as not_ready.
   */
  updateTracing(policies: readonly TracingPolicyResource[]): Promise<void> {
    const usable: TracingProvider[] = [];
    this.statuses = policies.map((p) => {
      const status: TracingPolicyStatus = {
        origin: p.origin, services: p.services && p.services.length ? [...p.services] : 'all', samplingPercentage: p.samplingPercentage,
      };
      if (!p.provider) {
        status.problem = p.problem ?? 'no tracing provider: the trace context is propagated, no spans are reported';
      } else {
        status.provider = p.provider.name;
        status.endpoint = endpointOf(p.provider);
        if (p.disableSpanReporting) status.problem = 'disableSpanReporting: the trace context is propagated, no spans are reported';
        else usable.push(p.provider);
      }
      return status;
    });
    // Every policy applies to its services, with or without a usable provider: the context is propagated either way.
    this.policies = new TracingPolicies(policies);
    return this.exporters.update(usable);
  }

  tracingStatus(): { policies: TracingPolicyStatus[]; exporters: ExporterStatus[] } {
    return { policies: this.statuses, exporters: this.exporters.status() };
  }

  /** Sends the spans queued now (drain, tests). */
  flush(): Promise<void> {
    return this.exporters.flush();
  }

  async close(): Promise<void> {
    await this.exporters.close();
    this.metrics.close();
    this.spanLog.close();
  }

  private emitSpans(trace: RequestTrace, r: RequestRecord, provider: TracingProvider): void {
    try {
      const specs = spanSpecs(trace, r, this.opts.self, provider.maxTagLength);
      const spans = this.exporters.get(provider, specs.length);
      if (!spans) return; // removed, unsupported or not built yet; the context was still propagated
      for (const s of specs) spans.emit(s);
    } catch (err) {
      this.spanLog.record('emit_failed', { provider: provider.name, error: errorMessage(err) });
    }
  }
}
