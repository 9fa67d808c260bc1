import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as http from 'node:http';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { StraitError } from '../../src/common/errors.js';
import {
  SOCKS5_REPLY,
  acceptSocks5,
  encodeReply,
  formatIPv6,
  parseIPv6,
  type Socks5Request,
  type Socks5Target,
} from '../../src/ztunnel/proxy/socks5.js';

const CURL = '/usr/bin/curl';

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Runs curl with no proxy-related environment (so NO_PROXY & co cannot route around the SOCKS server). */
function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: '/nonexistent' };
  return new Promise((resolve) => {
    execFile(CURL, ['-sS', '--max-time', '10', ...args], { env }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The expectation that a promise rejects with a STRAIT_ERR_SOCKS5 StraitError whose message matches. */
async function rejectsSocks(p: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof StraitError, `expected a StraitError, got ${String(err)}`);
    assert.equal(err.code, 'STRAIT_ERR_SOCKS5');
    assert.match(err.message, message);
    return true;
  });
}

/** Reads from a client socket until it closes; resolves with everything received. */
function readAll(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => {});
    socket.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

/** Reads exactly n bytes from a socket (without consuming more than arrives). */
async function readN(socket: net.Socket, n: number): Promise<Buffer> {
  let buf = Buffer.alloc(0);
  while (buf.length < n) {
    const chunk = socket.read() as Buffer | null;
    if (chunk) {
      buf = Buffer.concat([buf, chunk]);
      continue;
    }
    if (socket.readableEnded || socket.destroyed) throw new Error(`socket closed after ${buf.length} of ${n} bytes`);
    await Promise.race([once(socket, 'readable'), once(socket, 'close')]);
  }
  if (buf.length > n) socket.unshift(buf.subarray(n));
  return buf.subarray(0, n);
}

