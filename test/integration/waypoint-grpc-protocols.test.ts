/**
 * gRPC and HTTP protocol handling through the waypoint in a real `strait up`: a real @grpc/grpc-js client (through a
 * SocksForwarder) under a VirtualService split and a metadata match, gRPC statuses end to end and in Istio's metrics;
 * curl over HTTP/1.1 keep-alive, chunked 1 MiB uploads, h2c, a 5 MB download, and a backend that closes idle
 * keep-alive connections.
 * Addresses: pods 127.0.200.80-.89, Service VIPs 127.0.201.80-.89, nodes 127.0.203.21-.22, the waypoint
 * 127.0.203.23, the controller 127.0.203.29.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { docs } from '../helpers/manifests.js';
import { TestMesh, demoPod, node } from '../helpers/mesh.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';
import { EchoClient } from '../helpers/echo-grpc.js';
import type { SocksForwarder } from '../helpers/socks-forwarder.js';

const NS = 'proto';
const CLIENT = '127.0.200.80';
const IDLE_POD = '127.0.200.84';
/** The backend the test serves itself closes idle keep-alive connections after this long. */
const IDLE_KEEP_ALIVE_MS = 150;

const namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' } } };
const gateway = {
  apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: NS },
  spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }], addresses: [{ type: 'IPAddress', value: '127.0.203.23' }] },
};
const service = (name: string, ip: string, ports: unknown[], selector: Record<string, string> = { app: name }) => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS }, spec: { clusterIP: ip, selector, ports },
});
const HTTP_PORT = [{ name: 'http', port: 80, targetPort: 8080 }];
const grpcPod = (name: string, nodeName: string, ip: string, version: string) =>
  demoPod(NS, name, nodeName, ip, 'echo', { labels: { app: 'echo', version }, ports: [{ name: 'grpc', containerPort: 9090 }] });
/** A pod whose app is the test's own HTTP server (not the demo app). */
const testPod = (name: string, nodeName: string, ip: string) => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS, labels: { app: name } },
  spec: { nodeName, serviceAccountName: name, containers: [{ name: 'app', image: 'example/app', ports: [{ name: 'http', containerPort: 8080 }] }] },
  status: { podIP: ip },
});

const manifests = () => docs(
  namespace, gateway, node('node-a', '127.0.203.21'), node('node-b', '127.0.203.22'),
  demoPod(NS, 'client', 'node-a', CLIENT, 'client'),
  demoPod(NS, 'web-1', 'node-b', '127.0.200.81', 'web', { labels: { app: 'web' } }),
  grpcPod('echo-v1', 'node-b', '127.0.200.82', 'v1'),
  grpcPod('echo-v2', 'node-a', '127.0.200.83', 'v2'),
  testPod('idle', 'node-b', IDLE_POD),
  service('web', '127.0.201.80', HTTP_PORT),
  service('echo', '127.0.201.81', [{ name: 'grpc', port: 9090, targetPort: 'grpc' }]),
  service('idle', '127.0.201.84', HTTP_PORT),
  // The echo pods again, behind a route table that matches only calls with x-allowed: yes.
  service('strict', '127.0.201.85', [{ name: 'grpc', port: 9090, targetPort: 'grpc' }], { app: 'echo' }),
  {
    apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'strict', namespace: NS },
    spec: { hosts: ['strict'], http: [
      { match: [{ headers: { 'x-allowed': { exact: 'yes' } } }], route: [{ destination: { host: 'echo' } }] },
      { match: [{ headers: { 'x-subset': { exact: 'missing' } } }], route: [{ destination: { host: 'echo', subset: 'v9' } }] },
    ] },
  },
  {
    apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'echo', namespace: NS },
    spec: { host: 'echo', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] },
  },
  {
    apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'echo', namespace: NS },
    spec: {
      hosts: ['echo'],
      http: [
        { match: [{ headers: { 'x-echo-version': { exact: 'v2' } } }], route: [{ destination: { host: 'echo', subset: 'v2' } }] },
        { route: [{ destination: { host: 'echo', subset: 'v1' }, weight: 50 }, { destination: { host: 'echo', subset: 'v2' }, weight: 50 }] },
      ],
    },
  },
);

