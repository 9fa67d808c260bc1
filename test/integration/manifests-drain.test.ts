/**
 * daemonset.yaml's ztunnel, run for real: the flags of its container (--drain), its probes against the ports and
 * paths a running ztunnel and controller answer, and its preStop hook — the very script of the manifest, run with
 * node as the kubelet runs it — draining a real ztunnel that carries a live connection: the hook POSTs /quitquitquit,
 * readiness turns 503, the connection goes on, and the hook returns only once the ztunnel has stopped (exit 0).
 * Addresses: 127.0.212.0/24.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';
import { namespace, pod } from '../helpers/manifests.js';
import { ZtunnelNode, echoServer } from '../helpers/ztunnel.js';
import { installObjects, type ManifestObject } from '../helpers/install-manifest.js';
import { eventually } from '../helpers/eventually.js';

const NODE = '127.0.212.1';
const CLIENT = '127.0.212.10';
const SERVER = '127.0.212.11';

interface Container { name: string; args: string[]; lifecycle: { preStop: { exec: { command: string[] } } }; readinessProbe: { httpGet: { path: string; port: number } }; livenessProbe: { tcpSocket: { port: number } } }
const ds = installObjects().find((o) => o.kind === 'DaemonSet' && o.metadata.name === 'strait-ztunnel') as ManifestObject & { spec: { template: { spec: { containers: Container[] } } } };
const container = ds.spec.template.spec.containers.find((c) => c.name === 'ztunnel')!;
const controller = installObjects().find((o) => o.kind === 'Deployment') as ManifestObject & { spec: { template: { spec: { containers: { readinessProbe: { httpGet: { path: string } } }[] } } } };

/** The manifest's flags that a local ztunnel can take as they are (not --capture, nor the cluster's paths and addresses). */
function portableFlags(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) if (args[i] === '--drain') out.push(args[i]!, args[++i]!);
  return out;
}

/** Runs the preStop command as the kubelet does (exec in the container), aimed at this ztunnel's admin address. */
function runPreStop(adminHost: string): { exited: Promise<number | null>; done: () => boolean } {
  const [cmd, ...argv] = container.lifecycle.preStop.exec.command;
  const script = argv.at(-1)!;
  const aimed = script.replace("host: '127.0.0.1'", `host: '${adminHost}'`);
  assert.notEqual(aimed, script, 'the preStop script names the admin host the consistency test checks');
  const child = spawn(cmd === 'node' ? process.execPath : cmd!, [...argv.slice(0, -1), aimed], { stdio: 'ignore' });
  let finished = false;
  const exited = once(child, 'exit').then(([code]) => { finished = true; return code as number | null; });
  return { exited, done: () => finished };
}

describe('daemonset.yaml ztunnel: probes and the preStop drain, on a real ztunnel', () => {
  const zt = new ZtunnelNode('node-drain', NODE, [
    namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
    pod('apps', 'client', { node: 'node-drain', ip: CLIENT, sa: 'client' }),
    pod('apps', 'server', { node: 'node-drain', ip: SERVER, sa: 'server', ports: { tcp: 9000 } }),
  ]);
  let app: Awaited<ReturnType<typeof echoServer>>;
  before(async () => {
    app = await echoServer(SERVER, 9000);
    await zt.start(portableFlags(container.args));
  });
  after(async () => {
    await zt.stop();
    await app?.close();
  });

  it('answers the probes the manifest declares: ztunnel readiness and liveness on 15021, the controller\'s /ready', async () => {
    const ready = await fetch(`http://${NODE}:${container.readinessProbe.httpGet.port}${container.readinessProbe.httpGet.path}`);
    assert.equal(ready.status, 200);
    const s = net.connect(container.livenessProbe.tcpSocket.port, NODE);
    await once(s, 'connect');
    s.destroy();
    const res = await zt.controller.get(controller.spec.template.spec.containers[0]!.readinessProbe.httpGet.path);
    assert.equal(res.status, 200);
  });

  it('preStop drains through /quitquitquit and returns only when the ztunnel has stopped, after its last connection', async () => {
    const r = await zt.connect(CLIENT, SERVER, 9000);
    assert.ok(r.ok, r.ok ? '' : r.message);
    const conn = r.socket;
    let echoed = '';
    conn.setEncoding('utf8');
    conn.on('data', (d: string) => (echoed += d));
    conn.resume();
    conn.write('before|');
    await eventually(async () => echoed === 'before|', 5_000, 'the app echoed through the ztunnel');

    const hook = runPreStop(NODE);
    await eventually(async () => (await fetch(`http://${NODE}:15021/healthz/ready`)).status === 503, 5_000, 'readiness 503 while draining');
    await zt.proc.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('drain started'), 5_000, 'drain started');
    // The drain lets the live connection go on, and the hook keeps waiting while it does.
    conn.write('during|');
    await eventually(async () => echoed.includes('during|'), 5_000, 'echo during the drain');
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(hook.done(), false, 'the hook waits for the drain');
    assert.equal(zt.proc.child.exitCode, null);

    // The last connection ends: the drain finishes early, the ztunnel exits 0, and the hook returns right after.
    const t0 = Date.now();
    conn.end();
    assert.equal(await zt.proc.exited, 0);
    assert.equal(await hook.exited, 0);
    assert.ok(Date.now() - t0 < 5_000, `the hook returned ${Date.now() - t0} ms after the connection ended`);
    const finished = zt.proc.lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('drain finished'));
    assert.equal(finished?.['completed'], 2, 'the connection completed, both its halves (outbound and inbound) through this ztunnel');
    assert.equal(finished?.['closed'], 0);
  });

  it('preStop on a node whose ztunnel is not running returns at once', async () => {
    const t0 = Date.now();
    assert.equal(await runPreStop(NODE).exited, 0);
    assert.ok(Date.now() - t0 < 3_000);
  });
});
