/**
 * Two local meshes of the same manifests on one machine (`--address-base`), and what each component costs in
 * `strait up`'s status line (systeminformation; the demo's live summary is checked in demo.test.ts).
 * Addresses: 127.145.0.0/16 and 127.146.0.0/16 (the demo twice), 127.148.0.0/16 (a demo on a running mesh's addresses);
 * 127.147.0.0/16 is demo.test.ts's.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from '../helpers/eventually.js';
import { docs } from '../helpers/manifests.js';
import { TestMesh, alive, appPod, killAll, pidsMentioning } from '../helpers/mesh.js';
import { StraitProcess } from '../helpers/procs.js';
import { tempDir } from '../helpers/temp-dir.js';

const DEMO = new URL('../../../examples/demo/', import.meta.url).pathname;
const CLIENT_ID = 'spiffe://cluster.local/ns/shop/sa/client';

/** Resident memory of a process now, from the kernel. */
function vmRssBytes(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) * 1024;
}

describe('two meshes of the demo side by side', () => {
  const dir = tempDir('base-demo');
  cpSync(DEMO, dir.path, { recursive: true });
  const tmp = tempDir('base-tmp');
  let one: TestMesh;
  let two: TestMesh;
  before(async () => {
    // TMPDIR: the copies of the manifests (with their addresses moved) go there, and must be gone afterwards.
    [one, two] = await Promise.all([
      new TestMesh(dir.path, ['--address-base', '127.145.0.0', '--status-interval', '1s'], { TMPDIR: tmp.path }).start(),
      new TestMesh(dir.path, ['--address-base', '127.146.0.0'], { TMPDIR: tmp.path }).start(),
    ]);
  });
  after(async () => {
    await Promise.all([one?.stop(), two?.stop()]);
    killAll(['127.145.', '127.146.'].flatMap((t) => pidsMentioning(t)));
    one?.cleanup();
    two?.cleanup();
    dir.remove();
    tmp.remove();
  });

  it('moves every address into its base: controller, nodes, pods; each mesh carries its own traffic', async () => {
    for (const [mesh, n] of [[one, 145], [two, 146]] as const) {
      const s = mesh.state;
      assert.equal(s.addressBase, `127.${n}.0.0`);
      assert.equal(s.controller.xds, `127.${n}.99.1:15012`);
      assert.equal(s.nodes['node-a'].socks5, `127.${n}.100.1:15080`, 'the demo\'s Node address 127.0.100.1 moved');
      assert.equal(s.apps['shop/client-1/app:8080'].address, `127.${n}.10.1:8080`, 'the demo\'s pod address 127.0.10.1 moved');
      // The controller hands out the moved addresses: the ztunnels know the pods there.
      const dump = await mesh.configDump('node-a');
      assert.ok(JSON.stringify(dump.workloads).includes(`127.${n}.10.1`), `node-a knows the pods at 127.${n}.10.x`);
      assert.equal(JSON.stringify(dump.workloads).includes('"127.0.10.1"'), false);
      const r = await mesh.curl(`127.${n}.10.1`, 'node-a', 'http://web.shop/');
      assert.equal(r.code, 0, r.stderr);
      const answer = JSON.parse(r.stdout);
      assert.equal(answer.pod, 'web-1');
      assert.equal(answer.caller.identity, CLIENT_ID);
    }
    // From one mesh's pod address through the other mesh's ztunnel: not a pod of that mesh.
    const cross = await two.curl('127.145.10.1', 'node-a', 'http://web.shop/');
    assert.notEqual(cross.code, 0, 'the other mesh refuses a source that is not one of its pods');
  });

  it('applies edits to both: a new pod, written in the manifests\' own addresses, runs in each base', async () => {
    writeFileSync(join(dir.path, '90-extra.yaml'), docs(appPod('shop', 'extra', 'node-c', '127.0.10.40', 'extra')));
    for (const [mesh, n] of [[one, 145], [two, 146]] as const) {
      const s = await eventually(() => {
        const st = mesh.readState();
        return st.nodes['node-c']?.status === 'running' && st.apps['shop/extra/app:8080']?.status === 'running' ? st : undefined;
      }, 30_000, `node-c running in 127.${n}.0.0/16`);
      assert.equal(s.nodes['node-c'].address, `127.${n}.100.3`);
      assert.equal(s.apps['shop/extra/app:8080'].address, `127.${n}.10.40:8080`);
      const r = await eventually(async () => {
        const c = await mesh.curl(`127.${n}.10.1`, 'node-a', `http://127.${n}.10.40:8080/`);
        return c.code === 0 ? c : undefined;
      }, 15_000, 'the new pod answers through the mesh');
      assert.equal(JSON.parse(r.stdout).pod, 'extra');
    }
  });

  it('logs each component\'s pid, state, restarts, CPU and memory in strait up\'s status line', async () => {
    const lines = await eventually(() => {
      const l = one.proc.lines.filter((x) => x.msg === 'mesh status');
      return l.length >= 2 ? l : undefined;
    }, 10_000, 'two status lines');
    const last = lines[lines.length - 1] as unknown as { components: Record<string, { pid: number; status: string; restarts: number; cpu_percent: number | null; rss_bytes: number }> };
    const s = one.readState();
    const names = Object.keys(last.components);
    assert.equal(names[0], 'controller', 'the controller first');
    assert.ok(names.includes('ztunnel/node-a') && names.includes('app/shop/client-1/app:8080'), names.join(', '));
    const c = last.components['controller'];
    assert.equal(c.pid, s.controller.pid);
    assert.equal(c.status, 'running');
    assert.equal(typeof c.cpu_percent, 'number', 'CPU known from the second sample on');
    assert.ok(c.cpu_percent! >= 0 && c.cpu_percent! < 200, `cpu ${c.cpu_percent}`);
    const rss = vmRssBytes(c.pid);
    assert.ok(Math.abs(c.rss_bytes - rss) < Math.max(0.25 * rss, 16 * 1024 * 1024), `reported ${c.rss_bytes} B, the kernel says ${rss} B`);
  });

  it('removes the copies of the manifests when it stops', async () => {
    assert.ok(readdirSync(tmp.path).length >= 2, 'one copy per mesh while they run');
    await Promise.all([one.stop(), two.stop()]);
    assert.deepEqual(readdirSync(tmp.path), []);
  });
});

