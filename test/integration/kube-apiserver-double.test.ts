/**
 * The Kubernetes API server double speaks the protocol an independent client expects: these tests drive it with
 * @kubernetes/client-node (CoreV1Api, CustomObjectsApi, AuthenticationV1Api, Watch) and with Strait's own client
 * (src/common/kube): chunked lists, watch resume, 410 after compaction, bookmarks, conflicts, patches, the status
 * subresource, garbage collection, RBAC 403s, TokenReview, CRD-gated kinds and discovery.
 * Addresses: 127.0.210.1.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import { startKubeApiServer, type KubeApiServer } from '../helpers/kube-apiserver.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';
import { KubeClient, KUBE_TYPES, isKindNotServed, isResourceExpired, KubeApiError, loadKubeConfig, type KubeObject, type WatchEvent } from '../../src/common/kube/index.js';
import { isStraitError } from '../../src/common/errors.js';

const HOST = '127.0.210.1';

function clientNode(api: KubeApiServer, token?: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromString(api.kubeconfig(token ? { token } : {}));
  return kc;
}

interface Collected {
  events: { type: string; object: any }[];
  ended: Promise<unknown>;
  abort: () => void;
}

async function clientNodeWatch(kc: k8s.KubeConfig, path: string, params: Record<string, string | number | boolean | undefined>): Promise<Collected> {
  const events: { type: string; object: any }[] = [];
  let resolveEnd!: (v: unknown) => void;
  const ended = new Promise((r) => (resolveEnd = r));
  const ctl = await new k8s.Watch(kc).watch(path, params, (type, object) => events.push({ type, object }), (err) => resolveEnd(err ?? 'ended'));
  return { events, ended, abort: () => ctl.abort() };
}

function cm(name: string, data: Record<string, string> = {}, namespace = 'default') {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data };
}

async function collect<T>(it: AsyncIterable<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  if (n === 0) return out;
  for await (const x of it) {
    out.push(x);
    if (out.length >= n) break;
  }
  return out;
}

describe('Kubernetes API server double', () => {
  let api: KubeApiServer;
  let dir: { path: string; remove: () => void };
  let kc: k8s.KubeConfig;
  let core: k8s.CoreV1Api;
  let ours: KubeClient;

  before(async () => {
    api = await startKubeApiServer({ host: HOST });
    dir = tempDir('kube-double');
    kc = clientNode(api);
    core = kc.makeApiClient(k8s.CoreV1Api);
    ours = new KubeClient(loadKubeConfig({ kubeconfig: api.writeKubeconfig(join(dir.path, 'admin.kubeconfig')) }));
  });
  after(async () => {
    ours.close();
    await api.close();
    dir.remove();
  });

  it('serves client-node list chunks (limit/continue) from one consistent snapshot, with remainingItemCount', async () => {
    await core.createNamespace({ body: { metadata: { name: 'chunks' } } });
    for (let i = 0; i < 5; i++) {
      await core.createNamespacedPod({ namespace: 'chunks', body: { metadata: { name: `p${i}` }, spec: { containers: [{ name: 'c', image: 'x' }] } } });
    }
    const first = await core.listNamespacedPod({ namespace: 'chunks', limit: 2 });
    assert.deepEqual(first.items.map((p) => p.metadata?.name), ['p0', 'p1']);
    assert.equal(first.metadata?.remainingItemCount, 3);
    assert.ok(first.metadata?._continue, 'a continue token');
    // A pod created between pages must not show up: the pages are one snapshot at the first page's version.
    await core.createNamespacedPod({ namespace: 'chunks', body: { metadata: { name: 'p2a' }, spec: { containers: [{ name: 'c', image: 'x' }] } } });
    const second = await core.listNamespacedPod({ namespace: 'chunks', limit: 2, _continue: first.metadata!._continue! });
    const third = await core.listNamespacedPod({ namespace: 'chunks', limit: 2, _continue: second.metadata!._continue! });
    assert.deepEqual([...second.items, ...third.items].map((p) => p.metadata?.name), ['p2', 'p3', 'p4']);
    assert.equal(third.metadata?._continue, undefined);
    assert.equal(second.metadata?.resourceVersion, first.metadata?.resourceVersion);
    const all = await ours.listAll(KUBE_TYPES.Pod, { namespace: 'chunks', pageSize: 2 });
    assert.deepEqual(all.items.map((p) => p.metadata.name), ['p0', 'p1', 'p2', 'p2a', 'p3', 'p4']);
    assert.ok(all.items.every((p) => p.kind === 'Pod' && p.apiVersion === 'v1'), 'our client fills in kind/apiVersion the server leaves out of list items');
    assert.equal((all.items[0]!.status as { phase?: string }).phase, 'Pending', 'the API server resets a created pod\'s status');
  });

  it('answers 410 Expired with an inconsistent continue token once the snapshot of a continue token is compacted', async () => {
    const first = await core.listNamespacedPod({ namespace: 'chunks', limit: 2 });
    // Compaction keeps the current version readable: a write after the first page makes its version history.
    await core.createNamespacedPod({ namespace: 'chunks', body: { metadata: { name: 'p5' }, spec: { containers: [{ name: 'c', image: 'x' }] } } });
    api.compact();
    await assert.rejects(core.listNamespacedPod({ namespace: 'chunks', limit: 2, _continue: first.metadata!._continue! }), (err: k8s.ApiException<string>) => {
      assert.equal(err.code, 410);
      const status = JSON.parse(err.body);
      assert.equal(status.reason, 'Expired');
      assert.ok(status.metadata.continue, 'an inconsistent continue token');
      return true;
    });
    // Our listAll restarts the listing instead of failing.
    const again = await ours.listAll(KUBE_TYPES.Pod, { namespace: 'chunks', pageSize: 2 });
    assert.equal(again.items.length, 7);
  });

  it('streams ADDED/MODIFIED/DELETED and BOOKMARK to client-node\'s Watch, and a resumed watch gets exactly what it missed', async () => {
    await core.createNamespacedConfigMap({ namespace: 'default', body: cm('w1', { a: '1' }) });
    const list = await core.listNamespacedConfigMap({ namespace: 'default' });
    const w = await clientNodeWatch(kc, '/api/v1/namespaces/default/configmaps', { allowWatchBookmarks: true, resourceVersion: list.metadata!.resourceVersion });
    await core.patchNamespacedConfigMap({ name: 'w1', namespace: 'default', body: { data: { a: '2' } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    await core.createNamespacedConfigMap({ namespace: 'default', body: cm('w2') });
    await core.deleteNamespacedConfigMap({ name: 'w2', namespace: 'default' });
    await eventually(() => w.events.length >= 3, 5000, 'three events');
    api.bookmark();
    await eventually(() => w.events.some((e) => e.type === 'BOOKMARK'), 5000, 'a bookmark');
    assert.deepEqual(w.events.map((e) => `${e.type} ${e.object.metadata.name ?? ''}`), ['MODIFIED w1', 'ADDED w2', 'DELETED w2', 'BOOKMARK ']);
    assert.equal(w.events[0]!.object.data.a, '2');
    const bookmark = w.events[3]!.object;
    assert.equal(bookmark.kind, 'ConfigMap');
    assert.equal(bookmark.metadata.resourceVersion, api.resourceVersion);
    // The server ends the stream; changes made while nobody watches are delivered on resume, once.
    assert.equal(api.dropWatches(), 1);
    assert.equal(await w.ended, 'ended');
    await core.createNamespacedConfigMap({ namespace: 'default', body: cm('w3') });
    await core.deleteNamespacedConfigMap({ name: 'w1', namespace: 'default' });
    const resumed = await ours.watch(KUBE_TYPES.ConfigMap, { namespace: 'default', resourceVersion: bookmark.metadata.resourceVersion });
    const got = await collect(resumed, 2);
    resumed.close();
    assert.deepEqual(got.map((e) => `${e.type} ${e.object.metadata.name}`), ['ADDED w3', 'DELETED w1']);
  });

  it('starts a watch without resourceVersion with synthetic ADDED events for what exists, and filters by label selector transitions', async () => {
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'sel1', labels: { app: 'a' } } } });
    const w = await ours.watch(KUBE_TYPES.ConfigMap, { namespace: 'default', labelSelector: 'app in (a,b)' });
    const events: WatchEvent[] = [];
    const done = (async () => {
      for await (const e of w) events.push(e);
    })();
    await eventually(() => events.length === 1, 5000, 'the synthetic ADDED');
    await ours.patch(KUBE_TYPES.ConfigMap, 'sel1', { metadata: { labels: { app: 'c' } } }, { namespace: 'default' });
    await ours.patch(KUBE_TYPES.ConfigMap, 'sel1', { metadata: { labels: { app: 'b' } } }, { namespace: 'default' });
    await eventually(() => events.length === 3, 5000, 'leave and re-enter the selector');
    w.close();
    await done;
    assert.deepEqual(events.map((e) => e.type), ['ADDED', 'DELETED', 'ADDED']);
  });

  it('ends a watch from a compacted resourceVersion with an ERROR event carrying a 410 Expired Status', async () => {
    const before = api.resourceVersion;
    await core.createNamespacedConfigMap({ namespace: 'default', body: cm('gone1') });
    api.compact();
    const w = await clientNodeWatch(kc, '/api/v1/namespaces/default/configmaps', { resourceVersion: before });
    await w.ended;
    assert.equal(w.events.length, 1);
    assert.equal(w.events[0]!.type, 'ERROR');
    assert.equal(w.events[0]!.object.code, 410);
    assert.equal(w.events[0]!.object.reason, 'Expired');
    const ourWatch = await ours.watch(KUBE_TYPES.ConfigMap, { namespace: 'default', resourceVersion: before });
    await assert.rejects(collect(ourWatch, 1), (err) => isResourceExpired(err) && (err as KubeApiError).status === 410);
  });

  it('answers a PUT with a stale resourceVersion with 409 Conflict, and does not bump the version on a no-op update', async () => {
    const created = await core.createNamespacedConfigMap({ namespace: 'default', body: cm('cf', { v: '1' }) });
    const stale = structuredClone(created);
    const updated = await core.replaceNamespacedConfigMap({ name: 'cf', namespace: 'default', body: { ...created, data: { v: '2' } } });
    assert.notEqual(updated.metadata?.resourceVersion, created.metadata?.resourceVersion);
    await assert.rejects(core.replaceNamespacedConfigMap({ name: 'cf', namespace: 'default', body: { ...stale, data: { v: '3' } } }), (err: k8s.ApiException<string>) => {
      assert.equal(err.code, 409);
      assert.match(JSON.parse(err.body).message, /Operation cannot be fulfilled on configmaps "cf": the object has been modified/);
      return true;
    });
    await assert.rejects(ours.replace(KUBE_TYPES.ConfigMap, { ...stale, data: { v: '3' } } as KubeObject), (err) => err instanceof KubeApiError && err.status === 409 && err.reason === 'Conflict' && isStraitError(err, 'STRAIT_ERR_KUBE'));
    const same = await ours.replace(KUBE_TYPES.ConfigMap, updated as KubeObject);
    assert.equal(same.metadata.resourceVersion, updated.metadata?.resourceVersion);
    await assert.rejects(ours.create(KUBE_TYPES.ConfigMap, cm('cf')), (err) => err instanceof KubeApiError && err.status === 409 && err.reason === 'AlreadyExists');
  });

  it('applies merge, JSON and strategic patches; /status changes only status; a spec change bumps generation', async () => {
    api.installCrds(['gateways.gateway.networking.k8s.io']);
    const gw = await ours.create(KUBE_TYPES.Gateway, { metadata: { name: 'wp', namespace: 'default' }, spec: { gatewayClassName: 'istio-waypoint', listeners: [] }, status: { ignored: true } });
    assert.equal(gw.metadata.generation, 1);
    assert.equal(gw['status'], undefined, 'status is not taken on create');
    const st = await ours.patch(KUBE_TYPES.Gateway, 'wp', { status: { conditions: [{ type: 'Programmed', status: 'True' }] }, spec: { gatewayClassName: 'other' } }, { namespace: 'default', subresource: 'status' });
    assert.equal((st['spec'] as { gatewayClassName: string }).gatewayClassName, 'istio-waypoint', '/status ignores spec');
    assert.equal(st.metadata.generation, 1);
    const js = await ours.patch(KUBE_TYPES.Gateway, 'wp', [{ op: 'add', path: '/spec/addresses', value: [{ value: '10.0.0.1' }] }], { namespace: 'default', patchType: 'json' });
    assert.equal(js.metadata.generation, 2);
    assert.deepEqual((js['status'] as { conditions: unknown[] }).conditions.length, 1, 'the main resource keeps status');
    await assert.rejects(ours.patch(KUBE_TYPES.Gateway, 'wp', { spec: {} }, { namespace: 'default', patchType: 'strategic' }), (err) => err instanceof KubeApiError && err.status === 415);
    const sm = await ours.patch(KUBE_TYPES.ConfigMap, 'cf', { data: { w: 'x' } }, { namespace: 'default', patchType: 'strategic' });
    assert.deepEqual(sm['data'], { v: '2', w: 'x' });
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const viaCustom = (await custom.getNamespacedCustomObject({ group: 'gateway.networking.k8s.io', version: 'v1beta1', namespace: 'default', plural: 'gateways', name: 'wp' })) as { apiVersion: string };
    assert.equal(viaCustom.apiVersion, 'gateway.networking.k8s.io/v1beta1', 'served in every version, stored once');
  });

  it('deletes dependents (ownerReferences) in the background when their owner is deleted', async () => {
    const owner = await ours.create(KUBE_TYPES.ConfigMap, cm('owner'));
    await ours.create(KUBE_TYPES.Secret, { metadata: { name: 'dep', namespace: 'default', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata.uid! }] } });
    await ours.delete(KUBE_TYPES.ConfigMap, 'owner', { namespace: 'default' });
    await eventually(() => api.get({ apiVersion: 'v1', kind: 'Secret', name: 'dep', namespace: 'default' }) === undefined, 5000, 'the dependent deleted');
  });

  it('gives a real 403 Status under RBAC until a Role grants the verb, and SelfSubjectAccessReview agrees', async () => {
    api.rbacEnforced = true;
    try {
      const token = api.addServiceAccountToken('strait-system', 'strait-controller');
      const saCore = clientNode(api, token).makeApiClient(k8s.CoreV1Api);
      await assert.rejects(saCore.listNamespacedPod({ namespace: 'default' }), (err: k8s.ApiException<string>) => {
        assert.equal(err.code, 403);
        const s = JSON.parse(err.body);
        assert.equal(s.reason, 'Forbidden');
        assert.equal(s.message, 'pods is forbidden: User "system:serviceaccount:strait-system:strait-controller" cannot list resource "pods" in API group "" in the namespace "default"');
        return true;
      });
      const saOurs = new KubeClient(loadKubeConfig({ kubeconfig: api.writeKubeconfig(join(dir.path, 'sa.kubeconfig'), { token }) }));
      await assert.rejects(saOurs.list(KUBE_TYPES.Lease, { namespace: 'strait-system' }), (err) => {
        assert.ok(err instanceof KubeApiError && err.status === 403 && err.reason === 'Forbidden');
        assert.match(err.message, /lacks "list" on "leases" in API group "coordination\.k8s\.io" in namespace strait-system/);
        assert.match(err.message, /daemonset\.yaml's RBAC/);
        return true;
      });
      const review = (body: object) => saOurs.create(KUBE_TYPES.SelfSubjectAccessReview, body as never) as Promise<{ status?: { allowed: boolean } }>;
      const ssar = { spec: { resourceAttributes: { verb: 'list', resource: 'pods', namespace: 'default' } } };
      assert.equal((await review(ssar)).status?.allowed, false);
      api.loadRbac([
        { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'reader' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }] },
        {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'RoleBinding',
          metadata: { name: 'reader', namespace: 'default' },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'reader' },
          subjects: [{ kind: 'ServiceAccount', name: 'strait-controller', namespace: 'strait-system' }],
        },
      ]);
      await saCore.listNamespacedPod({ namespace: 'default' });
      assert.equal((await review(ssar)).status?.allowed, true);
      await assert.rejects(saCore.listPodForAllNamespaces(), (err: k8s.ApiException<string>) => err.code === 403 && /at the cluster scope/.test(JSON.parse(err.body).message));
      const logged = api.requests.filter((r) => r.user === 'system:serviceaccount:strait-system:strait-controller' && r.resource === 'pods');
      assert.deepEqual(logged.map((r) => `${r.verb} ${r.namespace ?? '*'} ${r.code}`), ['list default 403', 'list default 200', 'list * 403']);
      saOurs.close();
    } finally {
      api.rbacEnforced = false;
    }
  });

  it('answers TokenReviews with the test\'s function, audiences included', async () => {
    api.tokenReview = (token, audiences) =>
      token === 'node-token' && audiences.includes('strait-controller')
        ? { authenticated: true, user: { username: 'system:serviceaccount:strait-system:strait-ztunnel', groups: ['system:serviceaccounts'] }, audiences: ['strait-controller'] }
        : { authenticated: false, error: 'invalid token' };
    try {
      const auth = kc.makeApiClient(k8s.AuthenticationV1Api);
      const ok = await auth.createTokenReview({ body: { spec: { token: 'node-token', audiences: ['strait-controller'] } } });
      assert.equal(ok.status?.authenticated, true);
      assert.equal(ok.status?.user?.username, 'system:serviceaccount:strait-system:strait-ztunnel');
      assert.deepEqual(ok.status?.audiences, ['strait-controller']);
      const bad = await auth.createTokenReview({ body: { spec: { token: 'node-token', audiences: ['someone-else'] } } });
      assert.equal(bad.status?.authenticated, false);
      assert.equal(bad.status?.error, 'invalid token');
    } finally {
      api.tokenReview = undefined;
    }
  });

  it('serves a custom kind only once its CRD exists when asked to, and our client names the CRD to install', async () => {
    api.requireCrds = true;
    try {
      const custom = kc.makeApiClient(k8s.CustomObjectsApi);
      const list = () => custom.listNamespacedCustomObject({ group: 'security.istio.io', version: 'v1', namespace: 'default', plural: 'authorizationpolicies' });
      await assert.rejects(list(), (err: k8s.ApiException<string>) => err.code === 404);
      await assert.rejects(ours.list(KUBE_TYPES.AuthorizationPolicy), (err) => {
        assert.ok(isKindNotServed(err));
        assert.match((err as Error).message, /install the CustomResourceDefinition authorizationpolicies\.security\.istio\.io/);
        return true;
      });
      const apis = await kc.makeApiClient(k8s.ApisApi).getAPIVersions();
      assert.ok(!apis.groups.some((g) => g.name === 'security.istio.io'), 'discovery hides the group without its CRD');
      api.installCrds(['authorizationpolicies.security.istio.io']);
      await custom.createNamespacedCustomObject({
        group: 'security.istio.io',
        version: 'v1',
        namespace: 'default',
        plural: 'authorizationpolicies',
        body: { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny-all' }, spec: {} },
      });
      const got = (await list()) as { items: { apiVersion: string; metadata: { name: string } }[] };
      assert.deepEqual(got.items.map((i) => `${i.apiVersion} ${i.metadata.name}`), ['security.istio.io/v1 deny-all']);
      const resources = await kc.makeApiClient(k8s.CoreV1Api).getAPIResources();
      assert.ok(resources.resources.some((r) => r.name === 'pods/status'));
    } finally {
      api.requireCrds = false;
    }
  });

  it('injects failures with failNext: a 503 with Retry-After reaches our client as status, reason and retryAfterSeconds', async () => {
    api.failNext({ verb: 'list', path: '/api/v1/nodes', status: 503, retryAfterSeconds: 2 });
    await assert.rejects(ours.list(KUBE_TYPES.Node), (err) => err instanceof KubeApiError && err.status === 503 && err.reason === 'ServiceUnavailable' && err.retryAfterSeconds === 2);
    const nodes = await ours.list(KUBE_TYPES.Node);
    assert.equal(nodes.kind, 'NodeList');
  });

  it('rejects unknown credentials with 401 and authenticates client certificates (CN user, O groups)', async () => {
    const bad = new KubeClient(loadKubeConfig({ kubeconfig: api.writeKubeconfig(join(dir.path, 'bad.kubeconfig'), { token: 'nope' }) }));
    await assert.rejects(bad.list(KUBE_TYPES.Pod), (err) => err instanceof KubeApiError && err.status === 401 && /rejected the credentials/.test(err.message));
    bad.close();
    const cert = api.clientCertificate('alice', ['system:masters']);
    const byCert = new KubeClient(loadKubeConfig({ kubeconfig: api.writeKubeconfig(join(dir.path, 'cert.kubeconfig'), { clientCert: cert }) }));
    await byCert.list(KUBE_TYPES.Pod);
    byCert.close();
    assert.equal(api.requests.at(-1)?.user, 'alice');
  });

  it('finds credentials as kubectl does: --kubeconfig, KUBECONFIG, ~/.kube/config, in-cluster; and says what is missing', async () => {
    const home = join(dir.path, 'home');
    mkdirSync(join(home, '.kube'), { recursive: true });
    writeFileSync(join(home, '.kube', 'config'), api.kubeconfig({ context: 'from-home' }));
    assert.equal(loadKubeConfig({ env: { HOME: home } }).context, 'from-home');
    const envFile = api.writeKubeconfig(join(dir.path, 'env.kubeconfig'), { context: 'from-env' });
    const viaEnv = loadKubeConfig({ env: { HOME: home, KUBECONFIG: `${join(dir.path, 'missing')}:${envFile}` } });
    assert.equal(viaEnv.source, 'KUBECONFIG');
    assert.equal(viaEnv.context, 'from-env');
    assert.throws(() => loadKubeConfig({ kubeconfig: envFile, context: 'nope' }), /has no context "nope" \(--kube-context\); it has: from-env/);
    assert.throws(() => loadKubeConfig({ kubeconfig: join(dir.path, 'missing') }), (err) => isStraitError(err, 'STRAIT_ERR_CONFIG') && /does not exist/.test((err as Error).message));
    assert.throws(() => loadKubeConfig({ env: { HOME: join(dir.path, 'nohome') }, inClusterDir: join(dir.path, 'nosa') }), /no Kubernetes credentials found/);
    // In a pod: the ServiceAccount token, CA and namespace files, and KUBERNETES_SERVICE_HOST/PORT.
    const sa = join(dir.path, 'sa');
    mkdirSync(sa);
    writeFileSync(join(sa, 'token'), api.addServiceAccountToken('strait-system', 'strait-controller'));
    writeFileSync(join(sa, 'ca.crt'), api.caPem);
    writeFileSync(join(sa, 'namespace'), 'strait-system\n');
    const inCluster = loadKubeConfig({ env: { HOME: join(dir.path, 'nohome'), KUBERNETES_SERVICE_HOST: HOST, KUBERNETES_SERVICE_PORT: String(api.port) }, inClusterDir: sa });
    assert.equal(inCluster.source, 'in-cluster');
    assert.equal(inCluster.namespace, 'strait-system');
    const c = new KubeClient(inCluster);
    await c.get(KUBE_TYPES.Namespace, 'default');
    c.close();
    assert.equal(api.requests.at(-1)?.user, 'system:serviceaccount:strait-system:strait-controller');
  });
});
