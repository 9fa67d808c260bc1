/**
 * The raw HTTP/2 test peer (test/helpers/h2-peer.ts) against node:http2 (nghttp2), both roles: it must see what a
 * conforming stack sends, or every conformance verdict built on it is worthless.
 */
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { CertificateAuthority, SpiffeId, createKeyAndCsr } from '../../src/identity/index.js';

import { FrameType, H2Code, Setting } from '../../src/hbone/h2/frames.js';
import { H2Peer, H2PeerClosedError, H2PeerTimeoutError, headerValue } from '../helpers/h2-peer.js';
import { tempDir } from '../helpers/temp-dir.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function nodeServer(): Promise<number> {
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200, 'x-served-by': 'node' });
    stream.end('hello');
  });
  server.on('session', (s) => cleanups.push(() => s.destroy()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return (server.address() as net.AddressInfo).port;
}

describe('h2-peer (raw HTTP/2 test peer)', () => {
  it('does the SETTINGS exchange with node:http2 and decodes its response headers', async () => {
    const port = await nodeServer();
    const peer = await H2Peer.connect({ host: '127.0.0.1', port });
    cleanups.push(() => peer.destroy());
    const remote = await peer.handshake([[Setting.INITIAL_WINDOW_SIZE, 100_000]]);
    assert.ok(Array.isArray(remote));
    peer.sendHeaders(1, [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'example']], { endStream: true });
    const r = await peer.response(1);
    assert.equal(r.status, 200);
    assert.equal(headerValue(r.headers, 'x-served-by'), 'node');
    const data = await peer.nextFrame(FrameType.DATA, { streamId: 1 });
    assert.equal(data.payload.toString(), 'hello');
    assert.ok(peer.framesReceived >= 4 && peer.bytesReceived > 0);
    assert.ok((peer.framesByType.get(FrameType.SETTINGS) ?? 0) >= 2);
  });

  it('reports node:http2\'s GOAWAY for DATA on stream 0', async () => {
    const port = await nodeServer();
    const peer = await H2Peer.connect({ host: '127.0.0.1', port });
    cleanups.push(() => peer.destroy());
    await peer.handshake();
    peer.sendData(0, 'x');
    const g = await peer.goaway();
    assert.equal(g.code, H2Code.PROTOCOL_ERROR);
    assert.equal(g.lastStreamId, 0);
  });

  it('keeps the frames a wait passed over for later waits', async () => {
    const port = await nodeServer();
    const peer = await H2Peer.connect({ host: '127.0.0.1', port });
    cleanups.push(() => peer.destroy());
    await peer.handshake();
    peer.sendPing(Buffer.from('abcdefgh'));
    peer.sendHeaders(1, [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'example']], { endStream: true });
    assert.equal((await peer.response(1)).status, 200);
    const ack = await peer.nextFrame(FrameType.PING);
    assert.equal(ack.payload.toString(), 'abcdefgh');
  });

  it('sees the other side close, in both roles, and a closed connection ends later waits', async () => {
    const listener = await H2Peer.listen();
    cleanups.push(() => listener.close());
    const client = await H2Peer.connect({ host: '127.0.0.1', port: listener.port });
    cleanups.push(() => client.destroy());
    const server = await listener.accept();
    client.sendPreface();
    client.sendGoaway(0, H2Code.NO_ERROR, 'bye');
    assert.deepEqual(await server.goaway(), { lastStreamId: 0, code: H2Code.NO_ERROR, debug: 'bye' });
    assert.equal(server.prefaceReceived, true);
    server.end();
    assert.equal(await client.closedEvent(), 'eof');
    await assert.rejects(client.nextFrame(FrameType.PING), H2PeerClosedError);
  });

  it('times out with what it saw instead', async () => {
    const port = await nodeServer();
    const peer = await H2Peer.connect({ host: '127.0.0.1', port });
    cleanups.push(() => peer.destroy());
    await peer.handshake();
    peer.sendPing(Buffer.from('12345678'));
    await assert.rejects(peer.rstStream(1, 200), (err: Error) => err instanceof H2PeerTimeoutError && /PING\(ACK\)/.test(err.message));
  });

  it('plays the server for a node:http2 client: reads its preface, answers its request', async () => {
    const listener = await H2Peer.listen();
    cleanups.push(() => listener.close());
    const client = http2.connect(`http://127.0.0.1:${listener.port}`);
    client.on('error', () => undefined);
    cleanups.push(() => client.destroy());
    const req = client.request({ ':method': 'CONNECT', ':authority': '10.0.0.1:80' });
    req.on('error', () => undefined);
    const peer = await listener.accept();
    await peer.handshake();
    assert.equal(peer.prefaceReceived, true);
    const h = await peer.nextFrame(FrameType.HEADERS);
    assert.equal(headerValue(h.headers!, ':method'), 'CONNECT');
    assert.equal(headerValue(h.headers!, ':authority'), '10.0.0.1:80');
    peer.sendHeaders(h.streamId, [[':status', '200']]);
    const [resp] = await new Promise<[http2.IncomingHttpHeaders]>((resolve) => req.once('response', (x) => resolve([x])));
    assert.equal(resp[':status'], 200);
  });

  it('connects over TLS with a client certificate and ALPN h2 to node:http2\'s secure server', async () => {
    const dir = tempDir('h2-peer');
    cleanups.push(() => dir.remove());
    const ca = await CertificateAuthority.loadOrCreate({ dataDir: join(dir.path, 'ca') });
    const issue = async (id: string): Promise<{ key: string; cert: string[] }> => {
      const { keyPem, csrPem } = await createKeyAndCsr();
      return { key: keyPem, cert: ca.signWorkload(csrPem, SpiffeId.parse(id)).certChainPem };
    };
    const serverId = await issue('spiffe://cluster.local/ns/a/sa/server');
    const clientId = await issue('spiffe://cluster.local/ns/a/sa/client');
    const server = http2.createSecureServer({
      key: serverId.key, cert: serverId.cert.join('\n'), ca: ca.rootCertPem, requestCert: true, rejectUnauthorized: true,
    });
    let clientCertUri = '';
    server.on('stream', (stream) => {
      clientCertUri = (stream.session?.socket as tls.TLSSocket).getPeerCertificate().subjectaltname ?? '';
      stream.respond({ ':status': 204 }, { endStream: true });
    });
    server.on('session', (s) => cleanups.push(() => s.destroy()));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    const port = (server.address() as net.AddressInfo).port;
    const peer = await H2Peer.connect({ host: '127.0.0.1', port, tls: { cert: clientId.cert, key: clientId.key, ca: ca.rootCertPem } });
    cleanups.push(() => peer.destroy());
    await peer.handshake();
    peer.sendHeaders(1, [[':method', 'GET'], [':scheme', 'https'], [':path', '/'], [':authority', 'example']], { endStream: true });
    const r = await peer.response(1);
    assert.equal(r.status, 204);
    assert.equal(r.endStream, true);
    assert.match(clientCertUri, /spiffe:\/\/cluster\.local\/ns\/a\/sa\/client/);
  });
});
