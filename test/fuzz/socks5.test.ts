/**
 * Fuzzing the SOCKS5 server handshake (src/ztunnel/proxy/socks5.ts `acceptSocks5`) over real loopback TCP.
 *
 * Inputs: valid handshakes (greeting, CONNECT request for IPv4 / IPv6 / a domain, pipelined payload), the same
 * mutated, and arbitrary bytes; written in random pieces, and the client either closes its side afterwards or
 * stays silent. Every input must end in a defined outcome within the handshake timeout plus 1 s: the promise
 * resolves with a valid target (and the bytes after the request reach the caller, exactly) or rejects with a
 * StraitError STRAIT_ERR_SOCKS5 — never another exception, never a hang. What the client receives is always a
 * well-formed SOCKS5 (or SOCKS4 rejection) answer or nothing, and the connection is closed within 3 s.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import fc from 'fast-check';
import { isStraitError } from '../../src/common/errors.js';
import { SOCKS5_REPLY, acceptSocks5, parseIPv6, type Socks5Request } from '../../src/ztunnel/proxy/socks5.js';
import { byteMutationArb, chunkingArb, chunksOf, delay, fuzzParams, mutate, testTimeoutMs, tick, type Chunking } from './kit.js';

const HANDSHAKE_TIMEOUT_MS = 40;
const SETTLE_BOUND_MS = HANDSHAKE_TIMEOUT_MS + 1000;
const CLOSE_BOUND_MS = 3000;
/** Pieces beyond this many are sent as one (bounds a run's time). */
const MAX_PIECES = 48;

interface Handshake {
  bytes: Buffer;
  /** For a valid handshake: the target it asks for and the bytes that follow the request. */
  expected?: { kind: 'ip' | 'domain'; host: string; port: number; payload: Buffer };
}

const greetingArb = fc.tuple(fc.uniqueArray(fc.integer({ min: 0, max: 255 }), { maxLength: 6 }), fc.nat())
  .map(([others, at]) => {
    const methods = others.filter((m) => m !== 0);
    methods.splice(at % (methods.length + 1), 0, 0x00); // NO AUTHENTICATION somewhere in the list
    return Buffer.from([0x05, methods.length, ...methods]);
  });

const targetArb: fc.Arbitrary<{ atyp: number; addr: Buffer; kind: 'ip' | 'domain'; host: string }> = fc.oneof(
  fc.ipV4().map((ip) => ({ atyp: 0x01, addr: Buffer.from(ip.split('.').map(Number)), kind: 'ip' as const, host: ip })),
  fc.ipV6().map((ip) => ({ atyp: 0x04, addr: parseIPv6(ip)!, kind: 'ip' as const, host: ip })),
  fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-.'), minLength: 1, maxLength: 255 })
    .map((name) => ({ atyp: 0x03, addr: Buffer.concat([Buffer.from([name.length]), Buffer.from(name, 'ascii')]), kind: 'domain' as const, host: name })),
);

const validArb: fc.Arbitrary<Handshake> = fc.tuple(greetingArb, targetArb, fc.integer({ min: 1, max: 65_535 }), fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 0, max: 255 }))
  .map(([greeting, t, port, payload, rsv]) => {
    const req = Buffer.concat([Buffer.from([0x05, 0x01, rsv, t.atyp]), t.addr, Buffer.from([port >> 8, port & 0xff])]);
    return { bytes: Buffer.concat([greeting, req, Buffer.from(payload)]), expected: { kind: t.kind, host: t.host, port, payload: Buffer.from(payload) } };
  });

const mutatedArb: fc.Arbitrary<Handshake> = fc.tuple(validArb, validArb, fc.array(byteMutationArb, { minLength: 1, maxLength: 4 }))
  .map(([a, b, m]) => ({ bytes: mutate({ bytes: a.bytes, frameStarts: [] }, { bytes: b.bytes, frameStarts: [] }, m) }));

