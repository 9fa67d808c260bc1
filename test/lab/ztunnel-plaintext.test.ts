/**
 * Plaintext arrivals under real capture (DESIGN §6, §6a): a pod outside the mesh connects to an enrolled pod; the
 * node's iptables (the shipped scripts) redirect it to the real ztunnel's 15006, which lets it through only where
 * PeerAuthentication is PERMISSIVE. The controller and the ztunnel run as real processes in the node namespace.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isOriginalDstAvailable } from '../../src/ztunnel/capture/original-dst.js';
import { docs, namespace } from '../helpers/manifests.js';
import { Lab, requireLab, requireOrSkip } from '../helpers/netns.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SCRIPTS = join(ROOT, 'scripts/iptables');
const STRAIT = join(ROOT, 'dist/src/cli/strait.js');

const APP = `
import net from 'node:net';
net.createServer((s) => { s.on('error', () => {}); s.end(JSON.stringify({ who: 'server', from: s.remoteAddress })); })
  .listen(8080, '0.0.0.0', () => process.stdout.write('{"ready":true}\\n'));`;

const CLIENT = `
import net from 'node:net';
const [host, port] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port) });
let data = '';
setTimeout(() => { console.log(JSON.stringify({ error: 'timeout' })); process.exit(2); }, 5000).unref();
s.on('data', (d) => (data += d));
s.on('error', (e) => { console.log(JSON.stringify({ error: e.code ?? e.message })); process.exit(0); });
s.on('close', () => console.log(JSON.stringify({ reply: data ? JSON.parse(data) : null })));`;

const labs: Lab[] = [];
const dirs: string[] = [];
after(() => {
  for (const l of labs) l.destroy();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('STRICT refuses plaintext on 15006; PERMISSIVE accepts it', async (t) => {
  if (!requireLab(t)) return;
  if (!requireOrSkip(t, isOriginalDstAvailable() ? undefined : 'the capture addon is not built (run `npm run build:native`)')) return;
  const l = new Lab('ztpt');
  labs.push(l);
  const cfg = mkdtempSync(join(tmpdir(), 'strait-lab-cfg-'));
  const data = mkdtempSync(join(tmpdir(), 'strait-lab-data-'));
  dirs.push(cfg, data);

  const nodeNs = l.namespace('node');
  const clientNs = l.namespace('client');
  const serverNs = l.namespace('server');
  const toClient = l.link(nodeNs, clientNs);
  const toServer = l.link(nodeNs, serverNs);
  const serverIp = toServer.b.address;
  l.route(clientNs, toClient.a.address);
  l.route(serverNs, toServer.a.address);
  l.sysctl(nodeNs, 'net.ipv4.ip_forward', '1');

  const pa = (mode: string) => docs({ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: 'apps' }, spec: { mtls: { mode } } });
  writeFileSync(join(cfg, 'mesh.yaml'), docs(
    namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
    { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'server', namespace: 'apps', labels: { app: 'server' } },
      spec: { nodeName: 'lab-node', serviceAccountName: 'server', containers: [{ name: 'app', image: 'app' }] }, status: { podIP: serverIp } },
  ));
  writeFileSync(join(cfg, 'peer.yaml'), pa('PERMISSIVE'));

  const controller = l.spawnNode(nodeNs, [STRAIT, 'controller', '--config-dir', cfg, '--data-dir', data, '--xds-address', '127.0.0.1:15012', '--admin-address', '127.0.0.1:15014', '--push-debounce', '20ms']);
  await controller.waitFor((x) => x.msg === 'controller ready', 20_000, 'controller ready');
  l.exec(nodeNs, ['sh', join(SCRIPTS, 'node-setup.sh')]);
  l.exec(nodeNs, ['sh', join(SCRIPTS, 'pod-add.sh'), serverIp]);
  const ztunnel = l.spawnNode(nodeNs, [STRAIT, 'ztunnel', '--node', 'lab-node', '--xds-address', '127.0.0.1:15012',
    '--token-file', join(data, 'tokens', 'node-lab-node.token'), '--root-cert', join(data, 'root-cert.pem'),
    '--listen-address', '0.0.0.0', '--capture-mark', '0x539']);
  const app = l.spawnNodeScript(serverNs, APP);
  await app.waitFor((x) => x.ready === true, 10_000, 'server app');
  const get = (path: string) => l.exec(nodeNs, ['curl', '-s', '--noproxy', '*', `http://127.0.0.1:${path}`], { allowFailure: true }).stdout;
  const until = async (cond: () => boolean, what: string) => {
    const end = Date.now() + 15_000;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; ztunnel stderr: ${ztunnel.stderr.join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  await until(() => get('15021/healthz/ready').startsWith('ready'), 'ztunnel ready');
  const mode = () => (JSON.parse(get('15000/config_dump') || '{"policies":[]}').policies as { key: string; mode?: string }[]).find((p) => p.key === 'peerauthn/apps/default')?.mode;
  const connect = async () => {
    const r = await l.runNodeScript(clientNs, CLIENT, [serverIp, '8080'], { timeoutMs: 10_000, allowFailure: true });
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { reply?: { who: string; from: string } | null; error?: string };
  };

  await until(() => mode() === 'PERMISSIVE', 'PERMISSIVE policy on the ztunnel');
  const ok = await connect();
  assert.equal(ok.reply?.who, 'server', `PERMISSIVE lets plaintext through: ${JSON.stringify(ok)}`);
  assert.equal(ok.reply?.from, toServer.a.address, 'the ztunnel (marked socket from the node) connected to the pod');
  const accepted = await ztunnel.waitFor((x) => x.msg === 'connection complete' && x.direction === 'inbound-plaintext', 5000, 'access log');
  assert.equal(accepted['dst.workload'], 'server');
  assert.equal(accepted['src.identity'], undefined, 'plaintext has no identity');

  writeFileSync(join(cfg, 'peer.yaml'), pa('STRICT'));
  await until(() => mode() === 'STRICT', 'STRICT policy on the ztunnel');
  const refused = await connect();
  assert.equal(refused.reply ?? null, null, `STRICT refuses plaintext: ${JSON.stringify(refused)}`);
  const line = await ztunnel.waitFor((x) => x.msg === 'connection refused' && x.direction === 'inbound-plaintext', 5000, 'refusal in the access log');
  assert.match(String(line.error), /requires mTLS \(STRICT\)/);

  l.exec(nodeNs, ['sh', join(SCRIPTS, 'node-teardown.sh')]);
});
