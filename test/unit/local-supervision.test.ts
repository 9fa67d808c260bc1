// How the local mesh decides a child is its own and ready, when addresses are free, and how long it waits
// between restarts: real HTTP servers and sockets on 127.0.0.1, port 0.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import net from 'node:net';
import { PID_HEADER } from '../../src/common/admin.js';
import { describeTaken, takenAddresses } from '../../src/local/preflight.js';
import { waitReady } from '../../src/local/readiness.js';
import { RESTART_MAX_MS, restartDelayMs } from '../../src/local/supervisor.js';

function serve(headers: Record<string, string>, status = 200): Promise<{ server: Server; url: string }> {
  const server = createServer((_req, res) => { res.writeHead(status, headers); res.end('ready\n'); });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const a = server.address() as net.AddressInfo;
    resolve({ server, url: `http://127.0.0.1:${a.port}/healthz/ready` });
  }));
}

describe('readiness of a child', () => {
  const servers: Server[] = [];
  after(() => { for (const s of servers) s.close(); });

  it('is proven only by a 200 that carries the child\'s own pid', async () => {
    const { server, url } = await serve({ [PID_HEADER]: '4242' });
    servers.push(server);
    assert.deepEqual(await waitReady({ url, pid: 4242, gone: () => false, timeoutMs: 2_000 }), { ready: true });
  });

  it('does not take another process\'s 200 for it, and says whose it was', async () => {
    const { server, url } = await serve({ [PID_HEADER]: '999' });
    servers.push(server);
    const o = await waitReady({ url, pid: 4242, gone: () => false, timeoutMs: 500 });
    assert.deepEqual(o, { ready: false, why: 'timeout', last: '200 from another process (pid 999)', answeredBy: '999' });
  });

  it('does not take a 200 without a pid for it (anything else listening there)', async () => {
    const { server, url } = await serve({});
    servers.push(server);
    const o = await waitReady({ url, pid: 4242, gone: () => false, timeoutMs: 500 });
    assert.equal(o.ready, false);
    assert.equal(!o.ready && o.answeredBy, 'unknown');
  });

  it('stops waiting as soon as the child is gone', async () => {
    const { server, url } = await serve({}, 503);
    servers.push(server);
    const started = Date.now();
    let calls = 0;
    const o = await waitReady({ url, pid: 1, gone: () => ++calls > 2, timeoutMs: 30_000 });
    assert.equal(!o.ready && o.why, 'exited');
    assert.match(!o.ready ? o.last : '', /^503 ready/);
    assert.ok(Date.now() - started < 5_000);
  });
});

describe('addresses checked before the mesh starts', () => {
  it('reports those another process listens on, once each, and not the free ones', async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()));
    const held = (holder.address() as net.AddressInfo).port;
    const free = net.createServer();
    await new Promise<void>((r) => free.listen(0, '127.0.0.1', () => r()));
    const freePort = (free.address() as net.AddressInfo).port;
    await new Promise<void>((r) => free.close(() => r()));
    try {
      const taken = await takenAddresses([
        { host: '127.0.0.1', port: held, what: 'controller xDS' },
        { host: '127.0.0.1', port: freePort, what: 'ztunnel admin' },
        { host: '127.0.0.1', port: held, what: 'the same again' },
      ]);
      assert.deepEqual(taken, [{ host: '127.0.0.1', port: held, what: 'controller xDS', code: 'EADDRINUSE' }]);
      assert.equal(describeTaken(taken), `127.0.0.1:${held} (controller xDS)`);
    } finally {
      holder.close();
    }
  });

  it('says how many more there are past the first few', () => {
    const many = Array.from({ length: 9 }, (_, i) => ({ host: '127.0.0.1', port: 15000 + i, what: `p${i}`, code: 'EADDRINUSE' }));
    assert.match(describeTaken(many, 3), /^127\.0\.0\.1:15000 \(p0\), 127\.0\.0\.1:15001 \(p1\), 127\.0\.0\.1:15002 \(p2\) and 6 more$/);
  });
});

describe('restart backoff', () => {
  it('doubles from half a second up to its cap', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7, 60].map(restartDelayMs), [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    assert.equal(RESTART_MAX_MS, 30_000);
  });
});
