// The demo app answers who it is and who called it, asking a ztunnel admin endpoint (here a real HTTP server
// serving a connections list, which is the whole interface the app consumes) which identity each caller had.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';
import { silentLogger } from '../../src/common/log.js';
import { startDemoApp, type DemoAppAnswer, type RunningDemoApp } from '../../src/demo/app.js';
import { CallerLookup } from '../../src/demo/caller-lookup.js';
import { httpGet } from '../../src/demo/http-get.js';

const CLIENT_ID = 'spiffe://cluster.local/ns/shop/sa/client';

/** A stand-in ztunnel admin: GET /connections lists what the test registered, and counts the requests. */
async function startAdmin(): Promise<{ server: Server; address: string; connections: Record<string, unknown>[]; hits: () => number }> {
  const connections: Record<string, unknown>[] = [];
  let hits = 0;
  const server = createServer((req, res) => {
    if (req.url !== '/connections') {
      res.writeHead(404).end();
      return;
    }
    hits++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ node: 'node-a', connections }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, address: `127.0.0.1:${(server.address() as AddressInfo).port}`, connections, hits: () => hits };
}

async function connectTo(app: RunningDemoApp): Promise<Socket> {
  const s = connect({ host: app.address, port: app.port });
  await once(s, 'connect');
  return s;
}

async function get(s: Socket, path = '/'): Promise<{ status: number; body: string }> {
  const r = await httpGet(s, { host: 'catalog.backend', path, timeoutMs: 5000 });
  assert.equal(r.kind, 'response', JSON.stringify(r));
  if (r.kind !== 'response') throw new Error('unreachable');
  return { status: r.status, body: r.body };
}

describe('demo app', () => {
  let admin: Awaited<ReturnType<typeof startAdmin>>;
  let app: RunningDemoApp;

  before(async () => {
    admin = await startAdmin();
    app = await startDemoApp({ address: '127.0.0.1', port: 0, app: 'catalog', version: 'v2', pod: 'catalog-v2', namespace: 'backend', node: 'node-a', ztunnelAdmin: admin.address }, silentLogger());
  });
  after(async () => {
    await app.close();
    admin.server.close();
  });

  it('answers /healthz with ok', async () => {
    const r = await get(await connectTo(app), '/healthz');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'ok\n');
  });

  it('answers with the identity the ztunnel recorded for the connection the request came on', async () => {
    const s = await connectTo(app);
    // The ztunnel's own end of its connection to the pod is the app's remote end: that is the key.
    admin.connections.push(
      { id: 1, direction: 'inbound', 'src.identity': CLIENT_ID, upstreamLocal: `${s.localAddress}:${s.localPort}`, 'dst.addr': `${app.address}:${app.port}` },
      // The ztunnel's connection to another pod from the same local address and port (the kernel allows it).
      { id: 9, direction: 'inbound', 'src.identity': 'spiffe://cluster.local/ns/store/sa/waypoint', upstreamLocal: `${s.localAddress}:${s.localPort}`, 'dst.addr': '127.0.10.22:8080' },
    );
    const r = await get(s, '/items?x=1');
    assert.equal(r.status, 200);
    const a = JSON.parse(r.body) as DemoAppAnswer;
    assert.deepEqual(a, {
      app: 'catalog', version: 'v2', pod: 'catalog-v2', namespace: 'backend', node: 'node-a', path: '/items',
      caller: { address: '127.0.0.1', identity: CLIENT_ID },
      status: 200, method: 'GET', query: { x: '1' }, protocol: 'HTTP/1.1', authority: 'catalog.backend',
      headers: { 'user-agent': 'strait-demo', accept: 'application/json', connection: 'close', host: 'catalog.backend' }, bodyBytes: 0,
    });
  });

  it('answers identity null for a caller that did not come through the mesh, and finds a later one that did', async () => {
    const plain = await connectTo(app);
    const r1 = JSON.parse((await get(plain)).body) as DemoAppAnswer;
    assert.equal(r1.caller.identity, null);
    // The snapshot just fetched must not hide a connection the ztunnel registers afterwards.
    const meshed = await connectTo(app);
    admin.connections.push({ id: 2, direction: 'inbound', 'src.identity': 'spiffe://cluster.local/ns/shop/sa/web', upstreamLocal: `${meshed.localAddress}:${meshed.localPort}` });
    const r2 = JSON.parse((await get(meshed)).body) as DemoAppAnswer;
    assert.equal(r2.caller.identity, 'spiffe://cluster.local/ns/shop/sa/web');
  });

  it('answers identity null when the ztunnel cannot be asked', async () => {
    const lonely = await startDemoApp({ address: '127.0.0.1', port: 0, app: 'web', version: 'v1', pod: 'web-1', namespace: 'shop', node: 'node-a', ztunnelAdmin: '127.0.0.1:1' }, silentLogger());
    try {
      const r = await get(await connectTo(lonely));
      assert.equal(r.status, 200);
      assert.equal((JSON.parse(r.body) as DemoAppAnswer).caller.identity, null);
    } finally {
      await lonely.close();
    }
  });
});

