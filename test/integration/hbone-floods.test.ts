/**
 * Port 15008 as an attacker holding a valid mesh certificate sees it: floods of frames that do no work, Rapid
 * Reset, and a peer that stops reading, against a real ztunnel process in the local mesh. Each ends in
 * GOAWAY(ENHANCE_YOUR_CALM) with the ztunnel's memory bounded, one log line and a metric.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertificateAuthority, SpiffeId, createKeyAndCsr } from '../../src/identity/index.js';
import { Flag, FrameType, H2Code, frame } from '../../src/hbone/h2/frames.js';
import { encodeHeaders } from '../../src/hbone/h2/hpack.js';

import { docs, namespace } from '../helpers/manifests.js';
import { TestMesh, appPod, node } from '../helpers/mesh.js';

import { H2Peer } from '../helpers/h2-peer.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';
import { rssOf } from '../helpers/proc-stats.js';

const CLIENT = '127.0.125.1';
const SERVER = '127.0.125.2';
/** Where the Rapid Reset streams ask to go: a port on the server pod's address that this test listens on. */
const COUNTED_PORT = 9911;
/** How much a flood may grow the ztunnel's resident memory (before the fix: +210 MB per million frames). */
const RSS_BOUND_BYTES = 40 * 1024 * 1024;

const manifests = docs(
  namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
  node('node-a', '127.0.105.1'),
  node('node-b', '127.0.105.2'),
  appPod('apps', 'client', 'node-a', CLIENT, 'client'),
  appPod('apps', 'server', 'node-b', SERVER, 'server'),
);

function repeat(f: Buffer, n: number): Buffer {
  return Buffer.concat(Array.from({ length: n }, () => f));
}

