/**
 * Data-plane workers (issue 14): a real `strait ztunnel --workers 2` against a real controller. The test plays the
 * pods' applications (an echo server on the server pod's address) and their clients (SOCKS5 from the client pod's
 * address). `--pool-max-streams 1`: every concurrent connection gets its own HBONE connection, so the inbound side's
 * accepts spread over the workers too.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { docs, namespace, pod, service } from '../helpers/manifests.js';
import { metricValue } from '../helpers/metrics.js';
import { ZtunnelNode, echoServer } from '../helpers/ztunnel.js';
import { eventually } from '../helpers/eventually.js';

const NODE = '127.0.212.1';
const CLIENT = '127.0.213.1';
const SERVER = '127.0.213.2';
const VIP = '127.0.214.1';
const DRAIN_MS = 2_000;

const mesh = [
  namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
  pod('apps', 'client', { node: 'node-w', ip: CLIENT, sa: 'client', labels: { app: 'client' } }),
  pod('apps', 'server', { node: 'node-w', ip: SERVER, sa: 'server', labels: { app: 'server' }, ports: { http: 8080 } }),
  service('apps', 'server', { ip: VIP, selector: { app: 'server' }, ports: [{ port: 80, targetPort: 8080, name: 'http' }] }),
];
const denyClient = {
  apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny-client', namespace: 'apps' },
  spec: { selector: { matchLabels: { app: 'server' } }, action: 'DENY', rules: [{ from: [{ source: { principals: ['cluster.local/ns/apps/sa/client'] } }] }] },
};

/** Writes `text` and reads the same bytes back, then leaves the socket open (its caller closes it). */
async function echoOnce(s: Socket, text: string): Promise<void> {
  s.setEncoding('utf8');
  const got = new Promise<string>((resolve, reject) => {
    let buf = '';
    s.on('data', (d: string) => { buf += d; if (buf.length >= text.length) resolve(buf); });
    s.once('error', reject);
    s.once('close', () => resolve(buf));
  });
  s.resume(); // the SOCKS5 client hands the socket over paused
  s.write(text);
  assert.equal(await got, text);
}

