/**
 * `strait waypoint` as a command group: the proxy runs as `strait waypoint run` and, as before, as `strait waypoint`
 * with flags and no subcommand (what `strait up` and Deployments start); apply/list/delete sit beside it.
 * Addresses: the controller on 127.0.214.70, the waypoints on 127.0.215.20 and 127.0.215.21.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startController, type ControllerHandle } from '../helpers/controller.js';
import { docs, namespace, waypoint } from '../helpers/manifests.js';
import { StraitProcess } from '../helpers/procs.js';
import { strait } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';

describe('strait waypoint: run (also the default) and the cluster subcommands', () => {
  const cfg = tempDir('wp-run-cfg');
  const data = tempDir('wp-run-data');
  let c: ControllerHandle;
  const procs: StraitProcess[] = [];

  before(async () => {
    writeFileSync(join(cfg.path, 'mesh.yaml'), docs(namespace('shop', { 'istio.io/dataplane-mode': 'ambient' }), waypoint('shop', 'one'), waypoint('shop', 'two')));
    c = await startController(cfg.path, data.path, [], '127.0.214.70:0');
  });
  after(async () => {
    for (const p of procs) await p.stop();
    await c?.stop();
    cfg.remove();
    data.remove();
  });

  const start = (args: string[], name: string, address: string) => {
    const p = StraitProcess.start([...args, '--waypoint', `shop/${name}`, '--xds-address', c.xds, '--token-file', join(data.path, 'tokens', `waypoint-shop-${name}.token`),
      '--root-cert', c.rootFile, '--listen-address', address]);
    procs.push(p);
    return p;
  };

  it('runs the proxy both as `waypoint run` and as `waypoint --waypoint ...`, each ready and SYNCED in strait status', async () => {
    start(['waypoint', 'run'], 'one', '127.0.215.20');
    start(['waypoint'], 'two', '127.0.215.21');
    for (const a of ['127.0.215.20', '127.0.215.21']) {
      await eventually(async () => (await fetch(`http://${a}:15021/healthz/ready`)).status === 200, 20_000, `waypoint on ${a} ready`);
    }
    const r = await strait(['status', '--controller-admin', `http://${c.admin}`, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as { proxies: { name: string; proxy: { kind: string }; types: Record<string, { status: string }> }[] };
    assert.deepEqual(s.proxies.map((p) => `${p.proxy.kind} ${p.name}`), ['waypoint shop/one', 'waypoint shop/two']);
    for (const p of s.proxies) for (const [t, v] of Object.entries(p.types)) assert.equal(v.status, 'SYNCED', `${p.name} ${t}`);
  });

  it('lists run, apply, list and delete in its help, and refuses a word that is not a subcommand', async () => {
    const help = await strait(['waypoint', '--help']);
    assert.equal(help.code, 0);
    for (const sub of ['run', 'apply', 'list', 'delete']) assert.match(help.stdout, new RegExp(`\\n  ${sub} `), sub);
    assert.match((await strait(['waypoint', 'run', '--help'])).stdout, /--waypoint <ns\/name>/);
    assert.match((await strait(['waypoint', 'apply', '--help'])).stdout, /--enroll-namespace/);
    const typo = await strait(['waypoint', 'lsit']);
    assert.notEqual(typo.code, 0);
    assert.match(typo.stderr, /strait waypoint has no command "lsit" \(did you mean "list"\?\): use one of run, apply, list, delete/);
    const other = await strait(['waypoint', 'frobnicate']);
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, /no command "frobnicate": use one of/);
    assert.doesNotMatch(other.stderr, /did you mean/);
  });
});
