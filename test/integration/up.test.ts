/** `strait up` on the built-in demo: ready, state file, live edits, bad manifests, clean shutdown. */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { docs } from '../helpers/manifests.js';
import { TestMesh, appPod } from '../helpers/mesh.js';

import { ZTUNNEL_NODE_OPTIONS } from '../../src/ztunnel/config.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';

const DEMO = new URL('../../../examples/demo/', import.meta.url).pathname;

const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
const portOpen = (host: string, port: number) => new Promise<boolean>((resolve) => {
  const s = net.connect({ host, port }, () => { s.destroy(); resolve(true); });
  s.on('error', () => resolve(false));
});

describe('strait up on the demo', () => {
  const dir = tempDir('up-demo');
  cpSync(DEMO, dir.path, { recursive: true });
  let mesh: TestMesh | undefined;
  after(async () => {
    await mesh?.stop();
    mesh?.cleanup();
    dir.remove();
  });

  it('starts everything, writes the state file, applies edits live, survives a bad manifest and stops cleanly', async () => {
    mesh = await new TestMesh(dir.path).start();
    const s = mesh.state;
    assert.deepEqual(Object.keys(s.nodes).sort(), ['node-a', 'node-b']);
    assert.equal(s.nodes['node-a'].socks5, '127.0.100.1:15080');
    assert.ok(existsSync(s.rootCert));
    assert.equal((await fetch(`http://${s.controller.admin}/ready`)).status, 200);
    for (const n of Object.values(s.nodes)) assert.equal((await fetch(`http://${n.ready}/healthz/ready`)).status, 200);
    // Each ztunnel is its own Node process, started with the heap options it is sized for.
    for (const n of Object.values(s.nodes) as { pid: number }[]) {
      const argv = readFileSync(`/proc/${n.pid}/cmdline`, 'utf8').split('\0');
      for (const opt of ZTUNNEL_NODE_OPTIONS) assert.ok(argv.indexOf(opt) > 0 && argv.indexOf(opt) < argv.indexOf('ztunnel'), `${opt} in ${argv.join(' ')}`);
    }
    assert.ok(Object.keys(s.apps).length >= 5, 'demo apps running');
    const r = await mesh.curl('127.0.10.1', 'node-a', 'http://web.shop/');
    assert.equal(r.code, 0, r.stderr);

    // A bad manifest is reported; the rest keeps running.
    writeFileSync(join(dir.path, '90-bad.yaml'), 'apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name, namespace: shop}\n');
    await eventually(async () => ((await (await fetch(`http://${s.controller.admin}/debug/configz`)).json()) as { rejected: { file: string }[] }).rejected.some((p) => p.file === '90-bad.yaml'), 5000, 'bad manifest reported');
    assert.equal((await mesh.curl('127.0.10.1', 'node-a', 'http://web.shop/')).code, 0);

    // A pod on a new node: its ztunnel and app start, and the state file says so.
    writeFileSync(join(dir.path, '91-new-node.yaml'), docs(appPod('shop', 'web-2', 'node-c', '127.0.10.12', 'web', { app: 'web' })));
    const grown = await eventually(() => {
      const st = JSON.parse(readFileSync(mesh!.stateFile, 'utf8'));
      return st.nodes['node-c'] ? st : undefined;
    }, 30_000, 'node-c in the state file');
    assert.equal(grown.nodes['node-c'].address, '127.0.100.3');
    assert.equal((await fetch(`http://${grown.nodes['node-c'].ready}/healthz/ready`)).status, 200);

    const pids = [grown.controller.pid, ...Object.values(grown.nodes as Record<string, { pid: number }>).map((n) => n.pid), ...Object.values(grown.apps as Record<string, { pid: number }>).map((a) => a.pid)];
    assert.equal(await mesh.stop(), 0, 'strait up exits 0 on SIGTERM');
    assert.equal(existsSync(mesh.stateFile), false, 'state file removed');
    assert.equal(existsSync(join(mesh.dataDir.path, 'platform')), false, 'the waypoints\' pods directory removed');
    assert.deepEqual(pids.filter(alive), [], 'no process left behind');
    assert.equal(await portOpen('127.0.100.1', 15080), false, 'ports freed');
    assert.equal(await portOpen('127.0.99.1', 15012), false, 'controller port freed');
    mesh.cleanup(); // stopped already: only its temporary directories are left to remove
    mesh = undefined;
  });
});
