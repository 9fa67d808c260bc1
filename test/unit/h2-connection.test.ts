/**
 * HBONE's own HTTP/2 (src/hbone/h2) against node:http2 (nghttp2) on real sockets, both ways round:
 * if either side got framing, HPACK, flow control or stream life-cycle wrong, nghttp2 would say so.
 */
import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { H2Connection } from '../../src/hbone/h2/connection.js';
import type { H2Stream, H2Headers } from '../../src/hbone/h2/stream.js';
import { HpackDecoder, encodeHeaders, huffmanDecode } from '../../src/hbone/h2/hpack.js';
import { H2Code } from '../../src/hbone/h2/frames.js';
import { relay } from '../../src/hbone/relay.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

function listen(onSocket: (s: net.Socket) => void): Promise<number> {
  const server = net.createServer(onSocket);
  cleanups.push(() => server.close());
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

async function readAll(s: Duplex): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Our server: answers CONNECT 200 and echoes the stream back, upper-cased for text. */
async function ourEchoServer(opts: { maxConcurrentStreams?: number } = {}): Promise<{ port: number; conns: H2Connection[]; headers: H2Headers[] }> {
  const conns: H2Connection[] = [];
  const headers: H2Headers[] = [];
  const port = await listen((socket) => {
    const conn = new H2Connection(socket, { role: 'server', settings: { initialWindowSize: 1 << 20, ...opts }, connectionWindow: 4 << 20 });
    conns.push(conn);
    cleanups.push(() => conn.destroy());
    conn.on('error', () => undefined);
    conn.on('stream', (stream: H2Stream, h: H2Headers) => {
      headers.push(h);
      if (h[':method'] !== 'CONNECT') {
        stream.respond({ ':status': 405 }, { endStream: true });
        return;
      }
      stream.respond({ ':status': 200, 'x-who': 'strait' });
      stream.pipe(stream);
    });
  });
  return { port, conns, headers };
}

describe('HBONE HTTP/2 against node:http2', () => {
  it('serves node:http2 CONNECT streams: headers (HPACK with Huffman from nghttp2), data both ways, half-close', async () => {
    const { port, headers } = await ourEchoServer();
    const session = http2.connect(`http://127.0.0.1:${port}`);
    cleanups.push(() => session.destroy());
    const req = session.request({ ':method': 'CONNECT', ':authority': '10.0.0.5:8080', forwarded: 'for="10.0.0.9"', baggage: 'k8s.namespace.name=shop,é=ü' });
    const [resp] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
    assert.equal(resp[':status'], 200);
    assert.equal(resp['x-who'], 'strait');
    const back = readAll(req);
    req.write('hello ');
    req.end('world');
    assert.equal((await back).toString(), 'hello world');
    assert.equal(headers[0]![':authority'], '10.0.0.5:8080');
    assert.equal(headers[0]!['forwarded'], 'for="10.0.0.9"');
    // node:http2 writes each character as one octet (latin1), and so do we
    assert.equal(headers[0]!['baggage'], 'k8s.namespace.name=shop,é=ü');
  });

  it('moves 64 MiB each way on one stream through flow control, byte for byte', async () => {
    const { port } = await ourEchoServer();
    const session = http2.connect(`http://127.0.0.1:${port}`);
    cleanups.push(() => session.destroy());
    const req = session.request({ ':method': 'CONNECT', ':authority': '10.0.0.5:8080' });
    await once(req, 'response');
    const data = randomBytes(64 << 20);
    const back = readAll(req);
    req.end(data);
    const got = await back;
    assert.equal(got.length, data.length);
    assert.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(data).digest('hex'));
  });

  it('announces SETTINGS_MAX_CONCURRENT_STREAMS and carries that many streams at once', async () => {
    const { port } = await ourEchoServer({ maxConcurrentStreams: 5 });
    const session = http2.connect(`http://127.0.0.1:${port}`);
    cleanups.push(() => session.destroy());
    await once(session, 'remoteSettings');
    assert.equal(session.remoteSettings.maxConcurrentStreams, 5);
    const replies = await Promise.all(Array.from({ length: 5 }, async (_, i) => {
      const req = session.request({ ':method': 'CONNECT', ':authority': `10.0.0.${i + 1}:80` });
      await once(req, 'response');
      const back = readAll(req);
      req.end(`stream ${i}`);
      return (await back).toString();
    }));
    assert.deepEqual(replies, [0, 1, 2, 3, 4].map((i) => `stream ${i}`));
  });

  it('answers other methods with 405 and a RST from the client closes the server stream', async () => {
    const { port, conns } = await ourEchoServer();
    const session = http2.connect(`http://127.0.0.1:${port}`);
    cleanups.push(() => session.destroy());
    const get = session.request({ ':method': 'GET', ':path': '/' });
    const [h] = (await once(get, 'response')) as [http2.IncomingHttpHeaders];
    assert.equal(h[':status'], 405);
    const req = session.request({ ':method': 'CONNECT', ':authority': '10.0.0.5:8080' });
    await once(req, 'response');
    assert.equal(conns[0]!.streamCount, 1);
    req.close(http2.constants.NGHTTP2_CANCEL);
    for (let i = 0; i < 50 && conns[0]!.streamCount > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(conns[0]!.streamCount, 0);
  });

  it('drives a node:http2 server as a client: CONNECT, 32 MiB echoed, a reset from the server seen with its code', async () => {
    const h2 = http2.createServer({ settings: { initialWindowSize: 1 << 20 } });
    let serverStream: http2.ServerHttp2Stream | undefined;
    h2.on('stream', (stream, headers) => {
      serverStream = stream;
      stream.on('error', () => undefined); // the reset below also errors the server's own stream
      if (headers[':authority'] === 'reset.me:1') {
        stream.respond({ ':status': 200 });
        stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
        return;
      }
      stream.respond({ ':status': 200, 'x-authority': String(headers[':authority']), 'x-forwarded': String(headers['forwarded']) });
      stream.pipe(stream);
    });
    h2.on('session', (s) => s.on('error', () => undefined));
    h2.listen(0, '127.0.0.1');
    await once(h2, 'listening');
    cleanups.push(() => h2.close());
    const socket = net.connect((h2.address() as net.AddressInfo).port, '127.0.0.1');
    await once(socket, 'connect');
    const conn = new H2Connection(socket, { role: 'client', settings: { initialWindowSize: 1 << 20 }, connectionWindow: 8 << 20 });
    cleanups.push(() => conn.destroy());
    const stream = conn.request({ ':method': 'CONNECT', ':authority': '10.1.2.3:443', forwarded: 'for="10.0.0.1"' });
    const [resp] = (await once(stream, 'response')) as [H2Headers];
    assert.equal(resp[':status'], 200);
    assert.equal(resp['x-authority'], '10.1.2.3:443');
    assert.equal(resp['x-forwarded'], 'for="10.0.0.1"');
    const data = randomBytes(32 << 20);
    const back = readAll(stream);
    stream.end(data);
    const got = await back;
    assert.ok(got.equals(data), 'echoed bytes equal');
    assert.ok(serverStream !== undefined);

    const doomed = conn.request({ ':method': 'CONNECT', ':authority': 'reset.me:1' });
    doomed.on('error', () => undefined);
    await once(doomed, 'close');
    assert.equal(doomed.rstCode, H2Code.ENHANCE_YOUR_CALM);
    assert.equal(doomed.aborted, true);

  });

  it('GOAWAY from node:http2 stops new streams on the connection', async () => {
    const h2 = http2.createServer();
    const sessions: http2.ServerHttp2Session[] = [];
    h2.on('session', (s) => sessions.push(s));
    h2.on('stream', (stream) => { stream.respond({ ':status': 200 }); stream.pipe(stream); });
    h2.listen(0, '127.0.0.1');
    await once(h2, 'listening');
    cleanups.push(() => h2.close());
    const socket = net.connect((h2.address() as net.AddressInfo).port, '127.0.0.1');
    await once(socket, 'connect');
    const conn = new H2Connection(socket, { role: 'client' });
    cleanups.push(() => conn.destroy());
    const open = conn.request({ ':method': 'CONNECT', ':authority': '10.0.0.1:1' });
    await once(open, 'response');
    const goaway = once(conn, 'goaway') as Promise<[number, number]>;
    sessions[0]!.close();
    const [code, last] = await goaway;
    assert.equal(code, H2Code.NO_ERROR);
    assert.equal(last, 1);
    assert.equal(conn.closed, true);
    assert.throws(() => conn.request({ ':method': 'CONNECT', ':authority': '10.0.0.1:1' }), /GOAWAY/);
    // the open stream still works to its end
    const closed = once(conn, 'close');
    const back = readAll(open);
    open.end('still here');
    assert.equal((await back).toString(), 'still here');
    await closed; // and once it is done, the connection closes itself
  });

  it('relays a stream into a stalled socket holding at most the stream window, then delivers every byte', async () => {
    // The target accepts but does not read until told to: its kernel buffers fill, then our socket's.
    let release!: () => void;
    const released = new Promise<void>((r) => { release = r; });
    const received: Buffer[] = [];
    const target = net.createServer((s) => {
      s.pause();
      void released.then(() => { s.on('data', (c: Buffer) => received.push(c)); s.resume(); });
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    cleanups.push(() => target.close());
    const window = 1 << 20;
    let toTarget: net.Socket | undefined;
    let relayed: Promise<unknown> | undefined;
    const port = await listen((socket) => {
      const conn = new H2Connection(socket, { role: 'server', settings: { initialWindowSize: window }, connectionWindow: 8 << 20 });
      cleanups.push(() => conn.destroy());
      conn.on('stream', (stream: H2Stream) => {
        stream.respond({ ':status': 200 });
        toTarget = net.connect((target.address() as net.AddressInfo).port, '127.0.0.1');
        relayed = relay(stream, toTarget);
      });
    });
    const session = http2.connect(`http://127.0.0.1:${port}`);
    cleanups.push(() => session.destroy());
    const req = session.request({ ':method': 'CONNECT', ':authority': '10.0.0.5:8080' });
    await once(req, 'response');
    const data = randomBytes(48 << 20);
    let written = 0;
    const writer = (async () => {
      for (let off = 0; off < data.length; off += 1 << 16) {
        written = off;
        if (!req.write(data.subarray(off, off + (1 << 16)))) await once(req, 'drain');
      }
      req.end();
    })();
    await new Promise((r) => setTimeout(r, 700));
    // Stalled: the sender is blocked well short of 48 MiB, and what waits in our process is bounded by the
    // stream window plus the relay's budget (the rest sits in kernel buffers or in the sender).
    assert.ok(written < data.length / 2, `sender stalled (wrote ${written} bytes)`);
    assert.ok(toTarget!.writableLength <= window + 512 * 1024, `buffered towards the target: ${toTarget!.writableLength}`);
    release();
    await writer;
    await relayed;
    const got = Buffer.concat(received);
    assert.equal(got.length, data.length);
    assert.ok(got.equals(data), 'every byte, in order');
  });

  it('accepts a client that sends SETTINGS_ENABLE_PUSH = 1 (python-h2 does), and a server that sends it is refused', async () => {
    const { port } = await ourEchoServer();
    const s = net.connect(port, '127.0.0.1');
    cleanups.push(() => s.destroy());
    await once(s, 'connect');
    const settings = Buffer.alloc(6);
    settings.writeUInt16BE(0x2, 0);
    settings.writeUInt32BE(1, 2);
    const hdr = (len: number, type: number, flags: number, id: number) => {
      const b = Buffer.alloc(9);
      b.writeUIntBE(len, 0, 3);
      b[3] = type;
      b[4] = flags;
      b.writeUInt32BE(id, 5);
      return b;
    };
    const block = encodeHeaders([[':method', 'CONNECT'], [':authority', '10.0.0.5:80']]);
    s.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), hdr(6, 4, 0, 0), settings, hdr(block.length, 1, 4, 1), block]));
    // the server's HEADERS (type 1) on stream 1 answers the CONNECT; no GOAWAY comes first
    let got = Buffer.alloc(0);
    const types: number[] = [];
    while (!types.includes(1)) {
      const [chunk] = (await once(s, 'data')) as [Buffer];
      got = Buffer.concat([got, chunk]);
      let off = 0;
      types.length = 0;
      while (off + 9 <= got.length) {
        types.push(got[off + 3]!);
        off += 9 + got.readUIntBE(off, 3);
      }
      assert.ok(!types.includes(7), `no GOAWAY, got frame types ${types.join(',')}`);
    }

    // as a client, the same setting from a server is a connection error
    const srv = await listen((sock) => {
      sock.on('error', () => undefined);
      sock.write(Buffer.concat([hdr(6, 4, 0, 0), settings]));
    });
    const c = net.connect(srv, '127.0.0.1');
    await once(c, 'connect');
    const client = new H2Connection(c, { role: 'client' });
    cleanups.push(() => client.destroy());
    const [err] = (await once(client, 'error')) as [Error & { h2Code?: number }];
    assert.equal(err.h2Code, H2Code.PROTOCOL_ERROR);
  });

  it('answers a peer that does not start with the preface with GOAWAY(PROTOCOL_ERROR)', async () => {
    await ourEchoServer().then(async ({ port }) => {
      const s = net.connect(port, '127.0.0.1');
      await once(s, 'connect');
      s.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
      const got = await readAll(s);
      // our SETTINGS first, then GOAWAY (type 7) carrying PROTOCOL_ERROR (1)
      let off = 0;
      let goawayCode: number | undefined;
      while (off + 9 <= got.length) {
        const len = got.readUIntBE(off, 3);
        if (got[off + 3] === 7) goawayCode = got.readUInt32BE(off + 9 + 4);
        off += 9 + len;
      }
      assert.equal(goawayCode, H2Code.PROTOCOL_ERROR);
    });
  });
});

