/**
 * The controller's Kubernetes source against the in-process API server double (no API server runs here): the
 * source (in process, feeding a real ConfigStore) and the controller as a real process (`--source kubernetes`)
 * pushing what it reads to a ztunnel's xDS client. Addresses: 127.0.211.1–3.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startKubeApiServer, type KubeApiServer } from '../helpers/kube-apiserver.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';
import { namespace, pod, service } from '../helpers/manifests.js';
import { startControllerWith, type ControllerHandle } from '../helpers/controller.js';
import { BootstrapTokens } from '../../src/controller/tokens.js';
import { KubeClient, KUBE_TYPES, loadKubeConfig } from '../../src/common/kube/index.js';
import { silentLogger } from '../../src/common/log.js';
import { ConfigStore, type SourceEvent, type StoreChange } from '../../src/controller/store.js';
import { KubeSource, type KindWatcherMetrics } from '../../src/controller/sources/kube/index.js';
import { watchedKinds } from '../../src/controller/sources/kube/kinds.js';

/** One list and one watch per kind the source reads (the model's kinds, Nodes and EndpointSlices). */
const KINDS = watchedKinds('istio-system').length;
import { parseManifests } from '../../src/common/model/parse.js';
import { XdsClient } from '../../src/common/xds/index.js';
import { TYPE_AUTHORIZATION, TYPE_SERVICE, TYPE_WORKLOAD, type ServiceResource } from '../../src/common/xds/resources.js';

const TUNING = { backoffInitialMs: 100, backoffMaxMs: 400, crdRetryMs: 300 };

const allowPolicy = (name: string, action = 'ALLOW') => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name, namespace: 'shop' },
  spec: { action, rules: [{ from: [{ source: { namespaces: ['shop'] } }] }] },
});

function seed(api: KubeApiServer): void {
  api.put(namespace('shop', { 'istio.io/dataplane-mode': 'ambient' }) as never);
  api.put(namespace('istio-system') as never);
  api.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a' }, status: { addresses: [{ type: 'InternalIP', address: '127.0.211.100' }] } });
  api.put(pod('shop', 'web-1', { node: 'node-a', sa: 'web', ip: '10.0.0.1', labels: { app: 'web' } }) as never);
  api.put(service('shop', 'web', { ip: '10.96.0.1' }) as never);
  api.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'istio', namespace: 'istio-system' }, data: { mesh: 'extensionProviders: []\n' } });
  api.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'unrelated', namespace: 'shop' }, data: { a: 'b' } });
}

interface Recorded {
  source: KubeSource;
  store: ConfigStore;
  client: KubeClient;
  batches: { events: SourceEvent[]; resync: boolean }[];
  changes: StoreChange[];
  metrics: { relists: string[]; errors: string[] };
  close(): Promise<void>;
}

async function startSource(api: KubeApiServer, dir: string): Promise<Recorded> {
  const client = new KubeClient(loadKubeConfig({ kubeconfig: api.writeKubeconfig(join(dir, `kc-${api.port}`)) }));
  const store = new ConfigStore();
  const batches: Recorded['batches'] = [];
  const changes: StoreChange[] = [];
  store.on('change', (c) => changes.push(c));
  const m = { relists: [] as string[], errors: [] as string[] };
  const metrics: KindWatcherMetrics = { event() {}, relist: (k, r) => m.relists.push(`${k} ${r}`), error: (k, s) => m.errors.push(`${k} ${s}`), up() {} };
  const source = new KubeSource(client, { rootNamespace: 'istio-system', log: silentLogger(), metrics, ...TUNING });
  await source.start((events, at, opts) => {
    batches.push({ events, resync: opts?.resync === true });
    store.apply(source.name, events, at, opts);
  });
  return { source, store, client, batches, changes, metrics: m, close: async () => { await source.close(); client.close(); } };
}

const upsertsOf = (batches: Recorded['batches'], key: string) => batches.flatMap((b) => b.events).filter((e) => e.type === 'upsert' && e.object.key === key).length;
const listsOf = (api: KubeApiServer, since: number) => api.requests.slice(since).filter((r) => r.verb === 'list');

