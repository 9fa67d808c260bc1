/**
 * The waypoint as a process in a real `strait up`: started per waypoint Gateway, listed in the state file, serving
 * HTTP/1.1, HTTP/2 prior knowledge, WebSocket upgrades and plain TCP over HBONE between real ztunnels, refusing
 * malformed requests before any backend sees them, and started / stopped as the Gateway comes and goes.
 * Addresses: 127.0.180.0/24 (pods, VIPs .1-.101; nodes .201-.202, the waypoint .210, the controller .254).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { docs } from '../helpers/manifests.js';
import { TestMesh, alive } from '../helpers/mesh.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';
import { socks5Connect } from '../../src/demo/socks5-client.js';

const ns = (name: string, labels: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
const gateway = (name: string, address: string) => ({
  apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name, namespace: 'shop' },
  spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }], addresses: [{ type: 'IPAddress', value: address }] },
});
const node = (name: string, ip: string) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name }, status: { addresses: [{ type: 'InternalIP', address: ip }] } });
/** A pod on a node; `demo` runs the built-in demo app on 8080, otherwise the test serves its address itself. */
const pod = (name: string, node: string, ip: string, labels: Record<string, string>, demo = true) => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'shop', labels },
  spec: { nodeName: node, serviceAccountName: labels.app ?? name, containers: [{ name: 'app', image: demo ? 'strait/demo-app' : 'example/app', ports: [{ containerPort: 8080 }] }] },
  status: { podIP: ip },
});
const service = (name: string, ip: string, selector: Record<string, string>, ports: unknown[] = [{ name: 'http', port: 80, targetPort: 8080 }]) => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'shop' }, spec: { clusterIP: ip, selector, ports },
});

const CLIENT = '127.0.180.1';
const ECHO_POD = '127.0.180.21';
const WAYPOINT_ID = 'spiffe://cluster.local/ns/shop/sa/waypoint';

