/**
 * HBONE's HTTP/2 budgets and timeouts (src/hbone/h2/limits.ts), one at a time, against a raw peer on real
 * sockets: what an honest peer may do stays allowed, what a hostile one does ends its connection only, with
 * the right GOAWAY and the reason the owner logs and counts. Both roles.
 */
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { H2Connection, type GoawayInfo, type H2ConnectionOptions } from '../../src/hbone/h2/connection.js';
import type { H2Stream } from '../../src/hbone/h2/stream.js';
import { Flag, FrameType, H2Code, frame } from '../../src/hbone/h2/frames.js';
import type { H2Limits } from '../../src/hbone/h2/limits.js';
import { H2Peer, u32 } from '../helpers/h2-peer.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const CONNECT = (authority = '10.0.0.1:80'): Array<[string, string]> => [[':method', 'CONNECT'], [':authority', authority]];

interface Served {
  peer: H2Peer;
  conn: H2Connection;
  goaways: GoawayInfo[];
  streams: H2Stream[];
}

/** Our H2Connection as a server on a real socket, a raw peer as its client, handshake done. */
async function serve(limits: Partial<H2Limits>, onStream?: (s: H2Stream) => void, opts: Partial<H2ConnectionOptions> = {}): Promise<Served> {
  const goaways: GoawayInfo[] = [];
  const streams: H2Stream[] = [];
  let conn: H2Connection | undefined;
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    conn = new H2Connection(socket, { role: 'server', limits, settings: { maxConcurrentStreams: 1000 }, ...opts });
    conn.on('error', () => undefined);
    conn.on('goawaySent', (g: GoawayInfo) => goaways.push(g));
    conn.on('stream', (s: H2Stream) => {
      s.on('error', () => undefined);
      streams.push(s);
      onStream?.(s);
    });
  });
  server.listen(0, '127.0.0.1');
  cleanups.push(() => server.close());
  await once(server, 'listening');
  const peer = await H2Peer.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
  cleanups.push(() => peer.destroy());
  while (conn === undefined) await new Promise((r) => setTimeout(r, 5));
  const c = conn;
  cleanups.push(() => c.destroy());
  await peer.handshake();
  return { peer, conn: c, goaways, streams };
}

const repeat = (f: Buffer, n: number): Buffer => Buffer.concat(Array.from({ length: n }, () => f));

describe('HTTP/2 budgets: frames that do no work', () => {
  it('lets 1,000 PINGs through in a window, and the next one ends the connection with ENHANCE_YOUR_CALM', async () => {
    const { peer, goaways } = await serve({ maxUselessFramesPerWindow: 1000 });
    peer.sendRaw(repeat(frame(FrameType.PING, 0, 0, Buffer.alloc(8)), 1000));
    for (let i = 0; i < 1000; i++) await peer.nextFrame(FrameType.PING);
    assert.equal(goaways.length, 0, 'an honest number of PINGs is answered');
    peer.send(FrameType.PING, 0, 0, Buffer.alloc(8));
    const g = await peer.goaway();
    assert.equal(g.code, H2Code.ENHANCE_YOUR_CALM);
    assert.equal(goaways[0]?.reason, 'useless_frames');
  });

  it('allows a WINDOW_UPDATE for the stream and one for the connection per DATA frame it receives, beyond the base budget', async () => {
    const payload = Buffer.alloc(4 << 20, 7);
    const { peer, goaways } = await serve({ maxUselessFramesPerWindow: 50 }, (s) => {
      s.respond({ ':status': 200 });
      s.end(payload);
    });
    peer.sendHeaders(1, CONNECT(), { endStream: false });
    let got = 0;
    while (got < payload.length) {
      const f = await peer.nextFrame(FrameType.DATA, { timeoutMs: 5000 });
      got += f.payload.length;
      if (f.payload.length > 0) {
        peer.sendWindowUpdate(1, f.payload.length);
        peer.sendWindowUpdate(0, f.payload.length);
      }
    }
    assert.equal(got, payload.length);
    assert.equal(goaways.length, 0, 'a receiver crediting every frame is not cut off');
  });

  it('earns no allowance from 1-byte DATA frames a peer makes us send by opening our window a byte at a time', async (t) => {
    const { peer, goaways } = await serve({ maxUselessFramesPerWindow: 100, floodWindowMs: 60_000 }, (s) => {
      s.respond({ ':status': 200 });
      s.write(Buffer.alloc(1024 * 1024, 0x62)); // a download the peer drips out of us byte by byte
    });
    peer.sendSettings([[0x4, 0]]); // SETTINGS_INITIAL_WINDOW_SIZE = 0
    await peer.nextFrame(FrameType.SETTINGS); // its ACK
    peer.sendHeaders(1, CONNECT(), { endStream: false });
    assert.equal((await peer.response(1)).status, 200);
    const pair = Buffer.concat([frame(FrameType.WINDOW_UPDATE, 0, 1, u32(1)), frame(FrameType.PING, 0, 0, Buffer.alloc(8))]);
    for (let i = 0; i < 50 && !peer.closed; i++) await peer.sendRawPaced(Buffer.concat(Array.from({ length: 100 }, () => pair)));
    const g = await peer.goaway(3000);
    t.diagnostic(`GOAWAY after ${peer.framesSeen(FrameType.PING).length} PING ACKs and ${peer.framesSeen(FrameType.DATA).length} 1-byte DATA frames`);
    assert.equal(g.code, H2Code.ENHANCE_YOUR_CALM);
    assert.equal(goaways[0]?.reason, 'useless_frames');
  });

  it('counts empty DATA frames that end nothing', async () => {
    const { peer, goaways } = await serve({ maxUselessFramesPerWindow: 100 }, (s) => s.respond({ ':status': 200 }));
    peer.sendHeaders(1, CONNECT(), { endStream: false });
    await peer.response(1);
    peer.sendRaw(repeat(frame(FrameType.DATA, 0, 1), 101));
    assert.equal((await peer.goaway()).code, H2Code.ENHANCE_YOUR_CALM);
    assert.equal(goaways[0]?.reason, 'useless_frames');
  });

  it('counts CONTINUATION frames against the header block size, 9 bytes each even when empty', async () => {
    const { peer, goaways } = await serve({ maxUselessFramesPerWindow: 1_000_000, maxHeaderBlockBytes: 900 });
    peer.sendHeaders(1, CONNECT(), { endHeaders: false });
    peer.sendRaw(repeat(frame(FrameType.CONTINUATION, 0, 1), 100));
    assert.equal((await peer.goaway()).code, H2Code.ENHANCE_YOUR_CALM);
    assert.equal(goaways[0]?.reason, 'header_block_size');
  });
});

