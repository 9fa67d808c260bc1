/**
 * `strait up` supervises every child the same way (issue 9, the local mesh): a crashed ztunnel or controller is
 * started again with backoff, the state file names only live processes (null and "restarting" meanwhile), and the
 * next manifest edit applies; a component stopped on purpose (exit 0) stays stopped.
 * Addresses: nodes and controller 127.0.162.x, pods 127.0.163.x.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from '../helpers/eventually.js';
import { docs, namespace, service } from '../helpers/manifests.js';
import { TestMesh, alive, appPod, killAll, node, pidsMentioning, type MeshStateFile } from '../helpers/mesh.js';
import { tempDir } from '../helpers/temp-dir.js';

const CONTROLLER = '127.0.162.254';
const CLIENT = '127.0.163.1';
const SERVER = '127.0.163.2';

describe('strait up supervising its children', () => {
  const dir = tempDir('sup-manifests');
  let mesh: TestMesh;
  before(async () => {
    writeFileSync(join(dir.path, 'mesh.yaml'), docs(
      namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
      node('node-a', '127.0.162.1'), node('node-b', '127.0.162.2'),
      appPod('apps', 'client', 'node-a', CLIENT, 'client'),
      appPod('apps', 'server', 'node-b', SERVER, 'server', { app: 'server' }),
      service('apps', 'server', { ip: '127.0.163.100', selector: { app: 'server' }, ports: [{ port: 80, targetPort: 8080, name: 'http' }] }),
    ));
    mesh = await new TestMesh(dir.path, ['--controller-address', CONTROLLER]).start();
  });
  after(async () => {
    await mesh?.stop();
    killAll(['127.0.162.', '127.0.163.'].flatMap((t) => pidsMentioning(t)));
    mesh?.cleanup();
    dir.remove();
  });

  const readyPid = async (url: string) => {
    const res = await fetch(url);
    return res.status === 200 ? res.headers.get('x-strait-pid') : null;
  };

  it('restarts a crashed ztunnel and controller, writes their new pids, and applies the next edit', async () => {
    const old = mesh.readState();
    process.kill(old.nodes['node-a'].pid, 'SIGKILL');
    const afterZtunnel = await eventually(() => {
      const s = mesh.readState();
      const n = s.nodes['node-a'];
      return n.pid && n.pid !== old.nodes['node-a'].pid && alive(n.pid) ? s : undefined;
    }, 20_000, 'node-a running again with a new pid');
    assert.equal(await readyPid(`http://${afterZtunnel.nodes['node-a'].ready}/healthz/ready`), String(afterZtunnel.nodes['node-a'].pid), 'the new process answers readiness');

    process.kill(old.controller.pid, 'SIGKILL');
    const afterController = await eventually(() => {
      const s = mesh.readState();
      return s.controller.pid && s.controller.pid !== old.controller.pid && alive(s.controller.pid) ? s : undefined;
    }, 20_000, 'controller running again with a new pid');
    assert.equal(afterController.controller.status, 'running');
    assert.equal(afterController.controller.restarts, 1);
    assert.equal(afterController.nodes['node-a'].status, 'running');
    assert.equal(afterController.nodes['node-a'].restarts, 1);
    assert.equal(await readyPid(`http://${afterController.controller.admin}/ready`), String(afterController.controller.pid));

    // The next edit applies: a pod on a new node gets its ztunnel and app.
    writeFileSync(join(dir.path, 'more.yaml'), docs(node('node-c', '127.0.162.3'), appPod('apps', 'extra', 'node-c', '127.0.163.3', 'extra')));
    const grown = await eventually(() => {
      const s = mesh.readState();
      return s.nodes['node-c'] && alive(s.nodes['node-c'].pid) && s.apps['apps/extra/app:8080'] && alive(s.apps['apps/extra/app:8080'].pid) ? s : undefined;
    }, 30_000, 'node-c and its app running');
    assert.equal(grown.nodes['node-c'].status, 'running');
    assert.deepEqual(mesh.proc.lines.filter((l) => l.msg === 'applying manifest changes failed'), [], 'no edit failed');

    // Traffic goes through the restarted ztunnel, with identities from the restarted controller's CA.
    const r = await eventually(async () => {
      const c = await mesh.curl(CLIENT, 'node-a', 'http://server.apps/');
      return c.code === 0 ? c : undefined;
    }, 20_000, 'client → server through the restarted components');
    assert.equal(JSON.parse(r.stdout).caller.identity, 'spiffe://cluster.local/ns/apps/sa/client');
  });

  it('backs off while a ztunnel cannot start again, with the state file saying so, and brings it back when it can', async () => {
    const old = mesh.readState().nodes['node-b'];
    process.kill(old.pid, 'SIGKILL');
    // Take the ztunnel's SOCKS5 address as soon as it is free: every restart fails with EADDRINUSE.
    const blocker = net.createServer();
    await eventually(() => new Promise<boolean>((resolve) => {
      blocker.once('error', () => resolve(false));
      blocker.listen(15080, old.address, () => resolve(true));
    }), 5_000, 'the ztunnel\'s SOCKS5 address taken');
    try {
      // The state file stops naming the dead process...
      const down = await eventually(() => {
        const n = mesh.readState().nodes['node-b'];
        return n.pid !== old.pid ? n : undefined;
      }, 10_000, 'the state file no longer names the dead ztunnel');
      assert.equal(down.pid, null, 'no pid while it is not running');
      assert.equal(down.status, 'restarting');
      const delays = await eventually(() => {
        const d = mesh.proc.lines.filter((l) => l.msg === 'restarting ztunnel on node-b in ' + l.retry_in_ms + ' ms').map((l) => l.retry_in_ms as number);
        return d.length >= 4 ? d : undefined;
      }, 30_000, 'four restart attempts');
      assert.deepEqual(delays.slice(0, 4), [500, 1000, 2000, 4000], 'each delay doubles');
      const failed = mesh.proc.lines.find((l) => l.msg === 'restarting ztunnel on node-b failed');
      assert.match(String(failed?.err), /15080|EADDRINUSE|address already in use/, 'the failure says why');
      assert.equal(mesh.readState().nodes['node-b'].pid, null);
    } finally {
      await new Promise<void>((r) => blocker.close(() => r()));
    }
    const back = await eventually(() => {
      const n = mesh.readState().nodes['node-b'];
      return n.status === 'running' ? n : undefined;
    }, 30_000, 'node-b running once its address is free');
    assert.ok(alive(back.pid));
    assert.notEqual(back.pid, old.pid);
  });

  it('leaves a component stopped on purpose (exit 0) stopped, and says so in the state file', async () => {
    const s: MeshStateFile = mesh.readState();
    const pid = s.nodes['node-c'].pid;
    const quit = await fetch(`http://${s.nodes['node-c'].admin}/quitquitquit`, { method: 'POST' });
    assert.equal(quit.status, 200);
    const stopped = await eventually(() => {
      const n = mesh.readState().nodes['node-c'];
      return n.status === 'stopped' ? n : undefined;
    }, 15_000, 'node-c stopped');
    assert.equal(stopped.pid, null);
    assert.equal(alive(pid), false);
    // The decision and its log line come together with the state: stopped, and no restart scheduled.
    assert.ok(mesh.proc.lines.some((l) => l.child === 'ztunnel/node-c' && /was stopped \(exit code 0/.test(String(l.msg))), 'says it was stopped');
    assert.equal(mesh.proc.lines.some((l) => l.msg === 'restarting ztunnel on node-c in ' + l.retry_in_ms + ' ms'), false, 'no restart scheduled');
  });
});
