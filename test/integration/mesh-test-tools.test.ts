/**
 * The tools the waypoint's end-to-end tests drive a `strait up` mesh with, checked against a real mesh (no waypoint:
 * the ztunnels' L4 path): curl's JSON, h2c and batch variants, the SOCKS5 forwarder carrying a real gRPC client, and
 * demo pods whose strait.dev/demo-* annotations fail requests, also when edited while the mesh runs.
 * Addresses: nodes and controller 127.0.173.x, pods and services 127.0.174.x.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from '../helpers/eventually.js';
import { EchoClient } from '../helpers/echo-grpc.js';
import { docs, namespace } from '../helpers/manifests.js';
import { TestMesh, demoPod, killAll, node, pidsMentioning, policy } from '../helpers/mesh.js';
import { SocksForwarder } from '../helpers/socks-forwarder.js';
import { tempDir } from '../helpers/temp-dir.js';

const CONTROLLER = '127.0.173.254';
const CLIENT = '127.0.174.1';
const CLIENT_ID = 'spiffe://cluster.local/ns/apps/sa/client';

const svc = (name: string, ip: string, selector: Record<string, string>, ports: { name: string; port: number; targetPort: number }[]) => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'apps' }, spec: { clusterIP: ip, selector, ports },
});
const ECHO_PORTS = [{ name: 'http', containerPort: 8080 }, { name: 'grpc', containerPort: 9090 }];
const flaky = (annotations: Record<string, string>) => demoPod('apps', 'flaky', 'node-b', '127.0.174.4', 'flaky', { annotations });

describe('test tools against a strait up mesh', () => {
  const dir = tempDir('tools-manifests');
  let mesh: TestMesh;
  const forwarders: SocksForwarder[] = [];
  const clients: EchoClient[] = [];

  before(async () => {
    writeFileSync(join(dir.path, 'mesh.yaml'), docs(
      namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
      node('node-a', '127.0.173.1'), node('node-b', '127.0.173.2'),
      demoPod('apps', 'client', 'node-a', CLIENT, 'client'),
      demoPod('apps', 'echo-v1', 'node-b', '127.0.174.2', 'echo', { labels: { app: 'echo', version: 'v1' }, ports: ECHO_PORTS }),
      demoPod('apps', 'echo-v2', 'node-a', '127.0.174.3', 'echo', { labels: { app: 'echo', version: 'v2' }, ports: ECHO_PORTS }),
      demoPod('apps', 'locked', 'node-b', '127.0.174.5', 'locked', { ports: ECHO_PORTS }),
      svc('echo', '127.0.174.100', { app: 'echo' }, [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'grpc', port: 9090, targetPort: 9090 }]),
      svc('locked', '127.0.174.102', { app: 'locked' }, [{ name: 'grpc', port: 9090, targetPort: 9090 }]),
      policy('apps', 'deny-client', { selector: { matchLabels: { app: 'locked' } }, action: 'DENY', rules: [{ from: [{ source: { principals: ['cluster.local/ns/apps/sa/client'] } }] }] }),
    ));
    writeFileSync(join(dir.path, 'flaky.yaml'), docs(
      flaky({ 'strait.dev/demo-fail-first': '1', 'strait.dev/demo-fail-status': '503' }),
      svc('flaky', '127.0.174.101', { app: 'flaky' }, [{ name: 'http', port: 80, targetPort: 8080 }]),
    ));
    mesh = await new TestMesh(dir.path, ['--controller-address', CONTROLLER]).start();
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(forwarders.map((f) => f.close()));
    await mesh?.stop();
    killAll(['127.0.173.', '127.0.174.'].flatMap((t) => pidsMentioning(t)));
    mesh?.cleanup();
    dir.remove();
  });

  it('curlJson returns the status, response headers and parsed body of a request through the mesh', async () => {
    const r = await mesh.curlJson(CLIENT, 'node-a', 'http://echo.apps/echo?x=1', ['-H', 'x-test: yes', '-d', 'payload']);
    assert.equal(r.exit, 0, r.stderr);
    assert.equal(r.status, 200);
    assert.equal(r.httpVersion, '1.1');
    assert.deepEqual(r.headers['content-type'], ['application/json']);
    assert.equal(r.body.app, 'echo');
    assert.equal(r.body.caller.identity, CLIENT_ID, 'the app saw the caller\'s mesh identity');
    assert.equal(r.body.headers['x-test'], 'yes');
    assert.equal(r.body.body, 'payload');
    assert.deepEqual(r.body.query, { x: '1' });
    const gone = await mesh.curlJson(CLIENT, 'node-a', 'http://nowhere.apps/');
    assert.equal(gone.status, 0, 'no answer is status 0');
    assert.notEqual(gone.exit, 0);
  });

  it('curlH2 speaks HTTP/2 with prior knowledge end to end', async () => {
    const r = await mesh.curlH2(CLIENT, 'node-a', 'http://echo.apps/status/418');
    assert.equal(r.status, 418);
    assert.equal(r.httpVersion, '2');
    assert.equal(r.body.protocol, 'HTTP/2');
    assert.equal(r.body.status, 418);
  });

  it('curlBatch runs 1,000 requests in one curl process and tallies the versions that answered', async (t) => {
    const r = await mesh.curlBatch(CLIENT, 'node-a', 'http://echo.apps/', 1000);
    t.diagnostic(`1,000 HTTP/1.1 requests through the mesh in ${r.durationMs} ms: ${JSON.stringify(r.tally)}`);
    assert.equal(r.exit, 0, r.stderr);
    assert.deepEqual(r.statuses, { 200: 1000 });
    assert.equal((r.tally['v1'] ?? 0) + (r.tally['v2'] ?? 0), 1000);
    assert.ok((r.tally['v1'] ?? 0) > 0 && (r.tally['v2'] ?? 0) > 0, `both versions answered: ${JSON.stringify(r.tally)}`);
    assert.equal(r.results.every((x) => x.body?.caller.identity === CLIENT_ID), true);
    assert.ok(r.durationMs < 60_000, `took ${r.durationMs} ms`);
  });

  it('curlBatch over h2c, with the path and headers of each request its own', async (t) => {
    const r = await mesh.curlBatch(CLIENT, 'node-a', (i) => `http://echo.apps/status/${i % 2 ? 201 : 202}`, 300, {
      http2: true, headersFor: (i) => ({ 'x-request-key': `k${i}` }), tally: 'protocol',
    });
    t.diagnostic(`300 h2c requests through the mesh in ${r.durationMs} ms`);
    assert.deepEqual(r.statuses, { 201: 150, 202: 150 });
    assert.deepEqual(r.tally, { 'HTTP/2': 300 });
    assert.deepEqual(r.results.map((x) => x.body.headers['x-request-key']), Array.from({ length: 300 }, (_, i) => `k${i}`));
    assert.equal(r.results.every((x) => x.body.attempt === 1), true, 'each key was seen once');
  });

  it('a pod annotated demo-fail-first 1 fails the first request of every key, and a retry of the key succeeds', async () => {
    const keys = await mesh.curlBatch(CLIENT, 'node-a', 'http://flaky.apps/', 40, { headersFor: (i) => ({ 'x-request-key': `r${i % 20}` }), parallel: 1 });
    // Sequential: r0..r19 each fail once, then each second request of a key succeeds.
    assert.deepEqual(keys.results.map((x) => x.status), [...Array(20).fill(503), ...Array(20).fill(200)]);
    assert.deepEqual(keys.results.slice(20).map((x) => x.body.attempt), Array(20).fill(2));
  });

  it('applies an edited demo annotation by restarting the pod\'s app with the new flags', async () => {
    const before = mesh.readState().apps['apps/flaky/app:8080']!.pid;
    writeFileSync(join(dir.path, 'flaky.yaml'), docs(
      flaky({ 'strait.dev/demo-fail-ratio': '1', 'strait.dev/demo-fail-status': '502' }),
      svc('flaky', '127.0.174.101', { app: 'flaky' }, [{ name: 'http', port: 80, targetPort: 8080 }]),
    ));
    await eventually(() => {
      const a = mesh.readState().apps['apps/flaky/app:8080'];
      return a?.pid !== before && a?.status === 'running';
    }, 20_000, 'flaky app restarted');
    const r = await mesh.curlBatch(CLIENT, 'node-a', 'http://flaky.apps/', 20);
    assert.deepEqual(r.statuses, { 502: 20 });
  });

  it('keeps a pod\'s app running when an edit gives it a bad demo annotation, and logs what is wrong', async () => {
    const before = mesh.readState().apps['apps/flaky/app:8080']!.pid;
    writeFileSync(join(dir.path, 'flaky.yaml'), docs(
      flaky({ 'strait.dev/demo-fail-ratio': 'often' }),
      svc('flaky', '127.0.174.101', { app: 'flaky' }, [{ name: 'http', port: 80, targetPort: 8080 }]),
    ));
    await mesh.proc.waitFor((l) => String(l.msg).includes('Pod apps/flaky: annotation strait.dev/demo-fail-ratio: "often" is not a share from 0 to 1'), 10_000, 'the bad annotation reported');
    await new Promise((r) => setTimeout(r, 2500)); // a reconcile that would stop the app has run by now
    const a = mesh.readState().apps['apps/flaky/app:8080'];
    assert.equal(a?.pid, before);
    assert.equal(a?.status, 'running');
    assert.deepEqual((await mesh.curlBatch(CLIENT, 'node-a', 'http://flaky.apps/', 5)).statuses, { 502: 5 }, 'as before the bad edit');
  });

  it('SocksForwarder carries a real gRPC client through the mesh to the demo Echo service', async () => {
    const fwd = await mesh.forwarder(CLIENT, 'node-a', 'echo.apps', 9090);
    forwarders.push(fwd);
    const client = new EchoClient(fwd.address, { authority: 'echo.apps:9090' });
    clients.push(client);
    const pods = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const r = await client.say(`hello ${i}`, { metadata: { 'x-request-key': `g${i}` } });
      assert.equal(r.code, 0, r.details);
      assert.equal(r.reply?.message, `hello ${i}`);
      assert.equal(r.reply?.app, 'echo');
      assert.equal(r.reply?.metadata['x-request-key'], `g${i}`);
      pods.add(r.reply!.pod);
    }
    assert.ok([...pods].every((p) => p === 'echo-v1' || p === 'echo-v2'), [...pods].join());
    const f = await client.fail(9, { message: 'precondition' });
    assert.equal(f.code, 9);
    assert.equal(f.details, 'precondition');
    assert.ok(fwd.accepted >= 1);
    assert.deepEqual(fwd.failures, []);
  });

  it('SocksForwarder records a SOCKS5 refusal and closes the client\'s connection, so the call fails UNAVAILABLE', async () => {
    const fwd = await SocksForwarder.start({ listen: { host: '127.0.173.100', port: 0 }, proxy: { host: '127.0.173.1', port: 15080 }, source: CLIENT, target: { host: 'locked.apps', port: 9090 } });
    forwarders.push(fwd);
    const client = new EchoClient(fwd.address, { authority: 'locked.apps:9090' });
    clients.push(client);
    const r = await client.say('let me in', { deadlineMs: 5000 });
    assert.equal(r.code, 14, `${r.code} ${r.details}`);
    assert.ok(fwd.failures.length >= 1, 'the refusal is recorded');
    assert.equal(fwd.failures[0]!.reply, 0x02, JSON.stringify(fwd.failures));
    await fwd.close();
    assert.equal(fwd.openConnections, 0);
  });
});
