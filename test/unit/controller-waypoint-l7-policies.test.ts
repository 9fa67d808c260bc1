// AuthorizationPolicies a waypoint enforces: by targetRefs (Gateway, Service, GatewayClass), and Strait's sidecar
// compatibility for selector policies (with the ztunnels' exemption of that waypoint), and the mesh-config switch
// back to Istio's behaviour.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { authorizationPolicy, baseMesh, compile, meshConfig } from '../helpers/waypoint-mesh.js';
import { waypoint } from '../helpers/manifests.js';

const WP_ID = 'spiffe://cluster.local/ns/shop/sa/waypoint';
const getOnly = { rules: [{ to: [{ operation: { methods: ['GET'] } }] }] };

describe('policies attached by targetRefs', () => {
  it('to the waypoint\'s Gateway: every request through it', () => {
    const c = compile([...baseMesh(), authorizationPolicy('gw', { targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'waypoint' }], action: 'DENY', ...getOnly })]);
    assert.deepEqual(c.policy('authz/shop/gw'), { type: 'authz', policy: 'shop/gw', action: 'DENY', scope: { kind: 'waypoint' }, rules: [{ to: [{ methods: ['GET'] }] }], binding: 'targetRef Gateway shop/waypoint' });
    assert.deepEqual(c.warnings, []);
  });

  it('to Services bound to it: the requests for those services', () => {
    const c = compile([...baseMesh(), authorizationPolicy('svc', { targetRefs: [{ kind: 'Service', group: '', name: 'web' }, { kind: 'Service', group: '', name: 'api' }], ...getOnly })]);
    const p = c.policy('authz/shop/svc');
    assert.deepEqual(p?.type === 'authz' && p.scope, { kind: 'services', services: ['shop/api', 'shop/web'] });
  });

  it('to the GatewayClass istio-waypoint from the root namespace: every waypoint; from elsewhere: nothing, with a warning', () => {
    const c = compile([...baseMesh(), waypoint('other', 'wp2'),
      authorizationPolicy('all-waypoints', { targetRefs: [{ kind: 'GatewayClass', group: 'gateway.networking.k8s.io', name: 'istio-waypoint' }], action: 'DENY', ...getOnly }, 'istio-system'),
      authorizationPolicy('misplaced', { targetRefs: [{ kind: 'GatewayClass', group: 'gateway.networking.k8s.io', name: 'istio-waypoint' }], ...getOnly }),
    ]);
    assert.ok(c.policy('authz/istio-system/all-waypoints'));
    assert.ok(c.policy('authz/istio-system/all-waypoints', 'other/wp2'));
    assert.equal(c.policy('authz/shop/misplaced'), undefined);
    assert.match(c.warnings.join('\n'), /AuthorizationPolicy shop\/misplaced: warning: spec\.targetRefs\[0\]: a GatewayClass target applies only to istio-waypoint, from the root namespace istio-system; nothing enforces this one/);
  });

  it('a policy with targetRefs never reaches the ztunnels', () => {
    const c = compile([...baseMesh(), authorizationPolicy('svc', { targetRefs: [{ kind: 'Service', group: '', name: 'web' }], ...getOnly })]);
    assert.equal(c.views.authorizations.has('authz/shop/svc'), false);
  });
});

