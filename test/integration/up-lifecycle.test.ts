/**
 * `strait up` as a process among others (issue 9, the local mesh): a second mesh on taken addresses fails at once
 * instead of reporting the first mesh's answers as its own; children never outlive `strait up` (SIGKILL, SIGHUP, a
 * closed pipe); a failed start leaves nothing behind; a pod off loopback is refused before anything starts.
 * Addresses: nodes and controller 127.0.160.x, pods 127.0.161.x; the off-loopback case 127.0.164.x.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from '../helpers/eventually.js';
import { docs, namespace } from '../helpers/manifests.js';
import { TestMesh, alive, appPod, killAll, node, pidsMentioning, portOpen } from '../helpers/mesh.js';
import { STRAIT_BIN, StraitProcess } from '../helpers/procs.js';
import { tempDir } from '../helpers/temp-dir.js';

const CONTROLLER = '127.0.160.254';
const NODE_A = '127.0.160.1';
const CLIENT = '127.0.161.1';
const SERVER = '127.0.161.2';

function writeMesh(dir: string): void {
  writeFileSync(join(dir, 'mesh.yaml'), docs(
    namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
    node('node-a', NODE_A), node('node-b', '127.0.160.2'),
    appPod('apps', 'client', 'node-a', CLIENT, 'client'),
    appPod('apps', 'server', 'node-b', SERVER, 'server'),
  ));
}

/** Processes of this file's meshes: their command lines name this file's addresses or directories. */
const ours = (...also: string[]) => [...new Set(['127.0.160.', '127.0.161.', '127.0.164.', ...also].flatMap((t) => pidsMentioning(t)))];

/** Waits until every pid is gone; returns those still alive after `ms`. */
async function survivors(pids: readonly number[], ms: number): Promise<number[]> {
  try {
    await eventually(() => pids.every((p) => !alive(p)), ms, 'every child gone');
  } catch {
    // reported by the caller
  }
  return pids.filter(alive);
}

describe('strait up next to another mesh on the same addresses', () => {
  const dir = tempDir('life-manifests');
  writeMesh(dir.path);
  const second = { state: tempDir('life-second'), tmp: tempDir('life-second-tmp') };
  let first: TestMesh;
  before(async () => {
    first = await new TestMesh(dir.path, ['--controller-address', CONTROLLER]).start();
  });
  after(async () => {
    await first?.stop();
    killAll(ours(second.state.path, second.tmp.path));
    first?.cleanup();
    dir.remove();
    second.state.remove();
    second.tmp.remove();
  });

  it('fails at once naming the taken addresses and the fix, exits 1, starts nothing and leaves no temporary directory', async () => {
    const stateFile = join(second.state.path, 'state.json');
    // No --data-dir: it makes a temporary one, in TMPDIR, which must be gone afterwards.
    const p = StraitProcess.start(['up', dir.path, '--controller-address', CONTROLLER, '--state-file', stateFile, '--log-dir', join(second.state.path, 'logs')], { TMPDIR: second.tmp.path });
    const code = await Promise.race([p.exited, new Promise<string>((r) => setTimeout(() => r('still running'), 30_000))]);
    const ready = p.lines.some((l) => l.msg === 'mesh ready');
    if (code === 'still running') await p.stop();
    assert.equal(ready, false, 'the second mesh never says it is ready');
    assert.equal(code, 1, 'strait up exits 1');
    const err = p.stderr.join('\n');
    assert.match(err, /STRAIT_ERR_LISTEN/);
    assert.match(err, new RegExp(`${CONTROLLER.replace(/\./g, '\\.')}:15012 \\(controller xDS\\)`), 'names the controller address');
    assert.match(err, /127\.0\.160\.1:15080 \(ztunnel node-a SOCKS5\)/, 'names a ztunnel address');
    assert.match(err, /stop it, or run this one on other loopback addresses with --address-base 127\.1\.0\.0/, 'says what to do');
    assert.equal(existsSync(stateFile), false, 'no state file');
    assert.deepEqual(readdirSync(second.tmp.path), [], 'no temporary data directory left behind');
    assert.deepEqual(pidsMentioning(second.state.path).concat(pidsMentioning(second.tmp.path)), [], 'no child of the second mesh running');

    // The first mesh is untouched and still the one answering.
    assert.equal(first.pids().filter((pid) => !alive(pid)).length, 0, 'the first mesh\'s processes all run');
    const ready200 = await fetch(`http://${CONTROLLER}:15014/ready`);
    assert.equal(ready200.headers.get('x-strait-pid'), String(first.state.controller.pid), 'the controller address is the first mesh\'s');
    const r = await first.curl(CLIENT, 'node-a', `http://${SERVER}:8080/`);
    assert.equal(r.code, 0, r.stderr);
  });
});

