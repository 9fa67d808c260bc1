/**
 * Running out of file descriptors is not silent (issue 13): a real ztunnel started under `prlimit` with a low
 * soft limit raises it to the hard one and shows both in /config_dump; past the hard limit it sheds new
 * connections with a log line and a metric, keeps the connections it has, and its listeners stay alive.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';

import { namespace, pod, service } from '../helpers/manifests.js';
import { ZtunnelNode, echoServer } from '../helpers/ztunnel.js';
import { eventually } from '../helpers/eventually.js';

const NODE = '127.0.136.1';
const CLIENT = '127.0.137.1';
const SERVER = '127.0.137.2';
const VIP = '127.0.138.1';
const SOFT = 200;
const HARD = 400;
/** Each connection to a pod on the same node holds two descriptors in the ztunnel (client side, pod side). */
const CONNECTIONS = 300;

async function echoes(s: Socket, text: string): Promise<boolean> {
  s.setEncoding('utf8');
  s.resume();
  const got = new Promise<string>((resolve) => {
    let buf = '';
    s.on('data', (d: string) => { buf += d; if (buf.length >= text.length) resolve(buf); });
    s.once('close', () => resolve(buf));
  });
  s.write(text);
  return (await got) === text;
}

describe('ztunnel out of file descriptors', () => {
  const zt = new ZtunnelNode('node-fd', NODE, [
    namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
    pod('apps', 'client', { node: 'node-fd', ip: CLIENT, sa: 'client', labels: { app: 'client' } }),
    pod('apps', 'server', { node: 'node-fd', ip: SERVER, sa: 'server', labels: { app: 'server' }, ports: { http: 8080 } }),
    service('apps', 'server', { ip: VIP, selector: { app: 'server' }, ports: [{ port: 80, targetPort: 8080, name: 'http' }] }),
  ]);
  let app: Awaited<ReturnType<typeof echoServer>>;
  const held: Socket[] = [];
  before(async () => {
    app = await echoServer(SERVER, 8080);
    await zt.start([], `${SOFT}:${HARD}`);
  });
  after(async () => {
    for (const s of held) s.destroy();
    await zt.stop();
    await app?.close();
  });

  it('runs under its raised limit and says so in /config_dump', async () => {
    const fds = (await zt.configDump()).fileDescriptors;
    assert.equal(fds.soft, HARD, `started with a soft limit of ${SOFT}, runs with the hard limit`);
    assert.equal(fds.hard, HARD);
    assert.ok(fds.source === 'setrlimit' || fds.source === '/proc/self/limits', fds.source);
    assert.ok(fds.open > 0 && fds.open < HARD, `open descriptors reported (${fds.open})`);
  });

  it(`sheds connections past the limit with a log line and a metric, keeps the others working, and keeps listening`, async () => {
    const results = await Promise.allSettled(Array.from({ length: CONNECTIONS }, () => zt.connect(CLIENT, VIP, 80, 15_000)));
    let failed = 0;
    for (const r of results) {
      if (r.status === 'fulfilled' && r.value.ok) held.push(r.value.socket);
      else failed++;
    }
    assert.ok(failed > 0, `some of ${CONNECTIONS} connections cannot fit under ${HARD} descriptors`);

    // Every loss is counted and said, in one line rather than one per connection.
    const lost = await zt.metric('strait_ztunnel_fd_exhausted_total');
    assert.equal(lost, failed, 'every connection the client lost is counted');
    assert.ok(await zt.metric('strait_ztunnel_fd_exhausted_total', 'op="accept",reason="reserve"') > 0, 'shed on arrival, before the process is out');
    const line = await zt.proc.waitFor((l) => l.msg?.startsWith('out of file descriptors') === true, 2_000, 'fd exhaustion log line');
    assert.equal(line.soft_limit, HARD);
    assert.ok(Number(line.accept_dropped) >= 1);
    assert.ok(zt.proc.lines.filter((l) => l.msg?.startsWith('out of file descriptors')).length <= 2, 'a summary, not a line per connection');
    // Shedding early leaves room: more connections fit than when libuv ran into EMFILE (100-130 of 300 before).
    assert.ok(held.length > 140, `most fit (${held.length})`);

    // The connections it admitted have their upstream: every one of them still carries data.
    const ok = await Promise.all(held.map((s, i) => echoes(s, `ping-${i}`)));
    assert.equal(ok.filter(Boolean).length, held.length, 'admitted connections work');

    // Once they close, the listeners take new connections again.
    for (const s of held.splice(0)) s.destroy();
    await eventually(async () => {
      const r = await zt.connect(CLIENT, VIP, 80, 2_000).catch(() => undefined);
      if (!r?.ok) return false;
      const good = await echoes(r.socket, 'again');
      r.socket.destroy();
      return good;
    }, 10_000, 'a new connection through the ztunnel after the burst');
  });
});
