import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CAPTURE_MARK, isOriginalDstAvailable } from '../../src/ztunnel/capture/original-dst.js';
import { Lab, listNamespaces, requireLab, requireOrSkip, type LabLine, type LabProcess } from '../helpers/netns.js';

// The capture path of DESIGN §6a in a three-namespace lab: client pod -- node -- server pod, the pods routed through
// the node namespace over veths. The shipped scripts/iptables/*.sh run in the node namespace; a stand-in ztunnel there
// listens on 15001/15006/15008 and reports, per connection, where it came from and `originalDestination(socket)`.

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SCRIPTS = join(ROOT, 'scripts/iptables');
const ORIGINAL_DST_MODULE = new URL('../../src/ztunnel/capture/original-dst.js', import.meta.url).href;

/** Stand-in ztunnel: argv = [original-dst module URL, ...ports]. One JSON line per accepted connection. */
const ZTUNNEL = `
import net from 'node:net';
const [moduleUrl, ...ports] = process.argv.slice(1);
const { originalDestination } = await import(moduleUrl);
let listening = 0;
for (const port of ports.map(Number)) {
  net.createServer((socket) => {
    socket.on('error', () => {});
    let original = null, error = null;
    try { original = originalDestination(socket); } catch (e) { error = { code: e.code, message: e.message }; }
    const capture = { listener: port, from: socket.remoteAddress, fromPort: socket.remotePort, original, error };
    process.stdout.write(JSON.stringify({ capture }) + '\\n');
    socket.end(JSON.stringify({ who: 'ztunnel', listener: port }));
  }).listen(port, '0.0.0.0', () => { if (++listening === ports.length) process.stdout.write('{"ready":true}\\n'); });
}`;

/** The server pod's app: answers who it is and whom it saw. */
const APP = `
import net from 'node:net';
const ports = process.argv.slice(1).map(Number);
let listening = 0;
for (const port of ports) {
  net.createServer((socket) => {
    socket.on('error', () => {});
    socket.end(JSON.stringify({ who: 'server', port, from: socket.remoteAddress }));
  }).listen(port, '0.0.0.0', () => { if (++listening === ports.length) process.stdout.write('{"ready":true}\\n'); });
}`;

/** A client: argv = [host, port, mark ('' = unmarked), original-dst module URL]. Prints one JSON line. */
const CLIENT = `
import net from 'node:net';
const [host, port, mark, moduleUrl] = process.argv.slice(1);
const capture = await import(moduleUrl);
const socket = mark ? capture.connectMarked({ host, port: Number(port) }, Number(mark)) : net.connect({ host, port: Number(port) });
let data = '', local = null;
setTimeout(() => { console.log(JSON.stringify({ error: 'timeout' })); process.exit(2); }, 5000).unref();
socket.on('connect', () => {
  local = { address: socket.localAddress, port: socket.localPort, mark: capture.getMark(socket) };
});
socket.on('data', (d) => (data += d));
socket.on('error', (e) => { console.log(JSON.stringify({ error: e.code ?? e.message })); process.exit(1); });
socket.on('close', () => console.log(JSON.stringify({ local, reply: data ? JSON.parse(data) : null })));
`;

interface Reply { who: 'ztunnel' | 'server'; listener?: number; port?: number; from?: string }
interface ClientResult { local: { address: string; port: number; mark: number }; reply: Reply }
interface Capture { listener: number; from: string; fromPort: number; original: { host: string; port: number } | null; error: { code: string; message: string } | null }

const ready = (l: LabLine): boolean => l.ready === true;

const labs: Lab[] = [];
after(() => { for (const lab of labs) lab.destroy(); });