const arbitraryArb: fc.Arbitrary<Handshake> = fc.oneof(
  fc.uint8Array({ maxLength: 300 }).map((b) => ({ bytes: Buffer.from(b) })),
  // a valid-looking start followed by noise
  fc.tuple(fc.constantFrom(Buffer.from([5]), Buffer.from([5, 1, 0]), Buffer.from([5, 1, 0, 5]), Buffer.from([4, 1]), Buffer.from([5, 1, 0, 5, 1, 0])), fc.uint8Array({ maxLength: 300 }))
    .map(([head, tail]) => ({ bytes: Buffer.concat([head, Buffer.from(tail)]) })),
);

/** Answers the client may see: nothing, the SOCKS4 rejection, 05 FF, or 05 00 then nothing or one reply. */
function checkAnswer(got: Buffer): void {
  const hex = got.toString('hex');
  if (hex === '' || hex === '005b000000000000' || hex === '05ff' || hex === '0500') return;
  assert.ok(got.length >= 4 && got[0] === 0x05 && got[1] === 0x00, `unexpected answer ${hex}`);
  const reply = got.subarray(2);
  assert.equal(reply[0], 0x05, `reply version in ${hex}`);
  assert.ok(reply[1]! <= 0x08, `reply code in ${hex}`);
  assert.equal(reply[2], 0x00, `reserved byte in ${hex}`);
  const atyp = reply[3];
  const len = atyp === 0x01 ? 4 + 4 + 2 : atyp === 0x04 ? 4 + 16 + 2 : -1;
  assert.equal(reply.length, len, `one whole reply in ${hex}`);
}