describe('ztunnel with --workers 2', () => {
  const zt = new ZtunnelNode('node-w', NODE, mesh);
  let app: Awaited<ReturnType<typeof echoServer>>;
  const metrics = async () => (await fetch(`http://${NODE}:15020/metrics`)).text();
  const perWorker = async (name: string, labels: Record<string, string> = {}) => {
    const text = await metrics();
    return [1, 2].map((w) => metricValue(text, name, { ...labels, worker: String(w) }));
  };
  /** Opens `n` connections through the ztunnel at once, each echoing once, and closes them. */
  const burst = async (n: number) => {
    const socks = await Promise.all(Array.from({ length: n }, async () => {
      const r = await zt.connect(CLIENT, VIP, 80);
      assert.ok(r.ok, `SOCKS5 connect through the ztunnel: ${r.ok ? '' : r.message}`);
      return r.socket;
    }));
    await Promise.all(socks.map((s, i) => echoOnce(s, `hello-${i}`)));
    for (const s of socks) s.destroy();
  };

  before(async () => {
    app = await echoServer(SERVER, 8080);
    await zt.start(['--workers', '2', '--pool-max-streams', '1', '--drain', `${DRAIN_MS}ms`]);
  });
  after(async () => {
    await zt.stop();
    await app?.close();
  });

  it('runs two worker processes besides the primary, each ready, listed in config_dump', async () => {
    const dump = await zt.configDump();
    assert.equal(dump.workers.length, 2);
    const pids = dump.workers.map((w: { pid: number }) => w.pid);
    assert.equal(new Set([...pids, zt.proc.child.pid]).size, 3, `three distinct processes: ${pids} and the primary ${zt.proc.child.pid}`);
    for (const w of dump.workers) assert.equal(w.ready, true);
    for (const pid of pids) assert.ok(existsSync(`/proc/${pid}`), `worker ${pid} runs`);
    // The listeners are the workers': every one is listed once, the pods' HBONE listeners among them.
    const addresses = dump.listeners.map((l: { address: string }) => l.address);
    assert.ok(addresses.includes(`${SERVER}:15008`) && addresses.includes(`${NODE}:15080`), addresses.join(', '));
    assert.equal(new Set(addresses).size, addresses.length);
  });

  it('holds one xDS stream and asks one certificate per pod identity at the controller, whatever the workers', async () => {
    await burst(8); // both identities in use on the data path of the workers
    const text = (await zt.controller.get('/metrics')).text;
    assert.equal(metricValue(text, 'pilot_xds', { kind: 'ztunnel' }), 1, 'one ztunnel stream');
    assert.equal(metricValue(text, 'citadel_server_csr_count'), 2, 'one CSR for apps/client and one for apps/server');
    const dump = await zt.configDump();
    assert.deepEqual(dump.certificates.map((c: { identity: string }) => c.identity).sort(), ['spiffe://cluster.local/ns/apps/sa/client', 'spiffe://cluster.local/ns/apps/sa/server']);
  });

  it('spreads connections over both workers, and the merged metrics sum what each worker counted', async () => {
    const opened = async () => metricValue(await metrics(), 'istio_tcp_connections_opened_total', { reporter: 'destination' });
    const before = await opened();
    const acceptedBefore = await perWorker('strait_worker_connections_accepted_total');
    let sent = 0;
    // The kernel wakes whichever worker waits in accept: a few bursts reach both.
    await eventually(async () => {
      await burst(16);
      sent += 16;
      const now = await perWorker('strait_worker_connections_accepted_total');
      return now.every((n, i) => n > acceptedBefore[i]!);
    }, 30_000, 'both workers accepted connections');
    const accepted = (await perWorker('strait_worker_connections_accepted_total')).map((n, i) => n - acceptedBefore[i]!);
    // Each connection is accepted once as SOCKS5 (outbound), and inbound on a new or a pooled HBONE connection.
    assert.ok(accepted[0]! + accepted[1]! >= sent, `accepted per worker: ${accepted}, connections ${sent}`);
    await eventually(async () => (await opened()) - before === sent, 5_000, `the merged istio_tcp_connections_opened_total counts all ${sent} connections`);
    const rss = await perWorker('strait_worker_resident_memory_bytes');
    for (const r of rss) assert.ok(r > 10e6, `each worker reports its own RSS (${rss})`);
  });

  it('a policy pushed to the primary reaches every worker: each denies the client after the push', async () => {
    writeFileSync(join(zt.dir.path, 'policy.yaml'), docs(denyClient));
    await eventually(async () => (await zt.configDump()).policies.length === 1, 10_000, 'the policy in the primary');
    const deniedBy = new Set<unknown>();
    const from = zt.proc.lines.length;
    await eventually(async () => {
      const rs = await Promise.all(Array.from({ length: 16 }, () => zt.connect(CLIENT, VIP, 80)));
      for (const r of rs) if (r.ok) r.socket.destroy();
      assert.ok(rs.every((r) => !r.ok), 'every connection is refused after the push');
      for (const l of zt.proc.lines.slice(from)) {
        if (l.direction === 'inbound' && typeof l.error === 'string' && /deny|denied|policy/i.test(l.error)) deniedBy.add(l.worker);
      }
      return deniedBy.size === 2;
    }, 30_000, 'an inbound denial in the access log of each worker');
    assert.deepEqual([...deniedBy].sort(), [1, 2]);
    writeFileSync(join(zt.dir.path, 'policy.yaml'), '');
    await eventually(async () => (await zt.configDump()).policies.length === 0, 10_000, 'the policy removed');
    await eventually(async () => { const r = await zt.connect(CLIENT, VIP, 80); if (r.ok) r.socket.destroy(); return r.ok; }, 10_000, 'allowed again');
  });

  it('a worker killed with SIGKILL is started again, and traffic keeps flowing meanwhile', async () => {
    const dump = await zt.configDump();
    const victim = dump.workers[0] as { worker: number; pid: number };
    const restartsBefore = metricValue(await metrics(), 'strait_worker_restarts_total', { reason: 'signal' });
    process.kill(victim.pid, 'SIGKILL');
    const line = await zt.proc.waitFor((l) => l.msg === 'worker exited; starting it again' && l.pid === victim.pid, 10_000, 'restart line');
    assert.equal(line.signal, 'SIGKILL');
    assert.equal(line.worker, victim.worker);
    // While its replacement starts, the other worker keeps the shared listening sockets open and serves everything
    // (connections the dead worker held died with it, as in any proxy crash).
    for (let i = 0; i < 5; i++) await burst(4);
    await eventually(async () => {
      const w = (await zt.configDump()).workers.find((x: { worker: number }) => x.worker === victim.worker);
      return w.ready && w.pid !== victim.pid;
    }, 20_000, 'the worker slot served by a new process');
    assert.equal(metricValue(await metrics(), 'strait_worker_restarts_total', { reason: 'signal' }), restartsBefore + 1);
    assert.equal((await fetch(`http://${NODE}:15021/healthz/ready`)).status, 200);
    await burst(8);
  });

  it('SIGTERM drains every worker: connections in flight finish, new ones are refused, all processes exit', async () => {
    const pids = (await zt.configDump()).workers.map((w: { pid: number }) => w.pid) as number[];
    const open = await Promise.all(Array.from({ length: 6 }, async () => {
      const r = await zt.connect(CLIENT, VIP, 80);
      assert.ok(r.ok);
      await echoOnce(r.socket, 'before');
      return r.socket;
    }));
    zt.proc.child.kill('SIGTERM');
    await zt.proc.waitFor((l) => l.msg?.startsWith('drain started') === true, 5_000, 'drain started');
    await assert.rejects(zt.connect(CLIENT, VIP, 80, 2_000), /ECONNREFUSED/);
    // Connections accepted before the drain still carry data (each worker drains its own).
    for (const s of open) {
      s.removeAllListeners('data');
      await echoOnce(s, 'during the drain');
      s.end();
    }
    const code = await zt.proc.exited;
    assert.equal(code, 0);
    const finished = await zt.proc.waitFor((l) => l.msg === 'drain finished; stopped', 1_000, 'drain finished');
    assert.ok(Number(finished.completed) >= 12, `the connections (outbound and inbound halves) completed, summed over the workers: ${finished.completed}`);
    await eventually(() => pids.every((p) => !existsSync(`/proc/${p}`)), 5_000, 'every worker process gone');
    // Three processes wrote to one standard output all along (access-log lines of every connection above): each write
    // is at most PIPE_BUF bytes of whole lines, so no line was cut by another process's.
    const torn = zt.proc.lines.filter((l) => l.raw === true);
    assert.deepEqual(torn, [], 'every line of the shared output is one whole JSON object');
    assert.ok(new Set(zt.proc.lines.map((l) => l.pid)).size >= 3, 'lines from the primary and from every worker');
  });
});