describe('sidecar compatibility: selector policies of workloads a waypoint serves', () => {
  const ordersPolicy = authorizationPolicy('orders-policy', {
    selector: { matchLabels: { app: 'orders' } }, action: 'ALLOW',
    rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/web'] } }], to: [{ operation: { methods: ['GET'], paths: ['/api/*'] } }], when: [{ key: 'request.headers[x-user]', values: ['jason'] }] }],
  });

  it('the waypoint enforces the whole policy for the services of the selected workloads; the ztunnel exempts that waypoint only', () => {
    const c = compile([...baseMesh(), ordersPolicy]);
    assert.deepEqual(c.policy('authz/shop/orders-policy'), {
      type: 'authz', policy: 'shop/orders-policy', action: 'ALLOW',
      scope: { kind: 'workloads', selector: { app: 'orders' }, namespace: 'shop', services: ['shop/orders'], workloads: ['shop/orders-1'] },
      rules: [{ from: [{ principals: ['cluster.local/ns/shop/sa/web'] }], to: [{ methods: ['GET'], paths: ['/api/*'] }], when: [{ key: 'request.headers[x-user]', values: ['jason'] }] }],
      binding: 'selector app=orders in namespace shop (sidecar compatibility: enforced whole by the waypoint)',
    });
    const z = c.views.authorizations.get('authz/shop/orders-policy')!;
    assert.ok(z.type === 'authz');
    assert.deepEqual(z.rules, [], 'still reduced to L4 for every other peer');
    assert.deepEqual(z.waypointEnforced, [WP_ID]);
    assert.equal(c.warnings.length, 1);
    assert.match(c.warnings[0]!, /rules\[0\] \(methods, paths, when request\.headers\[x-user\]\) uses HTTP attributes, which the ztunnel cannot check at L4: waypoint shop\/waypoint enforces this whole policy for requests to shop\/orders, with the caller's identity .* checked at L4 by the ztunnel, which leaves that ALLOW rule out: such connections are DENIED unless another ALLOW policy admits them$/);
  });

  it('a namespace-wide policy (no selector) covers every served workload of its namespace; workloads behind no waypoint get nothing', () => {
    const c = compile([...baseMesh(), authorizationPolicy('ns-wide', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['evil'] } }] }] }),
      authorizationPolicy('elsewhere', { selector: { matchLabels: { app: 'ext' } }, ...getOnly }, 'other')]);
    const p = c.policy('authz/shop/ns-wide');
    assert.deepEqual(p?.type === 'authz' && p.scope, { kind: 'workloads', selector: {}, namespace: 'shop', services: ['shop/orders', 'shop/reviews', 'shop/web'], workloads: ['shop/orders-1', 'shop/reviews-v1', 'shop/reviews-v2', 'shop/web-1'] });
    assert.equal(c.policy('authz/other/elsewhere'), undefined);
    const z = c.views.authorizations.get('authz/other/elsewhere')!;
    assert.equal(z.type === 'authz' && z.waypointEnforced, undefined);
  });

  it('strait.selectorPolicies: istio in the mesh config restores Istio\'s behaviour: the ztunnel alone, L7 rules dropped, and the warning says so', () => {
    const c = compile([...baseMesh(), ordersPolicy, meshConfig('strait:\n  selectorPolicies: istio\n')]);
    assert.equal(c.policy('authz/shop/orders-policy'), undefined);
    const z = c.views.authorizations.get('authz/shop/orders-policy')!;
    assert.equal(z.type === 'authz' && z.waypointEnforced, undefined);
    assert.deepEqual(c.views.l7.mesh, { source: 'istio-system/istio', selectorPolicies: 'istio' });
    assert.match(c.warnings.join('\n'), /this policy allows nothing: every connection to the workloads labelled app=orders in namespace shop is DENIED unless another ALLOW policy admits it\. To enforce the HTTP attributes, attach the policy by targetRefs to a waypoint serving the workloads' service \(the mesh config sets strait\.selectorPolicies: istio/);
  });

  it('a mesh config outside the root namespace is not read, and says so', () => {
    const c = compile([...baseMesh(), ordersPolicy, meshConfig('strait:\n  selectorPolicies: istio\n', 'shop')]);
    assert.ok(c.policy('authz/shop/orders-policy'), 'the default (waypoint) still applies');
    assert.match(c.warnings.join('\n'), /ConfigMap shop\/istio: warning: not read: the mesh config is read from the ConfigMap istio in the root namespace istio-system, not shop; this ConfigMap is ignored/);
  });
});
