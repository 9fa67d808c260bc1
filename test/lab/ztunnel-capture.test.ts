/**
 * `strait ztunnel --capture` in a lab (issue 11, DESIGN §6a): the real ztunnel installs the node chains, adds and
 * removes each pod's rules as the controller says pods join and leave the mesh (no pod restart, live connections
 * left alone), reconciles what a killed run left, puts back rules someone else removed, and tears everything down
 * when it stops. One node namespace (controller + ztunnel) and two pod namespaces routed through it.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isOriginalDstAvailable } from '../../src/ztunnel/capture/original-dst.js';
import { ZTUNNEL_NODE_OPTIONS } from '../../src/ztunnel/config.js';
import { docs, namespace } from '../helpers/manifests.js';
import { Lab, requireLab, requireOrSkip, type LabLine, type LabProcess } from '../helpers/netns.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SCRIPTS = join(ROOT, 'scripts/iptables');
const STRAIT = join(ROOT, 'dist/src/cli/strait.js');

/** The server pod's app: echoes every line back prefixed with who it saw connect. */
const SERVER = `
import net from 'node:net';
net.createServer((s) => {
  s.on('error', () => {});
  const from = s.remoteAddress;
  s.setEncoding('utf8');
  let buf = '';
  s.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\\n')) >= 0) { const line = buf.slice(0, i); buf = buf.slice(i + 1); s.write(JSON.stringify({ from, line }) + '\\n'); } });
}).listen(8080, '0.0.0.0', () => process.stdout.write('{"ready":true}\\n'));`;

/** One request: connect, send one line, print the answer (or the error) as one JSON line. */
const ONCE = `
import net from 'node:net';
const [host, port, text] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port) });
let data = '';
setTimeout(() => { console.log(JSON.stringify({ error: 'timeout' })); process.exit(2); }, 5000).unref();
s.on('connect', () => s.write(text + '\\n'));
s.setEncoding('utf8');
s.on('data', (d) => { data += d; if (data.includes('\\n')) { console.log(JSON.stringify({ localPort: s.localPort, reply: JSON.parse(data) })); s.end(); } });
s.on('error', (e) => { console.log(JSON.stringify({ error: e.code ?? e.message })); process.exit(0); });`;

/** A long-lived connection: a line every 100 ms, each answer printed; never reconnects. */
const STREAM = `
import net from 'node:net';
const [host, port] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port) });
let n = 0, buf = '';
s.setEncoding('utf8');
s.on('connect', () => { console.log(JSON.stringify({ connected: true, localPort: s.localPort })); setInterval(() => s.write('tick ' + (n++) + '\\n'), 100); });
s.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\\n')) >= 0) { console.log(JSON.stringify({ echo: JSON.parse(buf.slice(0, i)), localPort: s.localPort })); buf = buf.slice(i + 1); } });
s.on('error', (e) => { console.log(JSON.stringify({ error: e.code ?? e.message })); process.exit(1); });
s.on('close', () => { console.log(JSON.stringify({ closed: true })); process.exit(1); });`;

