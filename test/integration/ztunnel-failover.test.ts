/**
 * A dead endpoint does not stay in rotation (issue 13): with one of a service's servers killed, and another on a
 * node whose ztunnel is gone, every new connection still succeeds — the ztunnel tries another ready endpoint and
 * ejects the failing ones for a while. A real ztunnel process, real SOCKS5 clients, real HBONE.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { namespace, pod, service } from '../helpers/manifests.js';
import { ZtunnelNode } from '../helpers/ztunnel.js';
import { eventually } from '../helpers/eventually.js';

const NODE = '127.0.133.1';
const CLIENT = '127.0.134.1';
const S1 = '127.0.134.2';
const S2 = '127.0.134.3';
const S3 = '127.0.134.4'; // on node-gone, which runs no ztunnel: HBONE to it is refused
const VIP = '127.0.135.1';

/** A server that answers every connection with its name and closes. */
async function nameServer(name: string, host: string): Promise<{ close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined).on('close', () => sockets.delete(s));
    s.end(`${name}\n`);
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(8080, host, () => resolve()); });
  return { close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }) };
}

describe('ztunnel failover between a service\'s endpoints', () => {
  const zt = new ZtunnelNode('node-f', NODE, [
    namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
    pod('apps', 'client', { node: 'node-f', ip: CLIENT, sa: 'client', labels: { app: 'client' } }),
    pod('apps', 's1', { node: 'node-f', ip: S1, sa: 'server', labels: { app: 'server' }, ports: { http: 8080 } }),
    pod('apps', 's2', { node: 'node-f', ip: S2, sa: 'server', labels: { app: 'server' }, ports: { http: 8080 } }),
    pod('apps', 's3', { node: 'node-gone', ip: S3, sa: 'server', labels: { app: 'server' }, ports: { http: 8080 } }),
    service('apps', 'server', { ip: VIP, selector: { app: 'server' }, ports: [{ port: 80, targetPort: 8080, name: 'http' }] }),
  ]);
  let s1: { close: () => Promise<void> } | undefined;
  let s2: { close: () => Promise<void> } | undefined;
  before(async () => {
    s1 = await nameServer('s1', S1);
    s2 = await nameServer('s2', S2);
    await zt.start(['--ejection-base', '1s', '--ejection-max', '4s']);
  });
  after(async () => {
    await zt.stop();
    await s1?.close();
    await s2?.close();
  });

  /** One new connection through the ztunnel to the service: the name of the server that answered, or why not. */
  const ask = async (): Promise<string> => {
    const r = await zt.connect(CLIENT, VIP, 80);
    if (!r.ok) return `refused: ${r.message}`;
    r.socket.setEncoding('utf8');
    r.socket.resume();
    let text = '';
    r.socket.on('data', (d: string) => (text += d));
    await new Promise((resolve) => r.socket.once('close', resolve));
    return text.trim() || 'closed without an answer';
  };

  it('gets every new connection through while endpoints die, ejects them with a log line and a metric, and readmits them', async () => {
    // s3's node has no ztunnel: from the first connection on, it is tried at most once and ejected.
    const first = await Promise.all(Array.from({ length: 6 }, ask));
    assert.deepEqual(first.filter((a) => a !== 's1' && a !== 's2'), [], 'every connection answered by a live server');
    assert.ok(first.includes('s1') && first.includes('s2'), `both live servers take connections: ${first.join(',')}`);
    const s3Ejected = await zt.proc.waitFor((l) => l.msg?.startsWith('endpoint ejected') === true && String(l.endpoint).includes(`${S3}:8080`), 2_000, 's3 ejected');
    assert.match(String(s3Ejected.err), /connection refused/);

    // s1's application dies: its ztunnel (this one) answers the HBONE CONNECT with 503; s2 takes over.
    await s1!.close();
    s1 = undefined;
    const during: string[] = [];
    for (let i = 0; i < 40; i++) during.push(await ask());
    assert.deepEqual([...new Set(during)], ['s2'], 'every new connection succeeds, on the live server');
    const s1Ejected = await zt.proc.waitFor((l) => l.msg?.startsWith('endpoint ejected') === true && String(l.endpoint).includes(`${S1}:8080`), 1_000, 's1 ejected');
    assert.match(String(s1Ejected.err), /status 503/);
    assert.ok(await zt.metric('strait_ztunnel_endpoint_ejections_total') >= 2);
    assert.ok(await zt.metric('strait_ztunnel_endpoint_retries_total') >= 2, 'connections that moved on to another endpoint are counted');
    const dump = await zt.configDump();
    assert.ok((dump.ejectedEndpoints as { endpoint: string }[]).some((e) => e.endpoint.includes(S1)), '/config_dump lists the ejected endpoint');

    // After --ejection-base the endpoints are readmitted (and ejected again, twice as long, when they fail again).
    await zt.proc.waitFor((l) => l.msg?.startsWith('endpoint readmitted') === true && String(l.endpoint).includes(`${S1}:8080`), 3_000, 's1 readmitted');
    assert.ok(await zt.metric('strait_ztunnel_endpoint_readmissions_total') >= 1);
    // s1 comes back: once readmitted and picked, it answers again; nothing failed meanwhile.
    s1 = await nameServer('s1', S1);
    const after: string[] = [];
    await eventually(async () => { after.push(await ask()); return after.includes('s1'); }, 15_000, 's1 back in rotation');
    assert.deepEqual(after.filter((a) => a !== 's1' && a !== 's2'), [], `no connection failed: ${after.join(',')}`);
    const refusedLines = zt.proc.lines.filter((l) => l.msg === 'connection refused' && l.direction === 'outbound');
    assert.deepEqual(refusedLines, [], 'no outbound connection was refused to its client');
  });
});
