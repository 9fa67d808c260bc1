/**
 * `strait lab` itself (lab contract §3), through the real command: `lab up` builds a two-node cluster of a small
 * manifest directory in network namespaces, `lab status` and the state file say what runs where, `lab exec` runs
 * curl in a pod and reaches a Service VIP whose pod is on the other node, edits apply live, and `lab down` (also
 * after `lab up` was SIGKILLed) leaves no namespace and no process. The pods are not enrolled (plain routing and
 * DNAT): the mesh's own behaviour in a lab is tested by the other lab-*.test.ts files.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { LabState } from '../../src/local/lab/state.js';
import { docs, namespace } from '../helpers/manifests.js';
import { listNamespaces, requireLab, runAsync, type CommandResult } from '../helpers/netns.js';
import { tempDir } from '../helpers/temp-dir.js';

const STRAIT = fileURLToPath(new URL('../../src/cli/strait.js', import.meta.url));

/** A pod running a tiny HTTP server (its own lab-command) that says who it is and who called. */
function serverPod(name: string, node: string, ip: string, port: number, greeting = 'hello'): unknown {
  const js = `require('http').createServer((q, r) => r.end(JSON.stringify({ greeting: '${greeting}', pod: process.env.POD_NAME, node: process.env.NODE_NAME, `
    + `from: q.socket.remoteAddress }))).listen(${port}, process.env.POD_IP)`;
  return {
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'apps', labels: { app: 'server' }, annotations: { 'strait.dev/lab-command': `exec ${process.execPath} -e "${js}"` } },
    spec: { nodeName: node, containers: [{ name: 'app', image: 'server', ports: [{ name: 'http', containerPort: port }] }] },
    status: { podIP: ip },
  };
}

function clientPod(node: string, ip: string): unknown {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'client', namespace: 'apps', labels: { app: 'client' } },
    spec: { nodeName: node, containers: [{ name: 'app', image: 'client' }] }, status: { podIP: ip } };
}

const SERVICE = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'server', namespace: 'apps' },
  spec: { clusterIP: '127.0.20.1', selector: { app: 'server' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } };

function manifests(...extra: unknown[]): string {
  return docs(namespace('apps'), clientPod('node-a', '127.0.10.1'), serverPod('server-1', 'node-b', '127.0.10.2', 8080), SERVICE, ...extra);
}

interface LabUp {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  stderr: string[];
  exited: Promise<number | null>;
  stateFile: string;
}

const running: LabUp[] = [];
const dirs: { remove: () => void }[] = [];
after(async () => {
  for (const l of running) {
    await strait(['lab', 'down', '--state-file', l.stateFile]).catch(() => undefined);
    if (l.child.exitCode === null && l.child.signalCode === null) l.child.kill('SIGKILL');
  }
  for (const d of dirs) d.remove();
});

function strait(args: string[], opts: { timeoutMs?: number } = {}): Promise<CommandResult> {
  return runAsync([process.execPath, STRAIT, ...args], { allowFailure: true, timeoutMs: opts.timeoutMs ?? 60_000 });
}

