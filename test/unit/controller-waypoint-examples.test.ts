// The product's L7 examples (examples/l7, issue 10) compile exactly as Istio users expect them to behave.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { validatePaths } from '../../src/common/model/parse.js';
import { formatProblem, type LoadedObject } from '../../src/common/model/types.js';
import type { RouteAction } from '../../src/common/xds/waypoint-resources.js';
import { enforcementWarnings } from '../../src/controller/enforcement.js';
import { computeViews, type MeshViews } from '../../src/controller/views.js';
import { OPTS } from '../helpers/waypoint-mesh.js';

const DIR = fileURLToPath(new URL('../../../examples/l7/', import.meta.url));
const DEFAULT_RETRY = { retries: 2, retryOn: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'] };
const fwd = (a: RouteAction | undefined) => {
  assert.equal(a?.kind, 'forward');
  return a as Extract<RouteAction, { kind: 'forward' }>;
};

describe('examples/l7', () => {
  let views: MeshViews;
  let objects: LoadedObject[];
  before(async () => {
    const r = await validatePaths([DIR]);
    assert.deepEqual(r.problems.map(formatProblem), [], 'the examples load without problems');
    objects = r.objects;
    views = computeViews(objects.map((o) => o.object), OPTS);
  });
  const dflt = () => views.waypoints.get('default/waypoint')!;
  const prod = () => views.waypoints.get('production/waypoint')!;

  it('VirtualService api: x-canary: true → v2; everything else 90 % v1, 10 % v2', () => {
    const r = dflt().routes.get('default/api')!;
    assert.deepEqual(r.origin, { kind: 'VirtualService', objects: ['default/api'] });
    assert.deepEqual(r.rules, [
      { name: 'VirtualService/default/api/http[0]', match: { headers: [{ name: 'x-canary', type: 'exact', value: 'true' }] },
        action: { kind: 'forward', backends: [{ service: 'default/api', weight: 1, port: 80, subset: 'v2' }], retry: DEFAULT_RETRY } },
      { name: 'VirtualService/default/api/http[1]', match: {},
        action: { kind: 'forward', backends: [{ service: 'default/api', weight: 90, port: 80, subset: 'v1' }, { service: 'default/api', weight: 10, port: 80, subset: 'v2' }], retry: DEFAULT_RETRY } },
    ]);
    assert.deepEqual(dflt().policies.get('backend/default/api'), {
      type: 'backend', service: 'default/api', origin: 'default/api', policy: {},
      subsets: { v1: { labels: { version: 'v1' }, policy: {} }, v2: { labels: { version: 'v2' }, policy: {} } },
    });
  });

  it('VirtualService reviews-route: end-user: jason → v2; others 90 / 10', () => {
    const r = dflt().routes.get('default/reviews')!;
    assert.deepEqual(r.rules.map((x) => x.match), [{ headers: [{ name: 'end-user', type: 'exact', value: 'jason' }] }, {}]);
    assert.deepEqual(r.rules.map((x) => fwd(x.action).backends.map((b) => [b.subset, b.weight])), [[['v2', 1]], [['v1', 90], ['v2', 10]]]);
  });

  it('VirtualService payment-service: 10 s timeout, 3 retries of 3 s on gateway-error, connect-failure, retriable-4xx', () => {
    const a = fwd(prod().routes.get('production/payment-service')!.rules[0]!.action);
    assert.equal(a.timeoutMs, 10_000);
    assert.equal(a.perTryTimeoutMs, 3000);
    assert.deepEqual(a.retry, { retries: 3, retryOn: ['gateway-error', 'connect-failure', 'retriable-4xx'] });
  });

  it('DestinationRule orders-circuit-breaker: outlier detection and connection pool, as written', () => {
    assert.deepEqual(dflt().policies.get('backend/default/orders'), {
      type: 'backend', service: 'default/orders', origin: 'default/orders-circuit-breaker',
      policy: {
        connectionPool: { maxPendingRequests: 100, maxRequests: 1000 },
        outlierDetection: { consecutive5xxErrors: 5, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 50 },
      },
      subsets: {},
    });
  });

  it('AuthorizationPolicies orders-policy and payment-auth: enforced whole by the waypoint with the caller\'s identity; the ztunnels exempt that waypoint', () => {
    assert.deepEqual(dflt().policies.get('authz/default/orders-policy'), {
      type: 'authz', policy: 'default/orders-policy', action: 'ALLOW',
      scope: { kind: 'workloads', selector: { app: 'orders' }, namespace: 'default', services: ['default/orders'], workloads: ['default/orders-1'] },
      rules: [{ from: [{ principals: ['cluster.local/ns/default/sa/frontend'] }], to: [{ methods: ['GET', 'POST'], paths: ['/api/orders*'] }] }],
      binding: 'selector app=orders in namespace default (sidecar compatibility: enforced whole by the waypoint)',
    });
    const pay = prod().policies.get('authz/production/payment-auth');
    assert.deepEqual(pay?.type === 'authz' && pay.rules, [{ from: [{ principals: ['cluster.local/ns/production/sa/order-service'] }], to: [{ methods: ['POST'], paths: ['/process-payment'] }] }]);
    const z = views.authorizations.get('authz/default/orders-policy')!;
    assert.ok(z.type === 'authz');
    assert.deepEqual(z.rules, [], 'the ztunnel keeps Istio\'s L4 reduction for everyone else');
    assert.deepEqual(z.waypointEnforced, ['spiffe://cluster.local/ns/default/sa/waypoint']);
    const zp = views.authorizations.get('authz/production/payment-auth')!;
    assert.deepEqual(zp.type === 'authz' && zp.waypointEnforced, ['spiffe://cluster.local/ns/production/sa/waypoint']);
  });

  it('Telemetry tracing: provider jaeger from the mesh config, 10 %, sent to the collector\'s pod (it has no cluster IP)', () => {
    const t = { type: 'tracing', origin: 'istio-system/tracing', origins: ['istio-system/tracing'], samplingPercentage: 10,
      provider: { name: 'jaeger', kind: 'zipkin', service: 'istio-system/jaeger-collector', host: '127.0.11.20', port: 9411, address: 'endpoint', path: '/api/v2/spans' } };
    assert.deepEqual(dflt().policies.get('tracing/istio-system/tracing'), t);
    assert.deepEqual(prod().policies.get('tracing/istio-system/tracing'), t);
  });

  it('PeerAuthentication default is STRICT mesh-wide and in production', () => {
    const root = views.authorizations.get('peerauthn/istio-system/default')!;
    const production = views.authorizations.get('peerauthn/production/default')!;
    assert.deepEqual([root.type === 'peerauthn' && root.mode, root.scope], ['STRICT', 'global']);
    assert.deepEqual([production.type === 'peerauthn' && production.mode, production.scope], ['STRICT', 'namespace']);
  });

  it('warns only about what users should know: the selector policies are enforced by the waypoints, and bypassing them is denied at L4', () => {
    const lines = enforcementWarnings(objects, views, OPTS).map(formatProblem);
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.match(lines[0]!, /AuthorizationPolicy default\/orders-policy: warning: spec\.rules: rules\[0\] \(methods, paths\) uses HTTP attributes, which the ztunnel cannot check at L4: waypoint default\/waypoint enforces this whole policy for requests to default\/orders, with the caller's identity/);
    assert.match(lines[1]!, /AuthorizationPolicy production\/payment-auth: warning: .*waypoint production\/waypoint enforces this whole policy for requests to production\/payment-service/);
    assert.deepEqual(views.l7.mesh, { source: 'istio-system/istio', selectorPolicies: 'waypoint' });
  });
});
