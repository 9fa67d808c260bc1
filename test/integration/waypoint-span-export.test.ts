/**
 * The waypoint's telemetry against real collectors: a node:http server on 127.0.172.x that receives Zipkin v2 JSON
 * and OTLP/HTTP JSON, and a @grpc/grpc-js server that implements OTLP's TraceService, as collectors would, checking the wire format, the parent/child links, the sampling rules, the
 * queue bound and export failures. Loopback range 127.0.172.0/24.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { TracingPolicyResource, TracingProvider } from '../../src/common/xds/waypoint-resources.js';
import type { RequestTrace } from '../../src/waypoint/telemetry/tracing.js';
import { WaypointTelemetry, type WaypointTelemetryOptions } from '../../src/waypoint/telemetry/waypoint-telemetry.js';
import { eventually } from '../helpers/eventually.js';
import { metricValue } from '../helpers/metrics.js';
import { record } from '../helpers/request-record.js';

const HOST = '127.0.172.1';
const HOST2 = '127.0.172.2';
const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const S = '00f067aa0ba902b7';

interface Received { path: string; contentType: string; body: any }

/** A collector: records every POST body (parsed JSON); `answer` decides the status (or to never answer). */
class Collector {
  readonly received: Received[] = [];
  answer: (req: IncomingMessage) => number | 'hang' = () => 202;
  private readonly hanging: ServerResponse[] = [];
  private server!: Server;
  port = 0;

