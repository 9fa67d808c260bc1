import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
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
const count = (text: string, needle: string): number => text.split('\n').filter((line) => line.includes(needle)).length;
/** iptables-save output without its comment lines (dates, and the "legacy tables present" warning). */
const strip = (s: string): string => s.split('\n').filter((x) => !x.startsWith('#')).join('\n');
/** STRAIT_OUTPUT as node-setup.sh makes it: same-node HBONE first, then the mark skip, then node-local clients. */
const STRAIT_OUTPUT_RULES = [
  '-A STRAIT_OUTPUT -p tcp -m tcp --dport 15008 -j STRAIT_INBOUND',
  `-A STRAIT_OUTPUT -m mark --mark 0x${DEFAULT_CAPTURE_MARK.toString(16)}/0xfff -j RETURN`,
  '-A STRAIT_OUTPUT -j STRAIT_INBOUND',
];

const labs: Lab[] = [];
after(() => { for (const lab of labs) lab.destroy(); });

/**
 * client pod -- node -- server pod, with the stand-in ztunnel in the node (15001/15006/15008) and the server app on
 * 8080, 9090 and 15008. `sh` runs a capture script in the node namespace with `env` (the backend choice).
 */
async function captureLab(label: string, env: Record<string, string> = {}) {
  const l = new Lab(label);
  labs.push(l);
  const clientNs = l.namespace('client');
  const nodeNs = l.namespace('node');
  const serverNs = l.namespace('server');
  const toClient = l.link(nodeNs, clientNs);
  const toServer = l.link(nodeNs, serverNs);
  l.route(clientNs, toClient.a.address);
  l.route(serverNs, toServer.a.address);
  l.sysctl(nodeNs, 'net.ipv4.ip_forward', '1');
  // New namespaces may inherit IPv4 settings from the host: the pods must not forward.
  l.sysctl(clientNs, 'net.ipv4.ip_forward', '0');
  l.sysctl(serverNs, 'net.ipv4.ip_forward', '0');

  const sh = (script: string, ...args: string[]): string => l.exec(nodeNs, ['sh', join(SCRIPTS, script), ...args], { env }).stdout;
  /** `<bin> -t nat` of the node namespace, e.g. save('iptables-legacy-save'). */
  const save = (bin: string): string => strip(l.exec(nodeNs, [bin, '-t', 'nat']).stdout);

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

  return {
    l, clientNs, nodeNs, serverNs, toClient, toServer, clientIp: toClient.b.address, serverIp: toServer.b.address,
    sh, save, ztunnel, app, connect, captured,
  };
}

