// Gateway API HTTPRoutes attached to Services (GAMMA), compiled into the route tables a waypoint receives: matches,
// the spec's precedence, filters, backends, retries, and the route status shown in /debug/configz.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { RouteAction } from '../../src/common/xds/waypoint-resources.js';
import { baseMesh, compile, httpRoute, ruleNames, svcParent, virtualService } from '../helpers/waypoint-mesh.js';

const web = (port = 80) => ({ name: 'web', port });
const forward = (a: RouteAction) => {
  assert.equal(a.kind, 'forward');
  return a as Extract<RouteAction, { kind: 'forward' }>;
};

describe('HTTPRoute precedence (Gateway API HTTPRouteRule.matches)', () => {
  it('orders every (rule, match) of every route attached to a service: Exact, longest prefix, method, headers, query params', () => {
    const rules = (...ms: unknown[]) => ms.map((m) => ({ matches: [m], backendRefs: [web()] }));
    const c = compile([...baseMesh(),
      httpRoute('a', { parentRefs: [svcParent('web')], rules: rules(
        { path: { type: 'PathPrefix', value: '/' } },
        { path: { type: 'PathPrefix', value: '/api' } },
        { path: { type: 'PathPrefix', value: '/api' }, queryParams: [{ name: 'q', value: '1' }] },
        { path: { type: 'RegularExpression', value: '/api/v[0-9]+/.*' } },
      ) }, { creationTimestamp: '2024-01-01T00:00:00Z' }),
      httpRoute('b', { parentRefs: [svcParent('web')], rules: rules(
        { path: { type: 'PathPrefix', value: '/api' }, headers: [{ name: 'X-A', value: '1' }, { name: 'x-b', value: '2' }] },
        { path: { type: 'PathPrefix', value: '/api' }, headers: [{ name: 'x-a', value: '1' }] },
        { path: { type: 'PathPrefix', value: '/api' }, method: 'GET' },
        { path: { type: 'PathPrefix', value: '/api/v2' } },
        { path: { type: 'Exact', value: '/login' } },
      ) }, { creationTimestamp: '2024-02-01T00:00:00Z' }),
    ]);
    assert.deepEqual(ruleNames(c.routes('shop/web')), [
      'HTTPRoute/shop/b/rules[4]/matches[0]', // Exact
      'HTTPRoute/shop/b/rules[3]/matches[0]', // the longest prefix
      'HTTPRoute/shop/b/rules[2]/matches[0]', // same prefix, with a method
      'HTTPRoute/shop/b/rules[0]/matches[0]', // two header matches
      'HTTPRoute/shop/b/rules[1]/matches[0]', // one header match
      'HTTPRoute/shop/a/rules[2]/matches[0]', // one query param match
      'HTTPRoute/shop/a/rules[1]/matches[0]', // plain /api: route a is older than b, but b's ties with a are none here
      'HTTPRoute/shop/a/rules[0]/matches[0]', // "/"
      'HTTPRoute/shop/a/rules[3]/matches[0]', // RegularExpression last, as Istio orders it
    ]);
    assert.deepEqual(c.routes('shop/web').origin, { kind: 'HTTPRoute', objects: ['shop/b', 'shop/a'] });
  });

  it('measures a PathPrefix without its trailing "/": "/api/" ties with "/api" and the header match decides', () => {
    const c = compile([...baseMesh(),
      httpRoute('t', { parentRefs: [svcParent('web')], rules: [
        { matches: [{ path: { type: 'PathPrefix', value: '/api/' } }], backendRefs: [web()] },
        { matches: [{ path: { type: 'PathPrefix', value: '/api' }, headers: [{ name: 'x-a', value: '1' }] }], backendRefs: [web()] },
      ] }),
    ]);
    assert.deepEqual(ruleNames(c.routes('shop/web')), ['HTTPRoute/shop/t/rules[1]/matches[0]', 'HTTPRoute/shop/t/rules[0]/matches[0]']);
  });

  it('breaks ties by the oldest route, then "namespace/name", then rule order, then match order', () => {
    const same = { matches: [{ path: { type: 'PathPrefix', value: '/x' } }, { path: { type: 'PathPrefix', value: '/x' } }], backendRefs: [web()] };
    const c = compile([...baseMesh(),
      httpRoute('zeta', { parentRefs: [svcParent('web')], rules: [same] }, { creationTimestamp: '2023-06-01T00:00:00Z' }),
      httpRoute('beta', { parentRefs: [svcParent('web')], rules: [same, same] }, { creationTimestamp: '2024-06-01T00:00:00Z' }),
      httpRoute('alpha', { parentRefs: [svcParent('web')], rules: [same] }, { creationTimestamp: '2024-06-01T00:00:00Z' }),
    ]);
    assert.deepEqual(ruleNames(c.routes('shop/web')), [
      'HTTPRoute/shop/zeta/rules[0]/matches[0]', 'HTTPRoute/shop/zeta/rules[0]/matches[1]',
      'HTTPRoute/shop/alpha/rules[0]/matches[0]', 'HTTPRoute/shop/alpha/rules[0]/matches[1]',
      'HTTPRoute/shop/beta/rules[0]/matches[0]', 'HTTPRoute/shop/beta/rules[0]/matches[1]',
      'HTTPRoute/shop/beta/rules[1]/matches[0]', 'HTTPRoute/shop/beta/rules[1]/matches[1]',
    ]);
  });
});

