import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { Backoff, jittered, keyOf, objectEvent, watchEvent, watchedKinds, KUBE_SOURCE_FILE } from '../../src/controller/sources/kube/index.js';
import { KUBE_TYPES, type StoredKubeObject } from '../../src/common/kube/index.js';
import { parseManifests } from '../../src/common/model/parse.js';

function stored(o: Record<string, unknown>): StoredKubeObject {
  return o as StoredKubeObject;
}

const badPolicy = {
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'deny-it', namespace: 'shop', resourceVersion: '42', uid: 'u-1', managedFields: [{ manager: 'kubectl' }] },
  spec: { action: 'BLOCK', rules: [{ from: [{ source: { principals: ['a'] } }] }] },
};

describe('Kubernetes source: API objects → store events', () => {
  it('turns a valid object into an upsert keyed Kind/namespace/name, and server-written metadata is silent', () => {
    const e = objectEvent(KUBE_TYPES.Namespace, stored({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', resourceVersion: '7', uid: 'x', creationTimestamp: '2024-05-01T10:00:00Z', labels: { 'istio.io/dataplane-mode': 'ambient' } }, status: { phase: 'Active' } }));
    assert.equal(e.type, 'upsert');
    if (e.type !== 'upsert') return;
    assert.equal(e.object.key, 'Namespace//shop');
    assert.deepEqual(e.warnings, []);
    assert.equal(e.object.source.file, KUBE_SOURCE_FILE);
    assert.equal(e.object.object.metadata.creationTimestamp, '2024-05-01T10:00:00.000Z');
  });

  it('rejects an invalid object with exactly the problems the file source reports for the same object', () => {
    const e = objectEvent(KUBE_TYPES.AuthorizationPolicy, stored(badPolicy));
    assert.equal(e.type, 'reject');
    if (e.type !== 'reject') return;
    assert.equal(e.key, 'AuthorizationPolicy/shop/deny-it');
    const fromFile = parseManifests(stringify(badPolicy), 'policy.yaml');
    assert.equal(fromFile.objects.length, 0);
    const strip = (ps: readonly { file: string; doc: number }[]) => ps.map(({ file: _f, doc: _d, ...rest }) => rest);
    assert.ok(e.problems.length > 0);
    assert.deepEqual(strip(e.problems), strip(fromFile.problems));
  });

  it('maps DELETED to a delete of the key, cluster-scoped kinds without namespace, and BOOKMARK to nothing', () => {
    const node = stored({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a', resourceVersion: '9' } });
    assert.deepEqual(watchEvent(KUBE_TYPES.Node, { type: 'DELETED', object: node }), { type: 'delete', key: 'Node//node-a' });
    assert.equal(keyOf(KUBE_TYPES.Pod, stored({ metadata: { name: 'p', namespace: 'ns', resourceVersion: '1' } })), 'Pod/ns/p');
    assert.equal(watchEvent(KUBE_TYPES.Pod, { type: 'BOOKMARK', object: stored({ kind: 'Pod', apiVersion: 'v1', metadata: { resourceVersion: '12' } }) }), undefined);
    assert.equal(watchEvent(KUBE_TYPES.Pod, { type: 'MODIFIED', object: stored({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'ns', resourceVersion: '3' }, spec: { containers: [] }, status: {} }) })?.type, 'upsert');
  });

  it('watches only the istio ConfigMap of the root namespace, and every custom kind in the versions the model accepts', () => {
    const kinds = watchedKinds('mesh-root');
    const cm = kinds.find((k) => k.types[0]!.kind === 'ConfigMap')!;
    assert.equal(cm.namespace, 'mesh-root');
    assert.equal(cm.fieldSelector, 'metadata.name=istio');
    assert.deepEqual(kinds.find((k) => k.id === 'virtualservices.networking.istio.io')!.types.map((t) => t.version), ['v1', 'v1beta1', 'v1alpha3']);
    assert.deepEqual(kinds.filter((k) => !k.optional).map((k) => k.id), ['namespaces', 'nodes', 'pods', 'services', 'endpointslices', 'configmaps/mesh-root/istio']);
  });
});

describe('Kubernetes source: backoff', () => {
  it('doubles from the initial delay up to the maximum, each delay jittered within [base/2, base]', () => {
    const low = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
    const high = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999 });
    assert.deepEqual(Array.from({ length: 6 }, () => low.next()), [50, 100, 200, 400, 500, 500]);
    assert.deepEqual(Array.from({ length: 6 }, () => high.next()), [100, 200, 400, 800, 1000, 1000]);
    low.reset();
    assert.equal(low.next(), 50);
    assert.equal(low.attempts, 1);
    const real = new Backoff({ initialMs: 100, maxMs: 1000 });
    for (let i = 0; i < 50; i++) {
      const d = real.next();
      assert.ok(d >= 50 && d <= 1000, `delay ${d} out of bounds`);
    }
    assert.throws(() => new Backoff({ initialMs: 0, maxMs: 1 }), /BUG/);
  });

  it('spreads a periodic retry by ±10%', () => {
    assert.equal(jittered(1000, () => 0), 900);
    assert.equal(jittered(1000, () => 0.5), 1000);
    assert.equal(jittered(1000, () => 0.999999), 1100);
  });
});
