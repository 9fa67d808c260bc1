/**
 * Bad input at the waypoint through a real `strait up`: malformed requests (bad header bytes, conflicting
 * Content-Length / Transfer-Encoding, oversized header blocks, a path with %00) answered 400 / 431 without the backend
 * ever seeing them (the demo app's per-key attempt count proves it), routes to a missing service answered with a flag
 * and a status in /debug/configz, and a backend that never reads a request body costing the waypoint bounded memory.
 * Addresses: 127.0.207.0/24 (pods .1-.39, VIPs .101-.119, nodes .201-.202, the waypoint .210, the controller .254).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { docs } from '../helpers/manifests.js';
import { TestMesh, demoPod, node } from '../helpers/mesh.js';
import { metricValue } from '../helpers/metrics.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';
import { socks5Connect } from '../../src/demo/socks5-client.js';

const NS = 'bad';
const CLIENT = '127.0.207.1';
const SINK_POD = '127.0.207.20';
const WAYPOINT = 'waypoint/bad/waypoint';

const service = (name: string, ip: string) => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS }, spec: { clusterIP: ip, selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
});

describe('bad input at the waypoint through strait up', () => {
  const dir = tempDir('waypoint-bad-input');
  let mesh: TestMesh;
  let sink: net.Server;
  const sinkSockets = new Set<net.Socket>();

  before(async () => {
    // The sink pod's app: reads a request's first bytes, then nothing more, and never answers.
    sink = net.createServer((s) => {
      sinkSockets.add(s);
      s.once('data', () => s.pause());
      s.on('error', () => undefined);
      s.on('close', () => sinkSockets.delete(s));
    });
    await new Promise<void>((r) => sink.listen(8080, SINK_POD, r));
    writeFileSync(join(dir.path, 'mesh.yaml'), docs(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' } } },
      node('node-a', '127.0.207.201'), node('node-b', '127.0.207.202'),
      {
        apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: NS },
        spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }], addresses: [{ type: 'IPAddress', value: '127.0.207.210' }] },
      },
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'client', namespace: NS, labels: { app: 'client' } }, spec: { nodeName: 'node-a', serviceAccountName: 'client', containers: [{ name: 'c', image: 'example/client' }] }, status: { podIP: CLIENT } },
      demoPod(NS, 'app', 'node-b', '127.0.207.11', 'app'),
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'sink', namespace: NS, labels: { app: 'sink' } }, spec: { nodeName: 'node-b', serviceAccountName: 'sink', containers: [{ name: 's', image: 'example/sink', ports: [{ containerPort: 8080 }] }] }, status: { podIP: SINK_POD } },
      service('app', '127.0.207.101'), service('sink', '127.0.207.102'),
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'lost', namespace: NS }, spec: { clusterIP: '127.0.207.103', selector: { app: 'app' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'astray', namespace: NS }, spec: { clusterIP: '127.0.207.104', selector: { app: 'app' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
      {
        apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'lost', namespace: NS },
        spec: { parentRefs: [{ group: '', kind: 'Service', name: 'lost', port: 80 }], rules: [{ backendRefs: [{ name: 'nowhere', port: 80 }] }] },
      },
      { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'astray', namespace: NS }, spec: { hosts: ['astray'], http: [{ route: [{ destination: { host: 'nowhere' } }] }] } },
    ));
    mesh = await new TestMesh(dir.path, ['--controller-address', '127.0.207.254']).start();
  });
  after(async () => {
    await mesh?.stop();
    mesh?.cleanup();
    for (const s of sinkSockets) s.destroy();
    sink?.close();
    dir.remove();
  });

  const wp = () => (mesh.readState() as unknown as { waypoints: Record<string, { pid: number; admin: string; metrics: string }> }).waypoints['bad/waypoint']!;
  const metrics = async () => (await fetch(`http://${wp().metrics}/metrics`)).text();
  const accessLines = () => mesh.logs(WAYPOINT).filter((l) => l.msg === 'request complete');
  /** Raw bytes from the client pod through its node's SOCKS5 to host:port; everything the waypoint answers until it closes (or 5 s). */
  const raw = async (host: string, bytes: string | Buffer): Promise<string> => {
    const r = await socks5Connect({ proxy: { host: mesh.state.nodes['node-a'].address, port: 15080 }, localAddress: CLIENT, target: { host, port: 80 }, timeoutMs: 5000 });
    assert.ok(r.ok, r.ok ? '' : r.message);
    const s = r.socket;
    return new Promise<string>((resolve) => {
      let got = '';
      const t = setTimeout(() => { s.destroy(); resolve(got); }, 5000);
      s.on('data', (d) => { got += d.toString('latin1'); });
      s.on('close', () => { clearTimeout(t); resolve(got); });
      s.on('error', () => undefined);
      s.resume();
      s.write(bytes);
    });
  };
  /** How many requests with this x-request-key the app has seen, counting the one this asks (1: none before). */
  const attemptOf = async (key: string) => {
    const r = await mesh.curlJson(CLIENT, 'node-a', 'http://app.bad/check', ['-H', `x-request-key: ${key}`]);
    assert.equal(r.status, 200, r.text);
    return r.body.attempt as number;
  };
  const malformed = async (status: string) => metricValue(await metrics(), 'strait_waypoint_malformed_requests_total', { status });

  describe('malformed requests never reach the backend', () => {
    it('refuses bad header bytes with 400', async () => {
      const key = randomUUID();
      const before = await malformed('400');
      const got = await raw('app.bad', `GET /x HTTP/1.1\r\nhost: app.bad\r\nx-request-key: ${key}\r\nx-bad: a\x01b\r\n\r\n`);
      assert.match(got, /^HTTP\/1\.1 400 /);
      const name = await raw('app.bad', `GET /x HTTP/1.1\r\nhost: app.bad\r\nx-request-key: ${key}\r\nbad header: x\r\n\r\n`);
      assert.match(name, /^HTTP\/1\.1 400 /);
      assert.equal(await attemptOf(key), 1, 'the app never saw either');
      assert.equal(await malformed('400'), before + 2);
      // Each has its access-log line, as Envoy writes one for a request its codec refused.
      const lines = await eventually(() => { const l = accessLines().filter((x) => x.response_flags === 'DPE' && x.status === 400); return l.length >= 2 ? l : undefined; }, 3000, 'DPE access-log lines');
      for (const l of lines) {
        assert.equal(l['src.identity'], 'spiffe://cluster.local/ns/bad/sa/client');
        assert.equal(l['dst.service'], 'app.bad.svc.cluster.local');
        assert.equal(l.attempts, 0);
        assert.match(l.error, /^HPE_/);
      }
    });

    it('refuses conflicting Content-Length and Transfer-Encoding (smuggling) with 400, the smuggled request included', async () => {
      const key = randomUUID();
      const smuggled = `GET /smuggled HTTP/1.1\r\nhost: app.bad\r\nx-request-key: ${key}\r\n\r\n`;
      const got = await raw('app.bad', `POST /x HTTP/1.1\r\nhost: app.bad\r\nx-request-key: ${key}\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`);
      assert.match(got, /^HTTP\/1\.1 400 /);
      assert.doesNotMatch(got, /HTTP\/1\.1 200/, 'no second response: the connection is closed');
      const doubled = await raw('app.bad', `POST /x HTTP/1.1\r\nhost: app.bad\r\nx-request-key: ${key}\r\ncontent-length: 4\r\ncontent-length: 5\r\n\r\nabcde`);
      assert.match(doubled, /^HTTP\/1\.1 400 /);
      assert.equal(await attemptOf(key), 1);
    });

    it('answers 431 to a header block over 60 KiB, over HTTP/1.1 and HTTP/2', async () => {
      const key = randomUUID();
      const before = await malformed('431');
      const big = ['-H', `x-request-key: ${key}`, '-H', `x-big: ${'a'.repeat(70 * 1024)}`];
      const h1 = await mesh.curlJson(CLIENT, 'node-a', 'http://app.bad/x', big);
      assert.equal(h1.status, 431, h1.stderr);
      assert.equal(await malformed('431'), before + 1);
      const h2 = await mesh.curlJson(CLIENT, 'node-a', 'http://app.bad/x', ['--http2-prior-knowledge', ...big]);
      assert.ok(h2.status === 431 || h2.status === 0, `HTTP/2: 431 or the stream refused (${h2.status} ${h2.stderr})`);
      assert.equal(await attemptOf(key), 1, 'the app never saw either');
    });

    it('refuses a path with %00 with 400 DPE, over HTTP/1.1 and HTTP/2', async () => {
      const key = randomUUID();
      for (const extra of [[], ['--http2-prior-knowledge']]) {
        const id = randomUUID();
        const r = await mesh.curlJson(CLIENT, 'node-a', 'http://app.bad/a%00b', [...extra, '-H', `x-request-key: ${key}`, '-H', `x-request-id: ${id}`]);
        assert.equal(r.status, 400);
        const line = await eventually(() => accessLines().find((l) => l.request_id === id), 3000, 'access-log line');
        assert.equal(line.response_flags, 'DPE');
        assert.equal(line.attempts, 0);
      }
      assert.equal(await attemptOf(key), 1);
    });

    it('keeps serving: the waypoint process is the same after all of it', async () => {
      const pid = wp().pid;
      assert.equal((await mesh.curlJson(CLIENT, 'node-a', 'http://app.bad/ok')).status, 200);
      assert.equal(wp().pid, pid);
      assert.equal(mesh.readState() && (mesh.readState() as unknown as { waypoints: Record<string, { restarts: number }> }).waypoints['bad/waypoint']!.restarts, 0);
    });
  });

  describe('routes to a missing service', () => {
    it('answers 500 for an HTTPRoute backendRef to a missing Service, with the route\'s status in /debug/configz', async () => {
      const id = randomUUID();
      const r = await mesh.curlJson(CLIENT, 'node-a', 'http://lost.bad/x', ['-H', `x-request-id: ${id}`]);
      assert.equal(r.status, 500);
      const line = await eventually(() => accessLines().find((l) => l.request_id === id), 3000, 'access-log line');
      assert.equal(line.response_flags, 'NC', 'a flag says why');
      assert.equal(line.attempts, 0);
      const configz = await (await fetch('http://127.0.207.254:15014/debug/configz')).json() as { httpRoutes: Record<string, unknown> };
      const status = JSON.stringify(configz.httpRoutes['bad/lost'] ?? configz.httpRoutes);
      assert.match(status, /ResolvedRefs/);
      assert.match(status, /BackendNotFound/);
    });

    it('answers 503 NC for a VirtualService destination that names no Service', async () => {
      const id = randomUUID();
      const r = await mesh.curlJson(CLIENT, 'node-a', 'http://astray.bad/x', ['--http2-prior-knowledge', '-H', `x-request-id: ${id}`]);
      assert.equal(r.status, 503);
      const line = await eventually(() => accessLines().find((l) => l.request_id === id), 3000, 'access-log line');
      assert.equal(line.response_flags, 'NC');
    });
  });

  describe('a backend that never reads the request body', () => {
    it('costs the waypoint bounded memory while a client pushes 64 MiB at it', async (t) => {
      const file = join(dir.path, 'body.bin');
      writeFileSync(file, Buffer.alloc(64 * 1024 * 1024, 0x61));
      const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${wp().pid}/status`, 'utf8'))![1]) * 1024;
      const before = rss();
      let peak = before;
      const sampler = setInterval(() => { peak = Math.max(peak, rss()); }, 50);
      try {
        const r = await mesh.curlJson(CLIENT, 'node-a', 'http://sink.bad/upload', ['--data-binary', `@${file}`, '--max-time', '4', '-H', 'content-type: application/octet-stream']);
        assert.equal(r.exit, 28, `the upload stalls (the backend reads nothing) until curl gives up: ${r.status} ${r.stderr}`);
      } finally {
        clearInterval(sampler);
      }
      t.diagnostic(`waypoint RSS ${(before / 1048576).toFixed(1)} MiB before, peak ${(peak / 1048576).toFixed(1)} MiB`);
      assert.ok(peak - before < 32 * 1024 * 1024, `waypoint RSS grew by ${((peak - before) / 1048576).toFixed(1)} MiB for a 64 MiB body the backend never read`);
      assert.equal((await mesh.curlJson(CLIENT, 'node-a', 'http://app.bad/after')).status, 200, 'and it still serves');
    });
  });
});