describe('HTTPRoute matches', () => {
  it('compiles path types (PathPrefix by segment, a trailing "/" ignored), method, headers (lower case, first of a name) and query params', () => {
    const c = compile([...baseMesh(), httpRoute('m', { parentRefs: [svcParent('web')], rules: [{
      matches: [
        { path: { type: 'PathPrefix', value: '/foo/' }, method: 'POST', headers: [{ name: 'X-User', value: 'jason' }, { name: 'x-user', value: 'other' }, { type: 'RegularExpression', name: 'X-Ver', value: 'v[12]' }], queryParams: [{ name: 'Debug', value: 'on' }] },
        { path: { type: 'Exact', value: '/login' } },
        { path: { type: 'RegularExpression', value: '/items/[0-9]+' } },
        {},
      ],
      backendRefs: [web()],
    }] })]);
    const byName = new Map(c.routes('shop/web').rules.map((r) => [r.name, r.match]));
    assert.deepEqual(byName.get('HTTPRoute/shop/m/rules[0]/matches[0]'), {
      path: { type: 'prefix', value: '/foo', segments: true },
      method: { type: 'exact', value: 'POST' },
      headers: [{ name: 'x-user', type: 'exact', value: 'jason' }, { name: 'x-ver', type: 'regex', value: 'v[12]' }],
      queryParams: [{ name: 'Debug', type: 'exact', value: 'on' }],
    });
    assert.deepEqual(byName.get('HTTPRoute/shop/m/rules[0]/matches[1]'), { path: { type: 'exact', value: '/login' } });
    assert.deepEqual(byName.get('HTTPRoute/shop/m/rules[0]/matches[2]'), { path: { type: 'regex', value: '/items/[0-9]+' } });
    // An empty match is the default PathPrefix "/".
    assert.deepEqual(byName.get('HTTPRoute/shop/m/rules[0]/matches[3]'), { path: { type: 'prefix', value: '/', segments: true } });
  });

  it('a rule without matches gets the default PathPrefix "/"', () => {
    const c = compile([...baseMesh(), httpRoute('all', { parentRefs: [svcParent('web')], rules: [{ backendRefs: [web()] }] })]);
    assert.deepEqual(c.routes('shop/web').rules[0]!.match, { path: { type: 'prefix', value: '/', segments: true } });
  });

  it('a parentRef port restricts the rules to that port; the other ports keep the default route to the service itself', () => {
    const c = compile([...baseMesh(), httpRoute('pg', { parentRefs: [svcParent('db', 8080)], rules: [{ backendRefs: [{ name: 'db', port: 8080 }] }] })]);
    const r = c.routes('shop/db');
    assert.deepEqual(r.rules.map((x) => [x.name, x.match.port]), [['HTTPRoute/shop/pg/rules[0]/matches[0]', 8080], ['Service/shop/db/port[5432]', 5432]]);
    assert.deepEqual(r.rules[1]!.action, { kind: 'forward', backends: [{ service: 'shop/db', weight: 1 }], retry: { retries: 2, retryOn: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'] } });
  });

  it('a sectionName names the service port; two ports give one rule per port', () => {
    const c = compile([...baseMesh(), httpRoute('two', {
      parentRefs: [{ ...svcParent('db'), sectionName: 'pg' }, svcParent('db', 8080)],
      rules: [{ backendRefs: [{ name: 'db', port: 5432 }] }],
    })]);
    assert.deepEqual(c.routes('shop/db').rules.map((x) => [x.name, x.match.port]), [
      ['HTTPRoute/shop/two/rules[0]/matches[0]/port[5432]', 5432],
      ['HTTPRoute/shop/two/rules[0]/matches[0]/port[8080]', 8080],
    ]);
  });
});

describe('HTTPRoute filters, backends, timeouts and retries', () => {
  it('compiles header modifiers, URLRewrite, RequestMirror (percent or fraction) and per-backend header filters', () => {
    const c = compile([...baseMesh(), httpRoute('f', { parentRefs: [svcParent('web')], rules: [{
      matches: [{ path: { type: 'PathPrefix', value: '/old' } }],
      filters: [
        { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-Env', value: 'prod' }], add: [{ name: 'x-trace', value: '1' }], remove: ['X-Debug'] } },
        { type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [{ name: 'cache-control', value: 'no-store' }] } },
        { type: 'URLRewrite', urlRewrite: { hostname: 'web.internal', path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' } } },
        { type: 'RequestMirror', requestMirror: { backendRef: { name: 'api', port: 80 }, percent: 20 } },
        { type: 'RequestMirror', requestMirror: { backendRef: { name: 'orders', port: 80 }, fraction: { numerator: 1, denominator: 8 } } },
      ],
      backendRefs: [
        { name: 'web', port: 80, weight: 3, filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-backend', value: 'web' }] } }] },
        { name: 'api', port: 80, filters: [{ type: 'ResponseHeaderModifier', responseHeaderModifier: { remove: ['server'] } }] },
      ],
    }] })]);
    const a = forward(c.routes('shop/web').rules[0]!.action);
    assert.deepEqual(a.backends, [
      { service: 'shop/web', weight: 3, port: 80, requestHeaders: { set: [['x-backend', 'web']] } },
      { service: 'shop/api', weight: 1, port: 80, responseHeaders: { remove: ['server'] } },
    ]);
    assert.deepEqual(a.requestHeaders, { set: [['x-env', 'prod']], add: [['x-trace', '1']], remove: ['x-debug'] });
    assert.deepEqual(a.responseHeaders, { set: [['cache-control', 'no-store']] });
    assert.deepEqual(a.rewrite, { prefix: '/new', authority: 'web.internal' });
    assert.deepEqual(a.mirrors, [{ backend: { service: 'shop/api', port: 80 }, percentage: 20 }, { backend: { service: 'shop/orders', port: 80 }, percentage: 12.5 }]);
  });

  it('a RequestRedirect answers without a backend (302 by default) and keeps its response headers', () => {
    const c = compile([...baseMesh(), httpRoute('r', { parentRefs: [svcParent('web')], rules: [
      { filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https', hostname: 'example.com', port: 8443, path: { type: 'ReplaceFullPath', replaceFullPath: '/moved' } } }, { type: 'ResponseHeaderModifier', responseHeaderModifier: { add: [{ name: 'x-why', value: 'moved' }] } }] },
      { matches: [{ path: { type: 'Exact', value: '/perm' } }], filters: [{ type: 'RequestRedirect', requestRedirect: { statusCode: 301 } }] },
    ] })]);
    const [perm, all] = c.routes('shop/web').rules;
    assert.deepEqual(perm!.action, { kind: 'redirect', redirect: { statusCode: 301 } });
    assert.deepEqual(all!.action, { kind: 'redirect', redirect: { statusCode: 302, scheme: 'https', host: 'example.com', port: 8443, fullPath: '/moved' }, responseHeaders: { add: [['x-why', 'moved']] } });
  });

  it('timeouts.request is the whole request, backendRequest one try, "0s" none; retry as Istio converts it, Istio\'s default without one', () => {
    const c = compile([...baseMesh(), httpRoute('t', { parentRefs: [svcParent('web')], rules: [
      { matches: [{ path: { value: '/a' } }], timeouts: { request: '10s', backendRequest: '2s' }, retry: { attempts: 3, codes: [503, 502], backoff: '100ms' }, backendRefs: [web()] },
      { matches: [{ path: { value: '/b' } }], timeouts: { request: '0s' }, retry: { attempts: 0 }, backendRefs: [web()] },
      { matches: [{ path: { value: '/c' } }], retry: {}, backendRefs: [web()] },
      { matches: [{ path: { value: '/d' } }], backendRefs: [web()] },
    ] })]);
    const byPath = new Map(c.routes('shop/web').rules.map((r) => [r.match.path!.value, forward(r.action)]));
    assert.equal(byPath.get('/a')!.timeoutMs, 10_000);
    assert.equal(byPath.get('/a')!.perTryTimeoutMs, 2000);
    assert.deepEqual(byPath.get('/a')!.retry, { retries: 3, retryOn: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'], retriableStatusCodes: [503, 502], backoffBaseMs: 100 });
    assert.equal(byPath.get('/b')!.timeoutMs, undefined);
    assert.equal(byPath.get('/b')!.retry, undefined, 'attempts 0 disables retries');
    assert.deepEqual(byPath.get('/c')!.retry, { retries: 2, retryOn: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled'] });
    assert.deepEqual(byPath.get('/d')!.retry, { retries: 2, retryOn: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'] });
  });

  it('weight 0 gets nothing; no usable weight answers 500', () => {
    const c = compile([...baseMesh(), httpRoute('w', { parentRefs: [svcParent('web')], rules: [
      { matches: [{ path: { value: '/split' } }], backendRefs: [{ name: 'web', port: 80, weight: 0 }, { name: 'api', port: 80, weight: 5 }] },
      { matches: [{ path: { value: '/zero' } }], backendRefs: [{ name: 'web', port: 80, weight: 0 }] },
      { matches: [{ path: { value: '/none' } }] },
    ] })]);
    const byPath = new Map(c.routes('shop/web').rules.map((r) => [r.match.path!.value, r.action]));
    assert.deepEqual(forward(byPath.get('/split')!).backends, [{ service: 'shop/api', weight: 5, port: 80 }]);
    assert.deepEqual(byPath.get('/zero'), { kind: 'fail', status: 500, flag: 'NC', reason: 'every backendRef has weight 0' });
    assert.deepEqual(byPath.get('/none'), { kind: 'fail', status: 500, flag: 'NC', reason: 'the rule has no backendRefs' });
  });

  it('an unusable backend answers 500 for its share and sets ResolvedRefs False with the spec\'s reason', () => {
    const c = compile([...baseMesh(), httpRoute('bad', { parentRefs: [svcParent('web')], rules: [
      { matches: [{ path: { value: '/mixed' } }], backendRefs: [{ name: 'web', port: 80 }, { name: 'ghost', port: 80 }] },
      { matches: [{ path: { value: '/kind' } }], backendRefs: [{ group: 'example.com', kind: 'Bucket', name: 'b' }] },
      { matches: [{ path: { value: '/xns' } }], backendRefs: [{ name: 'ext', namespace: 'other', port: 80 }] },
    ] })]);
    const byPath = new Map(c.routes('shop/web').rules.map((r) => [r.match.path!.value, r.action]));
    assert.deepEqual(forward(byPath.get('/mixed')!).backends, [
      { service: 'shop/web', weight: 1, port: 80 },
      { service: 'shop/ghost', weight: 1, fail: { status: 500, flag: 'NC', reason: 'backendRef Service shop/ghost does not exist' } },
    ]);
    assert.equal(byPath.get('/kind')!.kind, 'fail');
    assert.match((byPath.get('/xns') as { reason: string }).reason, /backendRef Service other\/ext is in another namespace than the route \(shop\); Strait does not read ReferenceGrants/);
    const status = c.views.l7.routeStatus.get('shop/bad')!;
    assert.deepEqual(status.parents[0]!.conditions[0], { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'applied by waypoint shop/waypoint' });
    const refs = status.parents[0]!.conditions[1]!;
    assert.equal(refs.type, 'ResolvedRefs');
    assert.equal(refs.status, 'False');
    assert.equal(refs.reason, 'BackendNotFound');
    assert.match(refs.message, /shop\/ghost does not exist; backendRef example\.com\/Bucket shop\/b: only Services .* are supported as backends; backendRef Service other\/ext is in another namespace/);
    assert.ok(c.warnings.some((w) => w.startsWith('mesh.yaml doc 15 HTTPRoute shop/bad: warning: spec.rules[0].backendRefs[1]: backendRef Service shop/ghost does not exist; the requests its weight would get are answered 500')));
  });
});

describe('HTTPRoute status and parents', () => {
  it('a route with every reference resolved is Accepted and ResolvedRefs per parentRef', () => {
    const c = compile([...baseMesh(), httpRoute('ok', { parentRefs: [svcParent('web', 80)], rules: [{ backendRefs: [web()] }] })]);
    assert.deepEqual(c.views.l7.routeStatus.get('shop/ok'), { parents: [{ parentRef: { group: '', kind: 'Service', name: 'web', port: 80 }, conditions: [
      { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'applied by waypoint shop/waypoint to port 80' },
      { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: 'every reference resolved' },
    ] }] });
    assert.deepEqual(c.warnings, []);
  });

  it('parents that cannot be accepted say why: missing service or port, consumer route, no waypoint, a Gateway', () => {
    const route = (name: string, parentRefs: unknown[], ns = 'shop') => httpRoute(name, { parentRefs, rules: [{ backendRefs: [{ name: ns === 'shop' ? 'web' : 'ext', port: 80 }] }] }, { namespace: ns });
    const c = compile([...baseMesh(),
      route('missing', [svcParent('nope')]),
      route('port', [svcParent('web', 81)]),
      route('consumer', [{ ...svcParent('web'), namespace: 'shop' }], 'other'),
      route('unbound', [svcParent('ext')], 'other'),
      route('gw', [{ name: 'waypoint' }]),
    ]);
    const accepted = (r: string) => c.views.l7.routeStatus.get(r)!.parents[0]!.conditions[0];
    assert.deepEqual(accepted('shop/missing'), { type: 'Accepted', status: 'False', reason: 'NoMatchingParent', message: 'Service shop/nope does not exist' });
    assert.deepEqual(accepted('shop/port'), { type: 'Accepted', status: 'False', reason: 'NoMatchingParent', message: 'Service shop/web has no port 81 (ports: 80)' });
    assert.equal(accepted('other/consumer')!.reason, 'UnsupportedValue');
    assert.match(accepted('other/consumer')!.message, /consumer route, which Strait's waypoints do not support; put the route in namespace shop/);
    assert.match(accepted('other/unbound')!.message, /^Service other\/ext is not bound to a waypoint \(label istio\.io\/use-waypoint on the Service or its namespace\)/);
    assert.equal(accepted('shop/gw')!.reason, 'NotAllowedByListeners');
    // None of them reaches a route table; each gets a warning naming the parentRef, no generic "not enforced" one.
    assert.deepEqual(c.routes('shop/web').origin, { kind: 'default', objects: [] });
    const lines = c.warnings.filter((w) => / HTTPRoute /.test(w));
    assert.equal(lines.length, 5);
    for (const l of lines) assert.match(l, /warning: spec\.parentRefs\[0\]: not accepted \(/);
  });

  it('hostnames are ignored for a route attached to a Service (GAMMA), with a warning', () => {
    const c = compile([...baseMesh(), httpRoute('h', { parentRefs: [svcParent('web')], hostnames: ['web.example.com'], rules: [{ backendRefs: [web()] }] })]);
    assert.deepEqual(c.routes('shop/web').rules[0]!.match, { path: { type: 'prefix', value: '/', segments: true } });
    assert.match(c.warnings.join('\n'), /HTTPRoute shop\/h: warning: spec\.hostnames: ignored: a route attached to a Service applies to every request for that Service/);
  });
});

describe('HTTPRoute and VirtualService for one service', () => {
  it('the HTTPRoute wins and the VirtualService is listed as shadowed, with a warning saying what to do', () => {
    const c = compile([...baseMesh(),
      virtualService('web-vs', { hosts: ['web'], http: [{ route: [{ destination: { host: 'web' } }] }] }),
      httpRoute('web-route', { parentRefs: [svcParent('web')], rules: [{ backendRefs: [web()] }] }),
    ]);
    const r = c.routes('shop/web');
    assert.equal(r.origin.kind, 'HTTPRoute');
    assert.deepEqual(r.origin.objects, ['shop/web-route']);
    assert.equal(r.origin.shadowed?.[0]?.object, 'shop/web-vs');
    assert.match(r.origin.shadowed![0]!.reason, /HTTPRoutes win over VirtualServices/);
    assert.deepEqual(c.views.l7.appliedBy.get('HTTPRoute/shop/web-route'), ['shop/waypoint']);
    assert.equal(c.views.l7.appliedBy.get('VirtualService/shop/web-vs'), undefined);
    assert.deepEqual(c.warnings.filter((w) => / VirtualService /.test(w)).map((w) => w.replace(/: an HTTPRoute.*/, '')), [
      'mesh.yaml doc 15 VirtualService shop/web-vs: warning: spec.hosts: shadowed for Service shop/web',
    ]);
  });
});
