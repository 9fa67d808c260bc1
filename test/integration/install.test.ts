/**
 * `strait install` and `strait uninstall`, the real CLI processes, against the Kubernetes API server double (HTTPS,
 * the real wire protocol; helper in test/helpers/kube-apiserver.ts). The test plays the cluster's own controllers
 * where uninstall waits on them: the kubelet stopping the ztunnel pods, the DaemonSet controller reporting the node
 * clean-up ready on every node. Addresses: 127.0.213.0/24.
 */
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { startKubeApiServer, DEFAULT_KINDS, type KubeApiServer } from '../helpers/kube-apiserver.js';
import { installObjects, uninstallCleanupObjects, type ManifestObject } from '../helpers/install-manifest.js';
import { STRAIT_BIN } from '../helpers/procs.js';
import { tempDir } from '../helpers/temp-dir.js';
import { contains } from '../../src/cli/install/apply.js';
import { CLEANUP_NAME } from '../../src/cli/install/manifest.js';

const HOST = '127.0.213.1';
const NS = 'strait-system';
const INSTALLER = 'installer';
const PDB = { group: 'policy', versions: ['v1'], resource: 'poddisruptionbudgets', kind: 'PodDisruptionBudget', singular: 'poddisruptionbudget', namespaced: true, status: true, crd: false, shortNames: ['pdb'] };

type Obj = Record<string, any>;

/** Runs `strait ARGS` with a kubeconfig for the double; resolves with its exit code and output. */
async function strait(kubeconfig: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [STRAIT_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KUBECONFIG: kubeconfig, HOME: '/nonexistent' } });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const [code] = await once(child, 'exit');
  return { code: code as number | null, stdout, stderr };
}