describe('Kubernetes source (in process)', () => {
  let api: KubeApiServer;
  let dir: { path: string; remove: () => void };
  let s: Recorded;

  before(async () => {
    api = await startKubeApiServer({ host: '127.0.211.1' });
    dir = tempDir('kube-source');
    seed(api);
    api.put(allowPolicy('allow'));
    s = await startSource(api, dir.path);
  });
  after(async () => {
    await s?.close();
    await api.close();
    dir.remove();
  });

  it('resolves start() after listing every kind once, with one resync batch of everything', () => {
    assert.equal(s.batches.length, 1);
    assert.equal(s.batches[0]!.resync, true);
    const keys = s.store.list().map((o) => o.key).sort();
    for (const k of ['Namespace//shop', 'Node//node-a', 'Pod/shop/web-1', 'Service/shop/web', 'ConfigMap/istio-system/istio', 'AuthorizationPolicy/shop/allow']) assert.ok(keys.includes(k), `${k} in ${keys.join(', ')}`);
    assert.ok(!keys.includes('ConfigMap/shop/unrelated'), 'only the mesh-config ConfigMap is read');
    const listed = listsOf(api, 0).map((r) => `${r.group}/${r.resource}`).sort();
    assert.equal(new Set(listed).size, listed.length, `each kind listed once: ${listed.join(', ')}`);
    assert.equal(listed.length, KINDS);
    assert.ok(listed.includes('discovery.k8s.io/endpointslices'), 'EndpointSlices are read');
    assert.deepEqual(s.store.problems(), []);
  });

  it('applies creates, updates and deletes from the watch, each once', async () => {
    const from = s.changes.length;
    await s.client.create(KUBE_TYPES.Namespace, { metadata: { name: 'web2' } });
    await eventually(() => s.store.get('Namespace//web2'), 3000, 'created');
    await s.client.patch(KUBE_TYPES.Namespace, 'web2', { metadata: { labels: { 'istio.io/dataplane-mode': 'ambient' } } });
    await eventually(() => s.store.get('Namespace//web2')?.object.metadata.labels['istio.io/dataplane-mode'] === 'ambient', 3000, 'updated');
    await s.client.delete(KUBE_TYPES.Namespace, 'web2');
    await eventually(() => !s.store.get('Namespace//web2'), 3000, 'deleted');
    const mine = s.changes.slice(from).map((c) => [...c.added.map((k) => `+${k}`), ...c.updated.map((k) => `~${k}`), ...c.removed.map((k) => `-${k}`)]).flat();
    // The API deletes a namespace in two steps (Terminating, then gone); the first changes nothing the model reads.
    assert.deepEqual(mine, ['+Namespace//web2', '~Namespace//web2', '-Namespace//web2']);
  });

  it('resumes a dropped watch from its last resourceVersion: nothing lost, nothing repeated, no relist', async () => {
    const reqFrom = api.requests.length;
    const rvBefore = s.source.resourceVersions()['namespaces'];
    api.dropWatches({ abrupt: true });
    api.put(namespace('after-drop') as never);
    await eventually(() => s.store.get('Namespace//after-drop'), 5000, 'the object created while the watch was down');
    api.dropWatches();
    api.put(namespace('after-clean-end') as never);
    await eventually(() => s.store.get('Namespace//after-clean-end'), 5000, 'the object created after a clean end');
    assert.equal(upsertsOf(s.batches, 'Namespace//after-drop'), 1);
    assert.equal(upsertsOf(s.batches, 'Namespace//after-clean-end'), 1);
    assert.equal(upsertsOf(s.batches, 'Namespace//shop'), 1, 'nothing seen before is sent again');
    assert.deepEqual(listsOf(api, reqFrom), [], 'no relist');
    const rewatch = api.requests.slice(reqFrom).find((r) => r.verb === 'watch' && r.resource === 'namespaces');
    assert.match(rewatch!.query, new RegExp(`resourceVersion=${rvBefore}(&|$)`));
  });

  it('relists after 410 Gone and applies the deletion that happened in the gap, changing nothing else', async () => {
    api.put(namespace('gap') as never);
    await eventually(() => s.store.get('Namespace//gap'), 3000, 'gap namespace seen');
    const from = s.changes.length;
    const batchesFrom = s.batches.length;
    // While nobody watches: delete, then compact the history the watches would resume from.
    api.dropWatches();
    api.delete({ apiVersion: 'v1', kind: 'Namespace', name: 'gap' });
    api.compact();
    await eventually(() => !s.store.get('Namespace//gap'), 5000, 'the deletion missed during the gap');
    await eventually(() => s.metrics.relists.filter((r) => r.endsWith('expired')).length >= 12, 5000, 'every kind relisted');
    const changed = s.changes.slice(from);
    assert.deepEqual(changed.flatMap((c) => c.removed), ['Namespace//gap']);
    assert.deepEqual(changed.flatMap((c) => [...c.added, ...c.updated]), [], 'the relist re-announces nothing that did not change');
    assert.ok(s.batches.slice(batchesFrom).some((b) => b.resync), 'the relist went to the store as a resync batch');
  });

  it('resumes from a bookmark\'s resourceVersion, so compaction after it needs no relist', async () => {
    api.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-b' }, status: { addresses: [{ type: 'InternalIP', address: '127.0.211.101' }] } });
    await eventually(() => s.store.get('Node//node-b'), 3000, 'node-b');
    const bookmarkRv = api.resourceVersion;
    assert.notEqual(s.source.resourceVersions()['namespaces'], bookmarkRv, 'namespaces saw no event at this version');
    api.bookmark();
    await eventually(() => Object.values(s.source.resourceVersions()).every((rv) => rv === bookmarkRv), 3000, 'every watch moved to the bookmark');
    const reqFrom = api.requests.length;
    api.compact();
    api.dropWatches();
    await eventually(() => api.openWatches().length === KINDS, 5000, 'watches back');
    assert.deepEqual(listsOf(api, reqFrom), [], 'resumed without a relist');
    const rewatch = api.requests.slice(reqFrom).find((r) => r.verb === 'watch' && r.resource === 'namespaces');
    assert.match(rewatch!.query, new RegExp(`resourceVersion=${bookmarkRv}(&|$)`));
  });

  it('backs off with jitter on API errors, within the bounds, and recovers without losing changes', async () => {
    const reqFrom = api.requests.length;
    api.failNext({ verb: 'watch', path: /^\/api\/v1\/namespaces\?/, status: 500, count: 3 });
    api.dropWatches();
    api.put(namespace('during-errors') as never);
    await eventually(() => s.store.get('Namespace//during-errors'), 5000, 'recovered');
    const attempts = api.requests.slice(reqFrom).filter((r) => r.verb === 'watch' && r.resource === 'namespaces');
    assert.deepEqual(attempts.map((r) => r.code), [500, 500, 500, 200]);
    const gaps = attempts.slice(1).map((r, i) => r.at - attempts[i]!.at);
    // Delays drawn from [base/2, base] with base 100, 200, 400 ms (TUNING), plus request time.
    assert.ok(gaps[0]! >= 50 - 5 && gaps[1]! >= 100 - 5 && gaps[2]! >= 200 - 5, `gaps ${gaps.join(', ')}`);
    assert.ok(gaps.every((g) => g <= 400 + 300), `gaps ${gaps.join(', ')} above the maximum`);
    assert.equal(s.metrics.errors.filter((e) => e === 'namespaces 500').length, 3);
    assert.deepEqual(listsOf(api, reqFrom), []);
  });

  it('reports a kind the API refuses (403) in the config report with the RBAC fix, and clears it once allowed', async () => {
    const batchesFrom = s.batches.length;
    api.failNext({ verb: 'watch', path: /^\/api\/v1\/nodes\?/, status: 403, count: 2 });
    api.dropWatches();
    const nodeProblems = () => s.batches.slice(batchesFrom).flatMap((b) => b.events).filter((e) => e.type === 'problems' && e.scope === 'kubernetes:nodes');
    await eventually(() => nodeProblems().length >= 2, 5000, 'reported, then cleared');
    const [reported, cleared, ...more] = nodeProblems() as { problems: { severity: string; message: string }[] }[];
    assert.deepEqual(more, [], 'the same problem is reported once, not once per retry');
    assert.equal(reported!.problems[0]!.severity, 'error');
    assert.match(reported!.problems[0]!.message, /lacks "watch" on "nodes" in API group "" at cluster scope: apply daemonset\.yaml's RBAC/);
    assert.deepEqual(cleared!.problems, []);
    assert.deepEqual(s.store.problems(), []);
  });

  it('rejects an invalid version with the file source\'s problem and keeps the last good one in force', async () => {
    await s.client.create(KUBE_TYPES.AuthorizationPolicy, allowPolicy('flip'));
    await eventually(() => s.store.get('AuthorizationPolicy/shop/flip'), 3000, 'valid version');
    await s.client.patch(KUBE_TYPES.AuthorizationPolicy, 'flip', { spec: { action: 'BLOCK' } }, { namespace: 'shop' });
    const errorsOf = () => s.store.problems().filter((p) => p.severity === 'error' && p.name === 'flip');
    await eventually(() => errorsOf().length > 0, 3000, 'rejected');
    const rejected = errorsOf();
    const fromFile = parseManifests(stringify(allowPolicy('flip', 'BLOCK')), 'policy.yaml').problems.filter((p) => p.severity === 'error');
    assert.deepEqual(rejected.map((p) => [p.kind, p.namespace, p.name, p.path, p.message, p.code]), fromFile.map((p) => [p.kind, p.namespace, p.name, p.path, p.message, p.code]));
    assert.equal((s.store.get('AuthorizationPolicy/shop/flip')!.object as { spec: { action: string } }).spec.action, 'ALLOW', 'last good version in force');
  });
});

describe('Kubernetes source with CRDs missing', () => {
  let api: KubeApiServer;
  let dir: { path: string; remove: () => void };
  let s: Recorded;

  before(async () => {
    api = await startKubeApiServer({ host: '127.0.211.2', requireCrds: true });
    dir = tempDir('kube-source-crd');
    seed(api);
    for (const crd of ['peerauthentications.security.istio.io', 'destinationrules.networking.istio.io', 'telemetries.telemetry.istio.io', 'gateways.gateway.networking.k8s.io', 'httproutes.gateway.networking.k8s.io']) api.installCrds([crd]);
    // An older Istio: VirtualService served in v1beta1 only.
    const vs = api.crdObject('virtualservices.networking.istio.io');
    vs['spec'].versions = vs['spec'].versions.filter((v: { name: string }) => v.name === 'v1beta1');
    api.put(vs);
    api.put({ apiVersion: 'networking.istio.io/v1beta1', kind: 'VirtualService', metadata: { name: 'reviews', namespace: 'shop' }, spec: { hosts: ['web'], http: [{ route: [{ destination: { host: 'web' } }] }] } });
    s = await startSource(api, dir.path);
  });
  after(async () => {
    await s?.close();
    await api.close();
    dir.remove();
  });

  it('reports a missing CRD as a warning naming it, starts anyway, and reads other versions the model accepts', () => {
    const warnings = s.store.problems().filter((p) => p.severity === 'warning').map((p) => p.message);
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /CustomResourceDefinition authorizationpolicies\.security\.istio\.io is not installed, so no AuthorizationPolicy objects are read: install it/);
    assert.ok(s.store.get('VirtualService/shop/reviews'), 'read through v1beta1');
  });

  it('picks the kind up once its CRD is installed, without a restart, and clears the warning', async () => {
    api.installCrds(['authorizationpolicies.security.istio.io']);
    api.put(allowPolicy('late'));
    await eventually(() => s.store.get('AuthorizationPolicy/shop/late'), 5000, 'the policy read after its CRD appeared');
    assert.deepEqual(s.store.problems(), []);
    assert.ok(s.metrics.relists.includes('authorizationpolicies.security.istio.io crd'));
  });

  it('drops a kind\'s objects and warns again when its CRD is deleted', async () => {
    api.delete({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name: 'authorizationpolicies.security.istio.io' });
    await eventually(() => !s.store.get('AuthorizationPolicy/shop/late'), 5000, 'the policy gone with its CRD');
    await eventually(() => s.store.problems().some((p) => /authorizationpolicies\.security\.istio\.io is not installed/.test(p.message)), 5000, 'the warning back');
  });
});

