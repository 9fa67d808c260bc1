import { it } from 'node:test';
import assert from 'node:assert/strict';
import { parseManifests } from '../../src/common/model/parse.js';
import { TYPE_AUTHORIZATION, TYPE_WORKLOAD } from '../../src/common/xds/resources.js';
import { ConfigStore } from '../../src/controller/store.js';
import { MeshViewSource, ZTUNNEL_VIEW } from '../../src/controller/view-source.js';
import { docs, namespace, pod } from '../helpers/manifests.js';

const policy = (action: string) => ({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'p', namespace: 'a' }, spec: { action, rules: [{}] } });
const load = (...o: unknown[]) => parseManifests(docs(...o), 'x.yaml');

it('keeps unchanged resource sets (same object, same entries) and versions only what changed', () => {
  const store = new ConfigStore();
  const vs = new MeshViewSource(store, { trustDomain: 'cluster.local', rootNamespace: 'istio-system' });
  store.replaceSource('f', load(namespace('a', { 'istio.io/dataplane-mode': 'ambient' }), pod('a', 'x'), pod('a', 'y', { ip: '10.0.0.2' }), policy('ALLOW')));
  const w1 = vs.resources(ZTUNNEL_VIEW, TYPE_WORKLOAD);
  const a1 = vs.resources(ZTUNNEL_VIEW, TYPE_AUTHORIZATION);
  const g1 = vs.generation();

  // Only a policy changed: the workload set is the very same object; the policy has a new version.
  store.replaceSource('f', load(namespace('a', { 'istio.io/dataplane-mode': 'ambient' }), pod('a', 'x'), pod('a', 'y', { ip: '10.0.0.2' }), policy('DENY')));
  assert.equal(vs.resources(ZTUNNEL_VIEW, TYPE_WORKLOAD), w1);
  const a2 = vs.resources(ZTUNNEL_VIEW, TYPE_AUTHORIZATION);
  assert.notEqual(a2.get('authz/a/p')!.version, a1.get('authz/a/p')!.version);
  assert.ok(vs.generation() > g1);

  // A pod changed: workloads are recomputed; the untouched pod keeps its entry object.
  store.replaceSource('f', load(namespace('a', { 'istio.io/dataplane-mode': 'ambient' }), pod('a', 'x', { ip: '10.0.0.9' }), pod('a', 'y', { ip: '10.0.0.2' }), policy('DENY')));
  const w3 = vs.resources(ZTUNNEL_VIEW, TYPE_WORKLOAD);
  assert.notEqual(w3, w1);
  assert.notEqual(w3.get('a/x'), w1.get('a/x'));
  assert.equal(w3.get('a/y'), w1.get('a/y'));
  assert.deepEqual((w3.get('a/x')!.body as { addresses: string[] }).addresses, ['10.0.0.9']);
});