const labs: Lab[] = [];
const dirs: string[] = [];
after(() => {
  for (const l of labs) l.destroy();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface CapturePod { pod: string; address: string; state: string; since: string; attempts: number }
interface CaptureDump { enabled: boolean; setupAt: string | null; foundAtStart: number | null; pods: CapturePod[] }

test('the ztunnel captures pods as they join, lets them go as they leave, survives a kill, and leaves nothing behind', async (t) => {
  if (!requireLab(t)) return;
  if (!requireOrSkip(t, isOriginalDstAvailable() ? undefined : 'the capture addon is not built (run `npm run build:native`)')) return;
  const l = new Lab('zcap');
  labs.push(l);
  const cfg = mkdtempSync(join(tmpdir(), 'strait-zcap-cfg-'));
  const data = mkdtempSync(join(tmpdir(), 'strait-zcap-data-'));
  dirs.push(cfg, data);

  const nodeNs = l.namespace('node');
  const aNs = l.namespace('a');
  const bNs = l.namespace('b');
  const toA = l.link(nodeNs, aNs);
  const toB = l.link(nodeNs, bNs);
  const aIp = toA.b.address;
  const bIp = toB.b.address;
  l.route(aNs, toA.a.address);
  l.route(bNs, toB.a.address);
  l.sysctl(nodeNs, 'net.ipv4.ip_forward', '1');
  for (const ns of [aNs, bNs]) l.sysctl(ns, 'net.ipv4.ip_forward', '0');

  const pod = (name: string, ip: string, mode?: string) => ({
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, namespace: 'apps', labels: { app: name, ...(mode ? { 'istio.io/dataplane-mode': mode } : {}) } },
    spec: { nodeName: 'lab-node', serviceAccountName: name, containers: [{ name: 'app', image: 'app' }] }, status: { podIP: ip },
  });
  const write = (aMode?: string, bMode?: string) => writeFileSync(join(cfg, 'mesh.yaml'), docs(namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }), pod('a', aIp, aMode), pod('b', bIp, bMode)));
  write();

  const controller = l.spawnNode(nodeNs, [STRAIT, 'controller', '--config-dir', cfg, '--data-dir', data, '--xds-address', '127.0.0.1:15012', '--admin-address', '127.0.0.1:15014', '--push-debounce', '20ms']);
  await controller.waitFor((x) => x.msg === 'controller ready', 20_000, 'controller ready');
  const startZtunnel = (extra: string[] = []): LabProcess => l.spawnNode(nodeNs, [...ZTUNNEL_NODE_OPTIONS, STRAIT, 'ztunnel', '--capture', '--node', 'lab-node', '--xds-address', '127.0.0.1:15012',
    '--token-file', join(data, 'tokens', 'node-lab-node.token'), '--root-cert', join(data, 'root-cert.pem'), '--capture-resync', '1s', '--drain', '1s', ...extra]);
  let ztunnel = startZtunnel();
  const server = l.spawnNodeScript(bNs, SERVER);
  await server.waitFor((x) => x.ready === true, 10_000, 'server app');

  const get = (path: string) => l.exec(nodeNs, ['curl', '-s', '--noproxy', '*', `http://127.0.0.1:${path}`], { allowFailure: true }).stdout;
  const until = async (cond: () => boolean, what: string, ms = 15_000) => {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; ztunnel stderr: ${ztunnel.stderr.join('\n')}; last lines: ${JSON.stringify(ztunnel.lines.slice(-5))}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const dump = (): CaptureDump | undefined => { try { return (JSON.parse(get('15000/config_dump')) as { capture: CaptureDump }).capture; } catch { return undefined; } };
  const podStates = () => Object.fromEntries((dump()?.pods ?? []).map((p) => [p.address, p.state]));
  const nat = () => l.exec(nodeNs, ['iptables-save', '-t', 'nat']).stdout;
  const tagged = (ip: string) => nat().split('\n').filter((line) => line.includes(`strait-pod=${ip}`)).length;
  /** One request from pod a; `mark` = how many ztunnel lines there were before it (its access-log lines come after). */
  const once = async (text: string) => {
    const mark = ztunnel.lines.length;
    const r = await l.runNodeScript(aNs, ONCE, [bIp, '8080', text], { timeoutMs: 10_000, allowFailure: true });
    return { mark, ...(JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { localPort?: number; reply?: { from: string; line: string }; error?: string }) };
  };
  /** The first `direction` access-log line of the ztunnel after line `mark`. */
  const accessLine = async (z: LabProcess, direction: string, mark: number): Promise<LabLine> => {
    const match = (x: LabLine) => x.msg === 'connection complete' && x.direction === direction;
    await until(() => z.lines.slice(mark).some(match), `${direction} access log line`, 5000);
    return z.lines.slice(mark).find(match)!;
  };

  await t.test('at start: node chains and both enrolled pods\' rules, shown in /config_dump and metrics; ready only then', async () => {
    await until(() => get('15021/healthz/ready').startsWith('ready'), 'ztunnel ready');
    assert.deepEqual(podStates(), { [aIp]: 'present', [bIp]: 'present' });
    assert.equal(tagged(aIp), 3);
    assert.equal(tagged(bIp), 3);
    const d = dump()!;
    assert.equal(d.enabled, true);
    assert.ok(d.setupAt);
    assert.equal(d.foundAtStart, 0);
    assert.deepEqual(d.pods.map((p) => p.pod).sort(), ['apps/a', 'apps/b']);
    const metrics = get('15020/metrics');
    assert.match(metrics, /strait_capture_pods\{state="present"\} 2/);
    assert.match(metrics, /strait_capture_operations_total\{operation="setup",result="ok"\} 1/);
    assert.match(metrics, /strait_capture_operations_total\{operation="add",result="ok"\} 2/);
    // Admin is on loopback only: a pod cannot reach /quitquitquit through its node's address.
    const fromPod = l.exec(aNs, ['curl', '-s', '-m', '2', '--noproxy', '*', `http://${toA.a.address}:15000/config_dump`], { allowFailure: true });
    assert.notEqual(fromPod.status, 0, 'admin must not answer a pod');
  });

  await t.test('a pod-to-pod connection on one node goes through the ztunnel over HBONE with both identities', async () => {
    const r = await once('hello');
    assert.equal(r.reply?.line, 'hello', JSON.stringify(r));
    assert.equal(r.reply?.from, toB.a.address, 'the server sees the ztunnel (from its node) connect, not the client pod');
    const out = await accessLine(ztunnel, 'outbound', r.mark);
    assert.equal(out['src.identity'], 'spiffe://cluster.local/ns/apps/sa/a');
    assert.equal(out['dst.identity'], 'spiffe://cluster.local/ns/apps/sa/b');
    const inbound = await accessLine(ztunnel, 'inbound', r.mark);
    assert.equal(inbound['src.identity'], 'spiffe://cluster.local/ns/apps/sa/a');
    assert.equal(inbound['dst.workload'], 'b');
  });

  await t.test('a pod that leaves loses its rules without a restart; its live connection goes on; it comes back when re-enrolled', async () => {
    const stream = l.spawnNodeScript(aNs, STREAM, [bIp, '8080']);
    const first = await stream.waitFor((x) => x.echo !== undefined, 5000, 'first echo');
    write('none');
    await until(() => podStates()[aIp] === undefined && tagged(aIp) === 0, 'pod a\'s rules removed');
    assert.equal(tagged(bIp), 3, 'the other pod\'s rules stay');
    await ztunnel.waitFor((x) => x.msg === 'capture rules removed' && x.address === aIp, 5000, 'removal log line');
    const seen = stream.lines.length;
    await until(() => stream.lines.length >= seen + 5, 'echoes after the pod left');
    assert.ok(stream.running, 'the live connection was not cut');
    assert.ok(stream.lines.slice(seen).every((x) => x.localPort === first.localPort && x.echo !== undefined), 'same connection, still echoing');
    // New connections of the pod are not captured any more: they reach pod b's capture as plaintext (15006).
    const r = await once('plain');
    assert.equal(r.reply?.line, 'plain', JSON.stringify(r));
    const plain = await accessLine(ztunnel, 'inbound-plaintext', r.mark);
    assert.equal(plain['src.identity'], undefined);
    await stream.kill();

    write();
    await until(() => podStates()[aIp] === 'present' && tagged(aIp) === 3, 'pod a\'s rules back');
    const again = await once('again');
    assert.equal(again.reply?.line, 'again');
    assert.equal((await accessLine(ztunnel, 'outbound', again.mark))['src.identity'], 'spiffe://cluster.local/ns/apps/sa/a');
  });

  await t.test('rules someone else removed are put back by the resync', async () => {
    l.exec(nodeNs, ['sh', join(SCRIPTS, 'pod-del.sh'), bIp]);
    assert.equal(tagged(bIp), 0);
    await until(() => tagged(bIp) === 3, 'pod b\'s rules restored');
    await ztunnel.waitFor((x) => x.msg?.toString().startsWith('capture rules missing') === true, 5000, 'the warning');
    l.exec(nodeNs, ['sh', join(SCRIPTS, 'node-teardown.sh')]);
    await until(() => tagged(aIp) === 3 && tagged(bIp) === 3, 'chains and both pods restored after a teardown behind the ztunnel\'s back');
    assert.equal((await once('healed')).reply?.line, 'healed');
  });

  await t.test('a jump put in front of Strait\'s (kube-proxy after its restart) is moved back behind it by the resync', async () => {
    l.exec(nodeNs, ['iptables', '-t', 'nat', '-N', 'KUBE-SERVICES']);
    l.exec(nodeNs, ['iptables', '-t', 'nat', '-I', 'PREROUTING', '1', '-j', 'KUBE-SERVICES']);
    const prerouting = () => nat().split('\n').filter((x) => x.startsWith('-A PREROUTING '));
    await until(() => prerouting()[0] === '-A PREROUTING -j STRAIT_PREROUTING', 'Strait\'s jump first again');
    assert.deepEqual(prerouting(), ['-A PREROUTING -j STRAIT_PREROUTING', '-A PREROUTING -j KUBE-SERVICES'], 'one copy, the other rule kept');
    await ztunnel.waitFor((x) => x.msg?.toString().startsWith('node capture rules out of place') === true, 5000, 'the warning');
    l.exec(nodeNs, ['iptables', '-t', 'nat', '-D', 'PREROUTING', '-j', 'KUBE-SERVICES']);
    l.exec(nodeNs, ['iptables', '-t', 'nat', '-X', 'KUBE-SERVICES']);
  });

  await t.test('killed (SIGKILL) and started again: stale rules of a pod that left meanwhile are removed, none duplicated', async () => {
    await ztunnel.kill();
    assert.equal(tagged(bIp), 3, 'rules stay while the ztunnel is down (traffic is refused, never sent in plaintext)');
    write(undefined, 'none');
    ztunnel = startZtunnel();
    await until(() => get('15021/healthz/ready').startsWith('ready') && tagged(bIp) === 0, 'ready with pod b\'s stale rules gone');
    assert.equal(dump()?.foundAtStart, 2);
    const rules = nat();
    assert.equal(tagged(aIp), 3);
    assert.equal(rules.split('\n').filter((x) => x === '-A PREROUTING -j STRAIT_PREROUTING').length, 1);
    assert.equal(rules.split('\n').filter((x) => x === '-A OUTPUT -j STRAIT_OUTPUT').length, 1);
    const r = await once('after restart');
    assert.equal(r.reply?.line, 'after restart');
    assert.equal((await accessLine(ztunnel, 'outbound', r.mark))['dst.identity'], undefined, 'b is out of the mesh: plain TCP from the ztunnel');
  });

  await t.test('SIGTERM: the ztunnel drains and leaves its rules (fail closed); with --capture-teardown it removes every rule it made', async () => {
    const nftTables = () => l.exec(nodeNs, ['nft', 'list', 'tables']).stdout;
    const ipRules = () => l.exec(nodeNs, ['ip', '-4', 'rule', 'show']).stdout;
    ztunnel.child.kill('SIGTERM');
    assert.equal(await ztunnel.exited, 0);
    assert.equal(tagged(aIp), 3, 'pod a stays captured while no ztunnel runs (a rolling update must not send it in plaintext)');
    assert.match(nftTables(), /table ip strait/);
    assert.match(l.exec(nodeNs, ['nft', 'list', 'set', 'ip', 'strait', 'pods']).stdout, new RegExp(aIp.replaceAll('.', '\\.')));
    await ztunnel.waitFor((x) => x.msg?.toString().startsWith('capture rules left in place') === true, 1000, 'the log line saying the rules stay');

    ztunnel = startZtunnel(['--capture-teardown']);
    await until(() => get('15021/healthz/ready').startsWith('ready'), 'ztunnel ready again');
    assert.equal(tagged(aIp), 3, 'no duplicates after a restart over the rules left in place');
    ztunnel.child.kill('SIGTERM');
    assert.equal(await ztunnel.exited, 0);
    const rules = nat();
    assert.doesNotMatch(rules, /STRAIT/, rules);
    assert.doesNotMatch(nftTables(), /strait/);
    assert.doesNotMatch(ipRules(), /lookup 133/);
  });
});