describe('controller process with --source kubernetes', () => {
  let api: KubeApiServer;
  let dir: { path: string; remove: () => void };
  let c: ControllerHandle;
  let xds: XdsClient | undefined;
  const services = new Map<string, ServiceResource>();

  before(async () => {
    api = await startKubeApiServer({ host: '127.0.211.3' });
    dir = tempDir('kube-ctl');
    seed(api);
    // The controller's own namespace: its leader-election Lease and CA Secret live there.
    api.put(namespace('strait-system') as never);
    const kubeconfig = api.writeKubeconfig(join(dir.path, 'kubeconfig'));
    c = await startControllerWith(['--source', 'kubernetes', '--kubeconfig', kubeconfig, '--push-debounce', '20ms'], join(dir.path, 'data'));
  });
  after(async () => {
    xds?.close();
    await c?.stop();
    await api.close();
    dir.remove();
  });

  it('pushes pods and policies created, changed and deleted in the API server to a ztunnel\'s xDS view', async () => {
    // With the Kubernetes source proxies present projected tokens (TokenReview); the operator's debug credential
    // (the replica's bootstrap token) reads the same ztunnel view.
    const debugToken = (await BootstrapTokens.loadOrCreate(join(dir.path, 'data'), false)).tokenFor({ type: 'debug' });
    xds = new XdsClient({
      address: c.xds,
      credentials: c.credentials(),
      metadata: () => ({ authorization: `Bearer ${debugToken}`, 'x-strait-debug': 'kube-source-test' }),
      node: { id: 'debug~kube-source-test~1', kind: 'debug', nodeName: 'node-a' },
      subscriptions: [
        ...[TYPE_WORKLOAD, TYPE_AUTHORIZATION].map((typeUrl) => ({ typeUrl, apply: () => {} })),
        { typeUrl: TYPE_SERVICE, apply: (u) => { for (const r of u.added) services.set(r.name, r.body as ServiceResource); for (const n of u.removed) services.delete(n); } },
      ],
    });
    xds.start();
    await eventually(() => xds!.held(TYPE_WORKLOAD).has('shop/web-1'), 10_000, 'the listed pod');
    // As the scheduler and kubelet do: create the pod, then write its status (the API resets status on create).
    const client = new KubeClient(loadKubeConfig({ kubeconfig: join(dir.path, 'kubeconfig') }));
    try {
      const p = pod('shop', 'web-2', { node: 'node-a', sa: 'web', ip: '10.0.0.2', labels: { app: 'web' } }) as { status: unknown };
      await client.create(KUBE_TYPES.Pod, p as never);
      await client.patch(KUBE_TYPES.Pod, 'web-2', { status: p.status }, { namespace: 'shop', subresource: 'status' });
      await eventually(() => xds!.held(TYPE_WORKLOAD).has('shop/web-2'), 5000, 'the created pod');
      await client.create(KUBE_TYPES.AuthorizationPolicy, allowPolicy('allow-shop'));
      await eventually(() => xds!.held(TYPE_AUTHORIZATION).has('authz/shop/allow-shop'), 5000, 'the created policy');
      await client.delete(KUBE_TYPES.Pod, 'web-2', { namespace: 'shop' });
      await eventually(() => !xds!.held(TYPE_WORKLOAD).has('shop/web-2'), 5000, 'the deleted pod');
      // An invalid policy: /debug/configz names it with the file source's problem text.
      await client.create(KUBE_TYPES.AuthorizationPolicy, allowPolicy('bad', 'BLOCK'));
      const rejected = await eventually(async () => (await c.get('/debug/configz')).body.rejected.find((p: { name: string }) => p.name === 'bad'), 5000, 'rejected');
      const fromFile = parseManifests(stringify(allowPolicy('bad', 'BLOCK')), 'policy.yaml').problems.find((p) => p.severity === 'error')!;
      assert.equal(rejected.message, fromFile.message);
      assert.equal(rejected.path, fromFile.path);
      assert.match(rejected.text, /^kubernetes AuthorizationPolicy shop\/bad: /);
      const metrics = await c.get('/metrics');
      assert.match(metrics.text, /strait_kube_relists_total\{resource="pods",reason="start"\} 1/);
      assert.match(metrics.text, /strait_kube_watch_up\{resource="pods"\} 1/);
    } finally {
      client.close();
    }
  });
  it('gives a Service without a selector the endpoints of its EndpointSlices, created, changed and deleted in the API server', async () => {
    assert.ok(xds, 'the xDS client of the test before');
    const client = new KubeClient(loadKubeConfig({ kubeconfig: join(dir.path, 'kubeconfig') }));
    try {
      await client.create(KUBE_TYPES.Service, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'db', namespace: 'shop' }, spec: { clusterIP: '10.96.0.9', ports: [{ name: 'sql', port: 5432 }] } } as never);
      const slice = {
        apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
        metadata: { name: 'db-1', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'db' } },
        addressType: 'IPv4',
        endpoints: [{ addresses: ['10.0.0.1'], targetRef: { kind: 'Pod', name: 'web-1', namespace: 'shop' } }, { addresses: ['192.0.2.7'] }],
        ports: [{ name: 'sql', port: 15432, protocol: 'TCP' }],
      };
      await client.create(KUBE_TYPES.EndpointSlice, slice as never);
      const eps = () => services.get('shop/db')?.endpoints.map((e) => `${e.workload}|${e.address}|${e.ports['5432']}|${e.healthy}`) ?? [];
      await eventually(() => eps().length === 2, 5000, 'the slice\'s endpoints');
      assert.deepEqual(eps(), ['shop/web-1|10.0.0.1|15432|true', '|192.0.2.7|15432|true']);
      await client.patch(KUBE_TYPES.EndpointSlice, 'db-1', { endpoints: [{ addresses: ['192.0.2.7'], conditions: { ready: false } }] }, { namespace: 'shop' });
      await eventually(() => eps().join() === '|192.0.2.7|15432|false', 5000, 'the changed slice');
      await client.delete(KUBE_TYPES.EndpointSlice, 'db-1', { namespace: 'shop' });
      await eventually(() => services.get('shop/db')?.endpoints.length === 0, 5000, 'no endpoints once the slice is gone');
    } finally {
      client.close();
    }
  });
});
