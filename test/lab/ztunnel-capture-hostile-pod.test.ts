/**
 * A hostile pod against its node's capturing ztunnel (`strait ztunnel --capture`, DESIGN §6a): what a pod can send
 * through its node must never reach the node's own localhost services (the ztunnel's admin with /quitquitquit, which
 * would drain the ztunnel and tear the capture down), and a pod knocking on the capture ports directly must not flood
 * the ztunnel's log. The pod uses only what CAP_NET_RAW gives (a packet socket), as a container runtime grants by
 * default. One node namespace (controller + ztunnel) and two pod namespaces routed through it.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isOriginalDstAvailable } from '../../src/ztunnel/capture/original-dst.js';
import { ZTUNNEL_NODE_OPTIONS } from '../../src/ztunnel/config.js';
import { docs, namespace } from '../helpers/manifests.js';
import { Lab, requireLab, requireOrSkip, type LabProcess } from '../helpers/netns.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const STRAIT = join(ROOT, 'dist/src/cli/strait.js');
const PYTHON = '/usr/bin/python3';
/** The ztunnel's default, written out: the log-rate bound below is per worker. */
const WORKERS = 2;

/**
 * A hand-made TCP client on a packet socket (CAP_NET_RAW only: no route, no sysctl of the pod changed): sends the
 * frames itself, to the node's MAC, so a destination the pod's own stack would never route (127.0.0.1) still leaves
 * through eth0, and reads the answers before the pod's stack drops them as martians. Prints one JSON line:
 * { handshake, reset, data }.
 * argv: IFACE SRC_MAC DST_MAC SRC_IP DST_IP DST_PORT PAYLOAD
 */
const RAW_TCP = String.raw`
import json, random, socket, struct, sys, time
iface, smac, dmac, src, dst, port, payload = sys.argv[1:8]
port = int(port); payload = payload.encode()
mac = lambda m: bytes(int(x, 16) for x in m.split(':'))
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return (~s) & 0xffff
def frame(sport, seq, ack, flags, data=b''):
    tcp = struct.pack('!HHIIBBHHH', sport, port, seq, ack, 5 << 4, flags, 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack('!BBH', 0, 6, len(tcp) + len(data))
    tcp = tcp[:16] + struct.pack('!H', csum(pseudo + tcp + data)) + tcp[18:]
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp) + len(data), random.randint(0, 65535), 0, 64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
    return mac(dmac) + mac(smac) + b'\x08\x00' + ip + tcp + data
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800)); s.bind((iface, 0)); s.settimeout(1)
sport = random.randint(20000, 60000); seq = random.randint(0, 2**31)
s.send(frame(sport, seq, 0, 0x02))
out = {'handshake': False, 'reset': False, 'data': ''}
got = b''; deadline = time.time() + 4
while time.time() < deadline:
    try: f = s.recv(65535)
    except socket.timeout: continue
    ipb = f[14:]
    if len(ipb) < 40 or ipb[9] != 6 or socket.inet_ntoa(ipb[16:20]) != src: continue
    ihl = (ipb[0] & 15) * 4; t = ipb[ihl:]
    sp, dp, sq, ak, off, fl = struct.unpack('!HHIIBB', t[:14])
    if dp != sport: continue
    data = t[(off >> 4) * 4: struct.unpack('!H', ipb[2:4])[0] - ihl]
    if fl & 0x04: out['reset'] = True; break
    if fl & 0x12 == 0x12 and not out['handshake']:
        out['handshake'] = True
        s.send(frame(sport, seq + 1, (sq + 1) % 2**32, 0x10))
        s.send(frame(sport, seq + 1, (sq + 1) % 2**32, 0x18, payload))
    elif data:
        got += data
        s.send(frame(sport, seq + 1 + len(payload), (sq + len(data)) % 2**32, 0x10))
    if fl & 0x01: break
out['data'] = got.decode(errors='replace')
print(json.dumps(out))
`;

