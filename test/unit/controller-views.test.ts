import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { computeViews, isEnrolled } from '../../src/controller/views.js';
import { docs, namespace, objectsOf, pod, service, waypoint } from '../helpers/manifests.js';

const opts = { trustDomain: 'cluster.local', rootNamespace: 'istio-system' };
const views = (...o: unknown[]) => computeViews(objectsOf(docs(...o)), opts);

describe('workload enrollment', () => {
  it('enrolls pods of a namespace labelled ambient, with their SPIFFE identity', () => {
    const v = views(namespace('shop', { 'istio.io/dataplane-mode': 'ambient' }), pod('shop', 'web-1', { sa: 'web', ip: '10.0.0.5', node: 'n1' }));
    const w = v.workloads.get('shop/web-1')!;
    assert.equal(w.protocol, 'HBONE');
    assert.equal(w.identity, 'spiffe://cluster.local/ns/shop/sa/web');
    assert.equal(w.node, 'n1');
    assert.deepEqual(w.addresses, ['10.0.0.5']);
  });

  it('lets the pod label override the namespace label both ways', () => {
    const v = views(
      namespace('a', { 'istio.io/dataplane-mode': 'ambient' }),
      namespace('b'),
      pod('a', 'out', { labels: { 'istio.io/dataplane-mode': 'none' }, ip: '10.0.0.1' }),
      pod('a', 'in', { ip: '10.0.0.2' }),
      pod('b', 'opt-in', { labels: { 'istio.io/dataplane-mode': 'ambient' }, ip: '10.0.0.3' }),
      pod('b', 'plain', { ip: '10.0.0.4' }),
    );
    assert.equal(v.workloads.get('a/out')!.protocol, 'TCP');
    assert.equal(v.workloads.get('a/in')!.protocol, 'HBONE');
    assert.equal(v.workloads.get('b/opt-in')!.protocol, 'HBONE');
    assert.equal(v.workloads.get('b/plain')!.protocol, 'TCP');
  });

  it('never enrolls a waypoint\'s own pods', () => {
    assert.equal(isEnrolled(objectsOf(docs(pod('a', 'wp', { labels: { 'gateway.networking.k8s.io/gateway-name': 'waypoint' } })))[0] as never, { 'istio.io/dataplane-mode': 'ambient' }), false);
  });
});

describe('services and endpoints', () => {
  it('selects pods of the same namespace and resolves named target ports per pod', () => {
    const v = views(
      namespace('shop', { 'istio.io/dataplane-mode': 'ambient' }),
      service('shop', 'web', { ports: [{ port: 80, targetPort: 'http', name: 'http' }] }),
      pod('shop', 'web-1', { labels: { app: 'web' }, ip: '10.0.0.1', ports: { http: 8080 } }),
      pod('shop', 'web-2', { labels: { app: 'web' }, ip: '10.0.0.2', ports: { http: 9090 }, ready: false }),
      pod('other', 'web-3', { labels: { app: 'web' }, ip: '10.0.0.3', ports: { http: 8080 } }),
    );
    const s = v.services.get('shop/web')!;
    assert.equal(s.hostname, 'web.shop.svc.cluster.local');
    assert.deepEqual(s.vips, ['10.96.0.10']);
    assert.deepEqual(s.endpoints, [
      { workload: 'shop/web-1', address: '10.0.0.1', ports: { '80': 8080 }, healthy: true },
      { workload: 'shop/web-2', address: '10.0.0.2', ports: { '80': 9090 }, healthy: false },
    ]);
    assert.deepEqual(v.workloads.get('shop/web-1')!.services, ['shop/web']);
  });
});

