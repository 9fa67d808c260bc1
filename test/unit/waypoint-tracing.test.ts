import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TracingPolicyResource } from '../../src/common/xds/waypoint-resources.js';
import { parseIncomingTrace } from '../../src/waypoint/telemetry/trace-context.js';
import { RequestTrace, TracingPolicies, decideSampling, spanSpecs, type TracingSelf } from '../../src/waypoint/telemetry/tracing.js';
import { record } from '../helpers/request-record.js';

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const S = '00f067aa0ba902b7';
const self: TracingSelf = { nodeId: 'waypoint~127.0.10.5~waypoint.bookinfo~bookinfo.svc.cluster.local', canonicalService: 'waypoint', canonicalRevision: 'latest', namespace: 'bookinfo', meshId: 'cluster.local', clusterId: 'Kubernetes' };

test('an incoming sampling decision is honoured whatever the percentage; without one, the percentage decides', () => {
  const never = () => { throw new Error('random must not be consulted'); };
  assert.equal(decideSampling(parseIncomingTrace({ traceparent: `00-${T}-${S}-01` }), 0, never), true);
  assert.equal(decideSampling(parseIncomingTrace({ traceparent: `00-${T}-${S}-00` }), 100, never), false);
  assert.equal(decideSampling(parseIncomingTrace({ 'x-b3-sampled': '1' }), 0, never), true);
  assert.equal(decideSampling(parseIncomingTrace({ b3: 'd' }), 0, never), true);
  const none = parseIncomingTrace({});
  assert.equal(decideSampling(none, 0, () => 0), false);
  assert.equal(decideSampling(none, 100, () => 0.999999), true);
  assert.equal(decideSampling(none, 10, () => 0.0999), true);
  assert.equal(decideSampling(none, 10, () => 0.1), false);
  // B3 ids without a decision defer it to us.
  assert.equal(decideSampling(parseIncomingTrace({ 'x-b3-traceid': T, 'x-b3-spanid': S }), 10, () => 0.05), true);
  // Over many requests the rate is the percentage.
  let n = 0;
  let seed = 1;
  const lcg = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = 0; i < 100_000; i++) if (decideSampling(none, 10, lcg)) n++;
  assert.ok(Math.abs(n - 10_000) < 600, String(n));
});

test('a service\'s tracing policy is the one that names it, else the one for all services', () => {
  const p = (origin: string, services?: string[]): TracingPolicyResource => ({ type: 'tracing', origin, services, samplingPercentage: 1 });
  const all = p('istio-system/mesh-default');
  const ns = p('shop/tracing', ['shop/cart', 'shop/orders']);
  const second = p('shop/other', ['shop/cart']);
  const policies = new TracingPolicies([ns, all, second]);
  assert.equal(policies.for('shop/cart'), ns);
  assert.equal(policies.for('shop/orders'), ns);
  assert.equal(policies.for('shop/payments'), all);
  assert.equal(policies.for(undefined), all);
  assert.equal(new TracingPolicies([ns]).for('shop/payments'), undefined);
});

test('each attempt gets its own client span, child of the server span, carried upstream in W3C and B3 headers', () => {
  const incoming = parseIncomingTrace({ traceparent: `00-${T}-${S}-01`, tracestate: 'vendor=x' });
  const t = new RequestTrace('req-1', false, incoming, true, T, 'cccccccccccccccc', true, undefined, 1000);
  const a1 = t.attempt({ upstream: '127.0.10.7:9080', cluster: 'outbound|9080|v1|reviews.bookinfo.svc.cluster.local', startMs: 1001 });
  const a2 = t.attempt({ upstream: '127.0.10.8:9080', startMs: 1005 });
  assert.notEqual(a1.spanId, a2.spanId);
  assert.equal(a1.headers.traceparent, `00-${T}-${a1.spanId}-01`);
  assert.equal(a1.headers['x-b3-parentspanid'], 'cccccccccccccccc');
  assert.equal(a1.headers['x-b3-spanid'], a1.spanId);
  assert.equal(a1.headers.tracestate, 'vendor=x');
  assert.equal(a1.headers['x-request-id'], 'req-1');
  // apply() replaces the caller's trace headers and keeps the rest.
  const h: Record<string, unknown> = { traceparent: `00-${T}-${S}-01`, 'x-b3-spanid': S, b3: '1', accept: '*/*' };
  a2.apply(h);
  assert.equal(h.traceparent, `00-${T}-${a2.spanId}-01`);
  assert.equal(h['x-b3-spanid'], a2.spanId);
  assert.equal(h.b3, undefined);
  assert.equal(h.accept, '*/*');
});