const labs: Lab[] = [];
const dirs: string[] = [];
after(() => {
  for (const l of labs) l.destroy();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('a hostile enrolled pod cannot reach its node\'s localhost (admin, /quitquitquit) through the capture', async (t) => {
  if (!requireLab(t)) return;
  if (!requireOrSkip(t, isOriginalDstAvailable() ? undefined : 'the capture addon is not built (run `npm run build:native`)')) return;
  if (!requireOrSkip(t, spawnSync(PYTHON, ['-c', 'import socket; socket.AF_PACKET'], { encoding: 'utf8' }).status === 0 ? undefined : `${PYTHON} is missing: apt-get install -y python3`)) return;
  const l = new Lab('zhost');
  labs.push(l);
  const cfg = mkdtempSync(join(tmpdir(), 'strait-zhost-cfg-'));
  const data = mkdtempSync(join(tmpdir(), 'strait-zhost-data-'));
  dirs.push(cfg, data);

  const nodeNs = l.namespace('node');
  const aNs = l.namespace('a');
  const bNs = l.namespace('b');
  const toA = l.link(nodeNs, aNs, { a: 'pod-a', b: 'eth0' });
  const toB = l.link(nodeNs, bNs, { a: 'pod-b', b: 'eth0' });
  const aIp = toA.b.address;
  l.route(aNs, toA.a.address);
  l.route(bNs, toB.a.address);
  l.sysctl(nodeNs, 'net.ipv4.ip_forward', '1');
  const pod = {
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'a', namespace: 'apps', labels: { app: 'a' } },
    spec: { nodeName: 'lab-node', serviceAccountName: 'a', containers: [{ name: 'app', image: 'app' }] }, status: { podIP: aIp },
  };
  const outsider = {
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'b', namespace: 'plain', labels: { app: 'b' } },
    spec: { nodeName: 'lab-node', serviceAccountName: 'b', containers: [{ name: 'app', image: 'app' }] }, status: { podIP: toB.b.address },
  };
  writeFileSync(join(cfg, 'mesh.yaml'), docs(namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }), pod, namespace('plain'), outsider));

  const controller = l.spawnNode(nodeNs, [STRAIT, 'controller', '--config-dir', cfg, '--data-dir', data, '--xds-address', '127.0.0.1:15012', '--admin-address', '127.0.0.1:15014']);
  await controller.waitFor((x) => x.msg === 'controller ready', 20_000, 'controller ready');
  const ztunnel: LabProcess = l.spawnNode(nodeNs, [...ZTUNNEL_NODE_OPTIONS, STRAIT, 'ztunnel', '--capture', '--node', 'lab-node', '--xds-address', '127.0.0.1:15012',
    '--token-file', join(data, 'tokens', 'node-lab-node.token'), '--root-cert', join(data, 'root-cert.pem'), '--drain', '1s', '--workers', String(WORKERS)]);
  const ready = () => l.exec(nodeNs, ['curl', '-s', '--noproxy', '*', 'http://127.0.0.1:15021/healthz/ready'], { allowFailure: true }).stdout.startsWith('ready');
  for (const end = Date.now() + 20_000; !ready(); await new Promise((r) => setTimeout(r, 100))) {
    if (Date.now() > end) assert.fail(`ztunnel not ready; stderr: ${ztunnel.stderr.join('\n')}`);
  }

  const macOf = (ns: string, ifname: string) => /link\/ether ([0-9a-f:]{17})/.exec(l.exec(ns, ['ip', 'link', 'show', ifname]).stdout)![1]!;
  const raw = (dst: string, port: number, payload: string) => {
    const r = l.exec(aNs, [PYTHON, '-c', RAW_TCP, 'eth0', macOf(aNs, 'eth0'), macOf(nodeNs, 'pod-a'), aIp, dst, String(port), payload], { timeoutMs: 15_000 });
    return JSON.parse(r.stdout.trim()) as { handshake: boolean; reset: boolean; data: string };
  };

  await t.test('the raw client works: it reaches a port the pod may reach (the node\'s metrics) over the capture', () => {
    // The pod's own stack knows nothing of the raw client's connection and would reset it (answers from 127.0.0.1 it
    // drops as martians instead): keep its resets in.
    l.exec(aNs, ['iptables', '-w', '-A', 'OUTPUT', '-p', 'tcp', '--tcp-flags', 'RST', 'RST', '-j', 'DROP']);
    const r = raw(toA.a.address, 15020, 'GET /metrics HTTP/1.0\r\n\r\n');
    assert.equal(r.handshake, true, JSON.stringify(r));
    assert.match(r.data, /^HTTP\/1\.1 200/, JSON.stringify(r).slice(0, 300));
  });

  for (const dst of ['127.0.0.1', '0.0.0.0']) {
    await t.test(`a packet to ${dst}:15000 is captured, then refused: no admin answer, /quitquitquit does nothing`, async () => {
      const mark = ztunnel.lines.length;
      const r = raw(dst, 15000, 'POST /quitquitquit HTTP/1.0\r\ncontent-length: 0\r\n\r\n');
      assert.doesNotMatch(r.data, /HTTP\/1\.1/, `the admin answered a pod: ${JSON.stringify(r).slice(0, 300)}`);
      const refusal = await ztunnel.waitFor((x) => x.msg === 'connection refused' && x.reason === 'loopback_destination', 5000, 'the refusal');
      assert.equal(refusal['src.addr'], aIp);
      await new Promise((res) => setTimeout(res, 1500)); // longer than --drain: a drain would have ended the ztunnel
      assert.equal(ztunnel.running, true, 'the ztunnel is still running');
      assert.ok(!ztunnel.lines.slice(mark).some((x) => String(x.msg ?? '').includes('drain')), 'no drain began');
      assert.ok(ready(), 'still ready, capture still in place');
    });
  }

  await t.test('SOCKS5 is on the node\'s loopback only under capture: a pod cannot connect to it, the node can', async () => {
    const r = await l.runNodeScript(bNs, `
      import net from 'node:net';
      const s = net.connect({ host: '${toB.a.address}', port: 15080 });
      s.on('connect', () => { console.log(JSON.stringify({ connected: true })); s.destroy(); });
      s.on('error', (e) => console.log(JSON.stringify({ error: e.code })));`, [], { timeoutMs: 10_000 });
    assert.match(r.stdout, /"error":"ECONNREFUSED"/, r.stdout);
    const local = await l.runNodeScript(nodeNs, `
      import net from 'node:net';
      const s = net.connect({ host: '127.0.0.1', port: 15080 });
      s.on('connect', () => { console.log(JSON.stringify({ connected: true })); s.destroy(); });
      s.on('error', (e) => console.log(JSON.stringify({ error: e.code })));`, [], { timeoutMs: 10_000 });
    assert.match(local.stdout, /"connected":true/, local.stdout);
  });

  await t.test('a pod knocking on the capture ports directly is reset, counted, and logged a few times, not once per connection', async () => {
    const mark = ztunnel.lines.length;
    const n = 40;
    const knock = `
      import net from 'node:net';
      let left = ${n * 3};
      for (let i = 0; i < ${n}; i++) for (const port of [15001, 15006, 15008]) {
        const s = net.connect({ host: '${toB.a.address}', port });
        s.on('error', () => {}); s.on('close', () => { if (--left === 0) console.log(JSON.stringify({ done: true })); });
      }`;
    const r = await l.runNodeScript(bNs, knock, [], { timeoutMs: 20_000 });
    assert.match(r.stdout, /"done":true/);
    const metrics = l.exec(nodeNs, ['curl', '-s', '--noproxy', '*', 'http://127.0.0.1:15020/metrics']).stdout;
    for (const listener of ['outbound', 'inbound-plaintext', 'hbone']) {
      assert.match(metrics, new RegExp(`strait_capture_unredirected_total\\{listener="${listener}"\\} ${n}\\b`), listener);
    }
    const warned = ztunnel.lines.slice(mark).filter((x) => String(x.msg ?? '').startsWith('connection without an original destination refused'));
    // Each worker limits its own lines (README "Workers": limits are per worker).
    assert.ok(warned.length >= 1 && warned.length <= 5 * WORKERS, `${warned.length} warning lines for ${n * 3} connections from ${WORKERS} workers`);
    assert.equal(ztunnel.running, true);
  });
});