  async start(host: string): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.received.push({ path: req.url ?? '', contentType: String(req.headers['content-type']), body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
        const a = this.answer(req);
        if (a === 'hang') { this.hanging.push(res); return; }
        res.writeHead(a, { 'content-type': 'application/json' }).end(req.url === '/v1/traces' && a < 300 ? '{}' : '');
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, host, resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Zipkin spans received so far (each POST is an array). */
  zipkinSpans(): any[] {
    return this.received.filter((r) => r.path === '/api/v2/spans').flatMap((r) => r.body);
  }

  otlpSpans(): any[] {
    return this.received.filter((r) => r.path === '/v1/traces')
      .flatMap((r) => r.body.resourceSpans.flatMap((rs: any) => rs.scopeSpans.flatMap((ss: any) => ss.spans)));
  }

  async close(): Promise<void> {
    for (const r of this.hanging) r.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** An OTLP/gRPC collector: TraceService/Export decoded with OTLP's message definitions (test/peers). */
class GrpcCollector {
  readonly requests: any[] = [];
  private readonly server = new grpc.Server();
  port = 0;

  async start(host: string): Promise<this> {
    const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');
    const def = protoLoader.loadSync(join(root, 'test/peers/otlp-trace-collector.proto'), { keepCase: true, longs: String, enums: String, bytes: String, defaults: false });
    const pkg = grpc.loadPackageDefinition(def) as any;
    this.server.addService(pkg.opentelemetry.proto.collector.trace.v1.TraceService.service, {
      Export: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => { this.requests.push(call.request); cb(null, {}); },
    });
    this.port = await new Promise<number>((resolve, reject) => this.server.bindAsync(`${host}:0`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    return this;
  }

  spans(): any[] {
    return this.requests.flatMap((r) => r.resource_spans.flatMap((rs: any) => rs.scope_spans.flatMap((ss: any) => ss.spans)));
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    this.server.forceShutdown();
  }
}

function capture(): { lines: Record<string, any>[]; logger: pino.Logger } {
  const lines: Record<string, any>[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
  return { lines, logger: pino({ level: 'info' }, sink) };
}

const zipkin = (c: Collector, host = HOST): TracingProvider => ({ name: 'zipkin', kind: 'zipkin', service: 'istio-system/zipkin', host, port: c.port, path: '/api/v2/spans' });
const otlp = (c: Collector): TracingProvider => ({ name: 'otel', kind: 'opentelemetry', service: 'observability/otel-collector', host: HOST, port: c.port, path: '/v1/traces', protocol: 'http' });
const policy = (provider: TracingProvider | undefined, samplingPercentage: number, extra: Partial<TracingPolicyResource> = {}): TracingPolicyResource =>
  ({ type: 'tracing', origin: 'bookinfo/tracing', samplingPercentage, provider, ...extra });

const open: { close(): Promise<void> }[] = [];
after(async () => { for (const o of open.reverse()) await o.close(); });

function telemetry(opts: Partial<WaypointTelemetryOptions> = {}) {
  const registry = new Registry();
  const access = capture();
  const log = capture();
  const t = new WaypointTelemetry({
    registry, accessLog: access.logger, log: log.logger,
    self: { nodeId: 'waypoint~127.0.172.9~waypoint.bookinfo~bookinfo.svc.cluster.local', canonicalService: 'waypoint', canonicalRevision: 'latest', namespace: 'bookinfo', meshId: 'cluster.local', clusterId: 'Kubernetes' },
    spanExport: { scheduledDelayMs: 60_000 },
    ...opts,
  });
  open.push(t);
  return { t, registry, access: access.lines, log: log.lines };
}

/** One proxied request the way the lead's request path drives the facade: two attempts, the first one failing. */
function proxyOne(t: WaypointTelemetry, headers: Record<string, string>, startMs = Date.now()): { trace: RequestTrace; upstreamHeaders: Record<string, unknown>[] } {
  const trace = t.begin(headers, { service: 'bookinfo/reviews' }, startMs);
  const upstreamHeaders: Record<string, unknown>[] = [];
  const a1 = trace.attempt({ upstream: '127.0.172.7:9080', cluster: 'outbound|9080|v1|reviews.bookinfo.svc.cluster.local', startMs: startMs + 1 });
  const h1: Record<string, unknown> = { ...headers };
  a1.apply(h1);
  upstreamHeaders.push(h1);
  a1.end({ status: 503, responseFlags: ['UF'], endMs: startMs + 5 });
  const a2 = trace.attempt({ upstream: '127.0.172.8:9080', cluster: 'outbound|9080|v2|reviews.bookinfo.svc.cluster.local', startMs: startMs + 6 });
  const h2: Record<string, unknown> = { ...headers };
  a2.apply(h2);
  upstreamHeaders.push(h2);
  a2.end({ status: 200, endMs: startMs + 20 });
  t.finish(trace, record({ startMs, durationMs: 21.5, attempts: 2, requestId: undefined, upstream: '127.0.172.8:9080' }));
  return { trace, upstreamHeaders };
}

test('Zipkin v2 JSON: the server span and its client children arrive linked, with ids, kinds, µs timestamps and tags', async () => {
  const c = await new Collector().start(HOST);
  open.push(c);
  const { t, registry, access } = telemetry();
  await t.updateTracing([policy(zipkin(c), 100)]);
  const startMs = 1_700_000_000_123.456;
  const { trace, upstreamHeaders } = proxyOne(t, { traceparent: `00-${T}-${S}-01`, 'user-agent': 'curl/8.5.0' }, startMs);
  await t.flush();
  const spans = await eventually(() => (c.zipkinSpans().length === 3 ? c.zipkinSpans() : undefined), 5000, 'three zipkin spans');
  assert.equal(c.received[0]!.contentType, 'application/json');
  const server = spans.find((s) => s.kind === 'SERVER');
  const clients = spans.filter((s) => s.kind === 'CLIENT').sort((a, b) => a.timestamp - b.timestamp);
  assert.equal(clients.length, 2);
  for (const s of spans) {
    assert.equal(s.traceId, T);
    assert.match(s.id, /^[0-9a-f]{16}$/);
    assert.ok(Number.isInteger(s.timestamp) && Number.isInteger(s.duration), 'integer microseconds');
    assert.deepEqual(s.localEndpoint, { serviceName: 'waypoint.bookinfo' });
    assert.equal(s.tags.component, 'proxy');
    assert.equal(s.tags['istio.canonical_service'], 'waypoint');
  }
  assert.equal(server.id, trace.spanId);
  assert.equal(server.parentId, S, 'the server span is a child of the caller\'s span');
  assert.equal(server.name, 'reviews.bookinfo.svc.cluster.local:9080/*');
  assert.equal(server.timestamp, 1_700_000_000_123_456);
  assert.equal(server.duration, 21_500);
  assert.deepEqual([server.tags['http.method'], server.tags['http.status_code'], server.tags['http.url'], server.tags.user_agent, server.tags['guid:x-request-id']],
    ['GET', '200', 'http://reviews:9080/reviews/1', 'curl/8.5.0', trace.requestId]);
  assert.equal(server.tags.error, undefined);
  for (const [i, client] of clients.entries()) {
    assert.equal(client.parentId, server.id, 'each client span is a child of the server span');
    // The upstream request carried exactly this span's context, in both forms.
    assert.equal(upstreamHeaders[i]!.traceparent, `00-${T}-${client.id}-01`);
    assert.equal(upstreamHeaders[i]!['x-b3-spanid'], client.id);
    assert.equal(upstreamHeaders[i]!['x-b3-parentspanid'], server.id);
    assert.equal(upstreamHeaders[i]!['x-b3-traceid'], T);
    assert.equal(upstreamHeaders[i]!['x-request-id'], trace.requestId);
  }
  assert.equal(clients[0].name, 'router outbound|9080|v1|reviews.bookinfo.svc.cluster.local egress');
  assert.deepEqual([clients[0].tags['http.status_code'], clients[0].tags.response_flags, clients[0].tags.error, clients[0].tags.upstream_cluster],
    ['503', 'UF', 'true', 'outbound|9080|v1|reviews.bookinfo.svc.cluster.local']);
  assert.deepEqual([clients[0].timestamp, clients[0].duration], [1_700_000_000_124_456, 4000]);
  assert.equal(clients[1].tags['http.status_code'], '200');
  // The same request's metrics and access-log line.
  assert.equal(metricValue(await registry.metrics(), 'istio_requests_total', { reporter: 'waypoint', response_code: '200', destination_service: 'reviews.bookinfo.svc.cluster.local' }), 1);
  assert.equal(metricValue(await registry.metrics(), 'strait_waypoint_spans_exported_total', { provider: 'zipkin' }), 3);
  assert.equal(access.length, 1);
  assert.deepEqual([access[0]!.trace_id, access[0]!.request_id, access[0]!.attempts], [T, trace.requestId, 2]);
});

test('OTLP/HTTP JSON: the same spans in OTLP form, ids in hex, kinds, nanosecond times, string attributes', async () => {
  const c = await new Collector().start(HOST);
  open.push(c);
  c.answer = () => 200;
  const { t } = telemetry();
  await t.updateTracing([policy(otlp(c), 100)]);
  const startMs = 1_700_000_000_123.456;
  const { trace } = proxyOne(t, { 'x-b3-traceid': 'a3ce929d0e0e4736', 'x-b3-spanid': S, 'x-b3-sampled': '1' }, startMs);
  await t.flush();
  const spans = await eventually(() => (c.otlpSpans().length === 3 ? c.otlpSpans() : undefined), 5000, 'three OTLP spans');
  assert.match(c.received[0]!.contentType, /^application\/json/);
  const resource = c.received[0]!.body.resourceSpans[0].resource;
  assert.deepEqual(resource.attributes, [{ key: 'service.name', value: { stringValue: 'waypoint.bookinfo' } }]);
  const server = spans.find((s) => s.kind === 2);
  const clients = spans.filter((s) => s.kind === 3);
  assert.equal(clients.length, 2);
  // A 64-bit B3 trace id is carried as 128 bits with the high half zero.
  for (const s of spans) assert.equal(s.traceId, '0000000000000000a3ce929d0e0e4736');
  assert.equal(server.spanId, trace.spanId);
  assert.equal(server.parentSpanId, S);
  for (const cl of clients) assert.equal(cl.parentSpanId, server.spanId);
  assert.equal(String(server.startTimeUnixNano), '1700000000123456000');
  assert.equal(String(server.endTimeUnixNano), '1700000000144956000');
  const attrs = Object.fromEntries(server.attributes.map((a: any) => [a.key, a.value.stringValue]));
  assert.equal(attrs['http.status_code'], '200');
  assert.equal(attrs.node_id, 'waypoint~127.0.172.9~waypoint.bookinfo~bookinfo.svc.cluster.local');
  const failed = clients.find((cl: any) => cl.attributes.some((a: any) => a.key === 'http.status_code' && a.value.stringValue === '503'));
  assert.equal(failed.status.code, 2, 'STATUS_CODE_ERROR');
});

test('sampling: 0 % sends nothing, 100 % sends every request, and the caller\'s decision wins over the percentage', async () => {
  const c = await new Collector().start(HOST);
  open.push(c);
  const { t } = telemetry();
  await t.updateTracing([policy(zipkin(c), 0)]);
  for (let i = 0; i < 50; i++) proxyOne(t, {});
  for (let i = 0; i < 10; i++) proxyOne(t, { 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-sampled': '0' });
  await t.flush();
  assert.equal(c.received.length, 0, '0 % and unsampled callers: no export request at all');
  // At 0 %, a caller that sampled its trace is honoured.
  proxyOne(t, { traceparent: `00-${T}-${S}-01` });
  await t.flush();
  await eventually(() => c.zipkinSpans().length === 3, 5000, 'the caller-sampled trace');
  assert.ok(c.zipkinSpans().every((s) => s.traceId === T));
  await t.updateTracing([policy(zipkin(c), 100)]);
  c.received.length = 0;
  for (let i = 0; i < 40; i++) proxyOne(t, {});
  proxyOne(t, { traceparent: `00-${T}-${S}-00` });
  await t.flush();
  const spans = await eventually(() => (c.zipkinSpans().length >= 120 ? c.zipkinSpans() : undefined), 5000, '120 spans');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(c.zipkinSpans().length, 120, '40 requests × 3 spans, and none for the caller that said unsampled');
  assert.equal(new Set(spans.map((s) => s.traceId)).size, 40);
  assert.ok(!spans.some((s) => s.traceId === T));
});

test('a full queue drops spans and counts them; the queued ones are still delivered', async () => {
  const c = await new Collector().start(HOST);
  open.push(c);
  const { t, registry, log } = telemetry({ spanExport: { scheduledDelayMs: 60_000, maxQueueSize: 10, maxExportBatchSize: 10 } });
  await t.updateTracing([policy(zipkin(c), 100)]);
  // 60 spans in one go: the 10th fills a batch, which goes out at once; the next 10 wait for it; 40 find the queue full.
  for (let i = 0; i < 20; i++) proxyOne(t, {});
  assert.equal(metricValue(await registry.metrics(), 'strait_waypoint_spans_dropped_total', { provider: 'zipkin', reason: 'queue_full' }), 40);
  assert.equal(t.tracingStatus().exporters[0]!.queued, 10);
  assert.equal(log.filter((l) => l.reason === 'queue_full').length, 1, 'one log line, the rest rate-limited');
  await t.flush();
  await eventually(() => c.zipkinSpans().length === 20, 5000, 'the 20 spans that were not dropped');
  assert.equal(t.tracingStatus().exporters[0]!.queued, 0);
});

test('a failing or unreachable collector is counted and logged, never thrown into the request path', async () => {
  const c = await new Collector().start(HOST);
  open.push(c);
  c.answer = () => 500;
  const { t, registry, log } = telemetry();
  await t.updateTracing([policy(zipkin(c), 100)]);
  for (let i = 0; i < 3; i++) proxyOne(t, {});
  await t.flush();
  await eventually(async () => metricValue(await registry.metrics(), 'strait_waypoint_span_export_failures_total', { provider: 'zipkin' }) >= 1, 5000, 'a failed export');
  assert.equal(metricValue(await registry.metrics(), 'strait_waypoint_spans_dropped_total', { provider: 'zipkin', reason: 'export_failed' }), 9);
  assert.ok(log.some((l) => l.reason === 'export_failed' && /500/.test(l.error)));
  // Nobody listening at all.
  const gone = await new Collector().start(HOST2);
  const port = gone.port;
  await gone.close();
  const { t: t2, registry: r2 } = telemetry();
  await t2.updateTracing([policy({ ...zipkin(gone, HOST2), port }, 100)]);
  proxyOne(t2, {});
  await t2.flush();
  await eventually(async () => metricValue(await r2.metrics(), 'strait_waypoint_span_export_failures_total', { provider: 'zipkin' }) === 1, 5000, 'a refused export');
});

test('a collector that never answers holds at most maxExportsInFlight requests; further batches are dropped and counted', async () => {
  const c = await new Collector().start(HOST);
  open.push(c);
  c.answer = () => 'hang';
  const { t, registry } = telemetry({ spanExport: { scheduledDelayMs: 60_000, maxExportBatchSize: 3, maxExportsInFlight: 2, exportTimeoutMs: 200 } });
  await t.updateTracing([policy(zipkin(c), 100)]);
  for (let i = 0; i < 4; i++) { proxyOne(t, {}); await t.flush(); }
  await eventually(async () => metricValue(await registry.metrics(), 'strait_waypoint_spans_dropped_total', { provider: 'zipkin', reason: 'collector_busy' }) === 6, 5000, 'two batches refused');
  assert.equal(c.received.length, 2, 'only two requests ever reached the hung collector');
});

test('changing the tracing policies rebuilds only the providers that changed; a missing provider is reported', async () => {
  const a = await new Collector().start(HOST);
  const b = await new Collector().start(HOST2);
  open.push(a, b);
  const { t } = telemetry();
  await t.updateTracing([policy(zipkin(a), 100)]);
  proxyOne(t, {});
  // The same provider config again keeps its queue: the span queued before the update is still delivered.
  await t.updateTracing([policy(zipkin(a), 100, { origin: 'bookinfo/renamed' })]);
  await t.flush();
  await eventually(() => a.zipkinSpans().length === 3, 5000, 'spans at the first collector');
  await t.updateTracing([policy(zipkin(b, HOST2), 100)]);
  proxyOne(t, {});
  await t.flush();
  await eventually(() => b.zipkinSpans().length === 3, 5000, 'spans at the second collector');
  assert.equal(a.zipkinSpans().length, 3);
  await t.updateTracing([
    policy(undefined, 100, { origin: 'bookinfo/none', problem: 'provider "jaeger" is not in meshConfig.extensionProviders' }),
  ]);
  const status = t.tracingStatus();
  assert.equal(status.policies[0]!.problem, 'provider "jaeger" is not in meshConfig.extensionProviders');
  assert.deepEqual(status.exporters, []);
  // Without a usable provider the context is still propagated under the policy, and nothing is exported.
  const { upstreamHeaders } = proxyOne(t, { traceparent: `00-${T}-${S}-01` });
  assert.match(String(upstreamHeaders[0]!.traceparent), new RegExp(`^00-${T}-[0-9a-f]{16}-01$`));
  assert.notEqual(upstreamHeaders[0]!.traceparent, `00-${T}-${S}-01`);
  await t.flush();
  assert.equal(a.received.length, 1);
  assert.equal(b.received.length, 1);
});

test('OTLP/gRPC (Istio\'s default for an opentelemetry provider): the spans reach a TraceService collector, linked', async () => {
  const c = await new GrpcCollector().start(HOST);
  open.push(c);
  const { t, registry } = telemetry();
  await t.updateTracing([policy({ name: 'otel-grpc', kind: 'opentelemetry', service: 'observability/otel-collector', host: HOST, port: c.port, path: '', protocol: 'grpc' }, 100)]);
  assert.equal(t.tracingStatus().exporters[0]!.endpoint, `http://${HOST}:${c.port}`);
  const startMs = 1_700_000_000_123.456;
  const { trace } = proxyOne(t, { traceparent: `00-${T}-${S}-01` }, startMs);
  await t.flush();
  const spans = await eventually(() => (c.spans().length === 3 ? c.spans() : undefined), 5000, 'three spans over gRPC');
  const hex = (b64: string) => Buffer.from(b64, 'base64').toString('hex');
  const server = spans.find((s) => s.kind === 'SPAN_KIND_SERVER');
  const clients = spans.filter((s) => s.kind === 'SPAN_KIND_CLIENT');
  assert.equal(clients.length, 2);
  for (const s of spans) assert.equal(hex(s.trace_id), T);
  assert.equal(hex(server.span_id), trace.spanId);
  assert.equal(hex(server.parent_span_id), S);
  for (const cl of clients) assert.equal(hex(cl.parent_span_id), trace.spanId);
  assert.equal(server.start_time_unix_nano, '1700000000123456000');
  assert.equal(server.name, 'reviews.bookinfo.svc.cluster.local:9080/*');
  const attrs = Object.fromEntries(server.attributes.map((a: any) => [a.key, a.value.string_value]));
  assert.equal(attrs['http.status_code'], '200');
  assert.deepEqual(c.requests[0].resource_spans[0].resource.attributes, [{ key: 'service.name', value: { string_value: 'waypoint.bookinfo' } }]);
  assert.equal(metricValue(await registry.metrics(), 'strait_waypoint_spans_exported_total', { provider: 'otel-grpc' }), 3);
});