describe('HPACK', () => {
  it('decodes what it encodes, with and without Huffman coding', () => {
    const list: Array<[string, string]> = [
      [':status', '200'], [':method', 'CONNECT'], [':authority', '[fd00::1]:15008'], ['traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'],
      ['x-strait-reason', 'denied by AuthorizationPolicy shop/deny-all'], ['x-empty', ''], ['x-bytes', '\t\x7f\x80\xff é'],
    ];
    assert.deepEqual(new HpackDecoder().decode(encodeHeaders(list)), list);
  });

  it('decodes header blocks nghttp2 wrote (dynamic table, Huffman) the same way node:http2 reads them', async () => {
    const seen: H2Headers[] = [];
    const port = await listen((socket) => {
      const conn = new H2Connection(socket, { role: 'server' });
      cleanups.push(() => conn.destroy());
      conn.on('stream', (stream: H2Stream, h: H2Headers) => {
        seen.push(h);
        stream.respond({ ':status': 204 }, { endStream: true });
      });
    });
    const session = http2.connect(`http://127.0.0.1:${port}`);
    cleanups.push(() => session.destroy());
    const values = Array.from({ length: 40 }, (_, i) => `value-${i}-${'xyz!~'.repeat(i % 7)}`);
    for (const v of values) {
      const req = session.request({ ':path': `/p/${v}`, 'x-same': 'repeated so nghttp2 indexes it', 'x-v': v });
      const [h] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
      assert.equal(h[':status'], 204);
      req.resume();
    }
    assert.equal(seen.length, values.length);
    seen.forEach((h, i) => {
      assert.equal(h['x-v'], values[i]);
      assert.equal(h[':path'], `/p/${values[i]}`);
      assert.equal(h['x-same'], 'repeated so nghttp2 indexes it');
    });
  });

  it('rejects bad Huffman padding and EOS inside a string', () => {
    // "a" is 00011; padded with zeros instead of ones
    assert.throws(() => huffmanDecode(Buffer.from([0b00011000]), 0, 1), /padding/);
    // 30 one bits (EOS) followed by padding
    assert.throws(() => huffmanDecode(Buffer.from([0xff, 0xff, 0xff, 0xff]), 0, 4), /EOS|padding/);
    // a whole extra byte of ones is padding longer than 7 bits
    assert.throws(() => huffmanDecode(Buffer.from([0b00011111, 0xff]), 0, 2), /padding/);
    assert.equal(huffmanDecode(Buffer.from([0b00011111]), 0, 1), 'a');
  });

  it('rejects indexes beyond the tables and truncated blocks', () => {
    assert.throws(() => new HpackDecoder().decode(Buffer.from([0xff, 0x00])), /beyond the dynamic table/);
    assert.throws(() => new HpackDecoder().decode(Buffer.from([0x00, 0x05, 0x61])), /past the end/);
    assert.throws(() => new HpackDecoder(100).decode(Buffer.from([0x3f, 0xe1, 0x1f])), /table size update/);
  });
});