describe('the waypoint process in strait up', () => {
  const dir = tempDir('waypoint-process');
  let mesh: TestMesh | undefined;
  let echo: net.Server | undefined;
  const echoed: string[] = [];

  before(async () => {
    writeFileSync(join(dir.path, 'mesh.yaml'), docs(
      ns('shop', { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' }),
      node('node-a', '127.0.180.201'), node('node-b', '127.0.180.202'),
      gateway('waypoint', '127.0.180.210'),
      pod('client', 'node-a', CLIENT, { app: 'client' }),
      pod('api-v1', 'node-b', '127.0.180.11', { app: 'api', version: 'v1' }),
      pod('api-v2', 'node-b', '127.0.180.12', { app: 'api', version: 'v2' }),
      pod('echo', 'node-b', ECHO_POD, { app: 'echo' }, false),
      service('api', '127.0.180.100', { app: 'api' }),
      service('solo', '127.0.180.102', { app: 'api', version: 'v1' }),
      // No appProtocol and an unnamed port: the waypoint tells HTTP from anything else by the first bytes.
      service('echo', '127.0.180.101', { app: 'echo' }, [{ port: 7000, targetPort: 8080 }]),
    ));
    // The echo pod's app: a TCP echo that also answers an HTTP Upgrade with 101 and then echoes (a WebSocket stand-in).
    echo = net.createServer((s) => {
      let upgraded = false;
      let head = '';
      s.on('data', (d) => {
        if (upgraded || !/^GET /.test(head + d.toString('latin1'))) {
          echoed.push(d.toString('latin1'));
          s.write(d);
          return;
        }
        head += d.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        upgraded = true;
        s.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n');
        const rest = head.slice(head.indexOf('\r\n\r\n') + 4);
        if (rest) s.write(rest);
      });
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => echo!.listen(8080, ECHO_POD, r));
    mesh = await new TestMesh(dir.path, ['--controller-address', '127.0.180.254']).start();
  });
  after(async () => {
    await mesh?.stop();
    mesh?.cleanup();
    echo?.close();
    dir.remove();
  });

  const state = () => JSON.parse(readFileSync(mesh!.stateFile, 'utf8')) as { waypoints: Record<string, { pid: number | null; address: string; hbone: string; admin: string; ready: string; metrics: string; status: string }> };
  const viaSocks = async (host: string, port: number) => {
    const r = await socks5Connect({ proxy: { host: mesh!.state.nodes['node-a'].address, port: 15080 }, localAddress: CLIENT, target: { host, port }, timeoutMs: 5000 });
    assert.ok(r.ok, r.ok ? '' : r.message);
    return r.socket;
  };
  const exchange = (s: net.Socket, send: string, until: (got: string) => boolean) => new Promise<string>((resolve, reject) => {
    let got = '';
    const t = setTimeout(() => reject(new Error(`timed out; got ${JSON.stringify(got)}`)), 5000);
    s.on('data', (d) => { got += d.toString('latin1'); if (until(got)) { clearTimeout(t); resolve(got); } });
    s.on('close', () => { clearTimeout(t); resolve(got); });
    s.resume(); // socks5Connect hands the socket over paused
    s.write(send);
  });

  it('runs one waypoint per waypoint Gateway, listed in the state file, ready, with its identity in config_dump', async () => {
    const wp = state().waypoints['shop/waypoint'];
    assert.ok(wp && wp.pid && alive(wp.pid), JSON.stringify(state().waypoints));
    assert.equal(wp.status, 'running');
    assert.equal(wp.hbone, '127.0.180.210:15008', 'the address the Gateway gives');
    assert.equal((await fetch(`http://${wp.ready}/healthz/ready`)).status, 200);
    const dump = await (await fetch(`http://${wp.admin}/config_dump`)).json() as { waypoint: { identity: string }; services: string[] };
    assert.equal(dump.waypoint.identity, WAYPOINT_ID);
    assert.deepEqual(dump.services.sort(), ['shop/api', 'shop/echo', 'shop/solo']);
  });

  it('forwards HTTP/1.1 and HTTP/2 (prior knowledge) through the waypoint to every endpoint, which see the waypoint as the caller', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const r = await mesh!.curl(CLIENT, 'node-a', 'http://api.shop/hello', i % 2 ? ['--http2-prior-knowledge'] : []);
      assert.equal(r.code, 0, r.stderr);
      const body = JSON.parse(r.stdout) as { version: string; caller: { identity: string }; path: string };
      assert.equal(body.caller.identity, WAYPOINT_ID, 'the destination ztunnel saw the waypoint');
      assert.equal(body.path, '/hello');
      seen.add(body.version);
    }
    assert.deepEqual([...seen].sort(), ['v1', 'v2']);
    // Access-log lines are written in batches (at most 100 ms late).
    await eventually(() => mesh!.logs('waypoint/shop/waypoint').filter((l) => l.access && l.status === 200 && l.path === '/hello').length >= 6, 3000, 'the requests in the waypoint access log');
  });

  it('keeps no per-request state on a pooled upstream connection (many keep-alive requests, no listener build-up)', async () => {
    // One curl, one client connection, 40 requests: the waypoint reuses its upstream connections for them.
    const urls = Array.from({ length: 40 }, (_, i) => `http://api.shop/k${i}`);
    const r = await mesh!.curl(CLIENT, 'node-a', urls[0]!, [...urls.slice(1), '-o', '/dev/null', '-s', '-w', '%{http_code}\n']);
    assert.equal(r.code, 0, r.stderr);
    const text = readFileSync(join(mesh!.logDir.path, 'waypoint_shop_waypoint.log'), 'utf8');
    assert.doesNotMatch(text, /MaxListenersExceeded/, 'a listener per request piled up on an upstream connection');
  });

  it('does not reuse an upstream connection the backend closed while idle (the next request is answered)', async () => {
    // One endpoint: the second request is bound to find the connection the first one left in the pool.
    assert.equal((await mesh!.curl(CLIENT, 'node-a', 'http://solo.shop/before-idle')).code, 0);
    // The demo app closes keep-alive connections idle for 5 s (Node's default).
    await new Promise((r) => setTimeout(r, 6_500));
    const t0 = Date.now();
    const r = await mesh!.curl(CLIENT, 'node-a', 'http://solo.shop/after-idle', ['--max-time', '4']);
    assert.equal(r.code, 0, `answered after the backend closed its idle connection: ${r.stderr}`);
    assert.ok(Date.now() - t0 < 3_000);
  });

  it('cancels the upstream request when the client goes away (flag DC, logged when the client left)', async () => {
    const r = await mesh!.curl(CLIENT, 'node-a', 'http://api.shop/delay/4000', ['--max-time', '1']);
    assert.notEqual(r.code, 0, 'curl gave up');
    const line = await eventually(() => mesh!.logs('waypoint/shop/waypoint').find((l) => l.access && l.path === '/delay/4000'), 2_500, 'the access-log line, long before the backend would answer');
    assert.match(String(line.response_flags), /DC/);
    assert.ok(Number(line.duration_ms) < 2_500, `logged after ${line.duration_ms} ms`);
  });

  it('refuses a request with both Content-Length and Transfer-Encoding (smuggling) with 400, before any backend', async () => {
    const s = await viaSocks('api.shop', 80);
    const got = await exchange(s,
      'POST / HTTP/1.1\r\nhost: api.shop\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: api.shop\r\n\r\n',
      (g) => g.includes('\r\n\r\n'));
    s.destroy();
    assert.match(got, /^HTTP\/1\.1 400 /);
    await new Promise((r) => setTimeout(r, 300));
    const lines = mesh!.logs('waypoint/shop/waypoint');
    assert.ok(!lines.some((l) => l.access && String(l.path ?? '').includes('smuggled')), 'nothing reached a backend');
    for (const app of ['app/shop/api-v1/app:8080', 'app/shop/api-v2/app:8080']) {
      assert.ok(!mesh!.logs(app).some((l) => String(l.path ?? '').includes('smuggled')), `${app} never saw the smuggled request`);
    }
  });

  it('relays anything that is not HTTP as TCP to an endpoint, and passes an HTTP Upgrade through once the backend agrees', async () => {
    const s = await viaSocks('echo.shop', 7000);
    const got = await exchange(s, '\x00\x01binary-hello', (g) => g.includes('binary-hello'));
    s.destroy();
    assert.equal(got, '\x00\x01binary-hello');
    const w = await viaSocks('echo.shop', 7000);
    const up = await exchange(w, 'GET /ws HTTP/1.1\r\nhost: echo.shop\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n', (g) => g.includes('\r\n\r\n'));
    assert.match(up, /^HTTP\/1\.1 101 /);
    const after101 = await exchange(w, 'frames-both-ways', (g) => g.includes('frames-both-ways'));
    w.destroy();
    assert.ok(after101.includes('frames-both-ways'));
  });

  it('stops the waypoint when its Gateway goes and starts it again when it comes back', async () => {
    const pid = state().waypoints['shop/waypoint'].pid!;
    const file = join(dir.path, 'mesh.yaml');
    const text = readFileSync(file, 'utf8');
    const withoutGateway = text.split('\n---\n').filter((d) => !d.includes('"Gateway"')).join('\n---\n');
    writeFileSync(file, withoutGateway);
    await eventually(() => !state().waypoints['shop/waypoint'] && !alive(pid), 30_000, 'waypoint stopped');
    writeFileSync(file, text);
    const back = await eventually(() => state().waypoints['shop/waypoint']?.status === 'running' ? state().waypoints['shop/waypoint'] : undefined, 30_000, 'waypoint back');
    assert.notEqual(back.pid, pid);
    await eventually(async () => (await mesh!.curl(CLIENT, 'node-a', 'http://api.shop/')).code === 0, 15_000, 'traffic flows again');
  });
});