describe('caller lookup', () => {
  it('reuses a snapshot taken after the connection was accepted, and asks again otherwise', async () => {
    const admin = await startAdmin();
    try {
      let clock = 1000;
      const lookup = new CallerLookup(admin.address, 2000, () => clock);
      admin.connections.push({ upstreamLocal: '127.0.0.1:40000', 'src.identity': CLIENT_ID });
      assert.deepEqual(await lookup.identityOf('127.0.0.1:40000', 900, 1000), { identity: CLIENT_ID });
      assert.equal(admin.hits(), 1);
      clock = 1010;
      // Same connection, second request: the snapshot (taken at 1000) is newer than its accept time (900).
      assert.deepEqual(await lookup.identityOf('127.0.0.1:40000', 900, 1010), { identity: CLIENT_ID });
      assert.equal(admin.hits(), 1);
      // A connection accepted after the snapshot: ask again.
      admin.connections.push({ upstreamLocal: '127.0.0.1:40001', 'src.identity': 'spiffe://cluster.local/ns/shop/sa/web' });
      assert.deepEqual(await lookup.identityOf('127.0.0.1:40001', 1005, 1010), { identity: 'spiffe://cluster.local/ns/shop/sa/web' });
      assert.equal(admin.hits(), 2);
      // Requests arriving together share one fetch.
      clock = 1020;
      const both = await Promise.all([lookup.identityOf('127.0.0.1:50000', 1015, 1020), lookup.identityOf('127.0.0.1:50001', 1015, 1020)]);
      assert.deepEqual(both, [{ identity: null }, { identity: null }]);
      assert.equal(admin.hits(), 3);
    } finally {
      admin.server.close();
    }
  });

  it('tells apart the ztunnel\'s connections to two pods that share its local address and port', async () => {
    const admin = await startAdmin();
    try {
      const lookup = new CallerLookup(admin.address, 2000, () => 1000);
      // Linux hands out one ephemeral port to connections towards different destinations at once.
      admin.connections.push(
        { upstreamLocal: '127.0.0.1:40000', 'dst.addr': '127.0.10.2:8080', 'src.identity': CLIENT_ID },
        { upstreamLocal: '127.0.0.1:40000', 'dst.addr': '127.0.10.22:8080', 'src.identity': 'spiffe://cluster.local/ns/store/sa/waypoint' },
      );
      assert.deepEqual(await lookup.identityOf('127.0.0.1:40000', 900, 1000, '127.0.10.2:8080'), { identity: CLIENT_ID });
      assert.deepEqual(await lookup.identityOf('127.0.0.1:40000', 900, 1000, '127.0.10.22:8080'), { identity: 'spiffe://cluster.local/ns/store/sa/waypoint' });
      assert.deepEqual(await lookup.identityOf('127.0.0.1:40000', 900, 1000, '127.0.10.3:8080'), { identity: null }, 'another pod\'s connection is not this one\'s');
    } finally {
      admin.server.close();
    }
  });

  it('says why when the admin endpoint does not answer a connections list', async () => {
    const admin = await startAdmin();
    try {
      const lookup = new CallerLookup(admin.address.replace(/:\d+$/, ':1'), 500);
      const r = await lookup.identityOf('127.0.0.1:1234', 0, Date.now());
      assert.equal(r.identity, null);
      assert.match(r.error ?? '', /cannot ask the ztunnel at 127\.0\.0\.1:1/);
    } finally {
      admin.server.close();
    }
  });
});