describe('strait demo on the addresses of a running mesh', () => {
  const dir = tempDir('base-taken');
  cpSync(DEMO, dir.path, { recursive: true });
  const logs = tempDir('base-taken-logs');
  let mesh: TestMesh;
  before(async () => {
    mesh = await new TestMesh(dir.path, ['--address-base', '127.148.0.0']).start();
  });
  after(async () => {
    await mesh?.stop();
    killAll(pidsMentioning('127.148.'));
    mesh?.cleanup();
    dir.remove();
    logs.remove();
  });

  it('exits 1 naming the taken addresses instead of showing the other mesh\'s traffic as its own', async () => {
    const p = StraitProcess.start(['demo', '--duration', '10s', '--address-base', '127.148.0.0', '--log-dir', logs.path]);
    const code = await p.exited;
    const out = p.lines.map((l) => String(l.msg));
    assert.equal(code, 1);
    assert.equal(out.some((l) => l.startsWith('Mesh ready') || l.startsWith('✓')), false, 'no summary of someone else\'s traffic');
    assert.match(p.stderr.join('\n'), /STRAIT_ERR_LISTEN.*127\.148\.99\.1:15012 \(controller xDS\).*--address-base 127\.149\.0\.0/s);
    assert.equal(mesh.pids().filter((pid) => !alive(pid)).length, 0, 'the running mesh is untouched');
  });
});
