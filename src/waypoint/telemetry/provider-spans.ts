/**
 * The OpenTelemetry SDK side of span export, for one tracing provider: a TracerProvider (@opentelemetry/sdk-trace)
 * with a BatchSpanProcessor behind a bounded queue, exporting Zipkin v2 JSON (@opentelemetry/exporter-zipkin) or
 * OTLP/HTTP JSON (@opentelemetry/exporter-trace-otlp-http). SpanExporters loads this module only when a provider is
 * configured, so a waypoint without tracing never loads the SDK (~7 MB, ~80 ms). OTLP over gRPC (Istio's default for an
 * `opentelemetry` provider without `http`) goes through @opentelemetry/exporter-trace-otlp-grpc, plaintext.
 *
 * The waypoint chooses every trace and span id itself (they are on the wire before any span exists); the SDK takes
 * them through an IdGenerator that hands out the ids set just before each startSpan() call, and the parent through an
 * explicit context (trace.setSpanContext), so no global context manager is involved.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace, type Context, type HrTime, type Span } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { ZipkinExporter } from '@opentelemetry/exporter-zipkin';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OTLPGrpcTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { credentials } from '@grpc/grpc-js';
import { resourceFromAttributes } from '@opentelemetry/resources';
// @opentelemetry/sdk-trace rather than its -base shim: the shim fills unset options from OTEL_* variables.
import {
  AlwaysOnSampler, BatchSpanProcessor, TracerProvider,
  type IdGenerator, type ReadableSpan, type SpanExporter, type SpanProcessor,
} from '@opentelemetry/sdk-trace';
import type { Counter } from 'prom-client';
import { errorMessage } from '../../common/errors.js';
import type { RateLimitedLog } from '../../common/rate-limited-log.js';
import type { TracingProvider } from '../../common/xds/waypoint-resources.js';
import type { ExporterStatus, SpanExportOptions, SpanSpec } from './span-export.js';
import { newSpanId, newTraceId } from './trace-context.js';

/** The ids the next startSpan() takes; anything not set (a bug) falls back to fresh random ids. */
class ChosenIds implements IdGenerator {
  traceId: string | undefined;
  spanId: string | undefined;
  generateTraceId(): string {
    const id = this.traceId ?? newTraceId();
    this.traceId = undefined;
    return id;
  }
  generateSpanId(): string {
    const id = this.spanId ?? newSpanId();
    this.spanId = undefined;
    return id;
  }
}

/** The counters and the rate-limited log every provider reports to (made by SpanExporters). */
export interface ExportMetrics {
  exported: Counter<'provider'>;
  failedBatches: Counter<'provider'>;
  dropped: Counter<'provider' | 'reason'>;
  log: RateLimitedLog;
}

/**
 * The exporter a BatchSpanProcessor calls, wrapped: counts exported and failed spans, caps requests in flight, and
 * keeps the count of spans queued in the processor (handed over in onEnd, taken back here).
 * Invariant: `queued` = spans accepted by BoundedProcessor.onEnd and not yet given to export(); `inFlight` = export
 * calls whose callback has not run. An export keeps its place until its request ends: the OTLP exporters time out
 * (exportTimeoutMs), Zipkin's has no timeout, so a Zipkin collector that accepts and never answers holds at most
 * `maxInFlight` connections and further batches are dropped (collector_busy) until those connections end.
 */
class CountingExporter implements SpanExporter {
  queued = 0;
  private inFlight = 0;

  constructor(private readonly inner: SpanExporter, private readonly provider: string, private readonly endpoint: string,
    private readonly maxInFlight: number, private readonly m: ExportMetrics) {}

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.queued -= spans.length;
    if (this.inFlight >= this.maxInFlight) {
      this.m.dropped.inc({ provider: this.provider, reason: 'collector_busy' }, spans.length);
      this.m.log.record('collector_busy', { provider: this.provider, endpoint: this.endpoint, spans: spans.length, inFlight: this.inFlight });
      resultCallback({ code: ExportResultCode.FAILED, error: new Error(`${this.inFlight} exports to ${this.endpoint} still in flight`) });
      return;
    }
    this.inFlight++;
    let done = false;
    const finish = (result: ExportResult) => {
      if (done) return;
      done = true;
      this.inFlight--;
      if (result.code === ExportResultCode.SUCCESS) {
        this.m.exported.inc({ provider: this.provider }, spans.length);
      } else {
        this.m.failedBatches.inc({ provider: this.provider });
        this.m.dropped.inc({ provider: this.provider, reason: 'export_failed' }, spans.length);
        this.m.log.record('export_failed', { provider: this.provider, endpoint: this.endpoint, spans: spans.length, error: result.error ? errorMessage(result.error) : 'failed' });
      }
      resultCallback(result);
    };
    try {
      this.inner.export(spans, finish);
    } catch (err) {
      finish({ code: ExportResultCode.FAILED, error: err instanceof Error ? err : new Error(String(err)) });
    }
  }

  async shutdown(): Promise<void> {
    await this.inner.shutdown();
  }

  async forceFlush(): Promise<void> {
    await this.inner.forceFlush?.();
  }
}