test('iptables capture in a lab: pods routed through a node namespace reach the ztunnel with their original destination', async (t) => {
  if (!requireLab(t)) return;
  if (!requireOrSkip(t, isOriginalDstAvailable() ? undefined : 'the capture addon is not built (run `npm run build:native`)')) return;

  const l = new Lab('cap');
  labs.push(l);
  try {
    const clientNs = l.namespace('client');
    const nodeNs = l.namespace('node');
    const serverNs = l.namespace('server');
    const toClient = l.link(nodeNs, clientNs);
    const toServer = l.link(nodeNs, serverNs);
    const clientIp = toClient.b.address;
    const serverIp = toServer.b.address;
    l.route(clientNs, toClient.a.address);
    l.route(serverNs, toServer.a.address);
    l.sysctl(nodeNs, 'net.ipv4.ip_forward', '1');
    // New namespaces may inherit IPv4 settings from the host: the pods must not forward.
    l.sysctl(clientNs, 'net.ipv4.ip_forward', '0');
    l.sysctl(serverNs, 'net.ipv4.ip_forward', '0');

    const sh = (script: string, ...args: string[]): string => l.exec(nodeNs, ['sh', join(SCRIPTS, script), ...args]).stdout;
    const nat = (): string => l.exec(nodeNs, ['iptables-save', '-t', 'nat']).stdout;
    const count = (text: string, needle: string): number => text.split('\n').filter((line) => line.includes(needle)).length;

    const ztunnel: LabProcess = l.spawnNodeScript(nodeNs, ZTUNNEL, [ORIGINAL_DST_MODULE, '15001', '15006', '15008']);
    const app: LabProcess = l.spawnNodeScript(serverNs, APP, ['8080', '9090', '15008']);
    await Promise.all([ztunnel.waitFor(ready, 10_000, 'ztunnel listeners'), app.waitFor(ready, 10_000, 'server listeners')]);

    const connect = async (ns: string, host: string, port: number, mark?: number): Promise<ClientResult> => {
      const r = await l.runNodeScript(ns, CLIENT, [host, String(port), mark === undefined ? '' : String(mark), ORIGINAL_DST_MODULE], { timeoutMs: 10_000, allowFailure: true });
      const last = r.stdout.trim().split('\n').pop() ?? '';
      const result = (last ? JSON.parse(last) : {}) as ClientResult & { error?: string };
      assert.ok(r.status === 0 && !result.error && result.reply, `client in ${ns} -> ${host}:${port} failed: ${result.error ?? ''} ${r.stderr}`);
      return result;
    };
    /** The stand-in ztunnel's record of the connection a client made from local port `fromPort`. */
    const captured = async (fromPort: number): Promise<Capture> =>
      (await ztunnel.waitFor((line) => (line.capture as Capture | undefined)?.fromPort === fromPort, 5_000, `capture of port ${fromPort}`)).capture as Capture;

    await t.test('without capture rules a client pod reaches the server pod through the node, and nothing leaves the lab', async () => {
      const r = await connect(clientNs, serverIp, 8080);
      assert.deepEqual(r.reply, { who: 'server', port: 8080, from: clientIp });
      for (const ns of [clientNs, nodeNs, serverNs]) {
        const route = l.exec(ns, ['ip', 'route', 'get', '192.0.2.1'], { allowFailure: true });
        assert.notEqual(route.status, 0, `${ns} has a route out of the lab: ${route.stdout}`);
      }
    });

    await t.test('node-setup.sh creates Strait\'s chains with the mark-skip rules, and running it again changes nothing', () => {
      sh('node-setup.sh');
      const first = nat();
      sh('node-setup.sh');
      const rules = nat();
      const strip = (s: string): string => s.split('\n').filter((x) => !x.startsWith('#')).join('\n');
      assert.equal(strip(rules), strip(first));
      for (const chain of ['STRAIT_PREROUTING', 'STRAIT_OUTPUT', 'STRAIT_OUTBOUND', 'STRAIT_INBOUND']) assert.match(rules, new RegExp(`^:${chain} `, 'm'));
      assert.equal(count(rules, '-A PREROUTING -j STRAIT_PREROUTING'), 1);
      assert.equal(count(rules, '-A OUTPUT -j STRAIT_OUTPUT'), 1);
      assert.equal(count(rules, `--mark 0x${DEFAULT_CAPTURE_MARK.toString(16)}/0xfff -j RETURN`), 2);
    });

    await t.test('TCP to an enrolled pod arrives at 15006, or at 15008 when sent to port 15008, with its original destination', async () => {
      sh('pod-add.sh', serverIp);
      for (const [port, listener] of [[8080, 15006], [15008, 15008], [9090, 15006]] as const) {
        const r = await connect(clientNs, serverIp, port);
        assert.deepEqual(r.reply, { who: 'ztunnel', listener }, `port ${port}`);
        const c = await captured(r.local.port);
        assert.equal(c.listener, listener);
        assert.equal(c.from, clientIp);
        assert.deepEqual(c.original, { host: serverIp, port });
      }
    });

    await t.test('TCP from an enrolled pod arrives at 15001 from the client\'s address with its original destination', async () => {
      sh('pod-add.sh', clientIp);
      const r = await connect(clientNs, serverIp, 8080);
      assert.deepEqual(r.reply, { who: 'ztunnel', listener: 15001 });
      const c = await captured(r.local.port);
      assert.equal(c.from, clientIp);
      assert.equal(c.fromPort, r.local.port);
      assert.deepEqual(c.original, { host: serverIp, port: 8080 });
    });

    await t.test('running pod-add.sh again leaves one rule set per pod', () => {
      sh('pod-add.sh', clientIp, serverIp);
      sh('pod-add.sh', clientIp);
      const rules = nat();
      assert.equal(count(rules, `"strait-pod=${clientIp}"`), 3, rules);
      assert.equal(count(rules, `"strait-pod=${serverIp}"`), 3, rules);
      assert.equal(count(rules, 'strait-pod='), 6, rules);
    });

    await t.test('a node-local socket carrying the mark bypasses capture; an unmarked one is captured at 15006', async () => {
      const unmarked = await connect(nodeNs, serverIp, 8080);
      assert.equal(unmarked.local.mark, 0);
      assert.deepEqual(unmarked.reply, { who: 'ztunnel', listener: 15006 });
      const c = await captured(unmarked.local.port);
      assert.deepEqual(c.original, { host: serverIp, port: 8080 });

      const marked = await connect(nodeNs, serverIp, 8080, DEFAULT_CAPTURE_MARK);
      assert.equal(marked.local.mark, DEFAULT_CAPTURE_MARK);
      assert.deepEqual(marked.reply, { who: 'server', port: 8080, from: toServer.a.address });
    });

    await t.test('a connection made to the listener directly has no original destination (STRAIT_ERR_CAPTURE)', async () => {
      const r = await connect(nodeNs, '127.0.0.1', 15006);
      const c = await captured(r.local.port);
      assert.equal(c.original, null);
      assert.equal(c.error?.code, 'STRAIT_ERR_CAPTURE');
      assert.match(c.error?.message ?? '', /not redirected/);
    });

    await t.test('after pod-del.sh the pod\'s traffic is no longer captured, and other pods\' rules stay', async () => {
      sh('pod-del.sh', clientIp);
      let rules = nat();
      assert.equal(count(rules, `strait-pod=${clientIp}"`), 0, rules);
      assert.equal(count(rules, `strait-pod=${serverIp}"`), 3, rules);
      const toEnrolledServer = await connect(clientNs, serverIp, 8080);
      assert.deepEqual(toEnrolledServer.reply, { who: 'ztunnel', listener: 15006 }, 'only the server side is captured now');

      sh('pod-del.sh', serverIp);
      sh('pod-del.sh', serverIp);
      rules = nat();
      assert.equal(count(rules, 'strait-pod='), 0, rules);
      const direct = await connect(clientNs, serverIp, 8080);
      assert.deepEqual(direct.reply, { who: 'server', port: 8080, from: clientIp });
    });

    await t.test('node-teardown.sh removes every Strait chain, jump and pod rule, and is idempotent', async () => {
      sh('pod-add.sh', clientIp, serverIp);
      sh('node-teardown.sh');
      sh('node-teardown.sh');
      const rules = nat();
      assert.doesNotMatch(rules, /STRAIT|strait/, rules);
      const direct = await connect(clientNs, serverIp, 8080);
      assert.deepEqual(direct.reply, { who: 'server', port: 8080, from: clientIp });
    });

    await Promise.all([ztunnel.kill(), app.kill()]);
  } finally {
    l.destroy();
  }
  assert.deepEqual(listNamespaces(l.prefix), [], 'the lab left namespaces behind');
  assert.deepEqual(l.namespaceNames, []);
});

