// The demo's SOCKS5 client against the ztunnel's own SOCKS5 server code (acceptSocks5), and how the traffic
// generator classifies what comes back: answered, denied by policy, reset before an answer, error.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { silentLogger } from '../../src/common/log.js';
import { acceptSocks5, SOCKS5_REPLY, type Socks5Target } from '../../src/ztunnel/proxy/socks5.js';
import { encodeConnectRequest, socks5Connect } from '../../src/demo/socks5-client.js';
import { sendOnce } from '../../src/demo/traffic.js';
import type { DemoRoute } from '../../src/demo/routes.js';
import { startDemoApp, type RunningDemoApp } from '../../src/demo/app.js';

/** What the test proxy does with a CONNECT. */
type Behaviour = 'pipe' | 'deny' | 'reset-after-success' | 'close-after-success' | 'rbac';

interface Seen { source: string; target: Socks5Target }

/** A SOCKS5 proxy built on acceptSocks5: `pipe` connects every target to the demo app. */
async function startProxy(behaviour: () => Behaviour, app: () => RunningDemoApp, seen: Seen[]): Promise<Server> {
  const server = createServer((s) => {
    s.on('error', () => undefined);
    acceptSocks5(s).then((req) => {
      seen.push({ source: s.remoteAddress ?? '', target: req.target });
      const b = behaviour();
      if (b === 'deny') return req.reply(SOCKS5_REPLY.NOT_ALLOWED);
      if (b === 'rbac') {
        // A waypoint's L7 denial: it answers the request itself.
        req.reply(SOCKS5_REPLY.SUCCEEDED, { host: '127.0.0.1', port: 4321 });
        req.socket.once('data', () => req.socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 19\r\ncontent-type: text/plain\r\n\r\nRBAC: access denied'));
        req.socket.resume();
        return;
      }
      if (b === 'reset-after-success' || b === 'close-after-success') {
        req.reply(SOCKS5_REPLY.SUCCEEDED, { host: '127.0.0.1', port: 4321 });
        setTimeout(() => (b === 'reset-after-success' ? req.socket.resetAndDestroy() : req.socket.end()), 20);
        return;
      }
      const up = connect({ host: app().address, port: app().port }, () => {
        req.reply(SOCKS5_REPLY.SUCCEEDED, { host: up.localAddress ?? '0.0.0.0', port: up.localPort ?? 0 });
        req.socket.pipe(up).pipe(req.socket);
        req.socket.resume();
      });
      up.on('error', () => req.socket.destroy());
    }, () => undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

describe('demo SOCKS5 client and request classification', () => {
  let app: RunningDemoApp;
  let proxy: Server;
  let behaviour: Behaviour = 'pipe';
  const seen: Seen[] = [];
  const route = (): DemoRoute => ({
    name: 'client → catalog.backend', label: 'catalog.backend', layer: 'l4', method: 'GET', headers: {},
    from: { pod: 'client-1', namespace: 'shop', app: 'client', address: '127.0.0.1', node: 'node-a' },
    socks5: { host: '127.0.0.1', port: (proxy.address() as AddressInfo).port },
    host: 'catalog.backend.svc.cluster.local', port: 80, path: '/', expect: 'ok',
  });

  before(async () => {
    app = await startDemoApp({ address: '127.0.0.1', port: 0, app: 'catalog', version: 'v1', pod: 'catalog-v1', namespace: 'backend', node: 'node-b' }, silentLogger());
    proxy = await startProxy(() => behaviour, () => app, seen);
  });
  after(async () => {
    proxy.close();
    await app.close();
  });

  it('encodes CONNECT to a host name as RFC 1928 says', () => {
    assert.deepEqual([...encodeConnectRequest('web.shop', 80)], [5, 1, 0, 3, 8, ...Buffer.from('web.shop'), 0, 80]);
    assert.throws(() => encodeConnectRequest('', 80), /1 to 255 bytes/);
    assert.throws(() => encodeConnectRequest('x', 0), /port/);
  });

  it('connects from the given source address to a domain target and reads the bound address', async () => {
    behaviour = 'pipe';
    seen.length = 0;
    const r = await socks5Connect({ proxy: route().socks5, localAddress: '127.0.0.1', target: { host: 'web.shop', port: 80 }, timeoutMs: 5000 });
    assert.equal(r.ok, true);
    if (!r.ok) return;
    r.socket.destroy();
    assert.deepEqual(seen, [{ source: '127.0.0.1', target: { kind: 'domain', host: 'web.shop', port: 80 } }]);
    assert.equal(r.bound.host, '127.0.0.1');
    assert.ok(r.bound.port > 0);
  });

  it('reports the proxy\'s refusal code instead of failing', async () => {
    behaviour = 'deny';
    const r = await socks5Connect({ proxy: route().socks5, target: { host: 'orders.backend', port: 80 }, timeoutMs: 5000 });
    assert.deepEqual(r, { ok: false, reply: 0x02, message: 'connection not allowed by ruleset' });
  });

  it('rejects, saying which proxy, when nothing listens there', async () => {
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as AddressInfo).port;
    closed.close();
    await assert.rejects(socks5Connect({ proxy: { host: '127.0.0.1', port }, target: { host: 'web.shop', port: 80 }, timeoutMs: 5000 }), new RegExp(`127\\.0\\.0\\.1:${port}: ECONNREFUSED`));
  });

  it('rejects a server that is not SOCKS5', async () => {
    const http = createServer((s: Socket) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    try {
      await assert.rejects(socks5Connect({ proxy: { host: '127.0.0.1', port: (http.address() as AddressInfo).port }, target: { host: 'web.shop', port: 80 }, timeoutMs: 5000 }), /is not a SOCKS5 proxy/);
    } finally {
      http.close();
    }
  });

  it('classifies an answer from the demo app as ok, with version, pod and caller identity', async () => {
    behaviour = 'pipe';
    assert.deepEqual(await sendOnce(route(), 5000), { kind: 'ok', app: 'catalog', version: 'v1', pod: 'catalog-v1', callerIdentity: null, status: 200 });
  });

  it('sends the route\'s method, path and headers, and reads the tries the waypoint made from the answer\'s echoed headers', async () => {
    behaviour = 'pipe';
    const r = await sendOnce({ ...route(), method: 'DELETE', path: '/items/1', headers: { 'x-envoy-attempt-count': '3' } }, 5000);
    assert.deepEqual(r, { kind: 'ok', app: 'catalog', version: 'v1', pod: 'catalog-v1', callerIdentity: null, status: 200, attempts: 3 });
  });

  it('classifies an error status a pod gave itself as an error naming the pod, with its status and tries', async () => {
    behaviour = 'pipe';
    const r = await sendOnce({ ...route(), headers: { 'x-demo-status': '503', 'x-envoy-attempt-count': '4' } }, 5000);
    assert.deepEqual(r, { kind: 'error', message: 'HTTP 503 from catalog-v1', status: 503, pod: 'catalog-v1', attempts: 4 });
  });

  it('classifies a 403 with a proxy\'s body as denied, with the reason it gave', async () => {
    behaviour = 'rbac';
    assert.deepEqual(await sendOnce(route(), 5000), { kind: 'denied', reason: 'HTTP 403 RBAC: access denied', status: 403 });
  });

  it('classifies SOCKS5 0x02 as denied by policy', async () => {
    behaviour = 'deny';
    assert.deepEqual(await sendOnce(route(), 5000), { kind: 'denied', reason: 'refused by policy (SOCKS5 0x02)' });
  });

  it('classifies a reset or close right after SOCKS5 success, before any HTTP response, as denied', async () => {
    behaviour = 'reset-after-success';
    assert.deepEqual(await sendOnce(route(), 5000), { kind: 'denied', reason: 'connection reset before any HTTP response' });
    behaviour = 'close-after-success';
    assert.deepEqual(await sendOnce(route(), 5000), { kind: 'denied', reason: 'connection closed before any HTTP response' });
  });

  it('classifies an unreachable proxy as an error with the message', async () => {
    const r = await sendOnce({ ...route(), socks5: { host: '127.0.0.1', port: 1 } }, 2000);
    assert.equal(r.kind, 'error');
    assert.match(r.kind === 'error' ? r.message : '', /ECONNREFUSED/);
  });
});
