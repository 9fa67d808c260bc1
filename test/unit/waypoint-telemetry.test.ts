import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { WaypointTelemetry } from '../../src/waypoint/telemetry/waypoint-telemetry.js';
import { metricValue } from '../helpers/metrics.js';
import { record } from '../helpers/request-record.js';

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const S = '00f067aa0ba902b7';

function capture(): { lines: Record<string, any>[]; logger: pino.Logger } {
  const lines: Record<string, any>[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
  return { lines, logger: pino({ level: 'info' }, sink) };
}

function make() {
  const registry = new Registry();
  const access = capture();
  const t = new WaypointTelemetry({
    registry, accessLog: access.logger, log: pino({ level: 'silent' }),
    self: { nodeId: 'waypoint~127.0.10.5~waypoint.bookinfo~bookinfo.svc.cluster.local', canonicalService: 'waypoint', canonicalRevision: 'latest', namespace: 'bookinfo', meshId: 'cluster.local', clusterId: 'Kubernetes' },
  });
  return { t, registry, access: access.lines };
}

test('without a tracing policy: x-request-id generated or kept, the caller\'s trace id logged, metrics and log written', async () => {
  const { t, registry, access } = make();
  const tr = t.begin({ traceparent: `00-${T}-${S}-01` }, { service: 'bookinfo/reviews' });
  const a = tr.attempt({ upstream: '127.0.10.7:9080' });
  assert.match(a.headers['x-request-id']!, /^[0-9a-f-]{36}$/);
  assert.deepEqual(Object.keys(a.headers), ['x-request-id']);
  a.end({ status: 200 });
  t.finish(tr, record({ requestId: undefined }));
  assert.equal(access.length, 1);
  assert.equal(access[0]!.request_id, a.headers['x-request-id']);
  assert.equal(access[0]!.trace_id, T);
  assert.equal(access[0]!.msg, 'request complete');
  assert.equal(metricValue(await registry.metrics(), 'istio_requests_total', { reporter: 'waypoint' }), 1);
  const kept = t.begin({ 'x-request-id': 'from-client' }, {});
  assert.equal(kept.attempt({ upstream: '127.0.10.7:9080' }).headers['x-request-id'], 'from-client');
  t.finish(kept, record({ requestId: undefined }));
  assert.equal(access[1]!.request_id, 'from-client');
  assert.equal(access[1]!.trace_id, undefined);
  await t.close();
});

test('a policy for one service traces that service only; a request finished before the SDK is built counts its spans as not_ready', async () => {
  const { t, registry } = make();
  const ready = t.updateTracing([{
    type: 'tracing', origin: 'bookinfo/tracing', services: ['bookinfo/reviews'], samplingPercentage: 100,
    provider: { name: 'zipkin', kind: 'zipkin', service: 'istio-system/zipkin', host: '127.0.172.9', port: 9, path: '/api/v2/spans' },
  }]);
  const other = t.begin({}, { service: 'bookinfo/ratings' });
  assert.equal(other.propagate, false);
  const traced = t.begin({}, { service: 'bookinfo/reviews' });
  assert.equal(traced.propagate, true);
  assert.equal(traced.sampled, true);
  traced.attempt({ upstream: '127.0.10.7:9080' }).end({ status: 200 });
  t.finish(traced, record());
  assert.equal(metricValue(await registry.metrics(), 'strait_waypoint_spans_dropped_total', { provider: 'zipkin', reason: 'not_ready' }), 2);
  await ready;
  assert.equal(t.tracingStatus().exporters.length, 1);
  await t.close();
});

test('finish never throws, whatever the record holds', async () => {
  const { t, access } = make();
  const tr = t.begin({ traceparent: 'nonsense', b3: '\u0000', 'x-request-id': ['a', 'b'] }, { service: undefined });
  t.finish(tr, record({ durationMs: Number.NaN, requestBytes: -5, responseBytes: Infinity, status: Number.NaN, method: '', path: '', responseFlags: ['', '!!'], source: {}, destination: {} }));
  t.finish(undefined, record());
  assert.equal(access.length, 2);
  assert.equal(access[0]!.duration_ms, 0);
  await t.close();
});