describe('HTTP/2 budgets: a peer that does not read', () => {
  it('caps replies queued behind it: a PING flood ends with ENHANCE_YOUR_CALM (control_queue)', async () => {
    const { peer, goaways, conn } = await serve({ maxUselessFramesPerWindow: 2 ** 31 - 1, maxQueuedControlFrames: 1000 });
    peer.pauseReading();
    const batch = repeat(frame(FrameType.PING, 0, 0, Buffer.alloc(8)), 10_000);
    for (let i = 0; i < 100 && !conn.destroyed && !peer.closed; i++) {
      await peer.sendRawPaced(batch);
    }
    const until = Date.now() + 3000;
    while (goaways.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    assert.equal(goaways[0]?.reason, 'control_queue');
    assert.equal(goaways[0]?.code, H2Code.ENHANCE_YOUR_CALM);
  });

  it('stops reading while its write buffer is above the bound, and answers everything once the peer reads again', async () => {
    const { peer, goaways, conn } = await serve({ maxUselessFramesPerWindow: 2 ** 31 - 1, maxQueuedControlFrames: 2 ** 31 - 1, maxWriteQueueBytes: 64 * 1024 });
    peer.pauseReading();
    peer.countOnly.add(FrameType.PING);
    // 6.8 MB of replies: more than the kernel's socket buffers on loopback hold, so they back up in our process
    const pings = 400_000;
    const batch = repeat(frame(FrameType.PING, 0, 0, Buffer.alloc(8)), 10_000);
    for (let i = 0; i < pings / 10_000; i++) peer.sendRaw(batch);
    const socket = conn.socket as net.Socket;
    const deadline = Date.now() + 5000;
    while (!socket.isPaused() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(socket.isPaused(), 'reading paused while the replies cannot leave');
    const heldAt = socket.writableLength;
    assert.ok(heldAt < 64 * 1024 + 256 * 1024, `write buffer held near the bound (${heldAt} bytes)`);
    peer.resumeReading();
    const until = Date.now() + 20_000;
    while ((peer.framesByType.get(FrameType.PING) ?? 0) < pings && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    assert.equal(peer.framesByType.get(FrameType.PING), pings, 'every PING answered, none lost');
    assert.equal(goaways.length, 0);
  });
});

describe('HTTP/2 budgets: streams whose destination does not read', () => {
  it('holds at most maxHeldBytes for them: the connection window is no longer credited past it', async () => {
    let delivered = 0;
    let conn!: H2Connection;
    const server = net.createServer((socket) => {
      socket.on('error', () => undefined);
      conn = new H2Connection(socket, {
        role: 'server', settings: { initialWindowSize: 4 << 20, maxConcurrentStreams: 100 }, connectionWindow: 4 << 20,
        limits: { maxHeldBytes: 1 << 20 },
      });
      conn.on('error', () => undefined);
      conn.on('stream', (s: H2Stream) => {
        s.on('error', () => undefined);
        s.respond({ ':status': 200 });
        s.setSink((chunk) => {
          delivered += chunk.length;
          return false; // a pod that never reads: full from the first byte
        });
      });
    });
    server.listen(0, '127.0.0.1');
    cleanups.push(() => server.close(), () => conn?.destroy());
    await once(server, 'listening');
    const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    socket.on('error', () => undefined);
    await once(socket, 'connect');
    const client = new H2Connection(socket, { role: 'client' });
    client.on('error', () => undefined);
    cleanups.push(() => client.destroy());
    // Ten streams, each allowed 4 MiB by its own window: 40 MiB the server would hold without the connection bound.
    for (let i = 0; i < 10; i++) {
      const st = client.request({ ':method': 'CONNECT', ':authority': `10.0.0.${i + 1}:80` });
      st.on('error', () => undefined);
      st.write(Buffer.alloc(4 << 20, 0x61));
    }
    await new Promise((r) => setTimeout(r, 1000));
    // held (1 MiB) + one connection window (4 MiB, the peer's credit when we stopped) + the first piece of each stream
    assert.ok(delivered <= (1 << 20) + (4 << 20) + 10 * 16_384, `${delivered} bytes handed to destinations that never read`);
    assert.ok(delivered >= 4 << 20, `the first connection window was used (${delivered})`);
  });
});

describe('HTTP/2 budgets: resets', () => {
  it('ends Rapid Reset (every stream reset before its answer) past 100 resets', async () => {
    const { peer, goaways } = await serve({}); // streams are never answered
    for (let i = 0; i < 101; i++) {
      peer.sendHeaders(2 * i + 1, CONNECT(), { endStream: false });
      peer.sendRstStream(2 * i + 1, H2Code.CANCEL);
    }
    assert.equal((await peer.goaway()).code, H2Code.ENHANCE_YOUR_CALM);
    assert.equal(goaways[0]?.reason, 'rapid_reset');
  });

  it('lets an honest, busy client cancel streams: 150 early resets among 400 streams are fine', async () => {
    let n = 0;
    const { peer, goaways } = await serve({}, (s) => {
      if (n++ % 8 < 5) s.respond({ ':status': 200 }); // 250 answered, 150 left waiting and then cancelled
    });
    for (let i = 0; i < 400; i++) peer.sendHeaders(2 * i + 1, CONNECT(), { endStream: false });
    for (let answered = 0; answered < 250;) if ((await peer.nextFrame(FrameType.HEADERS)).streamId > 0) answered++;
    for (let i = 0; i < 400; i++) peer.sendRstStream(2 * i + 1, H2Code.CANCEL);
    peer.sendPing(Buffer.from('12345678'));
    const ack = await peer.nextFrame(FrameType.PING);
    assert.equal(ack.payload.toString(), '12345678');
    assert.equal(goaways.length, 0);
  });

  it('does not let refusals dilute Rapid Reset: 101 resets among 101 refused streams still end the connection', async () => {
    let n = 0;
    const { peer, goaways } = await serve({}, (s) => {
      if (n++ % 2 === 0) s.respond({ ':status': 403 }, { endStream: true }); // refused; the others are never answered
    });
    for (let i = 0; i < 202; i++) peer.sendHeaders(2 * i + 1, CONNECT(), { endStream: false });
    for (let i = 1; i < 202; i += 2) peer.sendRstStream(2 * i + 1, H2Code.CANCEL);
    assert.equal((await peer.goaway()).code, H2Code.ENHANCE_YOUR_CALM);
    assert.equal(goaways[0]?.reason, 'rapid_reset');
  });

  it('ends a connection on which it refused more than 1,000 streams in a window', async () => {
    const { peer, goaways } = await serve({}, (s) => s.respond({ ':status': 400 }, { endStream: true }));
    for (let i = 0; i < 1001; i++) peer.sendHeaders(2 * i + 1, CONNECT(), { endStream: true });
    assert.equal((await peer.goaway(5000)).code, H2Code.ENHANCE_YOUR_CALM);
    assert.equal(goaways[0]?.reason, 'refused_streams');
  });

  it('ends a peer that makes us reset its streams (WINDOW_UPDATE of 0 on each, "MadeYouReset")', async () => {
    const { peer, goaways } = await serve({}, (s) => s.respond({ ':status': 200 }));
    for (let i = 0; i < 101; i++) peer.sendHeaders(2 * i + 1, CONNECT(), { endStream: false });
    for (let i = 0; i < 101; i++) await peer.nextFrame(FrameType.HEADERS);
    for (let i = 0; i < 101; i++) peer.sendWindowUpdate(2 * i + 1, 0);
    assert.equal((await peer.goaway()).code, H2Code.ENHANCE_YOUR_CALM);
    assert.equal(goaways[0]?.reason, 'error_resets');
  });
});

describe('HTTP/2 timeouts', () => {
  it('closes a connection whose peer never acknowledges our SETTINGS with SETTINGS_TIMEOUT', async () => {
    let conn!: H2Connection;
    const goaways: GoawayInfo[] = [];
    const server = net.createServer((socket) => {
      socket.on('error', () => undefined);
      conn = new H2Connection(socket, { role: 'server', limits: { settingsTimeoutMs: 200 } });
      conn.on('error', () => undefined);
      conn.on('goawaySent', (g: GoawayInfo) => goaways.push(g));
    });
    server.listen(0, '127.0.0.1');
    cleanups.push(() => server.close(), () => conn?.destroy());
    await once(server, 'listening');
    const peer = await H2Peer.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
    cleanups.push(() => peer.destroy());
    peer.sendPreface();
    peer.sendSettings(); // but never an ACK of the server's
    const started = Date.now();
    const g = await peer.goaway(3000);
    assert.equal(g.code, H2Code.SETTINGS_TIMEOUT);
    assert.ok(Date.now() - started >= 150, 'not before the timeout');
    assert.equal(goaways[0]?.reason, 'settings_timeout');
  });

  it('ends a connection whose header block is left unfinished (header_block_timeout)', async () => {
    const { peer, goaways } = await serve({ settingsTimeoutMs: 300 });
    peer.sendHeaders(1, CONNECT(), { endHeaders: false });
    const started = Date.now();
    assert.equal((await peer.goaway(3000)).code, H2Code.ENHANCE_YOUR_CALM);
    assert.ok(Date.now() - started >= 250, 'not before the timeout');
    assert.equal(goaways[0]?.reason, 'header_block_timeout');
  });

  it('closes a connection on which the peer never opens a stream after the first-stream timeout, not one that did', async () => {
    const quiet = await serve({ firstStreamTimeoutMs: 300, idleTimeoutMs: 60_000 });
    assert.equal((await quiet.peer.goaway(3000)).code, H2Code.NO_ERROR);
    assert.equal(quiet.goaways[0]?.reason, 'idle');
    const busy = await serve({ firstStreamTimeoutMs: 300, idleTimeoutMs: 60_000 }, (s) => s.respond({ ':status': 200 }));
    busy.peer.sendHeaders(1, CONNECT(), { endStream: false });
    await busy.peer.response(1);
    busy.peer.sendRstStream(1, H2Code.CANCEL);
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(busy.goaways.length, 0, 'after its first stream, the (longer) idle timeout applies');
  });

  it('closes a connection without streams after the idle timeout with GOAWAY(NO_ERROR), never while a stream is open', async () => {
    const { peer, goaways } = await serve({ idleTimeoutMs: 300 }, (s) => s.respond({ ':status': 200 }));
    peer.sendHeaders(1, CONNECT(), { endStream: false });
    await peer.response(1);
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(goaways.length, 0, 'an open stream keeps the connection');
    peer.sendRstStream(1, H2Code.CANCEL);
    const closedAt = Date.now();
    const g = await peer.goaway(3000);
    assert.equal(g.code, H2Code.NO_ERROR);
    assert.ok(Date.now() - closedAt >= 250, `idle for the whole timeout first (${Date.now() - closedAt} ms)`);
    assert.equal(goaways[0]?.reason, 'idle');
  });
});

describe('HTTP/2 budgets in the client role (a hostile server)', () => {
  it('ends a server\'s PING flood and SETTINGS flood with ENHANCE_YOUR_CALM', async () => {
    for (const flood of [frame(FrameType.PING, 0, 0, Buffer.alloc(8)), frame(FrameType.SETTINGS, 0, 0)]) {
      const listener = await H2Peer.listen();
      cleanups.push(() => listener.close());
      const socket = net.connect(listener.port, '127.0.0.1');
      socket.on('error', () => undefined);
      await once(socket, 'connect');
      const client = new H2Connection(socket, { role: 'client' });
      const goaways: GoawayInfo[] = [];
      client.on('error', () => undefined);
      client.on('goawaySent', (g: GoawayInfo) => goaways.push(g));
      cleanups.push(() => client.destroy());
      const server = await listener.accept();
      cleanups.push(() => server.destroy());
      await server.handshake();
      server.sendRaw(repeat(flood, 2000));
      assert.equal((await server.goaway()).code, H2Code.ENHANCE_YOUR_CALM);
      assert.equal(goaways[0]?.reason, 'useless_frames');
    }
  });
});
