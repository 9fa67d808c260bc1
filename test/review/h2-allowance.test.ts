// Review of issue 8: the "useless frames" budget grants two frames per DATA frame we sent in the window, so that
// a receiver's WINDOW_UPDATEs (and bandwidth-probing PINGs) are free. The peer controls how many DATA frames we
// send: with a stream window of 0 and WINDOW_UPDATEs of 1 byte, each of its WINDOW_UPDATEs makes us send one
// 1-byte DATA frame, i.e. earns two frames of allowance and spends one. The other one is a free PING (or
// SETTINGS, PRIORITY, ...), answered, without end. Limit that should apply: the allowance counts DATA *bytes*
// sent (e.g. 2 frames per 16 KiB sent), or WINDOW_UPDATEs that open less than some minimum are useless frames
// that earn nothing. FAILS on main: 5,000 PINGs answered against a budget of 100.
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { H2Connection, type GoawayInfo } from '../../src/common/hbone/h2/connection.js';
import type { H2Stream } from '../../src/common/hbone/h2/stream.js';
import { Flag, FrameType, H2Code, frame } from '../../src/common/hbone/h2/frames.js';
import { H2Peer, u32 } from '../helpers/h2-peer.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('useless-frame allowance earned through DATA the peer makes us send (review)', () => {
  it('FAILS: 1-byte WINDOW_UPDATEs buy a PING each, past a budget of 100', async (t) => {
    const goaways: GoawayInfo[] = [];
    const server = net.createServer((socket) => {
      socket.on('error', () => undefined);
      const conn = new H2Connection(socket, { role: 'server', limits: { maxUselessFramesPerWindow: 100, floodWindowMs: 60_000 } });
      conn.on('error', () => undefined);
      conn.on('goawaySent', (g: GoawayInfo) => goaways.push(g));
      conn.on('stream', (s: H2Stream) => {
        s.on('error', () => undefined);
        s.respond({ ':status': 200 });
        s.write(Buffer.alloc(1024 * 1024, 0x62)); // a download the peer drips out of us byte by byte
      });
      cleanups.push(() => conn.destroy());
    });
    server.listen(0, '127.0.0.1');
    cleanups.push(() => server.close());
    await once(server, 'listening');
    const peer = await H2Peer.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
    cleanups.push(() => peer.destroy());
    await peer.handshake([[0x4, 0]]); // SETTINGS_INITIAL_WINDOW_SIZE = 0
    peer.sendHeaders(1, [[':method', 'CONNECT'], [':authority', '10.0.0.1:80']]);
    assert.equal((await peer.response(1)).status, 200);

    const pair = Buffer.concat([frame(FrameType.WINDOW_UPDATE, 0, 1, u32(1)), frame(FrameType.PING, 0, 0, Buffer.alloc(8))]);
    for (let i = 0; i < 50 && !peer.closed; i++) await peer.sendRawPaced(Buffer.concat(Array.from({ length: 100 }, () => pair)));
    await new Promise((r) => setTimeout(r, 500));
    const acks = peer.framesSeen(FrameType.PING).filter((f) => f.flags & Flag.ACK).length;
    const data = peer.framesSeen(FrameType.DATA).length;
    t.diagnostic(`PING ACKs ${acks}, 1-byte DATA frames ${data}, GOAWAY ${goaways.map((g) => g.reason).join(',') || 'none'}`);
    assert.equal(goaways[0]?.code, H2Code.ENHANCE_YOUR_CALM, `no GOAWAY after ${acks} PINGs answered on a budget of 100`);
  });
});
