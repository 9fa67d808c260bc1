import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import http2 from 'node:http2';
import { Duplex, PassThrough } from 'node:stream';
import { H2Connection } from '../../src/hbone/h2/connection.js';
import type { H2Stream } from '../../src/hbone/h2/stream.js';
import { relay, RELAY_BUFFER_BYTES } from '../../src/hbone/relay.js';

const h2Servers: net.Server[] = [];

/** A connected pair of TCP sockets on 127.0.0.1: [client side, server side]. */
async function socketPair(server: net.Server): Promise<[net.Socket, net.Socket]> {
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const client = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, allowHalfOpen: true });
  await once(client, 'connect');
  const [peer] = await accepted;
  return [client, peer];
}

function readAll(s: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => resolve(Buffer.concat(chunks)));
    s.once('error', reject);
  });
}

/** Listener count on the events relay() uses (net.Socket has some of its own). */
function listeners(s: Duplex): number {
  return ['data', 'end', 'finish', 'drain', 'error', 'close'].reduce((n, e) => n + s.listenerCount(e), 0);
}

describe('relay', () => {
  let server: net.Server;
  before(async () => {
    // allowHalfOpen: false on purpose: relay() must still keep half-closed sockets able to send.
    server = net.createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });
  after(() => server.close());

  it('copies both ways, counts bytes, and keeps the other direction open after one side ends (half-close)', async () => {
    // outer client ⇄ [a | relay | b] ⇄ outer target
    const [client, a] = await socketPair(server);
    const [b, target] = await socketPair(server);
    target.allowHalfOpen = true;
    const seen: Array<[number, number]> = [];
    const before = [listeners(a), listeners(b)];
    const done = relay(a, b, { onBytes: (x, y) => seen.push([x, y]) });

    const targetGot = readAll(target);
    const clientGot = readAll(client);
    client.end('request bytes');
    assert.equal((await targetGot).toString(), 'request bytes'); // the FIN reached the target
    // The target answers after the client's FIN: the reply must still arrive.
    await new Promise((r) => setTimeout(r, 20));
    target.write('reply-1 ');
    target.end('reply-2');
    assert.equal((await clientGot).toString(), 'reply-1 reply-2');

    const r = await done;
    assert.equal(r.aToB, 'request bytes'.length);
    assert.equal(r.bToA, 'reply-1 reply-2'.length);
    assert.equal(r.error, undefined);
    assert.equal(r.resetBy, undefined);
    assert.equal(seen.reduce((n, [x]) => n + x, 0), r.aToB);
    assert.equal(seen.reduce((n, [, y]) => n + y, 0), r.bToA);
    assert.ok(a.destroyed && b.destroyed);
    assert.deepEqual([listeners(a), listeners(b)], before, 'relay removed every listener it added');
    client.destroy();
    target.destroy();
  });

  it('resets the other side when one side is reset, and says which side failed', async () => {
    const [client, a] = await socketPair(server);
    const [b, target] = await socketPair(server);
    const before = [listeners(a), listeners(b)];
    const done = relay(a, b);
    client.write('hello');
    await once(target, 'data');
    const clientClosed = new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      let error: NodeJS.ErrnoException | undefined;
      client.on('error', (e) => { error = e; });
      client.once('close', () => resolve(error));
    });
    target.resetAndDestroy(); // RST towards b
    const r = await done;
    assert.equal(r.resetBy, 'b');
    assert.ok(r.error, 'an error is reported');
    // The client sees a reset (not a clean FIN) promptly.
    const err = await clientClosed;
    assert.equal(err?.code, 'ECONNRESET');
    assert.deepEqual([listeners(a), listeners(b)], before, 'relay removed every listener it added');
  });

  it('applies backpressure instead of buffering without bound', async () => {
    const a = new PassThrough();
    const b = new Duplex({
      highWaterMark: 1024,
      read() {},
      write(_chunk, _enc, cb) {
        // a slow consumer: never calls back until released
        pendingCallbacks.push(cb);
      },
    });
    const pendingCallbacks: Array<() => void> = [];
    const done = relay(a, b);
    const chunk = Buffer.alloc(64 * 1024);
    for (let i = 0; i < 50; i++) a.write(chunk);
    // The relay pauses `a` once b holds its budget; then nothing more moves until the consumer is released.
    const until = Date.now() + 2000;
    while (!a.isPaused() && Date.now() < until) await new Promise((r) => setTimeout(r, 1));
    // Only a bounded amount entered b's buffer (the relay's budget plus the chunk that crossed it); the rest
    // waits in a, which is paused.
    assert.ok(b.writableLength <= RELAY_BUFFER_BYTES + chunk.length, `b buffered ${b.writableLength} bytes`);
    const held = a.readableLength + a.writableLength;
    assert.ok(held >= 50 * chunk.length - RELAY_BUFFER_BYTES - 2 * chunk.length, `a holds the rest (${held} bytes)`);
    assert.equal(a.isPaused(), true);
    // Release the consumer; everything flows.
    const pump = setInterval(() => pendingCallbacks.splice(0).forEach((cb) => cb()), 1);
    a.end();
    b.push(null);
    const r = await done;
    clearInterval(pump);
    assert.equal(r.aToB, 50 * chunk.length);
    assert.equal(r.error, undefined);
  });

  it('fails at once when a side is already destroyed', async () => {
    const a = new PassThrough();
    const b = new PassThrough();
    b.destroy();
    const r = await relay(a, b);
    assert.equal(r.resetBy, 'b');
    assert.ok(a.destroyed);
  });

  it('resets an HTTP/2 stream with RST_STREAM(CANCEL) when the socket side fails', async () => {
    // The HBONE side is our own HTTP/2 (what relay() gets in the proxies); the peer is node:http2 (nghttp2).
    let conn: H2Connection | undefined;
    const serverStream = new Promise<H2Stream>((resolve) => {
      const h2 = net.createServer((socket) => {
        conn = new H2Connection(socket, { role: 'server' });
        conn.on('error', () => undefined);
        conn.on('stream', (st: H2Stream) => resolve(st));
      });
      h2.listen(0, '127.0.0.1');
      h2Servers.push(h2);
    });
    await once(h2Servers[h2Servers.length - 1]!, 'listening');
    const session = http2.connect(`http://127.0.0.1:${(h2Servers[h2Servers.length - 1]!.address() as net.AddressInfo).port}`);
    const clientStream = session.request({ ':method': 'CONNECT', ':authority': '10.0.0.5:8080' }, { endStream: false });
    const s = await serverStream;
    s.respond({ ':status': 200 });
    const [sockA, sockB] = await socketPair(server);
    const done = relay(s, sockB);
    clientStream.write('x');
    await once(sockA, 'data');
    sockA.resetAndDestroy();
    const r = await done;
    assert.equal(r.resetBy, 'b');
    if (!clientStream.closed) await once(clientStream, 'close');
    assert.equal(clientStream.rstCode, http2.constants.NGHTTP2_CANCEL);
    session.close();
    conn?.destroy();
    for (const h of h2Servers.splice(0)) h.close();
  });
});