describe('waypoint bindings', () => {
  it('binds services through the namespace label and lets a service opt out with none', () => {
    const v = views(
      namespace('shop', { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' }),
      waypoint('shop', 'waypoint', { address: '10.0.9.9' }),
      service('shop', 'web'),
      service('shop', 'db', { ip: '10.96.0.11', labels: { 'istio.io/use-waypoint': 'none' } }),
      pod('shop', 'web-1', { labels: { app: 'web' } }),
    );
    assert.deepEqual(v.services.get('shop/web')!.waypoint, { namespace: 'shop', name: 'waypoint', identity: 'spiffe://cluster.local/ns/shop/sa/waypoint', address: '10.0.9.9' });
    assert.equal(v.services.get('shop/db')!.waypoint, undefined);
    // waypoint-for defaults to service: workloads are not bound through the namespace label
    assert.equal(v.workloads.get('shop/web-1')!.waypoint, undefined);
    assert.deepEqual(v.waypoints.get('shop/waypoint')!.services, ['shop/web']);
  });

  it('binds workloads when the waypoint is for workloads, and a pod label wins over the namespace', () => {
    const v = views(
      namespace('shop', { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'wp-all' }),
      waypoint('shop', 'wp-all', { for: 'all' }),
      waypoint('shop', 'wp-w', { for: 'workload' }),
      pod('shop', 'a', { ip: '10.0.0.1' }),
      pod('shop', 'b', { ip: '10.0.0.2', labels: { 'istio.io/use-waypoint': 'wp-w' } }),
    );
    assert.equal(v.workloads.get('shop/a')!.waypoint?.name, 'wp-all');
    assert.equal(v.workloads.get('shop/b')!.waypoint?.name, 'wp-w');
  });

  it('reports a binding to a missing waypoint and keeps a reference without address (traffic is refused, not sent around it)', () => {
    const v = views(namespace('shop', { 'istio.io/use-waypoint': 'ghost' }), service('shop', 'web'));
    assert.deepEqual(v.services.get('shop/web')!.waypoint, { namespace: 'shop', name: 'ghost', identity: 'spiffe://cluster.local/ns/shop/sa/ghost' });
    assert.match(v.problems[0].message, /no Gateway shop\/ghost with gatewayClassName istio-waypoint exists/);
    assert.equal(v.problems[0].object, 'Service/shop/web');
  });

  it('gives each waypoint the HTTPRoutes, policies and DestinationRules of its services', () => {
    const route = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'web-split', namespace: 'shop' },
      spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] } };
    const other = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'db-route', namespace: 'shop' },
      spec: { parentRefs: [{ group: '', kind: 'Service', name: 'db', port: 80 }], rules: [{ backendRefs: [{ name: 'db', port: 80 }] }] } };
    const l7 = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'get-only', namespace: 'shop' },
      spec: { targetRefs: [{ kind: 'Service', group: '', name: 'web' }], action: 'ALLOW', rules: [{ to: [{ operation: { methods: ['GET'] } }] }] } };
    const dr = { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'web', namespace: 'shop' },
      spec: { host: 'web', trafficPolicy: { outlierDetection: { consecutive5xxErrors: 3 } } } };
    const v = views(
      namespace('shop', { 'istio.io/dataplane-mode': 'ambient' }),
      waypoint('shop', 'waypoint'),
      service('shop', 'web', { labels: { 'istio.io/use-waypoint': 'waypoint' } }),
      service('shop', 'db', { ip: '10.96.0.11' }),
      route, other, l7, dr,
    );
    const wp = v.waypoints.get('shop/waypoint')!;
    // One compiled route table per bound service (db is not bound), its policies by compiled resource name.
    assert.deepEqual([...wp.routes.keys()], ['shop/web']);
    assert.deepEqual(wp.routes.get('shop/web')!.origin, { kind: 'HTTPRoute', objects: ['shop/web-split'] });
    assert.deepEqual([...wp.policies.keys()].sort(), ['authz/shop/get-only', 'backend/shop/web']);
    // a targetRef policy is the waypoint's business, never the ztunnel's
    assert.equal(v.authorizations.has('authz/shop/get-only'), false);
  });
});