test('reads an IPv6 original destination (IP6T_SO_ORIGINAL_DST) and an IPv4 one on a dual-stack listener', async (t) => {
  if (!requireLab(t)) return;
  if (!requireOrSkip(t, isOriginalDstAvailable() ? undefined : 'the capture addon is not built (run `npm run build:native`)')) return;
  if (!requireOrSkip(t, existsSync('/proc/net/if_inet6') ? undefined : 'the kernel has IPv6 disabled')) return;

  const l = new Lab('cap6');
  labs.push(l);
  try {
    // Only the namespace's own loopback addresses: ::1, and 198.18.7.1 added to lo for the IPv4 case.
    const ns = l.namespace('node');
    l.exec(ns, ['ip', 'addr', 'add', '198.18.7.1/32', 'dev', 'lo']);
    l.exec(ns, ['ip6tables', '-w', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', '::1', '--dport', '8443', '-j', 'REDIRECT', '--to-ports', '15006']);
    l.exec(ns, ['iptables', '-w', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', '198.18.7.1', '--dport', '8443', '-j', 'REDIRECT', '--to-ports', '15006']);
    const listener = l.spawnNodeScript(ns, ZTUNNEL.replace("'0.0.0.0'", "'::'"), [ORIGINAL_DST_MODULE, '15006']);
    await listener.waitFor(ready, 10_000, 'listener');
    for (const host of ['::1', '198.18.7.1']) {
      const r = await l.runNodeScript(ns, CLIENT, [host, '8443', '', ORIGINAL_DST_MODULE], { timeoutMs: 10_000 });
      const { local } = JSON.parse(r.stdout.trim().split('\n').pop()!) as ClientResult;
      const line = await listener.waitFor((x) => (x.capture as Capture | undefined)?.fromPort === local.port, 5_000, `capture from ${host}`);
      assert.deepEqual((line.capture as Capture).original, { host, port: 8443 }, JSON.stringify(line));
    }
    await listener.kill();
  } finally {
    l.destroy();
  }
  assert.deepEqual(listNamespaces(l.prefix), []);
});
