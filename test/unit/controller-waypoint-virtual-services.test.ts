// Istio VirtualServices compiled into waypoint route tables with Istio's semantics, including the product's own
// examples (examples/l7) exactly as Istio users expect them to behave.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { RouteAction } from '../../src/common/xds/waypoint-resources.js';
import { baseMesh, compile, destinationRule, ruleNames, virtualService } from '../helpers/waypoint-mesh.js';

const forward = (a: RouteAction) => {
  assert.equal(a.kind, 'forward');
  return a as Extract<RouteAction, { kind: 'forward' }>;
};
const DEFAULT_RETRY = { retries: 2, retryOn: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'] };
const reviewsSubsets = destinationRule('reviews', { host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] });

describe('VirtualService hosts and precedence', () => {
  it('a short host names a Service of the VirtualService\'s namespace; "name.namespace" is taken as written and warned about', () => {
    const c = compile([...baseMesh(),
      virtualService('short', { hosts: ['web'], http: [{ route: [{ destination: { host: 'web' } }] }] }),
      virtualService('fqdn', { hosts: ['api.shop.svc.cluster.local'], http: [{ route: [{ destination: { host: 'api' } }] }] }, { namespace: 'other' }),
      virtualService('dotted', { hosts: ['orders.shop'], http: [{ route: [{ destination: { host: 'orders' } }] }] }),
    ]);
    assert.deepEqual(c.routes('shop/web').origin, { kind: 'VirtualService', objects: ['shop/short'] });
    assert.deepEqual(c.routes('shop/api').origin, { kind: 'VirtualService', objects: ['other/fqdn'] });
    // "api" in namespace other is api.other.svc.cluster.local, which does not exist: 503 NC for that destination.
    assert.deepEqual(c.routes('shop/api').rules[0]!.action, { kind: 'fail', status: 503, flag: 'NC', reason: 'destination host "api" (api.other.svc.cluster.local) names no Service in the mesh' });
    assert.deepEqual(c.routes('shop/orders').origin, { kind: 'default', objects: [] });
    assert.ok(c.warnings.includes('mesh.yaml doc 17 VirtualService shop/dotted: warning: spec.hosts[0]: "orders.shop" (orders.shop) names no Service in the mesh; "orders.shop" has a dot, so Istio (and Strait) take it as a full name: write "orders" (in the object\'s namespace) or "orders.shop.svc.cluster.local"'), c.warnings.join('\n'));
  });

  it('one VirtualService per host: an exact host wins over a wildcard, then the oldest; the others are shadowed with why', () => {
    const vs = (name: string, host: string, ts: string) => virtualService(name, { hosts: [host], http: [{ route: [{ destination: { host: 'web.shop.svc.cluster.local' } }] }] }, { creationTimestamp: ts });
    const c = compile([...baseMesh(),
      vs('wild', '*.shop.svc.cluster.local', '2020-01-01T00:00:00Z'),
      vs('newer', 'web', '2024-01-01T00:00:00Z'),
      vs('older', 'web.shop.svc.cluster.local', '2023-01-01T00:00:00Z'),
    ]);
    const r = c.routes('shop/web');
    assert.deepEqual(r.origin.objects, ['shop/older']);
    assert.deepEqual(r.origin.shadowed?.map((x) => x.object), ['shop/newer', 'shop/wild']);
    // The wildcard still routes the services no exact VirtualService names.
    assert.deepEqual(c.routes('shop/api').origin.objects, ['shop/wild']);
    assert.match(c.warnings.join('\n'), /VirtualService shop\/newer: warning: spec\.hosts: shadowed for Service shop\/web: VirtualService shop\/older also routes shop\/web and wins \(it is older\)/);
  });

  it('a VirtualService whose gateways leave out "mesh" does not apply to mesh traffic', () => {
    const c = compile([...baseMesh(), virtualService('ingress-only', { hosts: ['web'], gateways: ['istio-system/public'], http: [{ route: [{ destination: { host: 'web' } }] }] })]);
    assert.equal(c.routes('shop/web').origin.kind, 'default');
    assert.deepEqual(c.warnings, ['mesh.yaml doc 15 VirtualService shop/ingress-only: warning: spec.gateways: applies only to the gateways istio-system/public, not to mesh traffic, and Strait has no ingress gateways; add "mesh" to spec.gateways to have waypoints apply it']);
  });
});

