/**
 * Span export: one OpenTelemetry SDK tracer per tracing provider the waypoint's tracing policies name (Zipkin v2 JSON,
 * OTLP/HTTP JSON or OTLP/gRPC), built when a provider appears, kept while its config is unchanged, shut down when it goes. The
 * SDK (provider-spans.ts) is loaded on first use only.
 *
 * Export never throws into the request path: failures, drops and a busy collector are counted and logged rate-limited.
 */
import type { Attributes } from '@opentelemetry/api';
import { Counter, type Registry } from 'prom-client';
import { errorMessage, StraitError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { RateLimitedLog } from '../../common/rate-limited-log.js';
import type { TracingProvider } from '../../common/xds/waypoint-resources.js';
import type { ExportMetrics, ProviderSpans } from './provider-spans.js';

/** Ended spans waiting for export, per provider; past it spans are dropped and counted. */
export const DEFAULT_SPAN_QUEUE_MAX = 2048;
/** Spans per export request. */
export const DEFAULT_SPAN_BATCH_MAX = 512;
/** How long a span may wait in the queue before its batch is sent. */
export const DEFAULT_SPAN_EXPORT_DELAY_MS = 5000;
/** An export request that takes longer is abandoned (the batch counts as failed). */
export const DEFAULT_SPAN_EXPORT_TIMEOUT_MS = 10_000;
/** Export requests in flight at once per provider; a batch beyond it is dropped (the collector is not keeping up). */
export const DEFAULT_SPAN_EXPORTS_IN_FLIGHT = 4;

export interface SpanExportOptions {
  maxQueueSize?: number;
  maxExportBatchSize?: number;
  scheduledDelayMs?: number;
  exportTimeoutMs?: number;
  maxExportsInFlight?: number;
}

/** One span as the telemetry builds it (ids chosen by the waypoint, times in epoch milliseconds). */
export interface SpanSpec {
  name: string;
  kind: 'server' | 'client';
  traceId: string;
  spanId: string;
  /** Parent span id (16 hex); absent for a root span. */
  parentSpanId?: string;
  /** The parent is the caller's span (in another process), not one of ours. */
  parentRemote: boolean;
  startMs: number;
  endMs: number;
  attributes: Attributes;
  error: boolean;
}

/** What config_dump shows about one provider. */
export interface ExporterStatus {
  provider: string;
  kind: TracingProvider['kind'];
  endpoint: string;
  /** Spans queued now. */
  queued: number;
}

type Sdk = typeof import('./provider-spans.js');

/**
 * The providers the current tracing policies name, built once per distinct provider config and rebuilt when it
 * changes. Invariants: once the SDK is loaded, `byKey` holds exactly the providers of the last update(); before, it
 * is empty and `wanted` holds them; a replaced or removed provider is shut down (its queue flushed, bounded by the
 * export timeout) in the background.
 */
export class SpanExporters {
  private byKey = new Map<string, ProviderSpans>();
  private wanted: TracingProvider[] = [];
  private sdk: Sdk | undefined;
  private loading: Promise<void> | undefined;
  private readonly opts: Required<SpanExportOptions>;
  private readonly m: ExportMetrics;
  private readonly closing = new Set<Promise<void>>();

  constructor(registry: Registry, private readonly serviceName: string, private readonly log: Logger, opts: SpanExportOptions = {}) {
    this.opts = {
      maxQueueSize: opts.maxQueueSize ?? DEFAULT_SPAN_QUEUE_MAX,
      maxExportBatchSize: opts.maxExportBatchSize ?? DEFAULT_SPAN_BATCH_MAX,
      scheduledDelayMs: opts.scheduledDelayMs ?? DEFAULT_SPAN_EXPORT_DELAY_MS,
      exportTimeoutMs: opts.exportTimeoutMs ?? DEFAULT_SPAN_EXPORT_TIMEOUT_MS,
      maxExportsInFlight: opts.maxExportsInFlight ?? DEFAULT_SPAN_EXPORTS_IN_FLIGHT,
    };
    for (const [k, v] of Object.entries(this.opts)) {
      if (!Number.isInteger(v) || v < 1) throw new StraitError('STRAIT_ERR_CONFIG', `span export: ${k} must be a positive integer, got ${v}`);
    }
    if (this.opts.maxExportBatchSize > this.opts.maxQueueSize) {
      throw new StraitError('STRAIT_ERR_CONFIG', `span export: maxExportBatchSize (${this.opts.maxExportBatchSize}) must not exceed maxQueueSize (${this.opts.maxQueueSize})`);
    }
    const registers = [registry];
    this.m = {
      exported: new Counter({ name: 'strait_waypoint_spans_exported_total', help: 'Spans the tracing provider accepted.', labelNames: ['provider'], registers }),
      failedBatches: new Counter({ name: 'strait_waypoint_span_export_failures_total', help: 'Span export requests that failed (collector unreachable, error status, timeout).', labelNames: ['provider'], registers }),
      dropped: new Counter({ name: 'strait_waypoint_spans_dropped_total', help: 'Spans not delivered, by reason: queue_full, collector_busy, export_failed, not_ready (the provider was still being built).', labelNames: ['provider', 'reason'], registers }),
      log: new RateLimitedLog({ logger: log, level: 'warn', msg: 'span export problem', what: 'span export problems' }),
    };
  }

  /**
   * Makes the set of providers exactly `providers` (by config; an unchanged provider keeps its queue). Resolves when
   * they are built (at once, except for the first provider ever, which loads the SDK).
   */
  update(providers: readonly TracingProvider[]): Promise<void> {
    this.wanted = [...providers];
    if (this.sdk) {
      this.apply(this.sdk);
      return Promise.resolve();
    }
    if (this.wanted.length === 0) return Promise.resolve();
    this.loading ??= import('./provider-spans.js').then(
      (sdk) => { this.sdk = sdk; },
      (err: unknown) => { this.log.error({ error: errorMessage(err) }, 'tracing: the OpenTelemetry SDK could not be loaded; no spans are exported (is the install complete? run npm ci)'); },
    );
    return this.loading.then(() => { if (this.sdk) this.apply(this.sdk); });
  }

  /** The provider built for `p`, if any; `spans` that find a wanted provider not built yet are counted as not_ready. */
  get(p: TracingProvider, spans = 0): ProviderSpans | undefined {
    const key = providerKey(p);
    const built = this.byKey.get(key);
    if (!built && spans > 0 && this.wanted.some((w) => providerKey(w) === key)) this.m.dropped.inc({ provider: p.name, reason: 'not_ready' }, spans);
    return built;
  }

  status(): ExporterStatus[] {
    return [...this.byKey.values()].map((p) => p.status());
  }

  /** Sends everything queued now (tests, drain). */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.byKey.values()].map((p) => p.flush()));
  }

  /** Flushes and stops every provider; waits at most the export timeout. */
  async close(): Promise<void> {
    this.wanted = [];
    for (const p of this.byKey.values()) this.retire(p);
    this.byKey = new Map();
    await Promise.allSettled([...this.closing]);
    this.m.log.close();
  }

  private apply(sdk: Sdk): void {
    const next = new Map<string, ProviderSpans>();
    for (const p of this.wanted) {
      const key = providerKey(p);
      if (next.has(key)) continue;
      next.set(key, this.byKey.get(key) ?? new sdk.ProviderSpans(p, endpointOf(p), this.serviceName, this.opts, this.m));
    }
    for (const [key, old] of this.byKey) if (next.get(key) !== old) this.retire(old);
    this.byKey = next;
  }

  private retire(p: ProviderSpans): void {
    let timer: NodeJS.Timeout | undefined;
    const bounded: Promise<void> = Promise.race([
      p.shutdown().catch(() => undefined),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, this.opts.exportTimeoutMs); timer.unref(); }),
    ]).finally(() => { clearTimeout(timer); this.closing.delete(bounded); });
    this.closing.add(bounded);
  }
}

function providerKey(p: TracingProvider): string {
  return JSON.stringify([p.name, p.kind, p.host, p.port, p.path, p.protocol ?? '']);
}

/** "http://host:port/path" of a provider (IPv6 hosts in brackets); OTLP/gRPC has no path. */
export function endpointOf(p: TracingProvider): string {
  const host = p.host.includes(':') ? `[${p.host}]` : p.host;
  if (p.kind === 'opentelemetry' && p.protocol === 'grpc') return `http://${host}:${p.port}`;
  const path = p.path.startsWith('/') ? p.path : `/${p.path}`;
  return `http://${host}:${p.port}${path}`;
}