/** Spans past the queue bound are dropped and counted here, before the BatchSpanProcessor sees them. */
class BoundedProcessor implements SpanProcessor {
  constructor(private readonly batch: BatchSpanProcessor, private readonly exporter: CountingExporter,
    private readonly maxQueue: number, private readonly provider: string, private readonly m: ExportMetrics) {}

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    if (this.exporter.queued >= this.maxQueue) {
      this.m.dropped.inc({ provider: this.provider, reason: 'queue_full' });
      this.m.log.record('queue_full', { provider: this.provider, maxQueueSize: this.maxQueue });
      return;
    }
    this.exporter.queued++;
    this.batch.onEnd(span);
  }

  forceFlush(): Promise<void> {
    return this.batch.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.batch.shutdown();
  }
}

/** The SDK pieces of one provider. */
export class ProviderSpans {
  private readonly ids = new ChosenIds();
  private readonly provider: TracerProvider;
  private readonly tracer;
  private readonly exporter: CountingExporter;

  constructor(readonly config: TracingProvider, readonly endpoint: string, serviceName: string, opts: Required<SpanExportOptions>, m: ExportMetrics) {
    const inner: SpanExporter = config.kind === 'zipkin'
      ? new ZipkinExporter({ url: this.endpoint, serviceName })
      : config.protocol === 'grpc'
        ? new OTLPGrpcTraceExporter({
          url: this.endpoint, credentials: credentials.createInsecure(), timeoutMillis: opts.exportTimeoutMs,
          concurrencyLimit: opts.maxExportsInFlight,
          compression: 'none' as NonNullable<ConstructorParameters<typeof OTLPGrpcTraceExporter>[0]>['compression'],
        })
        : new OTLPTraceExporter({
          url: this.endpoint, headers: {}, timeoutMillis: opts.exportTimeoutMs, concurrencyLimit: opts.maxExportsInFlight,
          compression: 'none' as NonNullable<ConstructorParameters<typeof OTLPTraceExporter>[0]>['compression'],
          httpAgentOptions: { keepAlive: true, maxSockets: opts.maxExportsInFlight },
        });
    this.exporter = new CountingExporter(inner, config.name, this.endpoint, opts.maxExportsInFlight, m);
    const batch = new BatchSpanProcessor({
      exporter: this.exporter, maxQueueSize: opts.maxQueueSize, maxExportBatchSize: opts.maxExportBatchSize,
      scheduledDelayMillis: opts.scheduledDelayMs, exportTimeoutMillis: opts.exportTimeoutMs,
    });
    this.provider = new TracerProvider({
      resource: resourceFromAttributes({ 'service.name': serviceName }),
      sampler: new AlwaysOnSampler(),
      idGenerator: this.ids,
      spanProcessors: [new BoundedProcessor(batch, this.exporter, opts.maxQueueSize, config.name, m)],
    });
    this.tracer = this.provider.getTracer('strait-waypoint');
  }

  /** Starts and ends one span with exactly the ids of `s`; returns it (for tests). */
  emit(s: SpanSpec): Span {
    let ctx: Context = ROOT_CONTEXT;
    if (s.parentSpanId) {
      ctx = trace.setSpanContext(ROOT_CONTEXT, { traceId: s.traceId, spanId: s.parentSpanId, traceFlags: TraceFlags.SAMPLED, isRemote: s.parentRemote });
    }
    this.ids.traceId = s.traceId;
    this.ids.spanId = s.spanId;
    const span = this.tracer.startSpan(s.name, {
      kind: s.kind === 'server' ? SpanKind.SERVER : SpanKind.CLIENT, startTime: hrTime(s.startMs), attributes: s.attributes,
    }, ctx);
    this.ids.traceId = undefined;
    this.ids.spanId = undefined;
    if (s.error) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end(hrTime(Math.max(s.endMs, s.startMs)));
    return span;
  }

  status(): ExporterStatus {
    return { provider: this.config.name, kind: this.config.kind, endpoint: this.endpoint, queued: this.exporter.queued };
  }

  flush(): Promise<void> {
    return this.provider.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }
}

/** Epoch milliseconds as HrTime with microsecond resolution (Zipkin timestamps are integer microseconds). */
function hrTime(ms: number): HrTime {
  const us = Math.round(ms * 1000);
  return [Math.floor(us / 1e6), (us % 1e6) * 1000];
}