describe('VirtualService matches', () => {
  it('each match is one rule (OR), kept in order; uri, ignoreUriCase, headers (presence, withoutHeaders), method, authority, query params, port', () => {
    const c = compile([...baseMesh(), virtualService('m', { hosts: ['web'], http: [
      { match: [
        { uri: { prefix: '/api' }, ignoreUriCase: true, headers: { 'X-Debug': {}, 'x-user': { regex: 'j.*' } }, withoutHeaders: { 'x-skip': { exact: '1' } } },
        { uri: { regex: '/v[0-9]+' }, ignoreUriCase: true, method: { exact: 'POST' }, authority: { prefix: 'web' }, queryParams: { q: { exact: 'x' } }, port: 80 },
      ], route: [{ destination: { host: 'web' } }] },
      { route: [{ destination: { host: 'web' } }] },
    ] })]);
    const r = c.routes('shop/web');
    assert.deepEqual(ruleNames(r), ['VirtualService/shop/m/http[0]/match[0]', 'VirtualService/shop/m/http[0]/match[1]', 'VirtualService/shop/m/http[1]']);
    assert.deepEqual(r.rules[0]!.match, {
      path: { type: 'prefix', value: '/api', ignoreCase: true },
      headers: [{ name: 'x-debug', type: 'present' }, { name: 'x-user', type: 'regex', value: 'j.*' }, { name: 'x-skip', type: 'exact', value: '1', invert: true }],
    });
    // Istio ignores case only for exact and prefix URI matches.
    assert.deepEqual(r.rules[1]!.match, {
      path: { type: 'regex', value: '/v[0-9]+' }, method: { type: 'exact', value: 'POST' }, authority: { type: 'prefix', value: 'web' },
      queryParams: [{ name: 'q', type: 'exact', value: 'x' }], port: 80,
    });
    assert.deepEqual(r.rules[2]!.match, {});
  });

  it('a match on sourceLabels, sourceNamespace or gateways is left out (a waypoint cannot check it), with a warning', () => {
    const c = compile([...baseMesh(), virtualService('src', { hosts: ['web'], http: [
      { match: [{ sourceLabels: { app: 'canary' } }, { headers: { 'x-canary': { exact: 'true' } } }], route: [{ destination: { host: 'api' } }] },
      { route: [{ destination: { host: 'web' } }] },
    ] })]);
    assert.deepEqual(ruleNames(c.routes('shop/web')), ['VirtualService/shop/src/http[0]/match[1]', 'VirtualService/shop/src/http[1]']);
    assert.match(c.warnings.join('\n'), /spec\.http\[0\]\.match\[0\]: uses sourceLabels, which a waypoint cannot check .* this match is left out/);
  });
});