/** Sum of every sample of `name` whose labels include `labels`. */
function metricSum(text: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map([...m[2]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((kv) => [kv[1]!, kv[2]!]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) sum += Number(m[3]);
  }
  return sum;
}

describe('gRPC and HTTP protocols through the waypoint', () => {
  const dir = tempDir('wp-grpc-proto');
  let mesh: TestMesh;
  let idle: http.Server;
  const idleConnections: number[] = [];
  const forwarders: SocksForwarder[] = [];
  const clients: EchoClient[] = [];

  before(async () => {
    writeFileSync(join(dir.path, 'mesh.yaml'), manifests());
    // The idle pod's app: answers JSON and closes a keep-alive connection that stays idle IDLE_KEEP_ALIVE_MS, as Go's
    // IdleTimeout or nginx's keepalive_timeout do: with no `Keep-Alive: timeout=` hint in its answers, so the client
    // learns of it only from the close.
    const idleTimers = new WeakMap<object, NodeJS.Timeout>();
    idle = http.createServer((req, res) => {
      clearTimeout(idleTimers.get(req.socket));
      req.resume();
      req.on('end', () => res.end(JSON.stringify({ path: req.url })));
      res.on('finish', () => idleTimers.set(req.socket, setTimeout(() => req.socket.end(), IDLE_KEEP_ALIVE_MS)));
    });
    idle.keepAliveTimeout = 0;
    idle.on('connection', () => { idleConnections.push(idleConnections.length + 1); });
    await new Promise<void>((r) => idle.listen(8080, IDLE_POD, r));
    mesh = await new TestMesh(dir.path, ['--controller-address', '127.0.203.29']).start();
  });
  after(async () => {
    for (const c of clients) c.close();
    for (const f of forwarders) await f.close();
    await mesh?.stop();
    mesh?.cleanup();
    idle?.closeAllConnections();
    idle?.close();
    dir.remove();
  });

  const waypoint = () => (mesh.readState() as unknown as { waypoints: Record<string, { metrics: string }> }).waypoints[`${NS}/waypoint`]!;
  const echoClient = async () => {
    const fwd = await mesh.forwarder(CLIENT, 'node-a', `echo.${NS}`, 9090);
    forwarders.push(fwd);
    const c = new EchoClient(fwd.address, { authority: `echo.${NS}:9090` });
    clients.push(c);
    return c;
  };

  it('gRPC: unary Say reaches both versions under the VirtualService\'s 50/50 split', async () => {
    const client = await echoClient();
    const seen: Record<string, number> = {};
    for (let i = 0; i < 60; i++) {
      const r = await client.say(`hi ${i}`);
      assert.equal(r.code, 0, r.details);
      assert.equal(r.reply!.message, `hi ${i}`);
      seen[r.reply!.version] = (seen[r.reply!.version] ?? 0) + 1;
    }
    assert.ok((seen.v1 ?? 0) >= 12 && (seen.v2 ?? 0) >= 12, `both versions answer: ${JSON.stringify(seen)}`);
  });

  it('gRPC: 100 concurrent calls on one client connection (HTTP/2 streams at once) all answered, by both versions', async () => {
    const client = await echoClient();
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => client.say(`c${i}`, { delayMs: 20 })));
    assert.deepEqual(results.filter((r) => r.code !== 0).map((r) => r.details), []);
    assert.ok(results.every((r, i) => r.reply!.message === `c${i}`), 'each reply is its own call\'s');
    const versions = new Set(results.map((r) => r.reply!.version));
    assert.deepEqual([...versions].sort(), ['v1', 'v2']);
  });

  it('gRPC: a VirtualService header match routes on the call\'s metadata', async () => {
    const client = await echoClient();
    for (let i = 0; i < 20; i++) {
      const r = await client.say('to v2', { metadata: { 'x-echo-version': 'v2' } });
      assert.equal(r.code, 0, r.details);
      assert.equal(r.reply!.version, 'v2');
      assert.equal(r.reply!.metadata['x-echo-version'], 'v2', 'the metadata reached the backend');
    }
  });

  it('gRPC: the status a backend ends a call with reaches the client (details too), and Istio\'s metrics count it', async () => {
    const client = await echoClient();
    // A failed call is answered trailers-only (one HEADERS frame with END_STREAM carrying grpc-status).
    for (const code of [3, 5, 7, 13, 14, 16]) {
      const r = await client.fail(code, { message: `failed with ${code}`, metadata: { 'x-echo-version': 'v2' }, deadlineMs: 5000 });
      assert.equal(r.code, code, `${code}: ${r.details}`);
      assert.equal(r.details, `failed with ${code}`);
    }
    const ok = await client.fail(0, { metadata: { 'x-echo-version': 'v2' } });
    assert.equal(ok.code, 0);
    await eventually(async () => {
      const text = await (await fetch(`http://${waypoint().metrics}/metrics`)).text();
      const base = { reporter: 'waypoint', request_protocol: 'grpc', destination_service_name: 'echo', destination_version: 'v2', response_code: '200' };
      for (const code of ['0', '3', '5', '7', '13', '14', '16']) {
        if (metricSum(text, 'istio_requests_total', { ...base, grpc_response_status: code }) < 1) return false;
      }
      return true;
    }, 5000, 'istio_requests_total with request_protocol="grpc" and each grpc_response_status');
    // Access-log lines are written in batches: wait for the last call's.
    const access = await eventually(() => {
      const lines = mesh.logs(`waypoint/${NS}/waypoint`).filter((l) => l.msg === 'request complete' && l.path === '/strait.demo.v1.Echo/Fail');
      return lines.some((l) => l.grpc_status === 0) ? lines : undefined;
    }, 5000, 'the access-log lines of the Fail calls');
    const five = access.find((l) => l.grpc_status === 5);
    assert.ok(five, 'the access log has the call with grpc_status 5');
    assert.equal(five.protocol, 'HTTP/2 gRPC');
    assert.equal(five.attempts, 1, 'NOT_FOUND is not retried');
    // UNAVAILABLE is retried by Istio's default retry policy (2 retries on unavailable, cancelled, ...).
    assert.equal(access.find((l) => l.grpc_status === 14)?.attempts, 3);
  });

  it('gRPC: the waypoint\'s own answers carry a gRPC status: no route → UNIMPLEMENTED, a missing subset → UNAVAILABLE', async () => {
    const fwd = await mesh.forwarder(CLIENT, 'node-a', `strict.${NS}`, 9090);
    forwarders.push(fwd);
    const client = new EchoClient(fwd.address, { authority: `strict.${NS}:9090` });
    clients.push(client);
    const ok = await client.say('allowed', { metadata: { 'x-allowed': 'yes' } });
    assert.equal(ok.code, 0, ok.details);
    const none = await client.say('no route', { deadlineMs: 5000 });
    assert.equal(none.code, 12, `${none.code} ${none.details}`);
    const missing = await client.say('no subset', { metadata: { 'x-subset': 'missing' }, deadlineMs: 5000 });
    assert.equal(missing.code, 14, `${missing.code} ${missing.details}`);
    // Recorded as Envoy records them: HTTP 200 with the gRPC status (the NR flag says why).
    const line = await eventually(() => mesh.logs(`waypoint/${NS}/waypoint`).find((l) => l.msg === 'request complete' && l.response_flags === 'NR' && l.authority === `strict.${NS}:9090`), 3000, 'the no-route call\'s access-log line');
    assert.equal(line.status, 200);
    assert.equal(line.grpc_status, 12);
  });

  it('HTTP/1.1 keep-alive: several requests on one client connection, each routed and answered', async () => {
    const urls = Array.from({ length: 6 }, (_, i) => `http://web.${NS}/ka/${i}`);
    const r = await mesh.curl(CLIENT, 'node-a', urls[0]!, ['-o', '/dev/null', ...urls.slice(1).flatMap((u) => [u, '-o', '/dev/null']), '-w', '%{http_code} %{num_connects}\n']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.deepEqual(lines, ['200 1', '200 0', '200 0', '200 0', '200 0', '200 0'], 'one connection, six answers');
  });

  it('an HTTP/1.1 request asking to upgrade to h2c (curl --http2, Java\'s HttpClient) is served as HTTP/1.1, the upgrade ignored as Envoy does', async () => {
    const get = await mesh.curlJson(CLIENT, 'node-a', `http://web.${NS}/h2c-upgrade?x=1`, ['--http2']);
    assert.equal(get.status, 200, `exit ${get.exit} ${get.stderr}`);
    assert.equal(get.httpVersion, '1.1');
    assert.equal(get.body.path, '/h2c-upgrade');
    assert.equal(get.body.headers.upgrade, undefined, 'the backend is not asked to upgrade');
    assert.equal(get.body.headers['http2-settings'], undefined);
    const post = await mesh.curlJson(CLIENT, 'node-a', `http://web.${NS}/echo`, ['--http2', '--data-binary', 'upgrade-with-a-body']);
    assert.equal(post.status, 200, post.stderr);
    assert.equal(post.body.body, 'upgrade-with-a-body');
    // Two requests on one connection: the connection stays usable after the ignored upgrade.
    const urls = [`http://web.${NS}/u1`, `http://web.${NS}/u2`];
    const two = await mesh.curl(CLIENT, 'node-a', urls[0]!, ['--http2', '-o', '/dev/null', urls[1]!, '-o', '/dev/null', '-w', '%{http_code} %{num_connects}\n']);
    assert.deepEqual(two.stdout.trim().split('\n'), ['200 1', '200 0'], two.stderr);
  });

  it('a backend that closes idle keep-alive connections: the next request gets a new connection, not a dead one', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await mesh.curlJson(CLIENT, 'node-a', `http://idle.${NS}/round/${i}`, ['--max-time', '4']);
      assert.equal(r.status, 200, `round ${i}: exit ${r.exit} ${r.stderr}`);
      assert.equal(r.body.path, `/round/${i}`);
      // Longer than the backend keeps an idle connection: it closes the waypoint's upstream connection meanwhile.
      await new Promise((res) => setTimeout(res, IDLE_KEEP_ALIVE_MS * 4));
    }
    assert.ok(idleConnections.length >= 3, `a fresh upstream connection each round (${idleConnections.length})`);
  });

  it('HEAD, 204 and 304 answers carry no body, over HTTP/1.1 and h2c', async () => {
    for (const extra of [[], ['--http2-prior-knowledge']]) {
      const head = await mesh.curl(CLIENT, 'node-a', `http://web.${NS}/status/200`, [...extra, '-I', '-o', '/dev/null', '-w', '%{http_code} %{size_download}']);
      assert.equal(head.stdout, '200 0', head.stderr);
      for (const code of [204, 304]) {
        const r = await mesh.curl(CLIENT, 'node-a', `http://web.${NS}/status/${code}`, [...extra, '-o', '/dev/null', '-w', '%{http_code} %{size_download}']);
        assert.equal(r.stdout, `${code} 0`, r.stderr);
      }
    }
  });

  it('a chunked POST body of 1 MiB reaches the backend whole over HTTP/1.1 and h2c', async () => {
    const file = join(dir.path, 'body.bin');
    const body = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = 0x61 + (i % 26);
    writeFileSync(file, body);
    const h1 = await mesh.curlJson(CLIENT, 'node-a', `http://web.${NS}/echo`, ['-H', 'transfer-encoding: chunked', '--data-binary', `@${file}`, '--max-time', '20']);
    assert.equal(h1.status, 200, h1.stderr);
    assert.equal(h1.body.bodyBytes, body.length);
    assert.equal(h1.body.method, 'POST');
    assert.equal(h1.body.body, body.subarray(0, 64 * 1024).toString('latin1'), 'the first 64 KiB as sent');
    const h2 = await mesh.curlH2(CLIENT, 'node-a', `http://web.${NS}/echo`, ['--data-binary', `@${file}`, '--max-time', '20']);
    assert.equal(h2.status, 200, h2.stderr);
    assert.equal(h2.httpVersion, '2');
    assert.equal(h2.body.bodyBytes, body.length);
  });

  it('a 5,000,000-byte response arrives intact over HTTP/1.1 and h2c', async () => {
    const want = createHash('sha256').update(Buffer.alloc(5_000_000, 'x')).digest('hex');
    for (const extra of [[], ['--http2-prior-knowledge']]) {
      const out = join(dir.path, `bytes${extra.length}.bin`);
      const r = await mesh.curl(CLIENT, 'node-a', `http://web.${NS}/bytes/5000000`, [...extra, '--max-time', '20', '-o', out, '-w', '%{http_code} %{http_version} %{size_download}']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `200 ${extra.length ? '2' : '1.1'} 5000000`);
      assert.equal(createHash('sha256').update(readFileSync(out)).digest('hex'), want);
    }
  });
});