describe('L4 authorization for ztunnels', () => {
  const policy = (ns: string, name: string, spec: unknown) => ({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, namespace: ns }, spec });

  it('scopes policies: root namespace global, namespace-wide, and selector', () => {
    const v = views(
      policy('istio-system', 'mesh', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['evil'] } }] }] }),
      policy('shop', 'ns-wide', { action: 'ALLOW', rules: [{}] }),
      policy('shop', 'sel', { selector: { matchLabels: { app: 'web' } }, action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/front'] } }] }] }),
    );
    assert.equal(v.authorizations.get('authz/istio-system/mesh')!.scope, 'global');
    assert.equal(v.authorizations.get('authz/shop/ns-wide')!.scope, 'namespace');
    const sel = v.authorizations.get('authz/shop/sel')!;
    assert.equal(sel.scope, 'workload');
    assert.ok(sel.type === 'authz');
    assert.deepEqual(sel.selector, { app: 'web' });
    assert.deepEqual(sel.rules, [{ from: [{ principals: ['cluster.local/ns/shop/sa/front'] }] }]);
  });

  it('drops ALLOW rules that need L7 and enforces DENY rules without their L7 parts, saying why', () => {
    const v = views(
      policy('shop', 'allow-get', { action: 'ALLOW', rules: [
        { to: [{ operation: { methods: ['GET'], ports: ['80'] } }] },
        { from: [{ source: { namespaces: ['shop'] } }] },
      ] }),
      policy('shop', 'deny-post', { action: 'DENY', rules: [
        { from: [{ source: { namespaces: ['guest'] } }], to: [{ operation: { methods: ['POST'] } }], when: [{ key: 'request.headers[x-a]', values: ['1'] }, { key: 'source.ip', values: ['10.0.0.0/8'] }] },
      ] }),
    );
    const allow = v.authorizations.get('authz/shop/allow-get')!;
    assert.ok(allow.type === 'authz');
    assert.deepEqual(allow.rules, [{ from: [{ namespaces: ['shop'] }] }]);
    assert.match(allow.notes[0], /^rules\[0\] dropped: to\[0\]\.operation\.methods need a waypoint/);
    const deny = v.authorizations.get('authz/shop/deny-post')!;
    assert.ok(deny.type === 'authz');
    assert.deepEqual(deny.rules, [{ from: [{ namespaces: ['guest'] }], to: [{}], when: [{ key: 'source.ip', values: ['10.0.0.0/8'] }] }]);
    assert.match(deny.notes[0], /enforced without to\[0\]\.operation\.methods, when\[0\]\.key request\.headers\[x-a\]/);
  });

  it('carries PeerAuthentication modes with their scope', () => {
    const pa = (ns: string, name: string, spec: unknown) => ({ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name, namespace: ns }, spec });
    const v = views(
      pa('istio-system', 'default', { mtls: { mode: 'STRICT' } }),
      pa('legacy', 'default', { mtls: { mode: 'PERMISSIVE' } }),
      pa('legacy', 'db', { selector: { matchLabels: { app: 'db' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { '5432': { mode: 'PERMISSIVE' } } }),
    );
    assert.deepEqual(v.authorizations.get('peerauthn/istio-system/default'), { type: 'peerauthn', name: 'default', namespace: 'istio-system', scope: 'global', mode: 'STRICT', portLevel: {} });
    assert.equal(v.authorizations.get('peerauthn/legacy/default')!.scope, 'namespace');
    assert.deepEqual(v.authorizations.get('peerauthn/legacy/db'), { type: 'peerauthn', name: 'db', namespace: 'legacy', scope: 'workload', selector: { app: 'db' }, mode: 'STRICT', portLevel: { '5432': 'PERMISSIVE' } });
  });
});

describe('workload names in metrics', () => {
  it('names a Deployment\'s pod by its Deployment (ReplicaSet suffixes removed) and any other pod by itself', async () => {
    const { workloadNameOf } = await import('../../src/controller/views.js');
    assert.equal(workloadNameOf('reviews-v1-5f7b8c9d4-x2kqz'), 'reviews-v1');
    assert.equal(workloadNameOf('reviews-v1'), 'reviews-v1');
    assert.equal(workloadNameOf('web-1'), 'web-1');
    assert.equal(workloadNameOf('db-0'), 'db-0', 'a StatefulSet pod keeps its ordinal');
  });
});
