// DestinationRules compiled into the backend policies a waypoint receives, with Istio's defaults and merge rules.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { baseMesh, compile, destinationRule, svcParent, httpRoute, virtualService } from '../helpers/waypoint-mesh.js';

describe('DestinationRule → backend policy', () => {
  it('maps every supported connectionPool field, and loadBalancer (LEAST_CONN is LEAST_REQUEST)', () => {
    const c = compile([...baseMesh(), destinationRule('web', { host: 'web', trafficPolicy: {
      loadBalancer: { simple: 'LEAST_CONN' },
      connectionPool: {
        tcp: { maxConnections: 10, connectTimeout: '250ms' },
        http: { http1MaxPendingRequests: 5, http2MaxRequests: 50, maxRequestsPerConnection: 3, maxRetries: 2, idleTimeout: '30s' },
      },
    } })]);
    assert.deepEqual(c.policy('backend/shop/web'), {
      type: 'backend', service: 'shop/web', origin: 'shop/web', subsets: {},
      policy: {
        loadBalancer: 'LEAST_REQUEST',
        connectionPool: { maxConnections: 10, connectTimeoutMs: 250, maxPendingRequests: 5, maxRequests: 50, maxRequestsPerConnection: 3, maxRetries: 2, idleTimeoutMs: 30_000 },
      },
    });
  });

  it('reads connection limits of 0 as Istio does: unset (no limit), each with a note; idleTimeout is said not to be applied', () => {
    const c = compile([...baseMesh(), destinationRule('web', { host: 'web', trafficPolicy: { connectionPool: { tcp: { maxConnections: 0 }, http: { http1MaxPendingRequests: 0, http2MaxRequests: 0, idleTimeout: '5s' } } } })]);
    const p = c.policy('backend/shop/web');
    assert.ok(p?.type === 'backend');
    assert.deepEqual(p.policy.connectionPool, { idleTimeoutMs: 5000 });
    assert.equal(c.warnings.filter((w) => /0 means unset, as Istio reads it: no limit/.test(w)).length, 3);
    assert.ok(c.warnings.some((w) => /http\.idleTimeout: not applied by Strait's waypoint yet/.test(w)));
  });

  it('reads maxRetries 0 as Istio does: unset, so retries in flight are not limited, with a note saying so', () => {
    const c = compile([...baseMesh(), destinationRule('web', { host: 'web', trafficPolicy: { connectionPool: { http: { maxRetries: 0, http2MaxRequests: 5 } } } })]);
    const p = c.policy('backend/shop/web');
    assert.ok(p?.type === 'backend');
    assert.deepEqual(p.policy.connectionPool, { maxRequests: 5 });
    assert.deepEqual(c.warnings, ['mesh.yaml doc 15 DestinationRule shop/web: warning: spec.trafficPolicy.connectionPool.http.maxRetries: 0 means unset, as Istio reads it: retries in flight are not limited; to turn retries off, set retries.attempts: 0 on the route']);
  });

  it('fills Istio\'s outlier defaults: 5 consecutive 5xx, interval 10 s, base ejection 30 s, 10 % (also for maxEjectionPercent 0)', () => {
    const c = compile([...baseMesh(),
      destinationRule('web', { host: 'web', trafficPolicy: { outlierDetection: { consecutiveGatewayErrors: 3, maxEjectionPercent: 0 } } }),
      destinationRule('api', { host: 'api', trafficPolicy: { outlierDetection: { consecutive5xxErrors: 0, interval: '1s', baseEjectionTime: '2s', maxEjectionPercent: 100 } } }),
    ]);
    const od = (svc: string) => { const p = c.policy(`backend/${svc}`); return p?.type === 'backend' ? p.policy.outlierDetection : undefined; };
    assert.deepEqual(od('shop/web'), { consecutive5xxErrors: 5, consecutiveGatewayErrors: 3, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10 });
    assert.deepEqual(od('shop/api'), { consecutive5xxErrors: 0, intervalMs: 1000, baseEjectionTimeMs: 2000, maxEjectionPercent: 100 });
  });

  it('a subset\'s trafficPolicy replaces each part it sets whole, as Istio merges them', () => {
    const c = compile([...baseMesh(), destinationRule('reviews', { host: 'reviews',
      trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' }, connectionPool: { tcp: { maxConnections: 100 }, http: { http2MaxRequests: 10 } } },
      subsets: [
        { name: 'v1', labels: { version: 'v1' } },
        { name: 'v2', labels: { version: 'v2' }, trafficPolicy: { connectionPool: { http: { http1MaxPendingRequests: 1 } }, outlierDetection: { consecutive5xxErrors: 1 } } },
      ] })]);
    const p = c.policy('backend/shop/reviews');
    assert.ok(p?.type === 'backend');
    assert.deepEqual(p.subsets['v1'], { labels: { version: 'v1' }, policy: { loadBalancer: 'ROUND_ROBIN', connectionPool: { maxConnections: 100, maxRequests: 10 } } });
    // connectionPool of v2 is its own whole (maxConnections and maxRequests are not inherited); loadBalancer is.
    assert.deepEqual(p.subsets['v2'], { labels: { version: 'v2' }, policy: {
      loadBalancer: 'ROUND_ROBIN', connectionPool: { maxPendingRequests: 1 },
      outlierDetection: { consecutive5xxErrors: 1, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10 },
    } });
  });

  it('PASSTHROUGH is not supported and says what is used instead', () => {
    const c = compile([...baseMesh(), destinationRule('web', { host: 'web', trafficPolicy: { loadBalancer: { simple: 'PASSTHROUGH' } } })]);
    assert.deepEqual(c.warnings, ['mesh.yaml doc 15 DestinationRule shop/web: warning: spec.trafficPolicy.loadBalancer.simple: PASSTHROUGH is not supported by Strait (it forwards to the address the caller dialled, and a waypoint routes by service); LEAST_REQUEST is used']);
  });

  it('one DestinationRule per service: exact host before a wildcard, the service\'s namespace first, then the oldest', () => {
    const c = compile([...baseMesh(),
      destinationRule('wild', { host: '*.shop.svc.cluster.local', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } }, { creationTimestamp: '2020-01-01T00:00:00Z' }),
      destinationRule('from-other', { host: 'web.shop.svc.cluster.local', trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } } }, { namespace: 'other', creationTimestamp: '2020-01-01T00:00:00Z' }),
      destinationRule('own', { host: 'web', trafficPolicy: { loadBalancer: { simple: 'LEAST_REQUEST' } } }, { creationTimestamp: '2024-01-01T00:00:00Z' }),
    ]);
    const p = c.policy('backend/shop/web');
    assert.equal(p?.type === 'backend' && p.origin, 'shop/own');
    const q = c.policy('backend/shop/api');
    assert.equal(q?.type === 'backend' && q.origin, 'shop/wild');
    assert.match(c.warnings.join('\n'), /DestinationRule other\/from-other: warning: spec\.host: shadowed for Service shop\/web by DestinationRule shop\/own/);
  });

  it('a waypoint gets the backend policy of every service its routes send to, bound to it or not', () => {
    const c = compile([...baseMesh(),
      destinationRule('ext', { host: 'ext.other.svc.cluster.local', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } }, { namespace: 'other' }),
      virtualService('to-ext', { hosts: ['web'], http: [{ route: [{ destination: { host: 'ext.other.svc.cluster.local' } }] }] }),
      httpRoute('unrelated', { parentRefs: [svcParent('api')], rules: [{ backendRefs: [{ name: 'api', port: 80 }] }] }),
    ]);
    assert.deepEqual(c.policyNames(), ['backend/other/ext']);
    assert.deepEqual(c.views.l7.appliedBy.get('DestinationRule/other/ext'), ['shop/waypoint']);
    assert.deepEqual(c.warnings, []);
  });

  it('a DestinationRule for a service no waypoint reaches is reported as not enforced', () => {
    const c = compile([...baseMesh(), destinationRule('ext', { host: 'ext', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } }, { namespace: 'other' })]);
    assert.equal(c.warnings.length, 1);
    assert.match(c.warnings[0]!, /DestinationRule other\/ext: warning: not enforced: no waypoint serves it/);
  });
});