describe('HBONE under floods (real ztunnel, attacker with a valid mesh certificate)', () => {
  const dir = tempDir('floods-manifests');
  let mesh: TestMesh;
  let clientCert: { cert: string[]; key: string };
  let pid: number;
  const counted = net.createServer((s) => s.destroy());
  let accepts = 0;

  before(async () => {
    writeFileSync(join(dir.path, 'mesh.yaml'), manifests);
    mesh = await new TestMesh(dir.path, ['--controller-address', '127.0.105.254']).start();
    pid = mesh.state.nodes['node-b']!.pid;
    // The attacker holds a real certificate of the mesh: a client pod's identity, signed by the mesh root.
    const ca = await CertificateAuthority.loadOrCreate({ dataDir: mesh.dataDir.path });
    const { keyPem, csrPem } = await createKeyAndCsr();
    const leaf = ca.signWorkload(csrPem, SpiffeId.parse('spiffe://cluster.local/ns/apps/sa/client'));
    clientCert = { cert: leaf.certChainPem, key: keyPem };
    counted.on('connection', () => accepts++);
    counted.listen(COUNTED_PORT, SERVER);
    await once(counted, 'listening');
  });
  after(async () => {
    counted.close();
    await mesh?.stop();
    mesh?.cleanup();
    dir.remove();
  });

  async function attacker(): Promise<H2Peer> {
    const peer = await H2Peer.connect({ host: SERVER, port: 15008, tls: { cert: clientCert.cert, key: clientCert.key, ca: readFileSync(mesh.state.rootCert, 'utf8') } });
    await peer.handshake();
    return peer;
  }

  async function goawayMetric(reason: string): Promise<number> {
    const text = await mesh.metrics('node-b');
    const line = text.split('\n').find((l) => l.startsWith('strait_hbone_goaway_total{') && l.includes(`reason="${reason}"`) && l.includes('side="server"'));
    return line === undefined ? 0 : Number(line.split(' ').pop());
  }

  function warnings(reason: string): number {
    return mesh.logs('ztunnel/node-b').filter((l) => l.msg === 'HBONE client went past a limit; sent GOAWAY and closed the connection' && l.reason === reason).length;
  }

  it('ends a flood of empty CONTINUATION frames with GOAWAY(ENHANCE_YOUR_CALM), memory bounded', async (t) => {
    const peer = await attacker();
    const before = rssOf(pid);
    peer.send(FrameType.HEADERS, 0, 1, encodeHeaders([[':method', 'CONNECT'], [':authority', `${SERVER}:8080`]]));
    const batch = repeat(frame(FrameType.CONTINUATION, 0, 1), 10_000);
    for (let i = 0; i < 100 && !peer.closed; i++) await peer.sendRawPaced(batch); // up to 1M frames, 9 MB
    const g = await peer.goaway(10_000);
    assert.equal(g.code, H2Code.ENHANCE_YOUR_CALM);
    await peer.closedEvent(5000); // the ztunnel closed the connection
    const grew = rssOf(pid) - before;
    t.diagnostic(`ztunnel RSS grew ${(grew / 1048576).toFixed(1)} MiB`);
    assert.ok(grew < RSS_BOUND_BYTES, `RSS grew ${grew >> 20} MiB`);
    assert.ok(await goawayMetric('useless_frames') >= 1);
    await eventually(() => warnings('useless_frames') >= 1, 5000, 'one warning line');
    peer.destroy();
  });

  // Each flood is written without reading anything back for a while: the replies would pile up in the ztunnel.
  const unreadFloods: Array<[string, Buffer, number]> = [
    ['PING (2M, 34 MB)', frame(FrameType.PING, 0, 0, Buffer.alloc(8)), 200],
    ['SETTINGS (1M, 15 MB)', frame(FrameType.SETTINGS, 0, 0, Buffer.from([0, 4, 0, 1, 0, 0])), 100], // INITIAL_WINDOW_SIZE = 65536
  ];
  for (const [what, unit, batches] of unreadFloods) {
    it(`ends a ${what} flood from a peer that does not read, memory bounded`, async (t) => {
      const peer = await attacker();
      peer.pauseReading();
      const before = rssOf(pid);
      const counted = await goawayMetric('useless_frames');
      const batch = repeat(unit, 10_000);
      for (let i = 0; i < batches; i++) peer.sendRaw(batch);
      await new Promise((r) => setTimeout(r, 300));
      const grew = rssOf(pid) - before;
      t.diagnostic(`ztunnel RSS grew ${(grew / 1048576).toFixed(1)} MiB`);
      assert.ok(grew < RSS_BOUND_BYTES, `RSS grew ${grew >> 20} MiB`);
      peer.resumeReading();
      const g = await peer.goaway(10_000);
      assert.equal(g.code, H2Code.ENHANCE_YOUR_CALM);
      await peer.closedEvent(5000);
      assert.equal(await goawayMetric('useless_frames'), counted + 1);
      peer.destroy();
    });
  }

  it('ends Rapid Reset (CONNECT then RST_STREAM, 20,000 times) with GOAWAY; reset streams do not dial the pod', async (t) => {
    const peer = await attacker();
    const accepted = accepts;
    const linesBefore = mesh.logs('ztunnel/node-b').length;
    const rst = Buffer.alloc(4);
    rst.writeUInt32BE(H2Code.CANCEL, 0);
    const block = encodeHeaders([[':method', 'CONNECT'], [':authority', `${SERVER}:${COUNTED_PORT}`]]);
    const pairs: Buffer[] = [];
    for (let i = 0; i < 20_000; i++) {
      const id = 2 * i + 1;
      pairs.push(frame(FrameType.HEADERS, Flag.END_HEADERS, id, block), frame(FrameType.RST_STREAM, 0, id, rst));
    }
    peer.sendRaw(Buffer.concat(pairs));
    const g = await peer.goaway(10_000);
    assert.equal(g.code, H2Code.ENHANCE_YOUR_CALM);
    assert.ok(g.lastStreamId < 2 * 20_000, `GOAWAY came before the last stream (last id ${g.lastStreamId})`);
    // A marker: one honest CONNECT to the same port on a new connection. The ztunnel handles events in order, so once
    // the pod accepted the marker, any dial the attack started has reached it too (no fixed wait).
    const marker = await attacker();
    marker.sendHeaders(1, [[':method', 'CONNECT'], [':authority', `${SERVER}:${COUNTED_PORT}`]]);
    assert.equal((await marker.response(1, 5000)).status, 200);
    await eventually(() => accepts - accepted >= 1, 5000, 'the marker reached the pod');
    marker.destroy();
    const dials = accepts - accepted - 1;
    assert.ok(dials <= 100, `${dials} TCP connections reached the pod for the attack (before the fix: one per reset stream)`);
    const lines = mesh.logs('ztunnel/node-b').slice(linesBefore); // the marker's own access line included
    t.diagnostic(`GOAWAY after stream ${g.lastStreamId}; pod accepts for the attack ${dials}; log lines ${lines.length}`);
    assert.ok(lines.length <= 110, `${lines.length} log lines for the attack (before the fix: one access-log line per stream)`);
    assert.ok(await goawayMetric('rapid_reset') >= 1);
    assert.equal(warnings('rapid_reset'), 1);
    peer.destroy();
  });

  it('still serves honest traffic on the same port afterwards', async () => {
    const r = await mesh.curl(CLIENT, 'node-a', `http://${SERVER}:8080/ok`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).path, '/ok');
  });
});