const GREETING = Buffer.from([0x05, 0x01, 0x00]);
function connectRequest(atyp: number, addr: number[], port: number, cmd = 0x01): Buffer {
  return Buffer.from([0x05, cmd, 0x00, atyp, ...addr, port >> 8, port & 0xff]);
}
const FAILURE_REPLY = (code: number) => Buffer.from([0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);

describe('SOCKS5 server driven by real curl', () => {
  const httpServer = http.createServer((req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(`hello from upstream, path=${req.url} host=${req.headers.host}\n`);
  });
  let httpPort = 0;
  const seen: Socks5Target[] = [];
  const failures: unknown[] = [];
  /** Targets for which the proxy answers NOT_ALLOWED. */
  const denyPorts = new Set<number>();

  function handle(req: Socks5Request): void {
    const { target } = req;
    seen.push(target);
    if (denyPorts.has(target.port)) {
      req.reply(SOCKS5_REPLY.NOT_ALLOWED);
      return;
    }
    let host = target.host;
    if (target.kind === 'domain') {
      if (host !== 'localhost') {
        req.reply(SOCKS5_REPLY.HOST_UNREACHABLE);
        return;
      }
      host = '127.0.0.1'; // the test resolves "localhost" itself
    }
    const upstream = net.connect({ host, port: target.port });
    upstream.once('error', () => {
      if (!upstream.remoteAddress) req.reply(SOCKS5_REPLY.CONNECTION_REFUSED);
      req.socket.destroy();
    });
    upstream.once('connect', () => {
      req.reply(SOCKS5_REPLY.SUCCEEDED, { host: upstream.localAddress!, port: upstream.localPort! });
      req.socket.pipe(upstream);
      upstream.pipe(req.socket);
      req.socket.on('close', () => upstream.destroy());
    });
  }

  const proxy = net.createServer((socket) => {
    acceptSocks5(socket).then(handle, (err: unknown) => failures.push(err));
  });
  let proxyPort = 0;

  before(async () => {
    httpPort = await listen(httpServer);
    proxyPort = await listen(proxy);
  });
  after(async () => {
    httpServer.closeAllConnections();
    await Promise.all([closeServer(httpServer), closeServer(proxy)]);
  });

  it('proxies curl --socks5 to an IP target', async () => {
    seen.length = 0;
    const r = await curl(['--socks5', `127.0.0.1:${proxyPort}`, `http://127.0.0.1:${httpPort}/ip`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `hello from upstream, path=/ip host=127.0.0.1:${httpPort}\n`);
    assert.deepEqual(seen, [{ kind: 'ip', host: '127.0.0.1', port: httpPort }]);
  });

  it('proxies curl --socks5-hostname to a domain target resolved by the proxy', async () => {
    seen.length = 0;
    const r = await curl(['--socks5-hostname', `127.0.0.1:${proxyPort}`, `http://localhost:${httpPort}/name`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `hello from upstream, path=/name host=localhost:${httpPort}\n`);
    assert.deepEqual(seen, [{ kind: 'domain', host: 'localhost', port: httpPort }]);
  });

  it('makes curl fail with exit code 97 when the proxy answers NOT_ALLOWED', async () => {
    seen.length = 0;
    const deniedPort = httpPort === 65535 ? 65534 : httpPort + 1;
    denyPorts.add(deniedPort);
    const r = await curl(['--socks5', `127.0.0.1:${proxyPort}`, `http://127.0.0.1:${deniedPort}/`]);
    assert.equal(r.code, 97, `curl exit code; stderr: ${r.stderr}`);
    assert.match(r.stderr, /curl: \(97\) Can't complete SOCKS5 connection to 127\.0\.0\.1\. \(2\)/);
    assert.equal(r.stdout, '');
    assert.deepEqual(seen, [{ kind: 'ip', host: '127.0.0.1', port: deniedPort }]);
  });

  it('answers a SOCKS4 client with the SOCKS4 rejection 0x5B and rejects', async () => {
    failures.length = 0;
    const r = await curl(['--socks4', `127.0.0.1:${proxyPort}`, `http://127.0.0.1:${httpPort}/`]);
    assert.equal(r.code, 97, `curl exit code; stderr: ${r.stderr}`);
    assert.match(r.stderr, /rejected or failed/);
    assert.equal(failures.length, 1);
    assert.ok(failures[0] instanceof StraitError);
    assert.match((failures[0] as StraitError).message, /SOCKS version 4; only SOCKS5 is supported/);
  });
});

describe('SOCKS5 server at the byte level', () => {
  const waiting: Array<(s: net.Socket) => void> = [];
  const server = net.createServer((s) => {
    const w = waiting.shift();
    if (w) w(s);
    else s.destroy();
  });
  let port = 0;
  const clients: net.Socket[] = [];

  before(async () => {
    port = await listen(server);
  });
  after(async () => {
    for (const c of clients) c.destroy();
    await closeServer(server);
  });

  /** A connected client socket and the server side of the same connection. */
  async function pair(): Promise<{ client: net.Socket; serverSide: net.Socket }> {
    const accepted = new Promise<net.Socket>((resolve) => waiting.push(resolve));
    const client = net.connect({ host: '127.0.0.1', port });
    client.setNoDelay(true);
    clients.push(client);
    await once(client, 'connect');
    const serverSide = await accepted;
    return { client, serverSide };
  }

  it('parses a handshake that arrives one byte at a time', async () => {
    const { client, serverSide } = await pair();
    const accepted = acceptSocks5(serverSide);
    const bytes = Buffer.concat([
      Buffer.from([0x05, 0x02, 0x02, 0x00]), // offers user/pass and no-auth
      connectRequest(0x03, [9, ...Buffer.from('localhost')], 8080),
    ]);
    for (let i = 0; i < bytes.length; i++) {
      client.write(bytes.subarray(i, i + 1));
      // wait until the server has read this byte, so every byte is its own 'data' chunk
      while (serverSide.bytesRead < i + 1) await sleep(1);
    }
    const req = await accepted;
    assert.deepEqual(req.target, { kind: 'domain', host: 'localhost', port: 8080 });
    assert.deepEqual(await readN(client, 2), Buffer.from([0x05, 0x00]));
    req.reply(SOCKS5_REPLY.SUCCEEDED, { host: '10.1.2.3', port: 0x1f90 });
    assert.deepEqual(await readN(client, 10), Buffer.from([0x05, 0x00, 0x00, 0x01, 10, 1, 2, 3, 0x1f, 0x90]));
    req.socket.destroy();
  });

  it('keeps data pipelined in the same chunk as the greeting and request', async () => {
    const { client, serverSide } = await pair();
    const accepted = acceptSocks5(serverSide);
    client.write(Buffer.concat([GREETING, connectRequest(0x01, [127, 0, 0, 1], 80), Buffer.from('GET / HTTP/1.1\r\n')]));
    const req = await accepted;
    assert.deepEqual(req.target, { kind: 'ip', host: '127.0.0.1', port: 80 });
    assert.equal(req.socket.isPaused(), true);
    req.reply(SOCKS5_REPLY.SUCCEEDED);
    assert.deepEqual(await readN(client, 2 + 10), Buffer.concat([Buffer.from([0x05, 0x00]), encodeReply(0, { host: '0.0.0.0', port: 0 })]));
    client.end('Host: example\r\n\r\n');
    const chunks: Buffer[] = [];
    req.socket.on('data', (c: Buffer) => chunks.push(c));
    req.socket.resume(); // handed over paused: a 'data' listener alone does not start the flow
    await once(req.socket, 'end');
    assert.equal(Buffer.concat(chunks).toString(), 'GET / HTTP/1.1\r\nHost: example\r\n\r\n');
    req.socket.destroy();
  });

  it('keeps data that follows the request in the same chunk (greeting sent separately)', async () => {
    const { client, serverSide } = await pair();
    const accepted = acceptSocks5(serverSide);
    client.write(GREETING);
    assert.deepEqual(await readN(client, 2), Buffer.from([0x05, 0x00]));
    client.write(Buffer.concat([connectRequest(0x01, [192, 168, 1, 9], 443), Buffer.from([0x16, 0x03, 0x01])]));
    const req = await accepted;
    assert.deepEqual(req.target, { kind: 'ip', host: '192.168.1.9', port: 443 });
    const first = await readN(req.socket, 3);
    assert.deepEqual(first, Buffer.from([0x16, 0x03, 0x01]));
    req.socket.destroy();
  });

  it('answers 0x05 0xFF and closes when no-authentication is not offered', async () => {
    const { client, serverSide } = await pair();
    const received = readAll(client);
    const accepted = acceptSocks5(serverSide);
    client.write(Buffer.from([0x05, 0x02, 0x01, 0x02]));
    await rejectsSocks(accepted, /no acceptable authentication method \(offered: 0x01, 0x02; only 0x00/);
    assert.deepEqual(await received, Buffer.from([0x05, 0xff]));
  });

  it('answers COMMAND_NOT_SUPPORTED to BIND and to UDP ASSOCIATE, and closes', async () => {
    for (const [cmd, name] of [[0x02, 'BIND'], [0x03, 'UDP ASSOCIATE']] as const) {
      const { client, serverSide } = await pair();
      const received = readAll(client);
      const accepted = acceptSocks5(serverSide);
      client.write(Buffer.concat([GREETING, connectRequest(0x01, [127, 0, 0, 1], 80, cmd)]));
      await rejectsSocks(accepted, new RegExp(`asked for ${name}; only CONNECT is supported`));
      assert.deepEqual(await received, Buffer.concat([Buffer.from([0x05, 0x00]), FAILURE_REPLY(SOCKS5_REPLY.COMMAND_NOT_SUPPORTED)]));
    }
  });

  it('answers ADDRESS_TYPE_NOT_SUPPORTED to an unknown address type', async () => {
    const { client, serverSide } = await pair();
    const received = readAll(client);
    const accepted = acceptSocks5(serverSide);
    client.write(Buffer.concat([GREETING, Buffer.from([0x05, 0x01, 0x00, 0x05])]));
    await rejectsSocks(accepted, /unknown address type 0x05/);
    assert.deepEqual(await received, Buffer.concat([Buffer.from([0x05, 0x00]), FAILURE_REPLY(SOCKS5_REPLY.ADDRESS_TYPE_NOT_SUPPORTED)]));
  });

  it('parses IPv6 targets into compressed form', async () => {
    const cases: Array<[number[], string]> = [
      [[...new Array(15).fill(0), 1], '::1'],
      [[0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 0x01], '2001:db8::1'],
      [[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55], 'fe80::211:22ff:fe33:4455'],
    ];
    for (const [addr, text] of cases) {
      const { client, serverSide } = await pair();
      const accepted = acceptSocks5(serverSide);
      client.write(Buffer.concat([GREETING, connectRequest(0x04, addr, 8443)]));
      const req = await accepted;
      assert.deepEqual(req.target, { kind: 'ip', host: text, port: 8443 });
      req.reply(SOCKS5_REPLY.SUCCEEDED, { host: '::1', port: 1 });
      assert.deepEqual(
        await readN(client, 2 + 22),
        Buffer.from([0x05, 0x00, 0x05, 0x00, 0x00, 0x04, ...new Array(15).fill(0), 1, 0, 1]),
      );
      req.socket.destroy();
    }
  });

  it('formats and parses IPv6 addresses per RFC 5952', () => {
    const table: Array<[string, string]> = [
      ['0:0:0:0:0:0:0:0', '::'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group stays
      ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run is compressed
      ['1:0:0:2:0:0:3:4', '1::2:0:0:3:4'], // ties: the first run
      ['ABCD:EF01:0:0:0:0:0:0', 'abcd:ef01::'],
      ['::ffff:10.0.0.1', '::ffff:10.0.0.1'],
    ];
    for (const [input, expected] of table) {
      const bytes = parseIPv6(input);
      assert.ok(bytes, input);
      assert.equal(formatIPv6(bytes), expected, input);
      assert.deepEqual(parseIPv6(expected), bytes, expected);
    }
    assert.equal(parseIPv6('fe80::1%eth0')?.toString('hex'), 'fe800000000000000000000000000001');
    assert.equal(parseIPv6('10.0.0.1'), undefined);
    assert.equal(parseIPv6('example.com'), undefined);
  });

  it('encodes the bind address of a reply by its family', () => {
    assert.deepEqual(encodeReply(0, { host: '127.0.0.1', port: 15080 }), Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0x3a, 0xe8]));
    assert.deepEqual(
      encodeReply(SOCKS5_REPLY.HOST_UNREACHABLE, { host: '2001:db8::2', port: 80 }),
      Buffer.from([5, 4, 0, 4, 0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 2, 0, 80]),
    );
    assert.deepEqual(encodeReply(1), FAILURE_REPLY(1));
    assert.throws(() => encodeReply(256), /BUG: SOCKS5 reply code/);
  });

  it('ends the socket after a non-success reply and refuses a second reply', async () => {
    const { client, serverSide } = await pair();
    const received = readAll(client);
    const accepted = acceptSocks5(serverSide);
    client.write(Buffer.concat([GREETING, connectRequest(0x01, [10, 0, 0, 7], 9000)]));
    const req = await accepted;
    req.reply(SOCKS5_REPLY.CONNECTION_REFUSED);
    assert.throws(() => req.reply(SOCKS5_REPLY.SUCCEEDED), /BUG: SOCKS5 reply sent twice/);
    assert.deepEqual(await received, Buffer.concat([Buffer.from([0x05, 0x00]), FAILURE_REPLY(SOCKS5_REPLY.CONNECTION_REFUSED)]));
  });

  it('times out a stalled handshake, closing the socket', async () => {
    const { client, serverSide } = await pair();
    const received = readAll(client);
    const accepted = acceptSocks5(serverSide, { handshakeTimeoutMs: 100 });
    client.write(Buffer.from([0x05, 0x01])); // greeting without its method list
    const started = Date.now();
    await rejectsSocks(accepted, /timed out after 100 ms waiting for the greeting \(2 byte\(s\) of it received\)/);
    assert.ok(Date.now() - started >= 80);
    assert.deepEqual(await received, Buffer.alloc(0));
    assert.equal(serverSide.destroyed, true);
  });

  it('times out a client that stops after the greeting', async () => {
    const { client, serverSide } = await pair();
    const received = readAll(client);
    const accepted = acceptSocks5(serverSide, { handshakeTimeoutMs: 100 });
    client.write(Buffer.concat([GREETING, Buffer.from([0x05, 0x01, 0x00])]));
    await rejectsSocks(accepted, /timed out after 100 ms waiting for the request \(3 byte\(s\) of it received\)/);
    assert.deepEqual(await received, Buffer.from([0x05, 0x00]));
  });

  it('rejects a non-SOCKS client (HTTP) without replying', async () => {
    const { client, serverSide } = await pair();
    const received = readAll(client);
    const accepted = acceptSocks5(serverSide);
    client.write('GET / HTTP/1.1\r\n\r\n');
    await rejectsSocks(accepted, /sent version byte 0x47 in the SOCKS5 greeting; expected 0x05/);
    assert.deepEqual(await received, Buffer.alloc(0));
  });

  it('rejects malformed requests with GENERAL_FAILURE, saying what was wrong', async () => {
    const cases: Array<[Buffer, RegExp]> = [
      [Buffer.from([0x04, 0x01, 0x00, 0x01, 1, 2, 3, 4, 0, 80]), /version byte 0x04 in the request; expected 0x05/],
      [Buffer.from([0x05, 0x01, 0x00, 0x03, 0x00, 0, 80]), /empty domain name \(length 0\)/],
      [connectRequest(0x03, [5, ...Buffer.from('a b.c')], 80), /non-printable or non-ASCII byte 0x20 at offset 1/],
      [connectRequest(0x01, [1, 2, 3, 4], 0), /CONNECT to 1\.2\.3\.4 port 0/],
    ];
    for (const [request, message] of cases) {
      const { client, serverSide } = await pair();
      const received = readAll(client);
      const accepted = acceptSocks5(serverSide);
      client.write(Buffer.concat([GREETING, request]));
      await rejectsSocks(accepted, message);
      assert.deepEqual(await received, Buffer.concat([Buffer.from([0x05, 0x00]), FAILURE_REPLY(SOCKS5_REPLY.GENERAL_FAILURE)]));
    }
  });

  it('rejects when the client closes mid-handshake', async () => {
    const { client, serverSide } = await pair();
    const accepted = acceptSocks5(serverSide);
    client.end(Buffer.from([0x05, 0x01, 0x00, 0x05, 0x01, 0x00]));
    await rejectsSocks(accepted, /closed the connection during the request \(3 byte\(s\) of it received\)/);
  });

  it('accepts a 255-byte domain name', async () => {
    const { client, serverSide } = await pair();
    const accepted = acceptSocks5(serverSide);
    const name = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}`;
    assert.equal(name.length, 255);
    client.write(Buffer.concat([GREETING, connectRequest(0x03, [255, ...Buffer.from(name)], 65535)]));
    const req = await accepted;
    assert.deepEqual(req.target, { kind: 'domain', host: name, port: 65535 });
    req.socket.destroy();
  });
});
