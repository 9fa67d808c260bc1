/**
 * SIGTERM drains the ztunnel as /quitquitquit does (issue 13): Kubernetes stops a pod with SIGTERM, so a rolling
 * update of the DaemonSet must not reset the connections it carries. A real ztunnel process, real SOCKS5 clients,
 * real HBONE to a local pod, a real TCP server as the pod's application.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { namespace, pod, service } from '../helpers/manifests.js';
import { ZtunnelNode, echoServer } from '../helpers/ztunnel.js';

const NODE = '127.0.130.1';
const CLIENT = '127.0.131.1';
const SERVER = '127.0.131.2';
const VIP = '127.0.132.1';
const DRAIN_MS = 3_000;

/** Sends `chunks` chunks, one every `everyMs`, then half-closes; resolves with what came back and how it ended. */
function converse(s: Socket, chunks: number, everyMs: number): Promise<{ chunks: number; sent: string; echoed: string; error?: string }> {
  return new Promise((resolve) => {
    let sent = '';
    let i = 0;
    let echoed = '';
    let error: string | undefined;
    s.setEncoding('utf8');
    s.on('data', (d: string) => (echoed += d));
    s.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
    s.on('close', () => resolve({ chunks: i, sent, echoed, ...(error ? { error } : {}) }));
    s.resume();
    const t = setInterval(() => {
      if (s.destroyed) return clearInterval(t);
      const chunk = `chunk-${i}-${'x'.repeat(1000)}|`;
      sent += chunk;
      s.write(chunk);
      if (++i === chunks) {
        clearInterval(t);
        s.end();
      }
    }, everyMs);
  });
}

describe('ztunnel drain on SIGTERM', () => {
  const zt = new ZtunnelNode('node-drain', NODE, [
    namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
    pod('apps', 'client', { node: 'node-drain', ip: CLIENT, sa: 'client', labels: { app: 'client' } }),
    pod('apps', 'server', { node: 'node-drain', ip: SERVER, sa: 'server', labels: { app: 'server' }, ports: { http: 8080 } }),
    service('apps', 'server', { ip: VIP, selector: { app: 'server' }, ports: [{ port: 80, targetPort: 8080, name: 'http' }] }),
  ]);
  let app: Awaited<ReturnType<typeof echoServer>>;
  before(async () => {
    app = await echoServer(SERVER, 8080);
    await zt.start(['--drain', `${DRAIN_MS}ms`]);
  });
  after(async () => {
    await zt.stop();
    await app?.close();
  });

  it('lets connections in flight finish, refuses new ones, closes the rest at the end of --drain and exits 0', async () => {
    const open = async () => {
      const r = await zt.connect(CLIENT, VIP, 80);
      assert.ok(r.ok, `SOCKS5 connect through the ztunnel: ${r.ok ? '' : r.message}`);
      return r.socket;
    };
    const busy = await Promise.all([open(), open(), open(), open()]);
    const idle = await open();
    // Every connection is through (HBONE to the pod, the pod's app answering) before the signal.
    idle.setEncoding('utf8');
    idle.resume();
    const hello = new Promise<string>((resolve) => idle.once('data', resolve));
    idle.write('hello');
    assert.equal(await hello, 'hello');
    const idleClosed = new Promise<number>((resolve) => idle.once('close', () => resolve(Date.now())));

    const signalledAt = Date.now();
    zt.proc.child.kill('SIGTERM');
    // Each busy connection keeps sending for 1 s after the signal, then half-closes; the app echoes everything.
    const talks = busy.map((s) => converse(s, 10, 100));
    // The listeners close right after this line is written.
    await zt.proc.waitFor((l) => l.msg?.startsWith('drain started') === true, 2_000, 'drain started');

    // New connections are refused by the kernel: the listener is closed, nothing half-answers.
    await assert.rejects(zt.connect(CLIENT, VIP, 80, 2_000), /ECONNREFUSED/);

    for (const r of await Promise.all(talks)) {
      assert.equal(r.error, undefined, 'no reset');
      assert.equal(r.chunks, 10, 'the client could send all it had to say (the connection stayed open)');
      assert.equal(r.echoed.length, r.sent.length, 'every byte sent after SIGTERM came back');
      assert.equal(r.echoed, r.sent);
    }
    const ready = await fetch(`http://${NODE}:15021/healthz/ready`);
    assert.equal(ready.status, 503, 'not ready while draining');
    assert.equal(((await ready.json()) as { draining?: boolean }).draining, true);
    await zt.proc.waitFor((l) => l.msg?.startsWith('drain started') === true, 1_000, 'drain started');

    // The idle connection outlives nothing: it is closed when the drain period is over, and the process exits 0.
    const code = await zt.proc.exited;
    const exitedAt = Date.now();
    assert.equal(code, 0, 'exit code 0 after the drain');
    const closedAt = await idleClosed;
    assert.ok(closedAt - signalledAt >= DRAIN_MS - 200, `the idle connection stayed open for the drain period (closed after ${closedAt - signalledAt} ms)`);
    assert.ok(exitedAt - signalledAt < DRAIN_MS + 2_000, `exited within the grace period (${exitedAt - signalledAt} ms)`);
    const finished = await zt.proc.waitFor((l) => l.msg?.startsWith('drain finished') === true, 1_000, 'drain finished');
    assert.equal(finished.closed, 2, 'the idle connection (its outbound and inbound halves, both through this ztunnel) was closed at the end of the drain');
    assert.ok(Number(finished.completed) >= 4, `the busy connections completed during the drain (${finished.completed})`);
  });
});
