/** What the waypoint takes a tunnel's protocol to be from its first bytes (detect.ts), and that the bytes are kept. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { classify, detectProtocol } from '../../src/waypoint/detect.js';

const b = (s: string) => Buffer.from(s, 'latin1');

describe('waypoint protocol detection', () => {
  it('recognises the HTTP/2 preface only once it is complete, and HTTP/1.x request lines', () => {
    assert.equal(classify(b('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')), 'h2');
    assert.equal(classify(b('PRI * HTTP/2.0\r\n')), undefined);
    assert.equal(classify(b('GET / HTTP/1.1\r\nhost: x\r\n\r\n')), 'http1');
    assert.equal(classify(b('POST /api/orders?x=1 HTTP/1.0\n')), 'http1');
    assert.equal(classify(b('DELETE /a')), undefined, 'a request line still arriving');
    assert.equal(classify(b('GET / HTTP/1.1')), undefined);
  });

  it('calls anything else TCP: binary, TLS, other protocols, HTTP/2 without the preface, over-long lines', () => {
    assert.equal(classify(Buffer.from([0x16, 0x03, 0x01, 0x00])), 'tcp', 'a TLS ClientHello');
    assert.equal(classify(b('SSH-2.0-OpenSSH_9.2\r\n')), 'tcp');
    assert.equal(classify(b('GET / HTTP/2.0\r\n')), 'tcp');
    assert.equal(classify(b('get  / HTTP/1.1\r\n')), 'tcp', 'two spaces');
    assert.equal(classify(b('GET ' + 'a'.repeat(9000))), 'tcp');
    assert.equal(classify(b('PRI * HTTP/2.0\r\nXX')), 'tcp', 'a broken HTTP/2 preface');
  });

  it('puts the bytes it read back, across several chunks', async () => {
    const s = new PassThrough();
    const d = detectProtocol(s, 1000);
    s.write('GET /x HT');
    s.write('TP/1.1\r\nhost: a\r\n\r\n');
    assert.deepEqual(await d, { protocol: 'http1' });
    assert.equal(s.read().toString(), 'GET /x HTTP/1.1\r\nhost: a\r\n\r\n');
  });

  it('takes a client that sends nothing for a server-first protocol (TCP), and hands back bytes sent before an end', async () => {
    const quiet = new PassThrough();
    const t0 = Date.now();
    assert.deepEqual(await detectProtocol(quiet, 50), { protocol: 'tcp' });
    assert.ok(Date.now() - t0 >= 45);
    const ended = new PassThrough();
    const d = detectProtocol(ended, 1000);
    ended.end('GET /');
    const r = await d;
    assert.equal(r.protocol, 'tcp');
    assert.equal(r.endedWith?.toString(), 'GET /');
  });
});
