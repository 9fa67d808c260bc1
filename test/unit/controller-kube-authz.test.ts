import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { refuseKubeCaller, serviceAccountOf, type CallerLookup, type ReviewedUser } from '../../src/controller/kube/caller-authz.js';
import type { Gateway, MeshObject, Pod } from '../../src/common/model/types.js';
import { docs, objectsOf, pod, waypoint } from '../helpers/manifests.js';

const withUid = (p: unknown, uid: string) => ({ ...(p as object), metadata: { ...(p as { metadata: object }).metadata, uid } });
const objects: MeshObject[] = objectsOf(docs(
  withUid(pod('strait-system', 'strait-ztunnel-abcde', { node: 'node-a', sa: 'strait-ztunnel' }), 'uid-zt-a'),
  pod('strait-system', 'strait-ztunnel-fghij', { node: 'node-b', sa: 'strait-ztunnel' }),
  pod('strait-system', 'impostor', { node: 'node-a', sa: 'default' }),
  waypoint('shop', 'waypoint'),
  { ...(waypoint('shop', 'custom') as object), metadata: { name: 'custom', namespace: 'shop', annotations: { 'gateway.istio.io/service-account': 'custom-sa' } } },
  { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'ingress', namespace: 'shop' }, spec: { gatewayClassName: 'istio', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] } },
));
const lookup: CallerLookup = {
  pod: (ns, name) => objects.find((o): o is Pod => o.kind === 'Pod' && o.metadata.namespace === ns && o.metadata.name === name),
  gateway: (ns, name) => objects.find((o): o is Gateway => o.kind === 'Gateway' && o.metadata.namespace === ns && o.metadata.name === name),
};
const opts = { systemNamespace: 'strait-system', ztunnelServiceAccount: 'strait-ztunnel', waypointGatewayClass: 'istio-waypoint' };
const ztunnelUser = (podName: string, podUid?: string): ReviewedUser => ({
  username: 'system:serviceaccount:strait-system:strait-ztunnel', groups: ['system:serviceaccounts'],
  extra: { 'authentication.kubernetes.io/pod-name': [podName], ...(podUid ? { 'authentication.kubernetes.io/pod-uid': [podUid] } : {}) },
});
const saUser = (ns: string, sa: string): ReviewedUser => ({ username: `system:serviceaccount:${ns}:${sa}`, groups: [], extra: {} });

describe('which Kubernetes-authenticated token may act as which proxy', () => {
  it('lets the ztunnel pod\'s token connect as the ztunnel of the node the pod runs on', () => {
    assert.equal(refuseKubeCaller({ type: 'node', node: 'node-a' }, ztunnelUser('strait-ztunnel-abcde', 'uid-zt-a'), lookup, opts), undefined);
    assert.equal(refuseKubeCaller({ type: 'node', node: 'node-b' }, ztunnelUser('strait-ztunnel-fghij'), lookup, opts), undefined);
  });

  it('refuses a ztunnel token claiming another node, naming where its pod runs', () => {
    const r = refuseKubeCaller({ type: 'node', node: 'node-b' }, ztunnelUser('strait-ztunnel-abcde', 'uid-zt-a'), lookup, opts);
    assert.equal(r?.reason, 'wrong_node');
    assert.match(r!.message, /pod strait-system\/strait-ztunnel-abcde runs on node node-a, so its token may not connect as the ztunnel of node node-b/);
  });

  it('refuses a token of another ServiceAccount as a ztunnel, even from a pod on that node', () => {
    const r = refuseKubeCaller({ type: 'node', node: 'node-a' }, { ...saUser('strait-system', 'default'), extra: { 'authentication.kubernetes.io/pod-name': ['impostor'] } }, lookup, opts);
    assert.equal(r?.reason, 'wrong_account');
    assert.match(r!.message, /only ServiceAccount strait-system\/strait-ztunnel may/);
  });

  it('refuses a ztunnel token not bound to a pod (a long-lived Secret token)', () => {
    assert.equal(refuseKubeCaller({ type: 'node', node: 'node-a' }, saUser('strait-system', 'strait-ztunnel'), lookup, opts)?.reason, 'not_pod_bound');
  });

  it('refuses a token of a pod the store does not know, and of a replaced pod (uid differs)', () => {
    assert.equal(refuseKubeCaller({ type: 'node', node: 'node-a' }, ztunnelUser('strait-ztunnel-zzzzz'), lookup, opts)?.reason, 'unknown_pod');
    const r = refuseKubeCaller({ type: 'node', node: 'node-a' }, ztunnelUser('strait-ztunnel-abcde', 'uid-of-the-old-pod'), lookup, opts);
    assert.equal(r?.reason, 'pod_mismatch');
    assert.match(r!.message, /the pod was replaced/);
  });

  it('refuses users that are not ServiceAccounts', () => {
    assert.equal(refuseKubeCaller({ type: 'node', node: 'node-a' }, { username: 'kubernetes-admin', groups: ['system:masters'], extra: {} }, lookup, opts)?.reason, 'not_service_account');
  });

  it('lets a waypoint connect with its Gateway\'s ServiceAccount (the Gateway\'s name, or the annotation\'s)', () => {
    assert.equal(refuseKubeCaller({ type: 'waypoint', namespace: 'shop', name: 'waypoint' }, saUser('shop', 'waypoint'), lookup, opts), undefined);
    assert.equal(refuseKubeCaller({ type: 'waypoint', namespace: 'shop', name: 'custom' }, saUser('shop', 'custom-sa'), lookup, opts), undefined);
  });

  it('refuses a waypoint token of another ServiceAccount or namespace', () => {
    assert.equal(refuseKubeCaller({ type: 'waypoint', namespace: 'shop', name: 'custom' }, saUser('shop', 'custom'), lookup, opts)?.reason, 'wrong_account');
    assert.equal(refuseKubeCaller({ type: 'waypoint', namespace: 'shop', name: 'waypoint' }, saUser('other', 'waypoint'), lookup, opts)?.reason, 'wrong_account');
    assert.equal(refuseKubeCaller({ type: 'waypoint', namespace: 'shop', name: 'waypoint' }, ztunnelUser('strait-ztunnel-abcde'), lookup, opts)?.reason, 'wrong_account');
  });

  it('refuses a waypoint of a Gateway that does not exist or is not a waypoint', () => {
    assert.equal(refuseKubeCaller({ type: 'waypoint', namespace: 'shop', name: 'gone' }, saUser('shop', 'gone'), lookup, opts)?.reason, 'unknown_waypoint');
    assert.equal(refuseKubeCaller({ type: 'waypoint', namespace: 'shop', name: 'ingress' }, saUser('shop', 'ingress'), lookup, opts)?.reason, 'unknown_waypoint');
  });

  it('never lets a Kubernetes token use the debug credential', () => {
    assert.equal(refuseKubeCaller({ type: 'debug' }, ztunnelUser('strait-ztunnel-abcde'), lookup, opts)?.reason, 'wrong_kind');
  });

  it('reads ServiceAccount usernames', () => {
    assert.deepEqual(serviceAccountOf('system:serviceaccount:a:b'), { namespace: 'a', name: 'b' });
    assert.equal(serviceAccountOf('system:serviceaccount:a'), undefined);
    assert.equal(serviceAccountOf('alice'), undefined);
  });
});
