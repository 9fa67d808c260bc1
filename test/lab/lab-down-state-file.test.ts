/**
 * `strait lab down` (root) trusts a state file only so far: a stale one (its lab gone, its prefix since taken by a new
 * lab) or an edited one must not make it kill the processes and delete the namespaces of a lab that runs. Here a
 * stand-in `strait lab up` (a process whose command line is one) runs a process in a namespace with a lab prefix, and a
 * state file names that prefix with the pid of a lab up that is gone.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listNamespaces, requireLab } from '../helpers/netns.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const STRAIT = join(ROOT, 'dist/src/cli/strait.js');

const cleanup: (() => void)[] = [];
after(() => { for (const c of cleanup.reverse()) c(); });

test('lab down leaves the namespaces of another running lab up that a stale or edited state file names', async (t) => {
  if (!requireLab(t)) return;
  let id = '';
  do id = `lab${randomBytes(2).toString('hex')}`; while (listNamespaces(`strait-${id}-`).length > 0);
  const prefix = `strait-${id}-`;
  const ns = `${prefix}n-node`;
  spawnSync('ip', ['netns', 'add', ns]);
  cleanup.push(() => {
    for (const pid of spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split(/\s+/).filter(Boolean)) {
      try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
    }
    spawnSync('ip', ['netns', 'del', ns]);
  });
  const dir = mkdtempSync(join(tmpdir(), 'strait-labdown-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));

  // The running lab: its command line is a lab up's, and it runs a process in its namespace (as a ztunnel would).
  writeFileSync(join(dir, 'strait.js'), `
    const { spawn } = require('node:child_process');
    const child = spawn('ip', ['netns', 'exec', ${JSON.stringify(ns)}, 'sleep', '600'], { stdio: 'ignore' });
    process.on('SIGTERM', () => { child.kill('SIGKILL'); process.exit(0); });
    setInterval(() => {}, 1000);`);
  const running: ChildProcess = spawn(process.execPath, [join(dir, 'strait.js'), 'lab', 'up'], { stdio: 'ignore' });
  cleanup.push(() => { running.kill('SIGKILL'); });
  const pidsInNs = () => spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split(/\s+/).filter(Boolean);
  for (const end = Date.now() + 5000; pidsInNs().length === 0; await new Promise((r) => setTimeout(r, 50))) {
    if (Date.now() > end) assert.fail('the stand-in lab did not start its process');
  }
  const inNs = pidsInNs();

  // A state file of a lab that is gone (its lab up pid is dead), naming the running lab's prefix.
  const gone = spawnSync(process.execPath, ['-e', 'process.pid'], { encoding: 'utf8' }).pid!;
  const stateFile = join(dir, 'lab.json');
  writeFileSync(stateFile, JSON.stringify({ pid: gone, id, prefix, fabric: { netns: `${prefix}fabric` }, controller: { netns: `${prefix}control` },
    nodes: { node: { netns: ns } }, pods: {}, waypoints: {}, services: {}, temporaryDirs: [] }));

  const r = spawnSync(process.execPath, [STRAIT, 'lab', 'down', '--state-file', stateFile], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 1, `lab down should say what it left: ${r.stdout}${r.stderr}`);
  assert.match(r.stderr, new RegExp(`belong to a running strait lab up \\(pid ${running.pid}\\)`));
  assert.deepEqual(listNamespaces(prefix), [ns], 'the running lab\'s namespace is still there');
  assert.deepEqual(pidsInNs(), inNs, 'its process still runs');
  assert.equal(running.exitCode, null, 'the running lab up was not signalled');
});