const refOf = (o: ManifestObject) => ({ apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}) });
const label = (o: ManifestObject) => `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;

/**
 * The cluster's side of uninstall: a pod of each DaemonSet on every node (owned by it, so deleting the DaemonSet
 * collects them), the kubelet taking `ztunnelStopMs` to stop a ztunnel, the DaemonSet controller reporting the
 * clean-up ready on `readyNodes` nodes after `cleanupMs`. It also records what uninstall must never do: start the
 * clean-up while a ztunnel still runs, or delete the control plane before every node is clean.
 */
class FakeCluster {
  readonly violations: string[] = [];
  readyNodes: number;
  private timer: NodeJS.Timeout | undefined;
  private stopping = new Set<string>();
  private cleanupSeenAt = 0;
  private cleanupDone = false;
  private controllerAtCleanup = false;

  constructor(private readonly api: KubeApiServer, readonly nodes: string[], private readonly o: { ztunnelStopMs: number; cleanupMs: number }) {
    this.readyNodes = nodes.length;
  }

  start(): void {
    for (const n of this.nodes) this.api.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: n }, status: { addresses: [{ type: 'InternalIP', address: '10.0.0.1' }] } });
    this.timer = setInterval(() => this.tick(), 50);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private pods(app: string): Obj[] {
    return this.api.list('v1', 'Pod', NS).filter((p) => p['metadata'].labels?.['app.kubernetes.io/name'] === app);
  }

  private tick(): void {
    const ztunnel = this.api.get({ apiVersion: 'apps/v1', kind: 'DaemonSet', namespace: NS, name: 'strait-ztunnel' });
    if (ztunnel && this.pods('strait-ztunnel').length === 0) this.schedule(ztunnel, 'strait-ztunnel');
    // The ztunnel DaemonSet is gone: its pods get SIGTERM, drain, remove their node's rules and stop, some time later.
    if (!ztunnel) {
      for (const p of this.pods('strait-ztunnel')) {
        const name = p['metadata'].name as string;
        if (this.stopping.has(name)) continue;
        this.stopping.add(name);
        setTimeout(() => { this.api.delete({ apiVersion: 'v1', kind: 'Pod', namespace: NS, name }); this.stopping.delete(name); }, this.o.ztunnelStopMs);
      }
    }
    const cleanup = this.api.get({ apiVersion: 'apps/v1', kind: 'DaemonSet', namespace: NS, name: CLEANUP_NAME });
    if (cleanup && !this.cleanupSeenAt) {
      this.cleanupSeenAt = Date.now();
      this.cleanupDone = false;
      this.controllerAtCleanup = !!this.api.get({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: NS, name: 'strait-controller' });
      if (this.pods('strait-ztunnel').length > 0) this.violations.push('the clean-up DaemonSet was created while ztunnel pods were still running');
      this.schedule(cleanup, CLEANUP_NAME);
    }
    if (cleanup && !this.cleanupDone && Date.now() - this.cleanupSeenAt >= this.o.cleanupMs) {
      this.cleanupDone = this.readyNodes === this.nodes.length;
      this.api.put({ ...cleanup, status: { observedGeneration: cleanup['metadata'].generation ?? 1, desiredNumberScheduled: this.nodes.length, numberReady: this.readyNodes, numberAvailable: this.readyNodes } });
      this.nodes.forEach((node, i) => {
        const pod = this.pods(CLEANUP_NAME).find((p) => p['spec'].nodeName === node);
        if (pod) this.api.put({ ...pod, status: { phase: 'Running', conditions: [{ type: 'Ready', status: i < this.readyNodes ? 'True' : 'False' }] } });
      });
    }
    if (!cleanup) this.cleanupSeenAt = 0;
    const controllerGone = !this.api.get({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: NS, name: 'strait-controller' });
    if (controllerGone && this.controllerAtCleanup && cleanup && !this.cleanupDone && !this.violations.some((v) => v.startsWith('the controller'))) this.violations.push('the controller was deleted before the clean-up was done on every node');
  }

  private schedule(ds: Obj, app: string): void {
    for (const node of this.nodes) {
      this.api.put({
        apiVersion: 'v1', kind: 'Pod',
        // The ztunnel's pods stay while they drain (the double's garbage collector would remove them at once, where a
        // real cluster keeps a terminating pod until its containers stopped): this fake deletes them itself.
        metadata: {
          name: `${app}-${node}`, namespace: NS, labels: { 'app.kubernetes.io/name': app },
          ...(app === 'strait-ztunnel' ? {} : { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: ds['metadata'].name, uid: ds['metadata'].uid, controller: true }] }),
        },
        spec: { nodeName: node, containers: [{ name: app, image: 'x' }] },
        status: { phase: 'Running' },
      });
    }
  }
}

describe('strait install / uninstall against the API server double', () => {
  let api: KubeApiServer;
  const dir = tempDir('strait-install');
  let kubeconfig: string;
  const rendered = installObjects();
  /** The install's requests since `mark()`. */
  let from = 0;
  const mark = () => { from = api.requests.length; };
  const mine = () => api.requests.slice(from).filter((r) => r.user === INSTALLER);
  const writes = () => mine().filter((r) => ['create', 'update', 'patch', 'delete'].includes(r.verb));

  before(async () => {
    api = await startKubeApiServer({ host: HOST, kinds: [...DEFAULT_KINDS, PDB] });
    api.addToken('installer-token', { username: INSTALLER, groups: ['system:masters', 'system:authenticated'] });
    kubeconfig = api.writeKubeconfig(join(dir.path, 'kubeconfig'), { token: 'installer-token' });
  });
  after(async () => {
    await api?.close();
    dir.remove();
  });
  beforeEach(() => mark());

  it('install --dry-run prints the objects and talks to no cluster', async () => {
    const lines = await strait(kubeconfig, ['install', '--dry-run']);
    assert.equal(lines.code, 0, lines.stderr);
    assert.equal(lines.stdout.trim().split('\n').length, rendered.length);
    const yamlOut = await strait(kubeconfig, ['install', '--dry-run', '-o', 'yaml']);
    assert.equal(yamlOut.code, 0, yamlOut.stderr);
    assert.deepEqual(parseAllDocuments(yamlOut.stdout).map((d) => d.toJS()), rendered);
    const jsonOut = await strait(kubeconfig, ['install', '--dry-run', '-o', 'json', '--image', 'mirror.example/strait:9']);
    assert.equal(jsonOut.code, 0, jsonOut.stderr);
    const list = JSON.parse(jsonOut.stdout) as { kind: string; items: ManifestObject[] };
    assert.equal(list.kind, 'List');
    assert.deepEqual(list.items, installObjects({ image: 'mirror.example/strait:9' }));
    assert.deepEqual(api.requests.slice(from), [], 'a dry run sends nothing');
    assert.equal(api.list('v1', 'Namespace').some((n) => n['metadata'].name === NS), false);
  });

  it('install creates every object in the manifest\'s order, as rendered', async () => {
    const r = await strait(kubeconfig, ['install']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split('\n').filter((l) => l.endsWith(' created')).length, rendered.length, r.stdout);
    const creates = writes().filter((w) => w.verb === 'create');
    assert.deepEqual(creates.map((c) => c.resource), rendered.map((o) => `${o.kind.toLowerCase()}s`), 'one POST per object, in order');
    for (const o of rendered) {
      const stored = api.get(refOf(o));
      assert.ok(stored, `${label(o)} exists`);
      assert.ok(contains(stored, o), `${label(o)} is stored as rendered`);
    }
  });

  it('install again changes nothing: every object unchanged, no write', async () => {
    const r = await strait(kubeconfig, ['install']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split('\n').filter((l) => l.endsWith(' unchanged')).length, rendered.length, r.stdout);
    assert.deepEqual(writes(), []);
  });

  it('install --image replaces only what differs, keeps the Service\'s cluster IP and labels others added, and retries a 409 Conflict', async () => {
    const svc = api.get({ apiVersion: 'v1', kind: 'Service', namespace: NS, name: 'strait-controller' })!;
    api.put({ ...svc, metadata: { ...svc['metadata'], labels: { ...svc['metadata'].labels, team: 'mesh' } }, spec: { ...svc['spec'], clusterIP: '10.96.0.12', clusterIPs: ['10.96.0.12'] } });
    // A concurrent writer: the first PUT of the Deployment meets a stale resourceVersion.
    api.failNext({ verb: 'update', path: '/apis/apps/v1/namespaces/strait-system/deployments', status: 409, reason: 'Conflict', message: 'the object has been modified; please apply your changes to the latest version and try again' });
    mark();
    const image = 'mirror.example/strait:0.1.0-rc1';
    const r = await strait(kubeconfig, ['install', '--image', image]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^deployment\.apps\/strait-controller configured$/m);
    assert.match(r.stdout, /^daemonset\.apps\/strait-ztunnel configured$/m);
    assert.equal(r.stdout.trim().split('\n').filter((l) => l.endsWith(' unchanged')).length, rendered.length - 2, r.stdout);
    const updates = writes().filter((w) => w.verb === 'update').map((w) => `${w.resource}/${w.name}:${w.code}`);
    assert.deepEqual(updates, ['deployments/strait-controller:409', 'deployments/strait-controller:200', 'daemonsets/strait-ztunnel:200']);
    const dep = api.get({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: NS, name: 'strait-controller' })!;
    assert.equal(dep['spec'].template.spec.containers[0].image, image);
    assert.equal(dep['spec'].template.spec.containers[0].env.find((e: { name: string }) => e.name === 'STRAIT_IMAGE').value, image);
    const ds = api.get({ apiVersion: 'apps/v1', kind: 'DaemonSet', namespace: NS, name: 'strait-ztunnel' })!;
    assert.equal(ds['spec'].template.spec.containers[0].image, image);
    const after = api.get({ apiVersion: 'v1', kind: 'Service', namespace: NS, name: 'strait-controller' })!;
    assert.equal(after['spec'].clusterIP, '10.96.0.12');
    assert.equal(after['metadata'].labels.team, 'mesh');
    // And back to the default image.
    assert.equal((await strait(kubeconfig, ['install'])).code, 0);
  });

  it('an object the server refuses stops install with STRAIT_ERR_INSTALL naming it', async () => {
    api.delete({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', namespace: NS, name: 'strait-controller' });
    api.failNext({ verb: 'create', path: '/apis/policy/v1/namespaces/strait-system/poddisruptionbudgets', status: 403, reason: 'Forbidden', message: 'poddisruptionbudgets.policy is forbidden: User "installer" cannot create resource' });
    const r = await strait(kubeconfig, ['install']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\[STRAIT_ERR_INSTALL\] poddisruptionbudget\.policy\/strait-controller: .*403|forbidden/i);
    assert.equal((await strait(kubeconfig, ['install'])).code, 0, 'a second run completes it');
  });

  it('uninstall --dry-run prints the plan and talks to no cluster', async () => {
    const r = await strait(kubeconfig, ['uninstall', '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0]!, /^daemonset\.apps\/strait-ztunnel deleted/);
    assert.match(lines[1]!, /^daemonset\.apps\/strait-node-cleanup created/);
    assert.match(lines.at(-1)!, /^namespace\/strait-system deleted/);
    const y = await strait(kubeconfig, ['uninstall', '--dry-run', '-o', 'yaml']);
    assert.deepEqual(parseAllDocuments(y.stdout).map((d) => d.toJS())[0], uninstallCleanupObjects()[0]);
    assert.deepEqual(api.requests.slice(from), []);
  });

  it('uninstall stops at a node whose clean-up does not finish, names it, and leaves the install in place', async () => {
    const cluster = new FakeCluster(api, ['node-a', 'node-b'], { ztunnelStopMs: 300, cleanupMs: 200 });
    cluster.readyNodes = 1;
    cluster.start();
    try {
      const r = await strait(kubeconfig, ['uninstall', '--timeout', '3s']);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /\[STRAIT_ERR_INSTALL\] the node clean-up finished on 1 of 2 nodes within 3s; not done on: node-b\. See kubectl -n strait-system logs/);
      assert.ok(api.get({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: NS, name: 'strait-controller' }), 'the control plane is still there');
      assert.ok(api.get({ apiVersion: 'apps/v1', kind: 'DaemonSet', namespace: NS, name: CLEANUP_NAME }), 'the clean-up DaemonSet is left for its logs');
      assert.deepEqual(cluster.violations, []);
    } finally {
      cluster.stop();
    }
    // Installing again removes the clean-up DaemonSet the unfinished uninstall left (its pods would otherwise sit on
    // every node, and one restarting would remove the new ztunnels' rules).
    const again = await strait(kubeconfig, ['install']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^daemonset\.apps\/strait-node-cleanup deleted \(left by an unfinished uninstall\)$/m);
    assert.equal(api.get({ apiVersion: 'apps/v1', kind: 'DaemonSet', namespace: NS, name: CLEANUP_NAME }), undefined);
  });

  it('uninstall removes the ztunnels, cleans every node, then everything install made and the controller\'s root ConfigMaps', async () => {
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
    api.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'strait-ca-root', namespace: 'shop', labels: { 'app.kubernetes.io/managed-by': 'strait-controller' } }, data: { 'root-cert.pem': 'x' } });
    api.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app-config', namespace: 'shop' }, data: {} });
    const cluster = new FakeCluster(api, ['node-a', 'node-b', 'node-c'], { ztunnelStopMs: 1_000, cleanupMs: 1_000 });
    cluster.start();
    try {
      await new Promise((r) => setTimeout(r, 200)); // the ztunnel pods are scheduled
      mark();
      const r = await strait(kubeconfig, ['uninstall', '--timeout', '20s']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(cluster.violations, []);
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines[0], 'daemonset.apps/strait-ztunnel deleted');
      assert.ok(lines.includes('daemonset.apps/strait-node-cleanup created'), r.stdout);
      assert.ok(lines.includes('capture rules removed on 3 node(s)'), r.stdout);
      assert.ok(lines.includes('configmap/strait-ca-root -n shop deleted'), r.stdout);
      assert.equal(lines.at(-1), 'namespace/strait-system deleted');
      // The order of the writes: ztunnels, clean-up, the rest, the namespace last.
      const order = writes().map((w) => `${w.verb} ${w.resource}/${w.name ?? ''}`);
      const at = (s: string) => order.indexOf(s);
      assert.ok(at('delete daemonsets/strait-ztunnel') === 0, order.join('\n'));
      assert.ok(at('create daemonsets/') > at('delete daemonsets/strait-ztunnel'));
      assert.ok(at('delete daemonsets/strait-node-cleanup') < at('delete deployments/strait-controller'));
      assert.equal(order.at(-1), 'delete namespaces/strait-system');
      // Nothing of the install is left, nor the clean-up; the user's ConfigMap is untouched.
      for (const o of [...rendered, ...uninstallCleanupObjects()]) assert.equal(api.get(refOf(o)), undefined, `${label(o)} is gone`);
      assert.equal(api.get({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'shop', name: 'strait-ca-root' }), undefined);
      assert.ok(api.get({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'shop', name: 'app-config' }));
    } finally {
      cluster.stop();
    }
  });

  it('uninstall again succeeds: nothing to delete, the nodes cleaned once more, no namespace left behind', async () => {
    const cluster = new FakeCluster(api, ['node-a'], { ztunnelStopMs: 0, cleanupMs: 100 });
    cluster.start();
    try {
      const r = await strait(kubeconfig, ['uninstall', '--timeout', '10s']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^daemonset\.apps\/strait-ztunnel not found$/m);
      assert.match(r.stdout, /^deployment\.apps\/strait-controller not found$/m);
      assert.match(r.stdout, /^capture rules removed on 1 node\(s\)$/m);
      assert.equal(api.get({ apiVersion: 'v1', kind: 'Namespace', name: NS }), undefined);
      assert.deepEqual(cluster.violations, []);
    } finally {
      cluster.stop();
    }
  });
});