describe('children of strait up never outlive it', () => {
  const dir = tempDir('life-orphans');
  writeMesh(dir.path);
  let mesh: TestMesh | undefined;
  after(async () => {
    await mesh?.stop();
    killAll(ours(dir.path));
    mesh?.cleanup();
    dir.remove();
  });

  it('when strait up is killed with SIGKILL, every child exits by itself and the ports are freed', async () => {
    mesh = await new TestMesh(dir.path, ['--controller-address', CONTROLLER]).start();
    const pids = mesh.pids();
    assert.equal(pids.length, 5, 'controller, two ztunnels, two apps');
    mesh.proc.child.kill('SIGKILL');
    assert.deepEqual(await survivors(pids, 10_000), [], 'no child left running');
    assert.equal(await portOpen(CONTROLLER, 15012), false, 'controller port freed');
    assert.equal(await portOpen(NODE_A, 15080), false, 'ztunnel port freed');
    mesh.cleanup();
    mesh = undefined;
  });

  it('SIGHUP (a closed terminal) stops everything as SIGINT does: exit 0, state file removed, ports freed', async () => {
    mesh = await new TestMesh(dir.path, ['--controller-address', CONTROLLER]).start();
    const pids = mesh.pids();
    mesh.proc.child.kill('SIGHUP');
    const code = await mesh.proc.exited;
    assert.equal(code, 0, 'strait up exits 0');
    assert.ok(mesh.proc.lines.some((l) => l.msg === 'shutting down' && l.signal === 'SIGHUP'), 'it says why it stops');
    assert.deepEqual(pids.filter(alive), [], 'every child stopped before strait up exited');
    assert.equal(existsSync(mesh.stateFile), false, 'state file removed');
    assert.equal(await portOpen(CONTROLLER, 15012), false, 'controller port freed');
    mesh.cleanup();
    mesh = undefined;
  });

  it('`strait up | head -3`: once head exits, strait up stops its children and removes its temporary data directory', async () => {
    const tmp = tempDir('life-head-tmp');
    try {
      const sh = spawn('sh', ['-c', `"${process.execPath}" "${STRAIT_BIN}" up "${dir.path}" --controller-address ${CONTROLLER} | head -3`], {
        stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TMPDIR: tmp.path },
      });
      let out = '';
      sh.stdout.on('data', (d) => (out += d));
      const [code] = await once(sh, 'exit');
      assert.equal(code, 0);
      assert.equal(out.trim().split('\n').length, 3, 'head printed its three lines');
      const left = await eventually(() => ours(tmp.path).length === 0 && readdirSync(tmp.path).length === 0, 20_000, 'strait up and its children gone, temporary directory removed')
        .catch(() => false);
      const running = ours(tmp.path);
      killAll(running);
      assert.ok(left, `still running: ${running.join(', ') || 'none'}; left in TMPDIR: ${readdirSync(tmp.path).join(', ') || 'nothing'}`);
      assert.equal(await portOpen(CONTROLLER, 15012), false, 'controller port freed');
    } finally {
      tmp.remove();
    }
  });
});

describe('a pod address off loopback', () => {
  const dir = tempDir('life-offloop');
  after(() => {
    killAll(ours(dir.path));
    dir.remove();
  });

  it('stops strait up before anything starts, naming the pod, its address and the fix', async () => {
    writeFileSync(join(dir.path, 'mesh.yaml'), docs(
      namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
      node('node-a', '127.0.164.1'),
      appPod('apps', 'client', 'node-a', '127.0.164.11', 'client'),
      { ...(appPod('apps', 'remote', 'node-a', '10.1.2.3', 'remote') as object), spec: { nodeName: 'node-a', serviceAccountName: 'remote', containers: [{ name: 'app', image: 'nginx' }] } },
    ));
    const p = StraitProcess.start(['up', dir.path, '--controller-address', '127.0.164.254', '--log-dir', join(dir.path, 'logs')]);
    const code = await Promise.race([p.exited, new Promise<string>((r) => setTimeout(() => r('still running'), 20_000))]);
    if (code === 'still running') await p.stop();
    assert.equal(code, 1, 'strait up exits 1');
    assert.equal(p.lines.some((l) => l.msg === 'mesh ready' || l.msg === 'controller ready'), false, 'nothing was started');
    const err = p.stderr.join('\n');
    assert.match(err, /STRAIT_ERR_LOCAL_MESH/);
    assert.match(err, /Pod apps\/remote: status\.podIP 10\.1\.2\.3 is not a loopback address/);
    assert.match(err, /Give the pod a status\.podIP in 127\.0\.0\.0\/8/);
  });
});