describe('fuzz: SOCKS5 handshake (acceptSocks5) over real sockets', () => {
  const waiting: Array<(s: net.Socket) => void> = [];
  const server = net.createServer((s) => {
    const w = waiting.shift();
    if (w) w(s);
    else s.destroy();
  });
  let port = 0;

  before(async () => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as net.AddressInfo).port;
  });
  after(() => server.close());

  async function runInput(h: Handshake, chunking: Chunking, endAfter: boolean, replyCode: number, tally: Map<string, number>): Promise<void> {
    const accepted = new Promise<net.Socket>((resolve) => waiting.push(resolve));
    const client = net.connect({ host: '127.0.0.1', port });
    client.setNoDelay(true);
    client.on('error', () => undefined);
    const received: Buffer[] = [];
    client.on('data', (c: Buffer) => received.push(c));
    const clientClosed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    await once(client, 'connect');
    const serverSide = await accepted;

    const started = Date.now();
    let settledAt = 0;
    const outcome = acceptSocks5(serverSide, { handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS }).then(
      (req) => { settledAt = Date.now(); return { ok: true as const, req }; },
      (err: unknown) => { settledAt = Date.now(); return { ok: false as const, err }; },
    );

    let pieces = chunksOf(h.bytes, chunking);
    if (pieces.length > MAX_PIECES) pieces = [...pieces.slice(0, MAX_PIECES - 1), Buffer.concat(pieces.slice(MAX_PIECES - 1))];
    for (const p of pieces) {
      if (client.destroyed || !client.writable) break;
      client.write(p);
      await tick();
    }
    if (endAfter && client.writable) client.end();

    const timeout = delay(SETTLE_BOUND_MS).then(() => 'timeout' as const);
    const r = await Promise.race([outcome, timeout]);
    assert.notEqual(r, 'timeout', `the handshake neither resolved nor rejected within ${SETTLE_BOUND_MS} ms`);
    if (r === 'timeout') return;
    assert.ok(settledAt - started <= SETTLE_BOUND_MS);

    let kind: string;
    if (r.ok) {
      const req: Socks5Request = r.req;
      assert.ok(Number.isInteger(req.target.port) && req.target.port >= 1 && req.target.port <= 65_535, `port ${req.target.port}`);
      if (req.target.kind === 'ip') assert.ok(net.isIP(req.target.host) !== 0, `ip target ${req.target.host}`);
      else assert.match(req.target.host, /^[\x21-\x7e]{1,255}$/);
      if (h.expected !== undefined) {
        assert.equal(req.target.kind, h.expected.kind);
        assert.equal(req.target.port, h.expected.port);
        if (h.expected.kind === 'domain') assert.equal(req.target.host, h.expected.host);
        else assert.equal(net.isIPv6(req.target.host) ? parseIPv6(req.target.host)!.toString('hex') : req.target.host,
          net.isIPv6(h.expected.host) ? parseIPv6(h.expected.host)!.toString('hex') : h.expected.host);
      }
      req.reply(replyCode);
      if (replyCode === SOCKS5_REPLY.SUCCEEDED) {
        // the bytes after the request, exactly, and then the client's end (when it ended)
        if (h.expected !== undefined && endAfter) {
          const rest: Buffer[] = [];
          req.socket.on('data', (c: Buffer) => rest.push(c));
          req.socket.resume();
          await Promise.race([once(req.socket, 'end'), delay(CLOSE_BOUND_MS)]);
          assert.equal(Buffer.concat(rest).toString('hex'), h.expected.payload.toString('hex'), 'pipelined bytes reach the caller unchanged');
        }
        req.socket.destroy();
      }
      kind = replyCode === SOCKS5_REPLY.SUCCEEDED ? 'request parsed' : 'request parsed, refused';
    } else {
      assert.ok(isStraitError(r.err, 'STRAIT_ERR_SOCKS5'), `a failure is a StraitError STRAIT_ERR_SOCKS5, got ${String(r.err)}`);
      assert.ok(serverSide.destroyed || serverSide.writableEnded, 'after a failure the socket is ended or destroyed');
      kind = `rejected: ${(r.err as Error).message.replace(/^(SOCKS5 )?(client|handshake from) 127\.0\.0\.1:\d+ /, '').split(/[;(]| to | after | 0x/)[0]!.trim()}`;
    }
    if (!endAfter && client.writable) client.end();
    const closed = await Promise.race([clientClosed.then(() => true), delay(CLOSE_BOUND_MS).then(() => false)]);
    assert.ok(closed, `the connection was not closed within ${CLOSE_BOUND_MS} ms of the outcome`);
    checkAnswer(Buffer.concat(received));
    tally.set(kind, (tally.get(kind) ?? 0) + 1);
    client.destroy();
  }

  const replyArb = fc.oneof({ arbitrary: fc.constant(SOCKS5_REPLY.SUCCEEDED), weight: 3 }, fc.constantFrom(SOCKS5_REPLY.NOT_ALLOWED, SOCKS5_REPLY.CONNECTION_REFUSED));
  const endArb = fc.oneof({ arbitrary: fc.constant(true), weight: 4 }, fc.constant(false));
  const WEIGHT = 0.1; // real sockets: the long run does a tenth of FUZZ_RUNS here
  const cases: Array<[string, string, fc.Arbitrary<Handshake>, number]> = [
    ['valid handshakes: the target and the pipelined bytes come out exactly', 'valid', validArb, 150],
    ['mutated handshakes end in a reply or a close, in time', 'mutated', mutatedArb, 250],
    ['arbitrary bytes end in a reply or a close, in time', 'arbitrary', arbitraryArb, 150],
  ];
  for (const [title, name, arb, ciRuns] of cases) {
    it(title, { timeout: testTimeoutMs(ciRuns, 60, WEIGHT) }, async () => {
      const tally = new Map<string, number>();
      await fc.assert(
        fc.asyncProperty(arb, chunkingArb, endArb, replyArb, (h, chunking, endAfter, code) => runInput(h, chunking, endAfter, code, tally)),
        fuzzParams(`socks5 ${name}`, ciRuns, { timeout: SETTLE_BOUND_MS + 2 * CLOSE_BOUND_MS + 1000 }, WEIGHT),
      );
      process.stderr.write(`[fuzz] socks5 ${name}: ${[...tally].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}: ${v}`).join('; ')}\n`);
    });
  }
});
