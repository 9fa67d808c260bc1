/**
 * The waypoint's telemetry through a real `strait up`, as an Istio user reads it: Istio's request metrics on the
 * waypoint's /metrics after known traffic (exact counts per label set), the access log's fields, and tracing to a
 * Zipkin collector that the test runs on a pod address of the mesh — named the way Istio users name it (a `zipkin`
 * extension provider in the `istio` ConfigMap of istio-system, a Telemetry with randomSamplingPercentage) — checking
 * the v2 JSON wire format and the parent/child links of the spans.
 * Addresses: 127.0.206.0/24 (pods .1-.39, VIPs .101-.119, nodes .201-.202, the waypoint .210, the controller .254).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { docs } from '../helpers/manifests.js';
import { TestMesh, demoPod, node } from '../helpers/mesh.js';
import { metricValue } from '../helpers/metrics.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';

const NS = 'tel';
const CLIENT = '127.0.206.1';
const COLLECTOR = '127.0.206.30';
const WAYPOINT = 'waypoint/tel/waypoint';
const CLIENT_ID = 'spiffe://cluster.local/ns/tel/sa/client';

const service = (name: string, ip: string) => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS }, spec: { clusterIP: ip, selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
});
const telemetry = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry', metadata: { name, namespace: NS }, spec });

describe('waypoint telemetry through strait up: Istio request metrics, access log, Zipkin tracing', () => {
  const dir = tempDir('waypoint-telemetry');
  let mesh: TestMesh;
  let collector: Server;
  /** Every POST the collector received: path, content type, parsed body. */
  const posts: { path: string; contentType: string; body: any }[] = [];

  before(async () => {
    collector = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        posts.push({ path: req.url ?? '', contentType: String(req.headers['content-type']), body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
        res.writeHead(202).end();
      });
    });
    await new Promise<void>((r) => collector.listen(9411, COLLECTOR, r));
    writeFileSync(join(dir.path, 'mesh.yaml'), docs(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' } } },
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } },
      node('node-a', '127.0.206.201'), node('node-b', '127.0.206.202'),
      {
        apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: NS },
        spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }], addresses: [{ type: 'IPAddress', value: '127.0.206.210' }] },
      },
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'client', namespace: NS, labels: { app: 'client' } }, spec: { nodeName: 'node-a', serviceAccountName: 'client', containers: [{ name: 'c', image: 'example/client' }] }, status: { podIP: CLIENT } },
      demoPod(NS, 'web-v1', 'node-b', '127.0.206.11', 'web', { labels: { app: 'web', version: 'v1' } }),
      demoPod(NS, 'api-v2', 'node-b', '127.0.206.12', 'api', { labels: { app: 'api', version: 'v2' } }),
      demoPod(NS, 'blob-v3', 'node-b', '127.0.206.13', 'blob', { labels: { app: 'blob', version: 'v3' } }),
      demoPod(NS, 'traced', 'node-b', '127.0.206.14', 'traced', { labels: { app: 'traced', version: 'v1' } }),
      service('web', '127.0.206.101'), service('api', '127.0.206.102'), service('blob', '127.0.206.103'), service('traced', '127.0.206.104'),
      { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'api', namespace: NS }, spec: { hosts: ['api'], http: [{ match: [{ uri: { prefix: '/api' } }], route: [{ destination: { host: 'api' } }] }] } },
      // The collector: a pod of istio-system (not in the mesh) whose address the test serves; a headless Service.
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'zipkin-1', namespace: 'istio-system', labels: { app: 'zipkin' } }, spec: { nodeName: 'node-a', containers: [{ name: 'zipkin', image: 'openzipkin/zipkin', ports: [{ name: 'http', containerPort: 9411 }] }] }, status: { podIP: COLLECTOR } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'zipkin', namespace: 'istio-system' }, spec: { clusterIP: 'None', selector: { app: 'zipkin' }, ports: [{ name: 'http-zipkin', port: 9411, targetPort: 9411 }] } },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'istio', namespace: 'istio-system' }, data: { mesh: 'extensionProviders:\n- name: zipkin\n  zipkin:\n    service: zipkin.istio-system.svc.cluster.local\n    port: 9411\n' } },
      // Every service of the namespace sampled at 100 %; the traced-nothing one (web) at 0 % through its own Telemetry.
      telemetry('tracing', { tracing: [{ providers: [{ name: 'zipkin' }], randomSamplingPercentage: 100 }] }),
      telemetry('web-no-tracing', { targetRefs: [{ kind: 'Service', group: '', name: 'web' }], tracing: [{ randomSamplingPercentage: 0 }] }),
    ));
    mesh = await new TestMesh(dir.path, ['--controller-address', '127.0.206.254']).start();
  });
  after(async () => {
    await mesh?.stop();
    mesh?.cleanup();
    collector?.closeAllConnections();
    await new Promise<void>((r) => (collector ? collector.close(() => r()) : r()));
    dir.remove();
  });

  const wp = () => (mesh.readState() as unknown as { waypoints: Record<string, { admin: string; metrics: string }> }).waypoints['tel/waypoint']!;
  const metrics = async () => (await fetch(`http://${wp().metrics}/metrics`)).text();
  const accessLines = () => mesh.logs(WAYPOINT).filter((l) => l.msg === 'request complete');
  const curl = async (url: string, extra: string[] = []) => {
    const r = await mesh.curlJson(CLIENT, 'node-a', url, extra);
    assert.equal(r.exit, 0, r.stderr);
    return r;
  };
  const series = (dst: string, o: Record<string, string>) => ({
    reporter: 'waypoint', source_principal: CLIENT_ID, source_workload: 'client', source_workload_namespace: NS, source_cluster: 'Kubernetes',
    destination_service: `${dst}.tel.svc.cluster.local`, destination_service_name: dst, destination_service_namespace: NS,
    connection_security_policy: 'mutual_tls', request_protocol: 'http', ...o,
  });

  describe('Istio request metrics', () => {
    it('counts requests exactly per label set, with Istio\'s labels for source, destination, code and flags', async () => {
      for (let i = 0; i < 5; i++) assert.equal((await curl('http://web.tel/status/200', i % 2 ? ['--http2-prior-knowledge'] : [])).status, 200);
      for (let i = 0; i < 3; i++) assert.equal((await curl('http://web.tel/status/503')).status, 503);
      for (let i = 0; i < 2; i++) assert.equal((await curl('http://api.tel/elsewhere')).status, 404);
      const text = await metrics();
      // *_workload is the canonical name (the app label), as the ztunnel's TCP metrics report it.
      const ok = series('web', { destination_workload: 'web-v1', destination_app: 'web', destination_version: 'v1', destination_principal: 'spiffe://cluster.local/ns/tel/sa/web', response_code: '200', response_flags: '-' });
      assert.equal(metricValue(text, 'istio_requests_total', ok), 5, text.split('\n').filter((l) => l.startsWith('istio_requests_total')).join('\n'));
      assert.equal(metricValue(text, 'istio_requests_total', { ...ok, response_code: '503' }), 3);
      // No route: no endpoint answered, so the destination workload is unknown; the flag is NR.
      assert.equal(metricValue(text, 'istio_requests_total', series('api', { response_code: '404', response_flags: 'NR', destination_workload: 'unknown' })), 2);
      assert.equal(metricValue(text, 'istio_request_duration_milliseconds_count', ok), 5);
      assert.equal(metricValue(text, 'istio_request_duration_milliseconds_bucket', { ...ok, le: '+Inf' }), 5);
      assert.equal(metricValue(text, 'istio_request_bytes_count', ok), 5);
      assert.equal(metricValue(text, 'istio_response_bytes_count', ok), 5);
      assert.equal(metricValue(text, 'istio_requests_total', { reporter: 'waypoint', response_code: '200', destination_service_name: 'web', source_principal: 'unknown' }), 0, 'the client\'s identity is always known');
    });

    it('puts durations and sizes in Envoy\'s buckets', async () => {
      for (let i = 0; i < 2; i++) assert.equal((await curl('http://api.tel/api/slow', ['--http2-prior-knowledge', '-H', 'x-demo-delay-ms: 300'])).status, 200);
      const body = 'x'.repeat(3000);
      for (let i = 0; i < 3; i++) assert.equal((await curl('http://blob.tel/bytes/4096', ['-o', '/dev/null', '--data-binary', body])).status, 200);
      const text = await metrics();
      const slow = series('api', { destination_version: 'v2', response_code: '200' });
      assert.equal(metricValue(text, 'istio_request_duration_milliseconds_count', slow), 2);
      assert.equal(metricValue(text, 'istio_request_duration_milliseconds_bucket', { ...slow, le: '250' }), 0);
      assert.equal(metricValue(text, 'istio_request_duration_milliseconds_bucket', { ...slow, le: '1000' }), 2);
      assert.ok(metricValue(text, 'istio_request_duration_milliseconds_sum', slow) >= 600);
      const blob = series('blob', { destination_version: 'v3', response_code: '200' });
      assert.equal(metricValue(text, 'istio_request_bytes_count', blob), 3);
      assert.equal(metricValue(text, 'istio_request_bytes_bucket', { ...blob, le: '2500' }), 0);
      assert.equal(metricValue(text, 'istio_request_bytes_bucket', { ...blob, le: '5000' }), 3);
      const reqSum = metricValue(text, 'istio_request_bytes_sum', blob);
      assert.ok(reqSum >= 3 * 3000 && reqSum < 3 * 3500, `request bytes: body and header block (${reqSum})`);
      const resSum = metricValue(text, 'istio_response_bytes_sum', blob);
      assert.ok(resSum >= 3 * 4096 && resSum < 3 * 4600, `response bytes: body and header block (${resSum})`);
    });
  });

  describe('access log', () => {
    it('writes one line per request with the README\'s fields', async () => {
      const id = randomUUID();
      const r = await curl('http://web.tel/status/201?x=1', ['-H', `x-request-id: ${id}`, '-H', 'user-agent: tel-test/1', '-d', 'hello']);
      assert.equal(r.status, 201);
      const line = await eventually(() => accessLines().find((l) => l.request_id === id), 3000, 'the access-log line');
      assert.deepEqual(Object.keys(line).sort(), [
        'access', 'attempts', 'authority', 'bytes_recv', 'bytes_sent', 'component', 'dst.identity', 'dst.namespace', 'dst.service', 'dst.workload',
        'duration_ms', 'level', 'method', 'msg', 'path', 'pid', 'protocol', 'request_id', 'response_flags', 'route', 'src.addr', 'src.identity',
        'src.namespace', 'src.workload', 'status', 'time', 'trace_id', 'upstream', 'upstream_cluster', 'user_agent', 'waypoint',
      ]);
      assert.equal(line.msg, 'request complete');
      assert.equal(line['src.workload'], 'client');
      assert.equal(line['src.namespace'], NS);
      assert.equal(line['src.identity'], CLIENT_ID);
      assert.equal(line['dst.service'], 'web.tel.svc.cluster.local');
      assert.equal(line['dst.workload'], 'web-v1');
      assert.equal(line['dst.namespace'], NS);
      assert.equal(line['dst.identity'], 'spiffe://cluster.local/ns/tel/sa/web');
      assert.equal(line.upstream, '127.0.206.11:8080');
      assert.equal(line.upstream_cluster, 'outbound|80||web.tel.svc.cluster.local');
      assert.equal(line.method, 'POST');
      assert.equal(line.authority, 'web.tel');
      assert.equal(line.path, '/status/201?x=1');
      assert.equal(line.protocol, 'HTTP/1.1');
      assert.equal(line.status, 201);
      assert.equal(line.response_flags, '-');
      assert.equal(line.route, 'Service/tel/web', 'a service without routes: its own endpoints');
      assert.equal(line.attempts, 1);
      assert.equal(line.user_agent, 'tel-test/1');
      assert.equal(line.bytes_recv > 5, true, 'the body and the header block');
      assert.ok(line.bytes_sent >= r.text.length, `bytes_sent ${line.bytes_sent} covers the body (${r.text.length})`);
      assert.match(line.trace_id, /^[0-9a-f]{32}$/);
      assert.ok(typeof line.duration_ms === 'number' && line.duration_ms >= 0 && line.duration_ms < r.timeMs + 5);
      assert.match(line['src.addr'], /^127\.0\.206\.1(:\d+)?$/);
    });
  });

  describe('tracing to the mesh config\'s zipkin provider', () => {
    const spansOf = (traceId: string) => posts.filter((p) => p.path === '/api/v2/spans').flatMap((p) => p.body as any[]).filter((s) => s.traceId === traceId);

    it('sends a server span (child of the caller\'s) and a client span per try (child of the server span), Zipkin v2 JSON', async () => {
      const traceId = randomBytes(16).toString('hex');
      const parent = randomBytes(8).toString('hex');
      const r = await curl('http://traced.tel/hello', ['-H', `traceparent: 00-${traceId}-${parent}-01`]);
      assert.equal(r.status, 200);
      const sent = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(r.body.headers.traceparent);
      assert.ok(sent, `the app got a traceparent: ${r.body.headers.traceparent}`);
      assert.equal(sent[1], traceId, 'the incoming trace goes on');
      // Spans leave in batches every 5 s.
      const spans = await eventually(() => { const s = spansOf(traceId); return s.length >= 2 ? s : undefined; }, 10_000, 'the spans at the collector');
      const post = posts.find((p) => (p.body as any[]).some((s) => s.traceId === traceId))!;
      assert.match(post.contentType, /^application\/json/);
      const server = spans.find((s) => s.kind === 'SERVER');
      const client = spans.find((s) => s.kind === 'CLIENT');
      assert.ok(server && client, JSON.stringify(spans));
      assert.equal(spans.length, 2, 'one try: one client span');
      assert.equal(server.parentId, parent, 'the server span is a child of the caller\'s span');
      assert.equal(client.parentId, server.id, 'the client span is a child of the server span');
      assert.equal(sent[2], client.id, 'the app\'s parent is the client span');
      for (const s of spans) {
        assert.match(s.id, /^[0-9a-f]{16}$/);
        assert.ok(Number.isInteger(s.timestamp) && s.timestamp > 1e15, `timestamp in microseconds: ${s.timestamp}`);
        assert.ok(Number.isInteger(s.duration) && s.duration > 0, `duration in microseconds: ${s.duration}`);
        assert.equal(typeof s.localEndpoint?.serviceName, 'string');
        assert.equal(typeof s.name, 'string');
        for (const v of Object.values(s.tags ?? {})) assert.equal(typeof v, 'string', 'Zipkin tags are strings');
      }
      assert.ok(client.timestamp >= server.timestamp && client.timestamp + client.duration <= server.timestamp + server.duration + 1000, 'the try lies within the request');
      assert.equal(server.tags['http.status_code'], '200');
    });

    it('continues a B3 trace, and propagates it to the app in B3', async () => {
      const traceId = randomBytes(16).toString('hex');
      const parent = randomBytes(8).toString('hex');
      const r = await curl('http://traced.tel/b3', ['-H', `b3: ${traceId}-${parent}-1`]);
      assert.equal(r.status, 200);
      // B3 single: trace-span-sampled[-parent].
      const b3 = new RegExp(`^${traceId}-([0-9a-f]{16})-1(?:-([0-9a-f]{16}))?$`).exec(r.body.headers.b3);
      assert.ok(b3, `the app got a b3 header of the same trace: ${r.body.headers.b3}`);
      assert.equal(r.body.headers['x-b3-traceid'], traceId);
      const spans = await eventually(() => { const s = spansOf(traceId); return s.length >= 2 ? s : undefined; }, 10_000, 'the spans at the collector');
      const server = spans.find((s) => s.kind === 'SERVER');
      const client = spans.find((s) => s.kind === 'CLIENT');
      assert.equal(server?.parentId, parent);
      assert.equal(client?.parentId, server?.id);
      assert.equal(b3[1], client?.id);
      if (b3[2] !== undefined) assert.equal(b3[2], server?.id, 'its parent is the server span');
    });

    it('samples a request without trace context at 100 %; keeps a caller\'s "not sampled"; sends nothing for a service at 0 %', async () => {
      const before = posts.length;
      // The unsampled ones first: spans leave in order, so by the time the sampled one's arrive, theirs would have too.
      const unsampled: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await curl('http://web.tel/untraced');
        assert.equal(r.status, 200);
        assert.match(r.body.headers.traceparent ?? '', /^$|-00$/, 'not sampled');
        unsampled.push(r.body.headers['x-request-id']);
      }
      const declined = randomBytes(16).toString('hex');
      const notSampled = await curl('http://traced.tel/declined', ['-H', `traceparent: 00-${declined}-${randomBytes(8).toString('hex')}-00`]);
      assert.match(notSampled.body.headers.traceparent, new RegExp(`^00-${declined}-[0-9a-f]{16}-00$`), 'the caller\'s decision goes on');
      unsampled.push(notSampled.body.headers['x-request-id']);
      const sampled = await curl('http://traced.tel/new-trace');
      const fresh = /^00-([0-9a-f]{32})-[0-9a-f]{16}-01$/.exec(sampled.body.headers.traceparent);
      assert.ok(fresh, `a new sampled trace: ${sampled.body.headers.traceparent}`);
      await eventually(() => spansOf(fresh[1]!).length >= 2, 10_000, 'the new trace\'s spans');
      const all = posts.slice(before).flatMap((p) => p.body as any[]);
      assert.deepEqual(all.filter((s) => unsampled.includes(s.tags?.['guid:x-request-id']) || String(s.tags?.['http.url']).includes('web.tel') || s.traceId === declined), [],
        'nothing was sent for the service sampled at 0 % nor for the trace its caller did not sample');
    });
  });
});