test('iptables capture in a lab: pods routed through a node namespace reach the ztunnel with their original destination', async (t) => {
  if (!requireLab(t)) return;
  if (!requireOrSkip(t, isOriginalDstAvailable() ? undefined : 'the capture addon is not built (run `npm run build:native`)')) return;

  const lab = await captureLab('cap');
  const { l, clientNs, nodeNs, serverNs, toServer, clientIp, serverIp, sh, save, ztunnel, app, connect, captured } = lab;
  try {
    const nat = (): string => l.exec(nodeNs, ['iptables-nft-save', '-t', 'nat']).stdout;

    await t.test('without capture rules a client pod reaches the server pod through the node, and nothing leaves the lab', async () => {
      const r = await connect(clientNs, serverIp, 8080);
      assert.deepEqual(r.reply, { who: 'server', port: 8080, from: clientIp });
      for (const ns of [clientNs, nodeNs, serverNs]) {
        const route = l.exec(ns, ['ip', 'route', 'get', '192.0.2.1'], { allowFailure: true });
        assert.notEqual(route.status, 0, `${ns} has a route out of the lab: ${route.stdout}`);
      }
    });

    await t.test('node-setup.sh makes Strait\'s chains in iptables-nft (the default backend), HBONE jump first in STRAIT_OUTPUT, and running it again changes nothing', () => {
      sh('node-setup.sh');
      const first = nat();
      sh('node-setup.sh');
      const rules = nat();
      assert.equal(strip(rules), strip(first));
      for (const chain of ['STRAIT_PREROUTING', 'STRAIT_OUTPUT', 'STRAIT_OUTBOUND', 'STRAIT_INBOUND']) assert.match(rules, new RegExp(`^:${chain} `, 'm'));
      assert.equal(count(rules, '-A PREROUTING -j STRAIT_PREROUTING'), 1);
      assert.equal(count(rules, '-A OUTPUT -j STRAIT_OUTPUT'), 1);
      assert.equal(count(rules, `--mark 0x${DEFAULT_CAPTURE_MARK.toString(16)}/0xfff -j RETURN`), 2);
      assert.deepEqual(rules.split('\n').filter((x) => x.startsWith('-A STRAIT_OUTPUT ')), STRAIT_OUTPUT_RULES);
      assert.doesNotMatch(save('iptables-legacy-save'), /STRAIT/, 'nothing went to the legacy tables');
      assert.equal(sh('node-setup.sh', '--dry-run'), '', 'a dry run on a node already set up has nothing to do');
    });

    await t.test('node-setup.sh gives a STRAIT_OUTPUT left by an older version the HBONE rule first, with one insertion', () => {
      const before = nat();
      // The chain as the scripts made it before the same-node HBONE rule existed: mark skip, then STRAIT_INBOUND.
      l.exec(nodeNs, ['iptables-nft', '-w', '-t', 'nat', '-D', 'STRAIT_OUTPUT', '1']);
      assert.deepEqual(nat().split('\n').filter((x) => x.startsWith('-A STRAIT_OUTPUT ')), STRAIT_OUTPUT_RULES.slice(1));
      assert.equal(sh('node-setup.sh', '--dry-run'), 'iptables-nft -w -t nat -I STRAIT_OUTPUT 1 -p tcp -m tcp --dport 15008 -j STRAIT_INBOUND\n');
      sh('node-setup.sh');
      assert.equal(strip(nat()), strip(before));
      // A stray rule in a Strait chain is removed too.
      l.exec(nodeNs, ['iptables-nft', '-w', '-t', 'nat', '-I', 'STRAIT_OUTPUT', '2', '-j', 'RETURN']);
      sh('node-setup.sh');
      assert.equal(strip(nat()), strip(before));
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

    await t.test('running pod-add.sh again leaves one rule set per pod, and its dry run then has nothing to do', () => {
      sh('pod-add.sh', clientIp, serverIp);
      sh('pod-add.sh', clientIp);
      const rules = nat();
      assert.equal(count(rules, `"strait-pod=${clientIp}"`), 3, rules);
      assert.equal(count(rules, `"strait-pod=${serverIp}"`), 3, rules);
      assert.equal(count(rules, 'strait-pod='), 6, rules);
      assert.equal(sh('pod-add.sh', '--dry-run', clientIp, serverIp), '');
    });

    await t.test('--dry-run of every script reads the tables as they are and changes nothing', () => {
      const before = nat();
      const v6before = save('ip6tables-nft-save');
      // The server was enrolled first: its rules are the 1st of STRAIT_OUTBOUND and the 1st and 2nd of STRAIT_INBOUND.
      assert.deepEqual(sh('pod-del.sh', '--dry-run', serverIp).split('\n').filter(Boolean), [
        `nft 'delete element ip strait pods { ${serverIp} }'`, 'iptables-nft -w -t nat -D STRAIT_OUTBOUND 1', 'iptables-nft -w -t nat -D STRAIT_INBOUND 2', 'iptables-nft -w -t nat -D STRAIT_INBOUND 1',
      ]);
      const teardown = sh('node-teardown.sh', '--dry-run').split('\n').filter(Boolean);
      assert.deepEqual(teardown.filter((x) => x.startsWith('iptables-nft ')), [
        'iptables-nft -w -t nat -D PREROUTING 1', 'iptables-nft -w -t nat -D OUTPUT 1',
        ...['-F', '-X'].flatMap((op) => ['STRAIT_PREROUTING', 'STRAIT_OUTPUT', 'STRAIT_OUTBOUND', 'STRAIT_INBOUND'].map((c) => `iptables-nft -w -t nat ${op} ${c}`)),
      ]);
      assert.deepEqual(teardown.filter((x) => !x.startsWith('iptables-nft ') && !x.startsWith('ip6tables-nft ')), [
        "nft 'delete table ip strait'", 'ip -4 rule del fwmark 0x111/0xfff lookup 133', 'ip -4 route flush table 133',
      ]);
      const stale = sh('pod-add.sh', '--dry-run', '198.18.250.1').split('\n').filter(Boolean);
      assert.equal(stale.length, 4);
      assert.ok(stale.slice(0, 3).every((x) => x.startsWith('iptables-nft -w -t nat -A STRAIT_')), stale.join('\n'));
      assert.equal(stale[3], "nft 'add element ip strait pods { 198.18.250.1 }'");
      assert.equal(strip(nat()), strip(before));
      assert.equal(save('ip6tables-nft-save'), v6before);
    });

    await t.test('a node-local socket carrying the mark bypasses capture; an unmarked one is captured at 15006', async () => {
      const unmarked = await connect(nodeNs, serverIp, 8080);
      assert.equal(unmarked.local.mark, 0);
      assert.deepEqual(unmarked.reply, { who: 'ztunnel', listener: 15006 });
      const c = await captured(unmarked.local.port);
      assert.deepEqual(c.original, { host: serverIp, port: 8080 });

      for (const port of [8080, 9090]) {
        const marked = await connect(nodeNs, serverIp, port, DEFAULT_CAPTURE_MARK);
        assert.equal(marked.local.mark, DEFAULT_CAPTURE_MARK);
        assert.deepEqual(marked.reply, { who: 'server', port, from: toServer.a.address });
      }
    });

    await t.test('same-node HBONE: the ztunnel\'s marked connection to an enrolled pod\'s 15008 reaches its own 15008 with the pod\'s address', async () => {
      const marked = await connect(nodeNs, serverIp, 15008, DEFAULT_CAPTURE_MARK);
      assert.equal(marked.local.mark, DEFAULT_CAPTURE_MARK);
      assert.deepEqual(marked.reply, { who: 'ztunnel', listener: 15008 });
      const c = await captured(marked.local.port);
      assert.equal(c.listener, 15008);
      assert.equal(c.from, toServer.a.address);
      assert.deepEqual(c.original, { host: serverIp, port: 15008 });
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
      assert.equal(sh('pod-del.sh', '--dry-run', serverIp), '', 'nothing left to delete');
      const direct = await connect(clientNs, serverIp, 8080);
      assert.deepEqual(direct.reply, { who: 'server', port: 8080, from: clientIp });
      // The same-node HBONE rule only concerns pods with rules: a marked connection to 15008 of this pod now reaches it.
      const marked = await connect(nodeNs, serverIp, 15008, DEFAULT_CAPTURE_MARK);
      assert.deepEqual(marked.reply, { who: 'server', port: 15008, from: toServer.a.address });
    });

    await t.test('node-teardown.sh removes every Strait chain, jump and pod rule, and is idempotent', async () => {
      sh('pod-add.sh', clientIp, serverIp);
      sh('node-teardown.sh');
      sh('node-teardown.sh');
      const rules = nat();
      assert.doesNotMatch(rules, /STRAIT|strait/, rules);
      for (const bin of ['ip6tables-nft-save', 'iptables-legacy-save', 'ip6tables-legacy-save']) assert.doesNotMatch(save(bin), /STRAIT|strait/, bin);
      assert.equal(sh('node-teardown.sh', '--dry-run'), '', 'nothing left to remove');
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

test('STRAIT_IPTABLES=iptables-legacy: the same rules in the legacy tables capture traffic, and teardown leaves nothing in either backend', async (t) => {
  if (!requireLab(t)) return;
  if (!requireOrSkip(t, isOriginalDstAvailable() ? undefined : 'the capture addon is not built (run `npm run build:native`)')) return;
  const missing = ['iptables-legacy', 'ip6tables-legacy', 'iptables-legacy-save', 'ip6tables-legacy-save', 'iptables-nft-save', 'ip6tables-nft-save']
    .filter((bin) => spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0);
  if (!requireOrSkip(t, missing.length ? `${missing.join(', ')} not installed: apt-get install -y iptables` : undefined)) return;

  const lab = await captureLab('capl', { STRAIT_IPTABLES: 'iptables-legacy', STRAIT_IP6TABLES: 'ip6tables-legacy' });
  const { l, clientNs, nodeNs, toServer, clientIp, serverIp, sh, save, ztunnel, app, connect, captured } = lab;
  try {
    sh('node-setup.sh');
    const first = save('iptables-legacy-save');
    sh('node-setup.sh');
    assert.equal(save('iptables-legacy-save'), first, 'a second node-setup.sh changes nothing');
    assert.equal(sh('node-setup.sh', '--dry-run'), '');
    for (const bin of ['iptables-legacy-save', 'ip6tables-legacy-save']) {
      assert.deepEqual(save(bin).split('\n').filter((x) => x.startsWith('-A STRAIT_OUTPUT ')), STRAIT_OUTPUT_RULES, bin);
    }
    for (const bin of ['iptables-nft-save', 'ip6tables-nft-save']) assert.doesNotMatch(save(bin), /STRAIT/, `${bin}: nothing went to nf_tables`);

    assert.deepEqual(sh('pod-add.sh', '--dry-run', serverIp).split('\n').filter(Boolean).map((x) => x.split(' -s ')[0]!.split(' -d ')[0]),
      ['iptables-legacy -w -t nat -A STRAIT_OUTBOUND', 'iptables-legacy -w -t nat -A STRAIT_INBOUND', 'iptables-legacy -w -t nat -A STRAIT_INBOUND',
        `nft 'add element ip strait pods { ${serverIp} }'`]);
    sh('pod-add.sh', serverIp);
    sh('pod-add.sh', serverIp);
    assert.equal(count(save('iptables-legacy-save'), `"strait-pod=${serverIp}"`), 3);

    const plain = await connect(clientNs, serverIp, 8080);
    assert.deepEqual(plain.reply, { who: 'ztunnel', listener: 15006 });
    assert.deepEqual((await captured(plain.local.port)).original, { host: serverIp, port: 8080 });
    const hbone = await connect(nodeNs, serverIp, 15008, DEFAULT_CAPTURE_MARK);
    assert.deepEqual(hbone.reply, { who: 'ztunnel', listener: 15008 }, 'same-node HBONE');
    assert.deepEqual((await captured(hbone.local.port)).original, { host: serverIp, port: 15008 });
    const delivery = await connect(nodeNs, serverIp, 8080, DEFAULT_CAPTURE_MARK);
    assert.deepEqual(delivery.reply, { who: 'server', port: 8080, from: toServer.a.address });

    sh('node-teardown.sh');
    sh('node-teardown.sh');
    for (const bin of ['iptables-legacy-save', 'ip6tables-legacy-save', 'iptables-nft-save', 'ip6tables-nft-save']) {
      assert.doesNotMatch(save(bin), /STRAIT|strait/, bin);
    }
    assert.doesNotMatch(l.exec(nodeNs, ['nft', 'list', 'tables']).stdout, /strait/, 'the nftables table is gone too');
    const direct = await connect(clientNs, serverIp, 8080);
    assert.deepEqual(direct.reply, { who: 'server', port: 8080, from: clientIp });
    await Promise.all([ztunnel.kill(), app.kill()]);
  } finally {
    l.destroy();
  }
  assert.deepEqual(listNamespaces(l.prefix), [], 'the lab left namespaces behind');
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
