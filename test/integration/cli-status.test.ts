/**
 * `strait status` through the real CLI against a real `strait up` (found through the default state file, as a user
 * would), and against controller admin URLs: every ztunnel and waypoint with each xDS type's state and version, a
 * proxy that stops reading shown STALE, a NACK with its message, an unreachable controller.
 * Addresses: 127.0.214.0/24 (pods .1-.20, VIP .100, nodes .201-.202, controller .254), the waypoint 127.0.215.10.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { XdsClient } from '../../src/common/xds/index.js';
import { TYPE_AUTHORIZATION, TYPE_SERVICE, TYPE_WORKLOAD } from '../../src/common/xds/resources.js';
import type { XdsUpdate } from '../../src/common/xds/types.js';
import { defaultUpStateFile } from '../../src/local/up-state-file.js';
import { docs } from '../helpers/manifests.js';
import { StraitProcess, run } from '../helpers/procs.js';
import { strait } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';

const ns = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' } } };
const node = (name: string, ip: string) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name }, status: { addresses: [{ type: 'InternalIP', address: ip }] } });
const gateway = {
  apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: 'shop' },
  spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }], addresses: [{ type: 'IPAddress', value: '127.0.215.10' }] },
};
const pod = (name: string, nodeName: string, ip: string) => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'shop', labels: { app: name } },
  spec: { nodeName, serviceAccountName: name, containers: [{ name: 'app', image: 'example/app', ports: [{ containerPort: 8080 }] }] },
  status: { podIP: ip },
});
const service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'api', namespace: 'shop' }, spec: { clusterIP: '127.0.214.100', selector: { app: 'api' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } };
const policy = (name: string) => ({
  apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, namespace: 'shop' },
  spec: { selector: { matchLabels: { app: 'api' } }, action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/client'] } }] }] },
});

interface StatusJson {
  controllers: { name: string; version: string; generation: number; leader: { election: string }; error?: string; uptimeSeconds: number }[];
  proxies: { name: string; controller: string; proxy: { id: string; kind: string }; types: Record<string, { status: string; versionAcked: string; versionSent: string; lastNack?: { message: string } }> }[];
  notConnected: unknown[];
}

describe('strait status of a local mesh', () => {
  const dir = tempDir('cli-status');
  const tmp = tempDir('cli-status-tmp');
  const logs = tempDir('cli-status-logs');
  const data = tempDir('cli-status-data');
  // TMPDIR decides where strait up's default state file is; status run with the same TMPDIR finds it.
  const env = { TMPDIR: tmp.path };
  let up: StraitProcess | undefined;
  let stateFile = '';

  const status = (args: string[] = []) => strait(['status', ...args], env);
  const statusJson = async (args: string[] = []) => {
    const r = await status([...args, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as StatusJson;
  };

  before(async () => {
    writeFileSync(join(dir.path, 'mesh.yaml'), docs(ns, node('node-a', '127.0.214.201'), node('node-b', '127.0.214.202'), gateway,
      pod('client', 'node-a', '127.0.214.1'), pod('api', 'node-b', '127.0.214.11'), service));
    up = StraitProcess.start(['up', dir.path, '--controller-address', '127.0.214.254', '--log-dir', logs.path, '--data-dir', data.path], env);
    await up.waitFor((l) => l.msg === 'mesh ready', 60_000, 'mesh ready');
    stateFile = defaultUpStateFile(tmp.path);
    assert.ok(existsSync(stateFile), `strait up wrote its default state file ${stateFile}`);
  });
  after(async () => {
    await up?.stop(15_000);
    for (const d of [dir, tmp, logs, data]) d.remove();
  });

  it('shows the controller and every ztunnel and waypoint SYNCED at the controller\'s generation, found through the default state file', async () => {
    // Every proxy has its first response ACKed once it is ready, so this holds at once.
    const s = await statusJson();
    assert.equal(s.controllers.length, 1);
    const c = s.controllers[0]!;
    assert.equal(c.name, 'controller');
    assert.equal(c.version, JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')).version);
    assert.deepEqual(c.leader, { election: 'none' });
    assert.deepEqual(s.proxies.map((p) => `${p.proxy.kind} ${p.name}`), ['ztunnel node-a', 'ztunnel node-b', 'waypoint shop/waypoint']);
    for (const p of s.proxies) {
      const want = p.proxy.kind === 'ztunnel' ? ['Workload', 'Service', 'Authorization'] : ['Workload', 'Service', 'Route', 'Policy'];
      assert.deepEqual(Object.keys(p.types).sort(), [...want].sort(), p.name);
      for (const [type, t] of Object.entries(p.types)) {
        assert.equal(t.status, 'SYNCED', `${p.name} ${type}`);
        assert.ok(Number(t.versionAcked) >= 1 && Number(t.versionAcked) <= c.generation, `${p.name} ${type} runs version ${t.versionAcked} of generation ${c.generation}`);
      }
    }
    assert.deepEqual(s.notConnected, []);

    const table = await status();
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.split('\n');
    assert.match(lines[0]!, /^CONTROLLER\s+VERSION\s+LEADER\s+UPTIME\s+GENERATION\s+PROXIES\s+ADDRESS$/);
    assert.match(lines[1]!, /^controller\s+\S+\s+-\s+\S+\s+\d+\s+3\s+http:\/\/127\.0\.214\.254:15014$/);
    assert.match(table.stdout, /\nnode-a\s+ztunnel\s+SYNCED \(\d+\)\s+SYNCED \(\d+\)\s+SYNCED \(\d+\)\s+-\s+-\s+\S+\n/);
    assert.match(table.stdout, /\nshop\/waypoint\s+waypoint\s+SYNCED \(\d+\)\s+SYNCED \(\d+\)\s+-\s+SYNCED \(\d+\)\s+SYNCED \(\d+\)\s+\S+\n/);

    // The same through --state-file, and as YAML.
    const yaml = await status(['--state-file', stateFile, '-o', 'yaml']);
    assert.equal(yaml.code, 0, yaml.stderr);
    assert.match(yaml.stdout, /^controllers:\n {2}- name: controller\n/);
  });

  it('shows a ztunnel that stops reading as STALE for the type pushed to it, and SYNCED at the new version once it reads again', async () => {
    const pid = (JSON.parse(readFileSync(stateFile, 'utf8')) as { nodes: Record<string, { pid: number }> }).nodes['node-b']!.pid;
    const before = (await statusJson()).controllers[0]!.generation;
    process.kill(pid, 'SIGSTOP');
    try {
      writeFileSync(join(dir.path, 'policy.yaml'), docs(policy('only-client')));
      const s = await eventually(async () => {
        const x = await statusJson();
        const b = x.proxies.find((p) => p.name === 'node-b')?.types.Authorization;
        const a = x.proxies.find((p) => p.name === 'node-a')?.types.Authorization;
        return b?.status === 'STALE' && a?.status === 'SYNCED' && Number(a.versionAcked) > before ? x : undefined;
      }, 10_000, 'node-b STALE, node-a SYNCED at the new generation');
      const b = s.proxies.find((p) => p.name === 'node-b')!.types.Authorization!;
      assert.ok(Number(b.versionSent) > Number(b.versionAcked), `node-b was sent ${b.versionSent}, runs ${b.versionAcked}`);
      const table = await status();
      assert.match(table.stdout, new RegExp(`\\nnode-b\\s+ztunnel\\s+.*STALE \\(${b.versionAcked}, sent ${b.versionSent}\\)`));
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await eventually(async () => {
      const x = await statusJson();
      const b = x.proxies.find((p) => p.name === 'node-b')?.types.Authorization;
      return b?.status === 'SYNCED' && Number(b.versionAcked) > before;
    }, 10_000, 'node-b SYNCED again');
  });

  it('shows a NACK with the proxy\'s message, and the proxy that refused it as NACKED', async () => {
    const token = (await strait(['token', '--data-dir', data.path, '--debug'], env)).stdout.trim();
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as { rootCert: string; controller: { xds: string } };
    let refuse = false;
    const sub = (typeUrl: string) => ({ typeUrl, apply: (_u: XdsUpdate) => { if (refuse && typeUrl === TYPE_AUTHORIZATION) throw new Error('rules[0]: this proxy refuses the policy'); } });
    const client = new XdsClient({
      address: state.controller.xds, credentials: grpc.credentials.createSsl(readFileSync(state.rootCert)),
      metadata: () => ({ authorization: `Bearer ${token}`, 'x-strait-debug': 'cli-status-test' }),
      node: { id: 'debug~cli-status-test', kind: 'debug', nodeName: '' },
      subscriptions: [sub(TYPE_WORKLOAD), sub(TYPE_SERVICE), sub(TYPE_AUTHORIZATION)],
    });
    client.start();
    try {
      await eventually(async () => (await statusJson()).proxies.find((p) => p.proxy.id === 'debug~cli-status-test')?.types.Authorization?.status === 'SYNCED', 10_000, 'debug proxy synced');
      refuse = true;
      writeFileSync(join(dir.path, 'policy.yaml'), docs(policy('only-client'), policy('second')));
      const s = await eventually(async () => {
        const x = await statusJson();
        return x.proxies.find((p) => p.proxy.id === 'debug~cli-status-test')?.types.Authorization?.status === 'NACKED' ? x : undefined;
      }, 10_000, 'NACKED in status');
      const t = s.proxies.find((p) => p.proxy.id === 'debug~cli-status-test')!.types.Authorization!;
      assert.equal(t.lastNack?.message, 'rules[0]: this proxy refuses the policy');
      const table = await status();
      assert.equal(table.code, 0, 'a NACK is shown, not a failure of status');
      assert.match(table.stdout, /\ndebug~cli-status-test\s+debug\s+SYNCED \(\d+\)\s+SYNCED \(\d+\)\s+NACKED \(\d+\)/);
      assert.match(table.stdout, /\nNACKs .*\n {2}debug debug~cli-status-test Authorization: rules\[0\]: this proxy refuses the policy \(\S+ ago, nonce \S+\)\n/);
    } finally {
      client.close();
    }
  });

  it('asks controllers by admin URL, and fails naming the one that does not answer', async () => {
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as { controller: { admin: string } };
    const ok = await strait(['status', '--controller-admin', state.controller.admin, '-o', 'json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout) as StatusJson).proxies.filter((p) => p.proxy.kind !== 'debug').length, 3);
    // 127.0.214.253: an address of this test's range where nothing listens.
    const bad = await strait(['status', '--controller-admin', state.controller.admin, 'http://127.0.214.253:15014']);
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /\nController http:\/\/127\.0\.214\.253:15014 could not be asked: nothing listens at http:\/\/127\.0\.214\.253:15014 /);
    assert.match(bad.stdout, /\nnode-a\s+ztunnel\s+SYNCED/, 'the controller that answers is still shown');
  });

  it('refuses an admin endpoint whose answer is larger than 64 MiB, without reading it all', async () => {
    const { createServer } = await import('node:http');
    let sent = 0;
    const big = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      const more = () => {
        while (sent < 200 * 1024 * 1024) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        res.end();
      };
      res.on('close', () => undefined);
      more();
    });
    await new Promise<void>((r) => big.listen(0, '127.0.214.252', r));
    try {
      const port = (big.address() as { port: number }).port;
      const r = await strait(['status', '--controller-admin', `http://127.0.214.252:${port}`]);
      assert.equal(r.code, 1);
      assert.match(r.stdout, /could not be asked: \/debug\/proxy-status answered more than 67108864 bytes/);
      assert.ok(sent < 200 * 1024 * 1024, `stopped reading early (${sent} bytes sent)`);
    } finally {
      big.closeAllConnections();
      big.close();
    }
  });

  it('says there is no local mesh when the state file is missing or its strait up is gone', async () => {
    const missing = await strait(['status', '--state-file', join(tmp.path, 'nope.json')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /\[STRAIT_ERR_STATUS\] no local mesh: .*nope\.json does not exist/);
    const stale = join(tmp.path, 'stale.json');
    const st = JSON.parse(readFileSync(stateFile, 'utf8')) as Record<string, unknown>;
    // A pid that is certainly not running: a finished child's.
    const done = await run(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    writeFileSync(stale, JSON.stringify({ ...st, pid: Number(done.stdout) }));
    const gone = await strait(['status', '--state-file', stale]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /is not running \(strait up pid \d+ is gone\)/);
  });
});