describe('ztunnel with --workers 1', () => {
  const node = '127.0.212.2';
  const zt = new ZtunnelNode('node-one', node, [
    namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
    pod('apps', 'client', { node: 'node-one', ip: '127.0.213.11', sa: 'client', labels: { app: 'client' } }),
    pod('apps', 'server', { node: 'node-one', ip: '127.0.213.12', sa: 'server', labels: { app: 'server' }, ports: { http: 8080 } }),
    service('apps', 'server', { ip: '127.0.214.2', selector: { app: 'server' }, ports: [{ port: 80, targetPort: 8080, name: 'http' }] }),
  ]);
  let app: Awaited<ReturnType<typeof echoServer>>;
  before(async () => {
    app = await echoServer('127.0.213.12', 8080);
    await zt.start(['--workers', '1']);
  });
  after(async () => {
    await zt.stop();
    await app?.close();
  });

  it('is one process with no workers: no child process, no workers in config_dump or metrics, traffic served', async () => {
    const pid = zt.proc.child.pid!;
    const { readFileSync } = await import('node:fs');
    assert.equal(readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim(), '', 'no child process');
    const dump = await zt.configDump();
    assert.equal(dump.workers, undefined);
    assert.ok(dump.fileDescriptors, 'the one process reports its own descriptors');
    const r = await zt.connect('127.0.213.11', '127.0.214.2', 80);
    assert.ok(r.ok);
    await echoOnce(r.socket, 'single');
    r.socket.destroy();
    assert.ok(!(await (await fetch(`http://${node}:15020/metrics`)).text()).includes('strait_worker'), 'no worker metrics');
  });
});

describe('ztunnel --workers 2 whose workers cannot listen', () => {
  const zt = new ZtunnelNode('node-bad', '127.0.212.3', [
    namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
    pod('apps', 'a', { node: 'node-bad', ip: '127.0.213.21' }),
  ]);
  after(() => zt.stop());

  it('stops the start with the listener\'s error and exit code 1, as one process does, leaving no worker behind', async () => {
    // 192.0.2.1 (TEST-NET-1) is no address of this machine: the primary's bind for the first worker fails.
    await assert.rejects(zt.start(['--workers', '2', '--listen-address', '192.0.2.1', '--admin-address', '127.0.212.3']), /exited \(1\)/);
    assert.equal(await zt.proc.exited, 1);
    assert.match(zt.proc.stderr.join('\n'), /\[STRAIT_ERR_LISTEN\] SOCKS5 cannot listen on 192\.0\.2\.1:15080: .*EADDRNOTAVAIL/);
    const failed = zt.proc.lines.filter((l) => l.msg === 'worker failed to start' && l.code === 'STRAIT_ERR_LISTEN');
    assert.ok(failed.length >= 1, 'the primary names the worker that failed');
    const pids = new Set(zt.proc.lines.map((l) => l.pid as number));
    await eventually(() => [...pids].every((p) => !existsSync(`/proc/${p}`)), 5_000, 'no process of this ztunnel left');
  });
});