test('with no tracing policy the caller\'s trace headers pass untouched and only x-request-id is set', () => {
  const incoming = parseIncomingTrace({ traceparent: `00-${T}-${S}-01` });
  const t = new RequestTrace('req-2', true, incoming, false, T, undefined, true, undefined, 0);
  const a = t.attempt({ upstream: '127.0.10.7:9080' });
  assert.equal(a.spanId, undefined);
  assert.deepEqual(a.headers, { 'x-request-id': 'req-2' });
  const h: Record<string, unknown> = { traceparent: `00-${T}-${S}-01` };
  a.apply(h);
  assert.deepEqual(h, { traceparent: `00-${T}-${S}-01`, 'x-request-id': 'req-2' });
  assert.deepEqual(spanSpecs(t, record(), self), []);
});

test('the spans of a request: a server span under the caller\'s, client spans under it, with Envoy\'s and Istio\'s tags', () => {
  const incoming = parseIncomingTrace({ traceparent: `00-${T}-${S}-01` });
  const t = new RequestTrace('req-3', false, incoming, true, T, 'cccccccccccccccc', true, undefined, 0);
  const r = record({ startMs: 1_700_000_000_000, durationMs: 40, status: 200, attempts: 2, path: '/reviews/' + 'x'.repeat(300) });
  const a1 = t.attempt({ upstream: '127.0.10.7:9080', cluster: 'outbound|9080|v1|reviews.bookinfo.svc.cluster.local', startMs: r.startMs + 1 });
  a1.end({ status: 503, responseFlags: ['UF'], endMs: r.startMs + 10 });
  const a2 = t.attempt({ upstream: '127.0.10.8:9080', cluster: 'outbound|9080|v2|reviews.bookinfo.svc.cluster.local', startMs: r.startMs + 12 });
  a2.end({ status: 200, endMs: r.startMs + 39 });
  const [server, c1, c2, ...rest] = spanSpecs(t, r, self);
  assert.equal(rest.length, 0);
  assert.deepEqual([server!.kind, server!.traceId, server!.spanId, server!.parentSpanId, server!.parentRemote], ['server', T, 'cccccccccccccccc', S, true]);
  assert.equal(server!.name, 'reviews.bookinfo.svc.cluster.local:9080/*');
  assert.deepEqual([server!.startMs, server!.endMs, server!.error], [1_700_000_000_000, 1_700_000_000_040, false]);
  const a = server!.attributes;
  assert.equal(a['http.url'], ('http://reviews:9080/reviews/' + 'x'.repeat(300)).slice(0, 255) + '…');
  assert.deepEqual([a['http.method'], a['http.status_code'], a['http.protocol'], a.component, a.node_id, a.response_flags, a.upstream_cluster, a['guid:x-request-id']],
    ['GET', '200', 'HTTP/1.1', 'proxy', self.nodeId, '-', 'outbound|9080|v2|reviews.bookinfo.svc.cluster.local', 'req-3']);
  assert.deepEqual([a['istio.canonical_service'], a['istio.namespace'], a['istio.mesh_id'], a.request_size, a.response_size, a.user_agent, a['peer.address']],
    ['waypoint', 'bookinfo', 'cluster.local', '120', '2300', 'curl/8.5.0', '127.0.10.3:40112']);
  assert.equal(a.error, undefined);
  assert.deepEqual([c1!.kind, c1!.parentSpanId, c1!.spanId, c1!.parentRemote, c1!.error, c1!.name], ['client', 'cccccccccccccccc', a1.spanId, false, true, 'router outbound|9080|v1|reviews.bookinfo.svc.cluster.local egress']);
  assert.deepEqual([c1!.attributes['http.status_code'], c1!.attributes.response_flags, c1!.attributes.error, c1!.attributes.upstream_address], ['503', 'UF', 'true', '127.0.10.7:9080']);
  assert.deepEqual([c2!.parentSpanId, c2!.spanId, c2!.error, c2!.startMs, c2!.endMs], ['cccccccccccccccc', a2.spanId, false, r.startMs + 12, r.startMs + 39]);
  // A shorter tag limit from the provider applies to http.url.
  assert.equal((spanSpecs(t, r, self, 30)[0]!.attributes['http.url'] as string).length, 30);
});

test('a request with no response, or a 5xx, is an error span; an attempt never ended counts as no response', () => {
  const t = new RequestTrace('r', false, parseIncomingTrace({}), true, T, 'cccccccccccccccc', true, undefined, 0);
  t.attempt({ upstream: '127.0.10.7:9080', startMs: 5 });
  const [server, client] = spanSpecs(t, record({ status: 0, responseFlags: ['DC'], startMs: 0, durationMs: 9 }), self);
  assert.equal(server!.parentSpanId, undefined);
  assert.equal(server!.error, true);
  assert.equal(server!.attributes.error, 'true');
  assert.deepEqual([client!.error, client!.endMs, client!.attributes['http.status_code']], [true, 9, '0']);
  assert.equal(spanSpecs(t, record({ status: 504 }), self)[0]!.error, true);
  assert.equal(spanSpecs(t, record({ status: 404 }), self)[0]!.error, false);
});
