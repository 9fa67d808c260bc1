import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { ISTIO_DEFAULT_BUCKETS, REQUEST_LABELS, RequestMetrics, requestLabels } from '../../src/waypoint/telemetry/request-metrics.js';
import { record } from '../helpers/request-record.js';
import { metricValue } from '../helpers/metrics.js';

function capture(): { lines: Record<string, any>[]; logger: pino.Logger } {
  const lines: Record<string, any>[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
  return { lines, logger: pino({ level: 'info' }, sink) };
}

test('a request is counted with reporter="waypoint" and every Istio label filled from the record', async () => {
  const registry = new Registry();
  const m = new RequestMetrics(registry, { log: pino({ level: 'silent' }), clusterId: 'Kubernetes' });
  m.record(record());
  const text = await registry.metrics();
  const want = {
    reporter: 'waypoint', source_workload: 'productpage', source_workload_namespace: 'bookinfo',
    source_principal: 'spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage', source_app: 'productpage', source_version: 'v1',
    source_canonical_service: 'productpage', source_canonical_revision: 'v1', source_cluster: 'Kubernetes',
    destination_workload: 'reviews', destination_workload_namespace: 'bookinfo',
    destination_principal: 'spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews', destination_app: 'reviews', destination_version: 'v2',
    destination_service: 'reviews.bookinfo.svc.cluster.local', destination_service_name: 'reviews', destination_service_namespace: 'bookinfo',
    destination_canonical_service: 'reviews', destination_canonical_revision: 'v2', destination_cluster: 'Kubernetes',
    request_protocol: 'http', response_code: '200', grpc_response_status: '', response_flags: '-', connection_security_policy: 'mutual_tls',
  };
  assert.deepEqual(Object.keys(want).sort(), [...REQUEST_LABELS].sort());
  assert.equal(metricValue(text, 'istio_requests_total', want), 1);
  assert.equal(metricValue(text, 'istio_request_duration_milliseconds_sum', want), 12.5);
  assert.equal(metricValue(text, 'istio_request_duration_milliseconds_count', want), 1);
  assert.equal(metricValue(text, 'istio_request_duration_milliseconds_bucket', { ...want, le: '10' }), 0);
  assert.equal(metricValue(text, 'istio_request_duration_milliseconds_bucket', { ...want, le: '25' }), 1);
  assert.equal(metricValue(text, 'istio_request_bytes_sum', want), 120);
  assert.equal(metricValue(text, 'istio_response_bytes_sum', want), 2300);
  assert.equal(metricValue(text, 'istio_response_bytes_bucket', { ...want, le: '1000' }), 0);
  assert.equal(metricValue(text, 'istio_response_bytes_bucket', { ...want, le: '2500' }), 1);
  // Envoy's default buckets, the ones Istio's proxies export, on all three histograms.
  for (const name of ['istio_request_duration_milliseconds', 'istio_request_bytes', 'istio_response_bytes']) {
    const les = [...text.matchAll(new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"`, 'gm'))].map((x) => x[1]);
    assert.deepEqual(les, [...ISTIO_DEFAULT_BUCKETS.map(String), '+Inf'], name);
  }
});

test('what the waypoint does not know is reported as Istio reports it', () => {
  const l = requestLabels(record({ source: {}, destination: {}, status: 0, responseFlags: ['DC'] }));
  assert.equal(l.source_workload, 'unknown');
  assert.equal(l.source_principal, 'unknown');
  assert.equal(l.source_workload_namespace, 'unknown');
  assert.equal(l.source_canonical_revision, 'latest');
  assert.equal(l.source_cluster, 'unknown');
  assert.equal(l.destination_service, 'unknown');
  assert.equal(l.destination_service_name, 'unknown');
  assert.equal(l.destination_canonical_revision, 'unknown');
  assert.equal(l.destination_cluster, 'unknown');
  assert.equal(l.response_code, '0');
  assert.equal(l.response_flags, 'DC');
  // A principal alone still names the source namespace, as Istio reads it from the SAN.
  assert.equal(requestLabels(record({ source: { principal: 'spiffe://td/ns/shop/sa/cart' } })).source_workload_namespace, 'shop');
});

test('gRPC requests carry request_protocol="grpc" and a bounded grpc_response_status', () => {
  assert.equal(requestLabels(record({ grpc: true, protocol: 'HTTP/2', grpcStatus: 14 })).grpc_response_status, '14');
  assert.equal(requestLabels(record({ grpc: true, protocol: 'HTTP/2', grpcStatus: 14 })).request_protocol, 'grpc');
  assert.equal(requestLabels(record({ grpc: true, protocol: 'HTTP/2' })).grpc_response_status, '');
  // An upstream choosing grpc-status: 99999 cannot make a series per value: out-of-range codes are UNKNOWN (2).
  assert.equal(requestLabels(record({ grpc: true, grpcStatus: 99999 })).grpc_response_status, '2');
  assert.equal(requestLabels(record({ grpc: false, grpcStatus: 3 })).grpc_response_status, '');
  assert.equal(requestLabels(record({ status: 1234 })).response_code, '0');
  assert.equal(requestLabels(record({ status: 42.5 })).response_code, '0');
});

test('the same set of response flags is one series whatever the order, in Envoy order, malformed ones dropped', async () => {
  const registry = new Registry();
  const m = new RequestMetrics(registry, { log: pino({ level: 'silent' }) });
  m.record(record({ status: 503, responseFlags: ['URX', 'UF'] }));
  m.record(record({ status: 503, responseFlags: ['UF', 'URX', 'UF'] }));
  m.record(record({ status: 503, responseFlags: ['UF', 'not a flag', 'URX', 'x'.repeat(100)] }));
  assert.equal(m.seriesCount(), 1);
  assert.equal(metricValue(await registry.metrics(), 'istio_requests_total', { response_flags: 'UF,URX', response_code: '503' }), 3);
});

test('label sets past the cap are counted in one overflow series, with a counter and one log line', async () => {
  const registry = new Registry();
  const { lines, logger } = capture();
  const m = new RequestMetrics(registry, { log: logger, maxSeries: 3 });
  for (let i = 0; i < 10; i++) m.record(record({ status: 200 + i }));
  const text = await registry.metrics();
  assert.equal(m.seriesCount(), 3);
  assert.equal(metricValue(text, 'istio_requests_total', { response_code: '200' }), 1);
  assert.equal(metricValue(text, 'istio_requests_total', { response_code: '203' }), 0);
  assert.equal(metricValue(text, 'istio_requests_total', { reporter: 'waypoint', response_code: 'overflow', source_workload: 'overflow' }), 7);
  assert.equal(metricValue(text, 'istio_request_duration_milliseconds_count', { response_code: 'overflow' }), 7);
  assert.equal(metricValue(text, 'strait_waypoint_metric_series_overflow_total'), 7);
  // Totals stay right: every request is counted once.
  const total = [...text.matchAll(/^istio_requests_total\{[^}]*\} (\d+)$/gm)].reduce((a, x) => a + Number(x[1]), 0);
  assert.equal(total, 10);
  assert.equal(lines.filter((l) => l.level === 40).length, 1);
  assert.match(lines[0]!.msg, /too many label sets/);
  assert.equal(lines[0]!.maxSeries, 3);
  m.close();
});

test('100,000 requests with distinct label values keep at most maxSeries + 1 series per metric', async () => {
  const registry = new Registry();
  const m = new RequestMetrics(registry, { log: pino({ level: 'silent' }), maxSeries: 500 });
  for (let i = 0; i < 100_000; i++) {
    m.record(record({ status: 100 + (i % 900), grpc: i % 2 === 0, grpcStatus: i, responseFlags: [String.fromCharCode(65 + (i % 26))],
      source: { principal: `spiffe://td/ns/n${i}/sa/s${i}`, canonicalName: `w${i}` } }));
  }
  const text = await registry.metrics();
  const series = text.split('\n').filter((l) => l.startsWith('istio_requests_total{'));
  assert.equal(series.length, 501);
  assert.equal(metricValue(text, 'strait_waypoint_metric_series_overflow_total'), 100_000 - 500);
  m.close();
});

test('a bad cap is refused at start-up with the option named', () => {
  assert.throws(() => new RequestMetrics(new Registry(), { log: pino({ level: 'silent' }), maxSeries: 0 }), /maxSeries must be a positive integer/);
});
