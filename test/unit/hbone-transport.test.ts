/**
 * HBONE end to end over real sockets: HbonePool → HboneServer → accept() → relay → a TCP target.
 */
import type { H2Stream } from '../../src/hbone/h2/stream.js';
import { H2Code } from '../../src/hbone/h2/frames.js';
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { X509Certificate } from 'node:crypto';
import { CertificateAuthority, SpiffeId, createKeyAndCsr } from '../../src/identity/index.js';
import { isStraitError } from '../../src/common/errors.js';
import {
  HbonePool,
  HboneRefusedError,
  HboneServer,
  formatForwarded,
  relay,
  type HboneInboundRequest,
  type HbonePoolOptions,
  type HboneServerOptions,
  type WorkloadCert,
} from '../../src/hbone/index.js';
import { OPENSSL } from '../helpers/identity-fixtures.js';
import { H2Peer } from '../helpers/h2-peer.js';
import { tempDir } from '../helpers/temp-dir.js';

const WEB = 'spiffe://cluster.local/ns/shop/sa/web';
const CART = 'spiffe://cluster.local/ns/shop/sa/cart';
const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const EVIL = 'spiffe://cluster.local/ns/shop/sa/evil';

async function issue(ca: CertificateAuthority, id: string): Promise<WorkloadCert> {
  const { keyPem, csrPem } = await createKeyAndCsr();
  return { keyPem, certChainPem: ca.signWorkload(csrPem, SpiffeId.parse(id)).certChainPem };
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(what: string, check: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await delay(10);
  }
}

/** Reads until `n` bytes arrived. */
function readBytes(s: Duplex, n: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      got = Buffer.concat([got, c]);
      if (got.length >= n) {
        s.removeListener('data', onData);
        s.removeListener('error', reject);
        s.pause();
        resolve(got.toString());
      }
    };
    s.on('data', onData);
    s.once('error', reject);
  });
}

function readAll(s: Duplex): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => resolve(Buffer.concat(chunks).toString()));
    s.once('error', reject);
  });
}

function expectCode(code: string, message?: string | RegExp) {
  return (err: unknown) => {
    assert.ok(isStraitError(err), `expected a StraitError, got ${String(err)}`);
    assert.equal(err.code, code, `got ${err.code}: ${err.message}`);
    if (typeof message === 'string') assert.equal(err.message, message);
    else if (message !== undefined) assert.match(err.message, message);
    return true;
  };
}

/** Connects to the target the way the ztunnel does: answer 200 only once the target accepted. */
function connectAndRelay(req: HboneInboundRequest): void {
  const target = net.connect({ host: req.targetHost, port: req.targetPort });
  target.once('connect', () => {
    target.removeAllListeners('error');
    void relay(req.accept(), target);
  });
  target.once('error', (err) => req.reject(503, `cannot reach ${req.authority}: ${err.message}`));
}