describe('VirtualService actions', () => {
  it('a single destination takes everything whatever its weight; several split by weight; subsets must be defined (else 503 NC)', () => {
    const c = compile([...baseMesh(), reviewsSubsets, virtualService('split', { hosts: ['reviews'], http: [
      { match: [{ uri: { exact: '/one' } }], route: [{ destination: { host: 'reviews', subset: 'v1' }, weight: 30 }] },
      { route: [{ destination: { host: 'reviews', subset: 'v1' }, weight: 75 }, { destination: { host: 'reviews', subset: 'v3' }, weight: 25 }] },
    ] })]);
    const [one, split] = c.routes('shop/reviews').rules;
    assert.deepEqual(forward(one!.action).backends, [{ service: 'shop/reviews', weight: 1, port: 9080, subset: 'v1' }]);
    assert.deepEqual(forward(split!.action).backends, [
      { service: 'shop/reviews', weight: 75, port: 9080, subset: 'v1' },
      { service: 'shop/reviews', weight: 25, port: 9080, subset: 'v3', fail: { status: 503, flag: 'NC', reason: 'subset v3 of shop/reviews is not defined by its DestinationRule (subsets: v1, v2)' } },
    ]);
  });

  it('retries: absent → Istio\'s default; attempts 0 → none; status codes in retryOn; perTryTimeout and backoff', () => {
    const c = compile([...baseMesh(), virtualService('r', { hosts: ['web'], http: [
      { match: [{ uri: { prefix: '/a' } }], retries: { attempts: 4, perTryTimeout: '250ms', retryOn: '503,5xx, reset', backoff: '40ms' }, route: [{ destination: { host: 'web' } }] },
      { match: [{ uri: { prefix: '/b' } }], retries: { attempts: 0, perTryTimeout: '1s' }, route: [{ destination: { host: 'web' } }] },
      { match: [{ uri: { prefix: '/c' } }], retries: { attempts: 1 }, route: [{ destination: { host: 'web' } }] },
      { route: [{ destination: { host: 'web' } }] },
    ] })]);
    const [a, b, cc, d] = c.routes('shop/web').rules.map((r) => forward(r.action));
    assert.deepEqual(a!.retry, { retries: 4, retryOn: ['5xx', 'reset', 'retriable-status-codes'], retriableStatusCodes: [503], backoffBaseMs: 40 });
    assert.equal(a!.perTryTimeoutMs, 250);
    assert.equal(b!.retry, undefined);
    assert.equal(b!.perTryTimeoutMs, undefined, 'no retry policy, no per-try timeout (Istio drops the whole policy)');
    assert.deepEqual(cc!.retry, { retries: 1, retryOn: DEFAULT_RETRY.retryOn });
    assert.deepEqual(d!.retry, DEFAULT_RETRY);
  });

  it('a gRPC fault abort (grpcStatus by name) compiles to its code; a name gRPC does not define is refused', () => {
    const c = compile([...baseMesh(), virtualService('g', { hosts: ['web'], http: [{ fault: { abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 50 } } }, route: [{ destination: { host: 'web' } }] }] })]);
    assert.deepEqual(forward(c.routes('shop/web').rules[0]!.action).fault, { abort: { percentage: 50, grpcStatus: 14 } });
    assert.throws(() => compile([...baseMesh(), virtualService('g', { hosts: ['web'], http: [{ fault: { abort: { grpcStatus: 'NOPE' } }, route: [{ destination: { host: 'web' } }] }] })]),
      (err: Error) => /"NOPE" is not a gRPC status name \(one of OK, CANCELLED/.test(err.message) && !/httpStatus: required/.test(err.message));
  });

  it('timeout, faults (percentage 100 when absent), headers, rewrite (prefix when matched by prefix) and mirrors (100 % when absent)', () => {
    const c = compile([...baseMesh(), virtualService('x', { hosts: ['web'], http: [
      {
        match: [{ uri: { prefix: '/old' } }],
        rewrite: { uri: '/new', authority: 'web.internal' },
        timeout: '3s',
        fault: { delay: { fixedDelay: '1.5s' }, abort: { httpStatus: 503, percentage: { value: 12.5 } } },
        headers: { request: { set: { 'X-Env': 'prod' }, remove: ['X-Debug'] }, response: { add: { 'x-served-by': 'waypoint' } } },
        mirror: { host: 'api' },
        route: [{ destination: { host: 'web' }, headers: { request: { set: { 'x-backend': 'web' } } } }],
      },
      { match: [{ uri: { exact: '/exact' } }], rewrite: { uri: '/e' }, timeout: '0s', mirrors: [{ destination: { host: 'api' }, percentage: { value: 5 } }, { destination: { host: 'ghost' } }], route: [{ destination: { host: 'web' } }] },
    ] })]);
    const [p, e] = c.routes('shop/web').rules.map((r) => forward(r.action));
    assert.deepEqual(p, {
      kind: 'forward',
      backends: [{ service: 'shop/web', weight: 1, port: 80, requestHeaders: { set: [['x-backend', 'web']] } }],
      requestHeaders: { set: [['x-env', 'prod']], remove: ['x-debug'] },
      responseHeaders: { add: [['x-served-by', 'waypoint']] },
      rewrite: { prefix: '/new', authority: 'web.internal' },
      mirrors: [{ backend: { service: 'shop/api', port: 80 }, percentage: 100 }],
      timeoutMs: 3000,
      retry: DEFAULT_RETRY,
      fault: { delay: { percentage: 100, delayMs: 1500 }, abort: { percentage: 12.5, httpStatus: 503 } },
    });
    assert.deepEqual(e!.rewrite, { fullPath: '/e' });
    assert.equal(e!.timeoutMs, undefined, '"0s" disables the timeout');
    assert.deepEqual(e!.mirrors, [{ backend: { service: 'shop/api', port: 80 }, percentage: 5 }]);
    assert.match(c.warnings.join('\n'), /spec\.http\[1\]\.mirrors\[1\]\.destination: destination host "ghost" \(ghost\.shop\.svc\.cluster\.local\) names no Service in the mesh; this mirror is left out/);
  });

  it('a redirect answers 301 by default, with authority, scheme and port', () => {
    const c = compile([...baseMesh(), virtualService('rd', { hosts: ['web'], http: [
      { match: [{ uri: { exact: '/a' } }], redirect: { uri: '/b', authority: 'new.example.com' } },
      { redirect: { uri: '/c', redirectCode: 308, scheme: 'https', port: 8443 } },
    ] })]);
    assert.deepEqual(c.routes('shop/web').rules.map((r) => r.action), [
      { kind: 'redirect', redirect: { statusCode: 301, host: 'new.example.com', fullPath: '/b' } },
      { kind: 'redirect', redirect: { statusCode: 308, scheme: 'https', port: 8443, fullPath: '/c' } },
    ]);
  });

  it('a destination port selects that port; a service with one port needs none; several ports and none: the request\'s port', () => {
    const c = compile([...baseMesh(), virtualService('p', { hosts: ['web'], http: [
      { match: [{ uri: { exact: '/db' } }], route: [{ destination: { host: 'db', port: { number: 8080 } } }] },
      { match: [{ uri: { exact: '/db-any' } }], route: [{ destination: { host: 'db' } }] },
      { match: [{ uri: { exact: '/db-bad' } }], route: [{ destination: { host: 'db', port: { number: 9 } } }] },
      { route: [{ destination: { host: 'reviews' } }] },
    ] })]);
    const actions = c.routes('shop/web').rules.map((r) => r.action);
    assert.deepEqual(forward(actions[0]!).backends, [{ service: 'shop/db', weight: 1, port: 8080 }]);
    assert.deepEqual(forward(actions[1]!).backends, [{ service: 'shop/db', weight: 1 }]);
    assert.deepEqual(actions[2], { kind: 'fail', status: 503, flag: 'NC', reason: 'Service shop/db has no port 9 (ports: 5432, 8080)' });
    assert.deepEqual(forward(actions[3]!).backends, [{ service: 'shop/reviews', weight: 1, port: 9080 }]);
  });
});