/** `strait lab up DIR` as a child; resolves once it logged `lab ready`. */
async function labUp(dir: string, stateFile: string): Promise<LabUp> {
  const child = spawn(process.execPath, [STRAIT, 'lab', 'up', dir, '--state-file', stateFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const up: LabUp = { child, lines: [], stderr: [], exited: once(child, 'exit').then(([code]) => code as number | null), stateFile };
  running.push(up);
  createInterface({ input: child.stderr! }).on('line', (l) => up.stderr.push(l));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "lab ready" within 60 s; stderr: ${up.stderr.join('\n')}`)), 60_000);
    createInterface({ input: child.stdout! }).on('line', (text) => {
      let line: Record<string, unknown>;
      try { line = JSON.parse(text) as Record<string, unknown>; } catch { line = { raw: text }; }
      up.lines.push(line);
      if (line.msg === 'lab ready') { clearTimeout(timer); resolve(); }
    });
    void up.exited.then((code) => { clearTimeout(timer); reject(new Error(`lab up exited (${code}) before it was ready; stderr: ${up.stderr.join('\n')}; `
      + `errors: ${up.lines.filter((l) => l.level === 'error' || l.level === 'warn').map((l) => JSON.stringify(l)).join('\n')}`)); });
  });
  await ready;
  return up;
}

const readState = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as LabState;

async function until<T>(what: string, get: () => T | undefined | Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Pids of the lab's processes named in a state file. */
function statePids(s: LabState): number[] {
  return [s.controller.pid, ...Object.values(s.nodes).map((n) => n.ztunnel.pid), ...Object.values(s.pods).map((p) => p.process?.pid ?? null),
    ...Object.values(s.waypoints).map((w) => w.pid)].filter((p): p is number => typeof p === 'number');
}

/** Running (a zombie waiting for init to reap it has exited all the same). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function curlFrom(stateFile: string, pod: string, url: string): Promise<{ status: number | null; body: Record<string, unknown> | string }> {
  const r = await strait(['lab', 'exec', '--state-file', stateFile, pod, '--', 'curl', '-sS', '-m', '5', url]);
  let body: Record<string, unknown> | string = r.stdout;
  try { body = JSON.parse(r.stdout) as Record<string, unknown>; } catch { /* as text */ }
  return { status: r.status, body };
}

test('lab up builds two nodes, lab exec reaches a VIP on the other node, edits apply live, lab down removes everything', async (t) => {
  if (!requireLab(t)) return;
  const dir = tempDir('lab-cli');
  dirs.push(dir);
  writeFileSync(join(dir.path, 'apps.yaml'), manifests());
  const stateFile = join(dir.path, 'run', 'lab.json');
  const up = await labUp(dir.path, stateFile);
  const state = readState(stateFile);

  await t.test('the state file says where everything is, and lab status -o json is that file', async () => {
    assert.equal(state.pid, up.child.pid);
    assert.match(state.prefix, /^strait-lab[0-9a-f]{4}-$/);
    assert.deepEqual(Object.fromEntries(Object.entries(state.nodes).map(([n, v]) => [n, [v.netns, v.address, v.gateway, v.fabricInterface, v.ztunnel.status]])), {
      'node-a': [`${state.prefix}n-node-a`, '198.19.254.1', '198.19.253.1', 'fabric0', 'running'],
      'node-b': [`${state.prefix}n-node-b`, '198.19.254.2', '198.19.253.2', 'fabric0', 'running'],
    });
    assert.deepEqual(Object.keys(state.pods).sort(), ['apps/client', 'apps/server-1']);
    assert.equal(state.pods['apps/client']!.address, '198.18.10.1');
    assert.equal(state.pods['apps/client']!.process, null, 'a pod without a lab-command or demo image runs nothing');
    const server = state.pods['apps/server-1']!;
    assert.deepEqual([server.node, server.address, server.process?.status], ['node-b', '198.18.10.2', 'running']);
    assert.match(server.process!.command, /^exec .* -e /);
    assert.deepEqual(state.services['apps/server'], { clusterIP: '198.18.20.1', ports: [{ port: 80, targetPort: 'http' }], endpoints: ['198.18.10.2'] });
    assert.deepEqual([state.controller.address, state.controller.xds, state.controller.status], ['198.19.254.250', '198.19.254.250:15012', 'running']);
    assert.deepEqual(listNamespaces(state.prefix).sort(), [state.controller.netns, state.fabric.netns, state.nodes['node-a']!.netns, state.nodes['node-b']!.netns,
      state.pods['apps/client']!.netns, state.pods['apps/server-1']!.netns].sort());
    const json = await strait(['lab', 'status', '--state-file', stateFile, '-o', 'json']);
    assert.equal(json.status, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), readState(stateFile));
    const table = await strait(['lab', 'status', '--state-file', stateFile]);
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /apps\/server-1\s+node-b\s+198\.18\.10\.2\s+\d+ running/);
  });

  await t.test('curl in a pod on node-a reaches the Service VIP, DNATed to the pod on node-b, the caller\'s address kept', async () => {
    const r = await curlFrom(stateFile, 'apps/client', 'http://198.18.20.1/');
    assert.equal(r.status, 0, JSON.stringify(r));
    assert.deepEqual(r.body, { greeting: 'hello', pod: 'server-1', node: 'node-b', from: '198.18.10.1' });
    const node = await strait(['lab', 'exec', '--state-file', stateFile, '--node', 'node-a', '--', 'curl', '-sS', '-m', '5', 'http://198.18.20.1/']);
    assert.equal(node.status, 0, node.stderr);
    assert.equal(JSON.parse(node.stdout).from, '198.19.254.1', 'a client in the node namespace goes out with the node\'s fabric address');
    const code = await strait(['lab', 'exec', '--state-file', stateFile, 'apps/client', '--', 'sh', '-c', 'exit 7']);
    assert.equal(code.status, 7, 'lab exec exits with the command\'s status');
    const unknown = await strait(['lab', 'exec', '--state-file', stateFile, 'apps/nope', '--', 'true']);
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /no pod apps\/nope in the lab .*its pods: apps\/server-1, apps\/client|its pods: apps\/client, apps\/server-1/);
  });

  await t.test('a pod added to the manifests gets its namespace, its process and a share of the VIP; a changed lab-command restarts it', async () => {
    const oldPid = state.pods['apps/server-1']!.process!.pid;
    writeFileSync(join(dir.path, 'apps.yaml'), manifests(serverPod('server-2', 'node-a', '127.0.10.3', 9090)).replace("greeting: 'hello'", "greeting: 'hi'"));
    const s = await until('server-2 running and server-1 restarted', () => {
      const s = readState(stateFile);
      const p2 = s.pods['apps/server-2'];
      const p1 = s.pods['apps/server-1'];
      return p2?.process?.status === 'running' && p1?.process?.status === 'running' && p1.process.pid !== oldPid ? s : undefined;
    });
    assert.deepEqual(s.services['apps/server']!.endpoints, ['198.18.10.2', '198.18.10.3']);
    assert.equal(s.pods['apps/server-2']!.node, 'node-a');
    assert.equal(alive(oldPid!), false, 'the old server-1 process is gone');
    const seen = new Set<string>();
    for (let i = 0; i < 30 && seen.size < 2; i++) {
      const r = await curlFrom(stateFile, 'apps/client', 'http://198.18.20.1/');
      assert.equal(r.status, 0, JSON.stringify(r));
      const body = r.body as Record<string, unknown>;
      assert.equal(body.greeting, body.pod === 'server-1' ? 'hi' : 'hello', 'server-1 answers with its new command');
      seen.add(String(body.pod));
    }
    assert.deepEqual([...seen].sort(), ['server-1', 'server-2'], 'the VIP spreads connections over both pods (server-2 on its targetPort 9090)');
    const direct = await curlFrom(stateFile, 'apps/server-2', 'http://198.18.20.1/');
    assert.equal(direct.status, 0, `a pod reaches the VIP also when it picks the pod itself: ${JSON.stringify(direct)}`);

    writeFileSync(join(dir.path, 'apps.yaml'), manifests());
    // server-1's command is back to the first one, so it is restarted once more.
    const gone = await until('server-2 removed and server-1 running again', () => {
      const s = readState(stateFile);
      return s.pods['apps/server-2'] === undefined && s.services['apps/server']!.endpoints.length === 1 && s.pods['apps/server-1']?.process?.status === 'running' ? s : undefined;
    });
    assert.equal(listNamespaces(s.pods['apps/server-2']!.netns).length, 0, 'its namespace is deleted');
    assert.equal(alive(s.pods['apps/server-2']!.process!.pid!), false, 'its process is gone');
    assert.deepEqual(gone.services['apps/server']!.endpoints, ['198.18.10.2']);
  });

  await t.test('lab down stops lab up and leaves no namespace, process, directory or state file', async () => {
    const last = readState(stateFile);
    const pids = statePids(last);
    assert.ok(pids.length >= 4, `controller, two ztunnels, a server: ${pids}`);
    const down = await strait(['lab', 'down', '--state-file', stateFile]);
    assert.equal(down.status, 0, down.stderr);
    assert.equal(await up.exited, 0, 'lab up exits 0 when told to stop');
    assert.deepEqual(listNamespaces(last.prefix), []);
    assert.deepEqual(pids.filter(alive), []);
    assert.equal(existsSync(stateFile), false);
    assert.equal(existsSync(last.dataDir), false, 'the temporary data directory is removed');
    const again = await strait(['lab', 'down', '--state-file', stateFile]);
    assert.equal(again.status, 0);
    assert.match(again.stderr, /no lab is running \(state file .* not found\)/);
    const status = await strait(['lab', 'status', '--state-file', stateFile]);
    assert.equal(status.status, 1);
    assert.match(status.stderr, /no lab is running \(state file .* not found\)/);
  });
});

test('lab down after lab up was SIGKILLed removes the namespaces and kills what still runs in them', async (t) => {
  if (!requireLab(t)) return;
  const dir = tempDir('lab-kill');
  dirs.push(dir);
  writeFileSync(join(dir.path, 'apps.yaml'), manifests());
  const stateFile = join(dir.path, 'lab.json');
  const up = await labUp(dir.path, stateFile);
  const state = readState(stateFile);
  const pids = statePids(state);
  const second = await strait(['lab', 'up', dir.path, '--state-file', stateFile]);
  assert.equal(second.status, 1, 'a second lab up on the same state file refuses to start');
  assert.match(second.stderr, new RegExp(`a lab is already running \\(lab up pid ${up.child.pid}`));

  up.child.kill('SIGKILL');
  await up.exited;
  assert.ok(listNamespaces(state.prefix).length > 0, 'SIGKILL leaves the namespaces behind');
  const down = await strait(['lab', 'down', '--state-file', stateFile]);
  assert.equal(down.status, 0, down.stderr);
  assert.deepEqual(listNamespaces(state.prefix), []);
  assert.deepEqual(pids.filter(alive), [], 'no process of the lab is left (the pod\'s own command included)');
  assert.equal(existsSync(stateFile), false);
  assert.equal(existsSync(state.dataDir), false);
});

test('a failure while the lab is being built removes what was built so far', async (t) => {
  if (!requireLab(t)) return;
  const dir = tempDir('lab-fail');
  dirs.push(dir);
  writeFileSync(join(dir.path, 'apps.yaml'), manifests());
  const stateFile = join(dir.path, 'lab.json');
  // The fabric and control namespaces exist by the time the lab finds that this "iptables" cannot read the nat table.
  const r = await runAsync([process.execPath, STRAIT, 'lab', 'up', dir.path, '--state-file', stateFile], { allowFailure: true, env: { STRAIT_IPTABLES: '/bin/false' }, timeoutMs: 60_000 });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /\[STRAIT_ERR_LAB\] `ip netns exec strait-lab[0-9a-f]{4}-fabric \/bin\/false -w -t nat -S` failed/);
  const starting = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg?: string; prefix?: string; dataDir?: string }).find((l) => l.msg === 'lab starting')!;
  assert.deepEqual(listNamespaces(starting.prefix!), []);
  assert.equal(existsSync(stateFile), false);
  assert.equal(existsSync(starting.dataDir!), false);
});

test('a second signal while lab up stops exits at once, and still removes every namespace and process', async (t) => {
  if (!requireLab(t)) return;
  const dir = tempDir('lab-sig');
  dirs.push(dir);
  // A pod that ignores SIGTERM: stopping it takes the stop grace (5 s), long enough for a second signal to come.
  const stubborn = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'stubborn', namespace: 'apps', annotations: { 'strait.dev/lab-command': "trap '' TERM; while true; do sleep 1; done" } },
    spec: { nodeName: 'node-a', containers: [{ name: 'app', image: 'x' }] }, status: { podIP: '127.0.10.9' } };
  writeFileSync(join(dir.path, 'apps.yaml'), manifests(stubborn));
  const stateFile = join(dir.path, 'lab.json');
  const up = await labUp(dir.path, stateFile);
  const state = readState(stateFile);
  up.child.kill('SIGTERM');
  await until('"shutting down"', () => (up.lines.some((l) => l.msg === 'shutting down' && l.component === 'lab') ? true : undefined), 10_000);
  up.child.kill('SIGTERM');
  assert.equal(await up.exited, 1, 'the second signal exits 1 without waiting for the processes to drain');
  assert.deepEqual(listNamespaces(state.prefix), []);
  assert.deepEqual(statePids(state).filter(alive), []);
  assert.equal(existsSync(stateFile), false);
  assert.equal(existsSync(state.dataDir), false);
});

test('lab up refuses manifests it cannot run, naming the object and the fix, and leaves nothing', async (t) => {
  if (!requireLab(t)) return;
  const dir = tempDir('lab-bad');
  dirs.push(dir);
  writeFileSync(join(dir.path, 'apps.yaml'), docs(namespace('apps'), clientPod('node-a', '10.20.30.40'), serverPod('server-1', 'node-b', '198.19.254.9', 8080)));
  const stateFile = join(dir.path, 'lab.json');
  const r = await strait(['lab', 'up', dir.path, '--state-file', stateFile]);
  assert.equal(r.status, 1);
  const starting = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg?: string; prefix?: string }).find((l) => l.msg === 'lab starting');
  assert.match(starting?.prefix ?? '', /^strait-lab[0-9a-f]{4}-$/, r.stdout);
  assert.match(r.stderr, /\[STRAIT_ERR_LAB\] cannot run .* as a lab:/);
  assert.match(r.stderr, /Pod apps\/client: status\.podIP 10\.20\.30\.40 is outside the lab's addresses: write it in 127\.0\.0\.0\/8/);
  assert.match(r.stderr, /Pod apps\/server-1: status\.podIP 198\.19\.254\.9 is in 198\.19\.252\.0\/22, which the lab keeps for itself/);
  assert.equal(existsSync(stateFile), false);
  assert.deepEqual(listNamespaces(starting!.prefix), [], 'no namespace is left behind');
});

test('strait lab without root says it needs root and points to strait up', async (t) => {
  if (!requireLab(t)) return;
  for (const sub of [['up'], ['status'], ['down'], ['exec', 'apps/client', '--', 'true']]) {
    const r = await runAsync(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, STRAIT, 'lab', ...sub, '--state-file', '/tmp/strait-lab-none.json'],
      { allowFailure: true });
    assert.equal(r.status, 1, sub.join(' '));
    assert.match(r.stderr, /strait lab needs root \(network namespaces, veths, iptables\): run it with sudo, or use `strait up` for a local mesh without root/, sub.join(' '));
  }
});