describe('HBONE transport', () => {
  let dir: { path: string; remove: () => void };
  let ca: CertificateAuthority;
  let otherCa: CertificateAuthority;
  let certs: Record<'web' | 'cart' | 'frontend' | 'evil' | 'foreignWeb' | 'foreignFrontend', WorkloadCert>;
  let echo: net.Server;
  let echoPort: number;
  let target: string;
  const cleanups: Array<() => unknown> = [];

  before(async () => {
    dir = tempDir('hbone');
    ca = await CertificateAuthority.loadOrCreate({ dataDir: join(dir.path, 'mesh') });
    otherCa = await CertificateAuthority.loadOrCreate({ dataDir: join(dir.path, 'other') });
    certs = {
      web: await issue(ca, WEB),
      cart: await issue(ca, CART),
      frontend: await issue(ca, FRONTEND),
      evil: await issue(ca, EVIL),
      foreignWeb: await issue(otherCa, WEB),
      foreignFrontend: await issue(otherCa, FRONTEND),
    };
    // Streams the tests drop are reset towards the target, so echo sockets see ECONNRESET.
    echo = net.createServer({ allowHalfOpen: true }, (s) => s.on('error', () => undefined).pipe(s));
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    echoPort = (echo.address() as net.AddressInfo).port;
    target = `127.0.0.1:${echoPort}`;
  });

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  after(async () => {
    echo.close();
    dir.remove();
  });

  async function startServer(opts: Partial<HboneServerOptions> = {}, host = '127.0.0.1'): Promise<{ server: HboneServer; port: number; requests: HboneInboundRequest[] }> {
    const requests: HboneInboundRequest[] = [];
    const onConnect = opts.onConnect ?? connectAndRelay;
    const server = new HboneServer({
      rootPem: ca.rootCertPem,
      certFor: () => certs.web,
      ...opts,
      onConnect: (req) => {
        requests.push(req);
        return onConnect(req);
      },
    });
    cleanups.push(() => server.close());
    const { port } = await server.listen(host, 0);
    return { server, port, requests };
  }

  function newPool(opts: Partial<HbonePoolOptions> = {}): HbonePool {
    const pool = new HbonePool({ rootPem: ca.rootCertPem, ...opts });
    cleanups.push(() => pool.close());
    return pool;
  }

  function request(port: number, over: Partial<Parameters<HbonePool['connect']>[0]> = {}): Parameters<HbonePool['connect']>[0] {
    return {
      key: `${FRONTEND}|${WEB}|127.0.0.1:${port}`,
      address: { host: '127.0.0.1', port },
      cert: certs.frontend,
      expectedPeerSans: [WEB],
      authority: target,
      ...over,
    };
  }

  it('carries bytes end to end: pool → server → accept() → relay → TCP echo', async () => {
    const { port, requests } = await startServer();
    const pool = newPool();
    const res = await pool.connect(request(port, {
      headers: { forwarded: formatForwarded('10.1.2.3'), baggage: 'k8s.namespace.name=shop', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    }));
    assert.equal(res.peerIdentity, WEB);
    assert.equal(res.reused, false);
    const reply = readAll(res.stream);
    res.stream.write('hello ');
    res.stream.end('hbone');
    assert.equal(await reply, 'hello hbone');

    assert.equal(requests.length, 1);
    const req = requests[0]!;
    assert.equal(req.peerIdentity, FRONTEND);
    assert.equal(req.authority, target);
    assert.equal(req.targetHost, '127.0.0.1');
    assert.equal(req.targetPort, echoPort);
    assert.equal(req.forwardedFor, '10.1.2.3');
    assert.equal(req.baggage, 'k8s.namespace.name=shop');
    assert.equal(req.traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    assert.equal(req.headers[':method'], 'CONNECT');
    assert.equal(req.headers[':path'], undefined);
    assert.equal(req.headers[':scheme'], undefined);
    assert.equal(req.localAddress, '127.0.0.1');
    assert.equal(req.localPort, port);
    assert.equal(req.remoteAddress, '127.0.0.1');
    assert.equal(req.peerCertificate.subjectAltName, `URI:${FRONTEND}`);
  });

  it('runs 50 sequential connects with the same key over ONE TLS connection', async () => {
    const { server, port } = await startServer();
    const pool = newPool();
    const ids = new Set<number>();
    for (let i = 0; i < 50; i++) {
      const res = await pool.connect(request(port));
      assert.equal(res.reused, i > 0);
      ids.add(res.connectionId);
      const reply = readAll(res.stream);
      res.stream.end(`ping ${i}`);
      assert.equal(await reply, `ping ${i}`);
    }
    assert.equal(ids.size, 1);
    assert.equal(pool.stats().handshakes, 1);
    assert.equal(pool.stats().connections, 1);
    await until('streams to close', () => pool.stats().streams === 0 && server.activeStreams() === 0);
    assert.equal(server.activeSessions(), 1);
  });

  it('opens a second connection when concurrent connects exceed the stream cap', async () => {
    const { port } = await startServer();
    const pool = newPool({ maxStreamsPerConnection: 2 });
    const results = await Promise.all([pool.connect(request(port)), pool.connect(request(port)), pool.connect(request(port))]);
    assert.equal(new Set(results.map((r) => r.connectionId)).size, 2);
    assert.deepEqual(results.map((r) => r.reused), [false, true, false]); // the second shared the first's handshake
    assert.equal(pool.stats().handshakes, 2);
    assert.equal(pool.stats().connections, 2);
    assert.equal(pool.stats().streams, 3);
    // All three streams work.
    const replies = await Promise.all(results.map((r, i) => {
      const reply = readAll(r.stream);
      r.stream.end(`s${i}`);
      return reply;
    }));
    assert.deepEqual(replies, ['s0', 's1', 's2']);
    // With a slot free again, the next stream reuses a connection.
    await until('streams to close', () => pool.stats().streams === 0);
    const again = await pool.connect(request(port));
    assert.equal(again.reused, true);
    assert.equal(pool.stats().handshakes, 2);
    again.stream.destroy();
  });

  it('keeps different keys on different connections', async () => {
    const { port } = await startServer();
    const pool = newPool();
    const a = await pool.connect(request(port, { key: 'frontend|web|a' }));
    const b = await pool.connect(request(port, { key: 'cart|web|a', cert: certs.cart }));
    assert.notEqual(a.connectionId, b.connectionId);
    assert.equal(b.reused, false);
    assert.equal(pool.stats().handshakes, 2);
    a.stream.destroy();
    b.stream.destroy();
  });

  it('closes a connection that stayed idle for idleTimeoutMs', async () => {
    const { server, port } = await startServer();
    const pool = newPool({ idleTimeoutMs: 150 });
    const res = await pool.connect(request(port));
    const reply = readAll(res.stream);
    res.stream.end('x');
    await reply;
    await until('the stream to close', () => pool.stats().streams === 0);
    assert.equal(pool.stats().connections, 1);
    await delay(50);
    assert.equal(pool.stats().connections, 1, 'not closed before the idle timeout');
    await until('the idle connection to close', () => pool.stats().connections === 0, 2000);
    await until('the server to see the session end', () => server.activeSessions() === 0);
    // A new stream makes a new connection.
    const again = await pool.connect(request(port));
    assert.equal(again.reused, false);
    assert.equal(pool.stats().handshakes, 2);
    again.stream.destroy();
  });

  it('rejects a peer whose SPIFFE id is not the destination\'s (impostor)', async () => {
    const { port, requests } = await startServer({ certFor: () => certs.evil });
    const pool = newPool();
    await assert.rejects(pool.connect(request(port)),
      expectCode('STRAIT_ERR_PEER_VERIFY', `peer at 127.0.0.1:${port} presented ${EVIL} but ${WEB} was expected`));
    assert.equal(requests.length, 0);
    assert.deepEqual(pool.stats(), { connections: 0, streams: 0, handshakes: 0 });
    // Once its certificate was verified (and remembered) for a key that expects it, it is still refused elsewhere.
    const expectingEvil = await pool.connect(request(port, { key: 'expects-evil', expectedPeerSans: [EVIL] }));
    assert.equal(expectingEvil.peerIdentity, EVIL);
    expectingEvil.stream.destroy();
    await assert.rejects(pool.connect(request(port, { key: 'expects-web' })),
      expectCode('STRAIT_ERR_PEER_VERIFY', `peer at 127.0.0.1:${port} presented ${EVIL} but ${WEB} was expected`));
  });

  it('rejects a server certificate from another CA', async () => {
    const { port } = await startServer({ certFor: () => certs.foreignWeb });
    const pool = newPool();
    await assert.rejects(pool.connect(request(port)), expectCode('STRAIT_ERR_PEER_VERIFY', new RegExp(`^peer at 127\\.0\\.0\\.1:${port} presented a certificate that does not chain to the mesh root`)));
    assert.equal(pool.stats().connections, 0);
  });

  it('refuses a client certificate from another CA before HTTP/2', async () => {
    const { server, port, requests } = await startServer();
    const pool = newPool();
    await assert.rejects(pool.connect(request(port, { cert: certs.foreignFrontend })),
      expectCode('STRAIT_ERR_HBONE_CONNECT', /127\.0\.0\.1:\d+ .*refused our client certificate|refuse our certificate/));
    assert.equal(requests.length, 0);
    assert.equal(server.activeSessions(), 0);
  });

  it('refuses a client without a certificate with a TLS alert', async () => {
    const { server, port, requests } = await startServer();
    const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.rootCertPem, ALPNProtocols: ['h2'], minVersion: 'TLSv1.3', checkServerIdentity: () => undefined });
    const err = await new Promise<NodeJS.ErrnoException>((resolve, reject) => {
      socket.once('error', resolve);
      socket.once('close', () => reject(new Error('closed without an error')));
    });
    assert.equal(err.code, 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
    assert.equal(requests.length, 0);
    assert.equal(server.activeSessions(), 0);
  });

  it('refuses openssl s_client without a client certificate before it reaches HTTP/2', async () => {
    assert.ok(existsSync(OPENSSL), `${OPENSSL} is not installed; this test needs the real openssl`);
    const { server, port, requests } = await startServer();
    const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
      const child = execFile(OPENSSL,
        ['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_3', '-alpn', 'h2', '-ign_eof', '-CAfile', join(dir.path, 'mesh', 'root-cert.pem')],
        { timeout: 10_000 }, (error, stdout, stderr) => {
          resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, text: `${stdout}\n${stderr}` });
        });
      child.stdin?.end();
    });
    assert.match(out.text, /CONNECTED/, out.text);
    // TLS 1.3: the server's "certificate required" alert (116) ends the connection; s_client exits non-zero.
    assert.match(out.text, /alert certificate required|alert number 116/, out.text);
    assert.notEqual(out.code, 0);
    assert.equal(requests.length, 0);
    assert.equal(server.activeSessions(), 0);
  });

  it('passes a refusal with status and reason to the client', async () => {
    const { port } = await startServer({ onConnect: (req) => req.reject(403, 'denied by policy x') });
    const pool = newPool();
    const err = await pool.connect(request(port)).then(() => assert.fail('should be refused'), (e: unknown) => e);
    assert.ok(err instanceof HboneRefusedError, String(err));
    assert.equal(err.code, 'STRAIT_ERR_HBONE_REFUSED');
    assert.equal(err.status, 403);
    assert.equal(err.reason, 'denied by policy x');
    assert.equal(err.message, `HBONE peer at 127.0.0.1:${port} refused CONNECT ${target} with status 403: denied by policy x`);
    // The connection stays usable.
    await until('the refused stream to close', () => pool.stats().streams === 0);
    assert.equal(pool.stats().connections, 1);
  });

  it('answers 400 to a malformed :authority without asking the owner', async () => {
    const { port, requests } = await startServer();
    const pool = newPool();
    const err = await pool.connect(request(port, { authority: 'web.shop:80' })).then(() => assert.fail('should be refused'), (e: unknown) => e);
    assert.ok(err instanceof HboneRefusedError, String(err));
    assert.equal(err.status, 400);
    assert.match(err.reason ?? '', /malformed :authority "web\.shop:80"/);
    assert.equal(requests.length, 0);
  });

  it('answers 500 when the owner\'s handler fails before answering', async () => {
    const { port } = await startServer({ onConnect: async () => { await delay(1); throw new Error('boom'); } });
    const pool = newPool();
    const err = await pool.connect(request(port)).then(() => assert.fail('should be refused'), (e: unknown) => e);
    assert.ok(err instanceof HboneRefusedError, String(err));
    assert.equal(err.status, 500);
  });

  it('answers 405 to methods other than CONNECT', async () => {
    const { port, requests } = await startServer();
    const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.rootCertPem, key: certs.frontend.keyPem, cert: certs.frontend.certChainPem.join('\n'), ALPNProtocols: ['h2'], checkServerIdentity: () => undefined });
    await once(socket, 'secureConnect');
    const session = http2.connect(`https://127.0.0.1:${port}`, { createConnection: () => socket });
    cleanups.push(() => session.destroy());
    const req = session.request({ ':method': 'GET', ':path': '/' });
    const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
    assert.equal(headers[':status'], 405);
    assert.equal(requests.length, 0);
  });

  it('keeps the reverse direction open after the client half-closes', async () => {
    // The target answers only after it saw the client's FIN, and then some more a little later.
    const halfClose = net.createServer({ allowHalfOpen: true }, (s) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => {
        s.write(`got ${Buffer.concat(chunks).toString()};`);
        setTimeout(() => s.end(' bye'), 50);
      });
    });
    halfClose.listen(0, '127.0.0.1');
    await once(halfClose, 'listening');
    cleanups.push(() => halfClose.close());
    const { port } = await startServer();
    const pool = newPool();
    const res = await pool.connect(request(port, { authority: `127.0.0.1:${(halfClose.address() as net.AddressInfo).port}` }));
    const reply = readAll(res.stream);
    res.stream.end('question');
    assert.equal(await reply, 'got question; bye');
  });

  it('passes a reset of the target back to the client application as a TCP reset', async () => {
    const resetter = net.createServer((s) => s.once('data', () => s.resetAndDestroy()));
    resetter.listen(0, '127.0.0.1');
    await once(resetter, 'listening');
    cleanups.push(() => resetter.close());
    const { server, port } = await startServer();
    const pool = newPool();
    // The outbound side as the ztunnel runs it: app socket ⇄ relay ⇄ HBONE stream.
    const outbound = net.createServer();
    outbound.listen(0, '127.0.0.1');
    await once(outbound, 'listening');
    cleanups.push(() => outbound.close());
    const accepted = once(outbound, 'connection') as Promise<[net.Socket]>;
    const app = net.connect((outbound.address() as net.AddressInfo).port, '127.0.0.1');
    const [captured] = await accepted;
    const res = await pool.connect(request(port, { authority: `127.0.0.1:${(resetter.address() as net.AddressInfo).port}` }));
    const relayed = relay(captured, res.stream);
    const appOutcome = new Promise<{ error?: NodeJS.ErrnoException; ended: boolean }>((resolve) => {
      let ended = false;
      let error: NodeJS.ErrnoException | undefined;
      app.on('data', () => undefined);
      app.on('end', () => { ended = true; });
      app.on('error', (e) => { error = e; });
      app.once('close', () => resolve({ error, ended }));
    });
    const started = Date.now();
    app.write('trigger');
    const o = await appOutcome;
    assert.ok(Date.now() - started < 2000, 'closed promptly');
    assert.equal(o.error?.code, 'ECONNRESET', 'the application sees a reset, not a clean end');
    assert.equal(o.ended, false);
    const r = await relayed;
    assert.equal(r.resetBy, 'b');
    assert.match(r.error?.message ?? '', /RST_STREAM CANCEL/);
    assert.equal((res.stream as H2Stream).rstCode, H2Code.CANCEL);
    await until('the server stream to close', () => server.activeStreams() === 0);
    assert.equal(pool.stats().connections, 1, 'the connection survives a stream reset');
  });

  it('presents the certificate of the address the client dialled', async () => {
    const byAddress: Record<string, WorkloadCert> = { '127.0.0.11': certs.web, '127.0.0.12': certs.cart };
    // Asynchronous on purpose: the ClientHello waits in the socket while the certificate is looked up.
    const server = new HboneServer({ rootPem: ca.rootCertPem, certFor: async (addr) => { await delay(5); return byAddress[addr]; }, onConnect: connectAndRelay });
    cleanups.push(() => server.close());
    const a = await server.listen('127.0.0.11', 0);
    const b = await server.listen('127.0.0.12', 0);
    const pool = newPool();
    const toWeb = await pool.connect({ ...request(a.port), key: 'web', address: a, expectedPeerSans: [WEB] });
    const toCart = await pool.connect({ ...request(b.port), key: 'cart', address: b, expectedPeerSans: [CART] });
    assert.equal(toWeb.peerIdentity, WEB);
    assert.equal(toCart.peerIdentity, CART);
    await assert.rejects(pool.connect({ ...request(b.port), key: 'cart-as-web', address: b, expectedPeerSans: [WEB] }),
      expectCode('STRAIT_ERR_PEER_VERIFY', `peer at 127.0.0.12:${b.port} presented ${CART} but ${WEB} was expected`));
    const reply = readAll(toCart.stream);
    toCart.stream.end('via cart');
    assert.equal(await reply, 'via cart');
    toWeb.stream.destroy();
    // The pod at 127.0.0.12 leaves: new connections there fail, the open one to 127.0.0.11 is untouched.
    await server.closeListener('127.0.0.12', b.port);
    assert.deepEqual(server.listening(), [`127.0.0.11:${a.port}`]);
    await assert.rejects(pool.connect({ ...request(b.port), key: 'cart-2', address: b, expectedPeerSans: [CART] }), expectCode('STRAIT_ERR_HBONE_CONNECT', /connection refused/));
  });

  it('takes sockets accepted elsewhere and picks the certificate from the given original destination', async () => {
    const seen: string[] = [];
    const server = new HboneServer({
      rootPem: ca.rootCertPem,
      certFor: (addr, port) => { seen.push(`${addr}:${port}`); return addr === '10.244.1.7' ? certs.cart : undefined; },
      onConnect: connectAndRelay,
    });
    cleanups.push(() => server.close());
    const capture = net.createServer((s) => server.handleSocket(s, '10.244.1.7', 15008));
    capture.listen(0, '127.0.0.1');
    await once(capture, 'listening');
    cleanups.push(() => capture.close());
    const port = (capture.address() as net.AddressInfo).port;
    const pool = newPool();
    const res = await pool.connect(request(port, { expectedPeerSans: [CART] }));
    assert.equal(res.peerIdentity, CART);
    assert.deepEqual(seen, ['10.244.1.7:15008']);
    res.stream.destroy();
  });

  it('presents the new certificate after a rotation', async () => {
    let current = certs.web;
    const { port } = await startServer({ certFor: () => current });
    const serialSeen = async (): Promise<string> => {
      const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.rootCertPem, key: certs.frontend.keyPem, cert: certs.frontend.certChainPem[0], ALPNProtocols: ['h2'], checkServerIdentity: () => undefined });
      await once(socket, 'secureConnect');
      const serial = socket.getPeerCertificate().serialNumber;
      socket.destroy();
      return serial;
    };
    const serialOf = (c: WorkloadCert): string => new X509Certificate(c.certChainPem[0]!).serialNumber.toUpperCase();
    assert.equal((await serialSeen()).toUpperCase(), serialOf(certs.web));
    current = await issue(ca, WEB); // the rotated certificate: same id, new key and serial
    assert.equal((await serialSeen()).toUpperCase(), serialOf(current));
    const pool = newPool();
    const res = await pool.connect(request(port));
    assert.equal(res.peerIdentity, WEB);
    res.stream.destroy();
  });

  it('works over IPv6, with bracketed authorities and forwarded addresses', async (t) => {
    const probe = net.createServer();
    const ok = await new Promise<boolean>((resolve) => {
      probe.once('error', () => resolve(false));
      probe.listen(0, '::1', () => { probe.close(); resolve(true); });
    });
    if (!ok) {
      assert.ok(process.env.CI === undefined, '::1 is not available; CI machines must have IPv6 loopback');
      t.skip('::1 is not available in this environment');
      return;
    }
    const { port, requests } = await startServer({ onConnect: (req) => req.reject(503, `no pod ${req.targetHost} port ${req.targetPort}`) }, '::1');
    const pool = newPool();
    const err = await pool.connect({
      ...request(port), key: 'v6', address: { host: '::1', port }, authority: '[fd00::7]:8080', headers: { forwarded: formatForwarded('fd00::1') },
    }).then(() => assert.fail('should be refused'), (e: unknown) => e);
    assert.ok(err instanceof HboneRefusedError, String(err));
    assert.equal(err.message, `HBONE peer at [::1]:${port} refused CONNECT [fd00::7]:8080 with status 503: no pod fd00::7 port 8080`);
    const req = requests[0]!;
    assert.equal(req.targetHost, 'fd00::7');
    assert.equal(req.forwardedFor, 'fd00::1');
    assert.equal(req.localAddress, '::1');
    assert.equal(req.remoteAddress, '::1');
  });

  it('closes the connection when certFor has no certificate for the address', async () => {
    const { port, requests } = await startServer({ certFor: () => undefined });
    const pool = newPool();
    await assert.rejects(pool.connect(request(port)), expectCode('STRAIT_ERR_HBONE_CONNECT', /closed the connection during the TLS handshake/));
    assert.equal(requests.length, 0);
  });

  it('reports a refused TCP connection with a hint', async () => {
    const probe = net.createServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const pool = newPool();
    await assert.rejects(pool.connect(request(port)), expectCode('STRAIT_ERR_HBONE_CONNECT',
      `cannot connect to HBONE peer at 127.0.0.1:${port}: connection refused; is the ztunnel or waypoint there running and listening on port ${port}?`));
  });

  it('times out a peer that never completes the handshake', async () => {
    const silent = net.createServer(() => undefined);
    const sockets: net.Socket[] = [];
    silent.on('connection', (s) => sockets.push(s));
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    cleanups.push(() => { sockets.forEach((s) => s.destroy()); silent.close(); });
    const port = (silent.address() as net.AddressInfo).port;
    const pool = newPool({ connectTimeoutMs: 200 });
    const started = Date.now();
    await assert.rejects(pool.connect(request(port)), expectCode('STRAIT_ERR_HBONE_CONNECT_TIMEOUT', /timed out after 200 ms; maybe a NetworkPolicy or firewall is blocking HBONE port/));
    assert.ok(Date.now() - started < 1500);
    assert.equal(pool.stats().connections, 0);
  });

  it('says why a peer reset the CONNECT before answering, from the RST_STREAM code', async () => {
    const listener = await H2Peer.listen({ tls: { cert: certs.web.certChainPem, key: certs.web.keyPem } });
    cleanups.push(() => listener.close());
    const pool = newPool();
    const hint: Array<[number, RegExp]> = [
      [H2Code.PROTOCOL_ERROR, /RST_STREAM PROTOCOL_ERROR\); it found the CONNECT malformed/],
      [H2Code.REFUSED_STREAM, /RST_STREAM REFUSED_STREAM\); it refused the stream without processing it/],
    ];
    for (const [code, message] of hint) {
      const attempt = pool.connect(request(listener.port, { key: `k${code}`, address: { host: '127.0.0.1', port: listener.port } }));
      const peer = await listener.accept();
      await peer.handshake();
      const h = await peer.nextFrame(1); // the CONNECT's HEADERS
      peer.sendRstStream(h.streamId, code);
      await assert.rejects(attempt, expectCode('STRAIT_ERR_HBONE_CONNECT', message));
    }
  });

  it('times out a CONNECT that gets no answer', async () => {
    const { port } = await startServer({ onConnect: () => undefined });
    const pool = newPool({ connectTimeoutMs: 200 });
    await assert.rejects(pool.connect(request(port)), expectCode('STRAIT_ERR_HBONE_CONNECT_TIMEOUT', /did not answer CONNECT/));
    await until('the slot to be released', () => pool.stats().streams === 0);
  });

  it('aborts the owner\'s signal when the client gives up on a CONNECT it has not answered yet', async () => {
    const { port, requests } = await startServer({ onConnect: () => undefined });
    const pool = newPool({ connectTimeoutMs: 200 }); // the pool resets the stream (CANCEL) when it gives up
    await assert.rejects(pool.connect(request(port)), expectCode('STRAIT_ERR_HBONE_CONNECT_TIMEOUT', /did not answer CONNECT/));
    await until('the request to arrive', () => requests.length === 1);
    await until('the signal to abort', () => requests[0]!.signal.aborted);
    assert.equal(requests[0]!.answered, false);
  });

  it('answers 405 with a short body that says what the port is, so a browser or curl user learns why', async () => {
    const { port } = await startServer();
    const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.rootCertPem, key: certs.frontend.keyPem, cert: certs.frontend.certChainPem.join('\n'), ALPNProtocols: ['h2'], checkServerIdentity: () => undefined });
    await once(socket, 'secureConnect');
    const session = http2.connect(`https://127.0.0.1:${port}`, { createConnection: () => socket });
    cleanups.push(() => session.destroy());
    const req = session.request({ ':method': 'GET', ':path': '/' });
    const body = readAll(req);
    const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
    assert.equal(headers[':status'], 405);
    assert.match(await body, /accepts only CONNECT/);
  });

  it('drains: GOAWAY stops new streams on a connection, open streams finish', async () => {
    const { server, port } = await startServer();
    const pool = newPool();
    const open = await pool.connect(request(port));
    assert.equal(open.stream.write('before '), true);
    assert.equal(await readBytes(open.stream, 7), 'before ');
    server.drain();
    await until('the pool to see GOAWAY', () => pool.stats().connections === 1 && pool.stats().streams === 1);
    // The open stream still works after the drain.
    open.stream.resume();
    const reply = readAll(open.stream);
    open.stream.end('after');
    assert.equal(await reply, 'after');
    // New streams need a new connection, and the server no longer listens.
    await assert.rejects(pool.connect(request(port)), expectCode('STRAIT_ERR_HBONE_CONNECT', /connection refused/));
    await until('the drained session to end', () => server.activeSessions() === 0);
  });

  it('refuses bad options at construction', () => {
    assert.throws(() => new HbonePool({ rootPem: ca.rootCertPem, maxStreamsPerConnection: 0 }), expectCode('STRAIT_ERR_CONFIG', /maxStreamsPerConnection/));
    assert.throws(() => new HboneServer({ rootPem: 'not a pem', certFor: () => undefined, onConnect: () => undefined }), expectCode('STRAIT_ERR_CERT_INVALID'));
  });
});
