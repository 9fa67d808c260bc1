/**
 * What a user reads about a connection — Istio's TCP metrics and the access log — on both ztunnels of the real local
 * mesh (`strait up`), checked against what curl itself counted. Addresses: nodes and controller 127.0.141.x, pods
 * and VIPs 127.0.142.x.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { docs, namespace, service } from '../helpers/manifests.js';
import { TestMesh, appPod, node, policy } from '../helpers/mesh.js';
import { metricValue } from '../helpers/metrics.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';

const ID = (ns: string, sa: string) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;
const COUNTER = '127.0.142.1';
const SERVER = '127.0.142.2';
const LOCKED = '127.0.142.3';
const SERVER_VIP = '127.0.142.101';
const SERVER_HOST = 'server.apps.svc.cluster.local';

const manifests = docs(
  namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
  node('node-a', '127.0.141.1'),
  node('node-b', '127.0.141.2'),
  appPod('apps', 'counter', 'node-a', COUNTER, 'counter'),
  appPod('apps', 'server', 'node-b', SERVER, 'server'),
  appPod('apps', 'locked', 'node-b', LOCKED, 'locked'),
  service('apps', 'server', { ip: SERVER_VIP, selector: { app: 'server' }, ports: [{ port: 80, targetPort: 'http', name: 'http' }] }),
  service('apps', 'locked', { ip: '127.0.142.103', selector: { app: 'locked' }, ports: [{ port: 80, targetPort: 'http', name: 'http' }] }),
  // Bound to a waypoint no Gateway defines, so it has no address: traffic to it is refused at the source, never sent
  // around the waypoint.
  service('apps', 'reviews', { ip: '127.0.142.102', selector: { app: 'server' }, ports: [{ port: 80, targetPort: 'http', name: 'http' }], labels: { 'istio.io/use-waypoint': 'waypoint' } }),
  // Only L7 fields: ambient drops this ALLOW rule at L4, so the policy admits nothing until a waypoint enforces it.
  policy('apps', 'get-only', { selector: { matchLabels: { app: 'locked' } }, action: 'ALLOW', rules: [{ to: [{ operation: { methods: ['GET'] } }] }] }),
);

describe('ztunnel telemetry, both ends', () => {
  const dir = tempDir('telemetry-manifests');
  let mesh: TestMesh;

  before(async () => {
    writeFileSync(join(dir.path, 'mesh.yaml'), manifests);
    mesh = await new TestMesh(dir.path, ['--controller-address', '127.0.141.254']).start();
  });
  after(async () => {
    await mesh?.stop();
    mesh?.cleanup();
    dir.remove();
  });

  /** curl from the counter pod; returns the bytes curl sent (the request) and received (the response). */
  async function countedRequest(url: string): Promise<{ request: number; response: number }> {
    const r = await mesh.curl(COUNTER, 'node-a', url, ['-o', '/dev/null', '-w', '%{size_request} %{size_header} %{size_download}']);
    assert.equal(r.code, 0, r.stderr);
    const [request, header, body] = r.stdout.trim().split(' ').map(Number) as [number, number, number];
    return { request, response: header + body };
  }

  const series = (reporter: string) => ({ reporter, source_workload: 'counter', destination_workload: 'server' });

  it('counts istio_tcp_sent_bytes_total as the response (server → client) and received as the request, as Istio does, on both reporters and in the access log', async () => {
    const { request, response } = await countedRequest(`http://${SERVER_HOST}/hello?pad=${'x'.repeat(300)}`);
    assert.notEqual(request, response, 'the test needs a request and a response of different sizes');
    const out = await eventually(() => mesh.logs('ztunnel/node-a').find((l) => l.msg === 'connection complete' && l.direction === 'outbound' && l['src.workload'] === 'counter'), 5000, 'source access log');
    const inn = await eventually(() => mesh.logs('ztunnel/node-b').find((l) => l.msg === 'connection complete' && l.direction === 'inbound' && l['src.workload'] === 'counter'), 5000, 'destination access log');
    for (const line of [out, inn]) {
      assert.equal(line.bytes_sent, response, `${line.direction}: bytes_sent is what the server sent`);
      assert.equal(line.bytes_recv, request, `${line.direction}: bytes_recv is what the client sent`);
    }
    const a = await mesh.metrics('node-a');
    const b = await mesh.metrics('node-b');
    assert.equal(metricValue(a, 'istio_tcp_sent_bytes_total', series('source')), response);
    assert.equal(metricValue(a, 'istio_tcp_received_bytes_total', series('source')), request);
    assert.equal(metricValue(b, 'istio_tcp_sent_bytes_total', series('destination')), response);
    assert.equal(metricValue(b, 'istio_tcp_received_bytes_total', series('destination')), request);
  });

  it('names the service on the destination side as the source side does: metrics\' destination_service and the inbound access log\'s dst.service', async () => {
    await countedRequest(`http://${SERVER_VIP}/by-vip`);
    const inn = await eventually(() => mesh.logs('ztunnel/node-b').find((l) => l.msg === 'connection complete' && l.direction === 'inbound' && l['src.workload'] === 'counter'), 5000, 'destination access log');
    assert.equal(inn['dst.service'], SERVER_HOST);
    const b = await mesh.metrics('node-b');
    const labels = { ...series('destination'), destination_service: SERVER_HOST, destination_service_name: 'server', destination_service_namespace: 'apps' };
    assert.ok(metricValue(b, 'istio_tcp_connections_opened_total', labels) >= 1, 'reporter="destination" series name the service');
    assert.equal(metricValue(b, 'istio_tcp_connections_opened_total', { ...series('destination'), destination_service: 'unknown' }), 0, 'and none says "unknown"');
    const a = await mesh.metrics('node-a');
    assert.ok(metricValue(a, 'istio_tcp_connections_opened_total', { ...series('source'), destination_service: SERVER_HOST }) >= 1, 'as the source does');
  });

  it('writes the node once on the "ztunnel listening" line', () => {
    const raw = readFileSync(join(mesh.logDir.path, 'ztunnel_node-a.log'), 'utf8').split('\n').find((l) => l.includes('"msg":"ztunnel listening"'));
    assert.ok(raw, 'the line is in the log');
    const nodes = [...raw.matchAll(/"node":/g)].length;
    assert.equal(nodes, 1, `"node" ${nodes} times: ${raw}`);
  });

  it('names the source workload and identity on the refused line for traffic to a waypoint-bound service', async () => {
    const r = await mesh.curl(COUNTER, 'node-a', 'http://reviews.apps/');
    assert.notEqual(r.code, 0, 'refused');
    const line = await eventually(() => mesh.logs('ztunnel/node-a').find((l) => l.msg === 'connection refused' && l.reason === 'waypoint_unready'), 5000, 'the refused line');
    assert.equal(line['src.workload'], 'counter');
    assert.equal(line['src.identity'], ID('apps', 'counter'));
    assert.equal(line['dst.service'], 'reviews.apps.svc.cluster.local');
    assert.match(String(line.error), /bound to waypoint apps\/waypoint/);
  });

  it('says in the access log that a connection was denied because an ALLOW rule needing L7 was dropped', async () => {
    const r = await mesh.curl(COUNTER, 'node-a', 'http://locked.apps/');
    assert.notEqual(r.code, 0, 'denied');
    const line = await eventually(() => mesh.logs('ztunnel/node-b').find((l) => l.msg === 'connection refused' && l.reason === 'policy_denied' && l['dst.workload'] === 'locked'), 5000, 'the refused line at the destination');
    assert.match(String(line.error), /no ALLOW policy matched \(apps\/get-only\)/);
    assert.match(String(line.error), /apps\/get-only rules\[0\] dropped: to\[0\]\.operation\.methods need a waypoint/);
    assert.match(String(line.error), /bind a waypoint/);
  });

  it('shows the node\'s cores and memory in /config_dump', async () => {
    const dump = await mesh.configDump('node-a');
    assert.equal(dump.nodeInfo.cpus.logical, os.cpus().length);
    assert.ok(dump.nodeInfo.cpus.physical >= 1 && dump.nodeInfo.cpus.physical <= dump.nodeInfo.cpus.logical);
    assert.equal(dump.nodeInfo.memory.totalBytes, os.totalmem());
    assert.ok(dump.nodeInfo.memory.availableBytes > 0 && dump.nodeInfo.memory.availableBytes <= dump.nodeInfo.memory.totalBytes);
    assert.equal(dump.nodeInfo.os.kernel, os.release());
    assert.equal(dump.nodeInfo.hostname, os.hostname());
  });
});
