import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { authorizeRequest, authzPolicyProblems, compilePathTemplate, policyAppliesTo, type AuthzRequest } from '../../src/waypoint/authz-l7.js';
import type { L7Operation, L7PolicyResource, L7Rule, L7Source } from '../../src/common/xds/waypoint-resources.js';

// ---------- fixtures ----------

type Action = L7PolicyResource['action'];

function policy(name: string, action: Action, rules: L7Rule[], scope: L7PolicyResource['scope'] = { kind: 'waypoint' }): L7PolicyResource {
  return { type: 'authz', policy: name, action, scope, rules, binding: 'targetRefs Gateway shop/waypoint' };
}

function request(over: Partial<Omit<AuthzRequest, 'header'>> & { headers?: Record<string, string> } = {}): AuthzRequest {
  const { headers = {}, ...rest } = over;
  return {
    service: 'shop/orders',
    sourcePrincipal: 'cluster.local/ns/default/sa/frontend',
    sourceIp: '10.0.1.5',
    remoteIp: '10.0.1.5',
    method: 'GET',
    path: '/api/orders/17',
    host: 'orders.shop.svc.cluster.local:8080',
    port: 8080,
    header: (name) => headers[name],
    ...rest,
  };
}

const from = (s: L7Source): L7Rule[] => [{ from: [s] }];
const to = (o: L7Operation): L7Rule[] => [{ to: [o] }];
const when = (key: string, values?: string[], notValues?: string[]): L7Rule[] => [{ when: [{ key, ...(values ? { values } : {}), ...(notValues ? { notValues } : {}) }] }];

/** Whether one ALLOW policy with `rules` lets `r` through. */
function allows(rules: L7Rule[], r: AuthzRequest = request()): boolean {
  return authorizeRequest([policy('shop/p', 'ALLOW', rules)], r).allowed;
}
/** Whether one DENY policy with `rules` denies `r`. */
function denies(rules: L7Rule[], r: AuthzRequest = request()): boolean {
  return !authorizeRequest([policy('shop/p', 'DENY', rules)], r).allowed;
}

// ---------- decision ----------

describe('authorizeRequest: decision order', () => {
  it('allows when no policy applies at all', () => {
    assert.deepEqual(authorizeRequest([], request()), { allowed: true, reason: 'allowed: no ALLOW policy applies', audited: [] });
  });

  it('a matching DENY wins over a matching ALLOW and is named, with Envoy\'s response code details', () => {
    const v = authorizeRequest([policy('shop/allow-all', 'ALLOW', [{}]), policy('shop/no-delete', 'DENY', [{ to: [{ methods: ['POST'] }] }, { to: [{ methods: ['GET'] }] }])], request());
    assert.deepEqual(v, {
      allowed: false, policy: 'shop/no-delete', rule: 1,
      reason: 'RBAC: access denied by DENY policy shop/no-delete (rules[1])',
      details: 'rbac_access_denied_matched_policy[ns[shop]-policy[no-delete]-rule[1]]',
      audited: [],
    });
  });

  it('ALLOW policies present and none matching → denied, naming every ALLOW policy considered', () => {
    const v = authorizeRequest([policy('shop/a', 'ALLOW', to({ methods: ['POST'] })), policy('shop/b', 'ALLOW', to({ paths: ['/admin'] }))], request());
    assert.deepEqual(v, { allowed: false, reason: 'RBAC: access denied: no ALLOW policy matched (shop/a, shop/b)', details: 'rbac_access_denied_matched_policy[none]', audited: [], considered: ['shop/a', 'shop/b'] });
  });

  it('allowed by the first matching ALLOW policy, named with its rule', () => {
    const v = authorizeRequest([policy('shop/a', 'ALLOW', to({ methods: ['POST'] })), policy('shop/b', 'ALLOW', [{ to: [{ methods: ['PUT'] }] }, { to: [{ methods: ['GET'] }] }])], request());
    assert.deepEqual(v, { allowed: true, policy: 'shop/b', rule: 1, reason: 'allowed by ALLOW policy shop/b (rules[1])', audited: [] });
  });

  it('a non-matching DENY does not deny', () => {
    assert.equal(authorizeRequest([policy('shop/d', 'DENY', to({ methods: ['DELETE'] }))], request()).allowed, true);
  });

  it('AUDIT never decides; matching AUDIT policies are listed whatever the outcome', () => {
    const audit = policy('shop/audit', 'AUDIT', to({ paths: ['/api/*'] }));
    const quiet = policy('shop/quiet', 'AUDIT', to({ paths: ['/other'] }));
    assert.deepEqual(authorizeRequest([audit, quiet], request()), { allowed: true, reason: 'allowed: no ALLOW policy applies', audited: ['shop/audit'] });
    const denied = authorizeRequest([audit, policy('shop/d', 'DENY', [{}])], request());
    assert.equal(denied.allowed, false);
    assert.deepEqual(denied.audited, ['shop/audit']);
  });

  it('an ALLOW policy with no rules denies everything; rules: [{}] allows everything', () => {
    assert.equal(allows([]), false);
    assert.equal(allows([{}]), true);
    assert.equal(denies([]), false, 'a DENY policy without rules matches nothing');
    assert.equal(denies([{}]), true);
  });

  it('rules are ORed; within a rule from, to and when are ANDed; sources and operations are ORed', () => {
    const rules: L7Rule[] = [{ from: [{ namespaces: ['other'] }, { namespaces: ['default'] }], to: [{ methods: ['POST'] }, { methods: ['GET'] }], when: [{ key: 'request.headers[x-a]', values: ['1'] }] }];
    assert.equal(allows(rules, request({ headers: { 'x-a': '1' } })), true);
    assert.equal(allows(rules, request()), false, 'when fails');
    assert.equal(allows(rules, request({ method: 'PUT', headers: { 'x-a': '1' } })), false, 'to fails');
    assert.equal(allows([{ to: [{ methods: ['PUT'] }] }, { to: [{ methods: ['GET'] }] }]), true);
  });

  it('fields of one source are ANDed', () => {
    assert.equal(allows(from({ namespaces: ['default'], ipBlocks: ['10.0.0.0/8'] })), true);
    assert.equal(allows(from({ namespaces: ['default'], ipBlocks: ['192.168.0.0/16'] })), false);
  });
});

// ---------- scope ----------

describe('authorizeRequest: which policies apply', () => {
  it('waypoint scope applies to every request; services scope to the listed services only', () => {
    const svc = policy('shop/only-pay', 'ALLOW', [], { kind: 'services', services: ['shop/payment'] });
    assert.equal(authorizeRequest([svc], request({ service: 'shop/orders' })).allowed, true, 'does not apply to orders');
    assert.equal(authorizeRequest([svc], request({ service: 'shop/payment' })).allowed, false);
    assert.equal(authorizeRequest([svc], request({ service: undefined })).allowed, true);
  });

  it('workloads scope: the destination workload in the namespace with the selector labels, else by service', () => {
    const p = policy('shop/orders-policy', 'ALLOW', [], { kind: 'workloads', selector: { app: 'orders' }, namespace: 'shop', services: ['shop/orders'] });
    assert.ok(policyAppliesTo(p, { destinationWorkload: { namespace: 'shop', labels: { app: 'orders', version: 'v1' } } }));
    assert.ok(!policyAppliesTo(p, { destinationWorkload: { namespace: 'other', labels: { app: 'orders' } } }));
    assert.ok(!policyAppliesTo(p, { destinationWorkload: { namespace: 'shop', labels: { app: 'web' } } }));
    assert.ok(!policyAppliesTo(p, { service: 'shop/orders', destinationWorkload: { namespace: 'shop', labels: {} } }), 'a known workload decides, not the service');
    assert.ok(policyAppliesTo(p, { service: 'shop/orders' }), 'no workload chosen yet: by the services the selected workloads serve');
    assert.ok(!policyAppliesTo(p, { service: 'shop/web' }));
    const empty = policy('shop/all', 'ALLOW', [], { kind: 'workloads', selector: {}, namespace: 'shop', services: [] });
    assert.ok(policyAppliesTo(empty, { destinationWorkload: { namespace: 'shop', labels: {} } }));
  });
});

// ---------- the product's examples ----------

describe('authorizeRequest: the product examples', () => {
  const ordersPolicy = policy('shop/orders-policy', 'ALLOW', [{
    from: [{ principals: ['cluster.local/ns/default/sa/frontend'] }],
    to: [{ methods: ['GET', 'POST'], paths: ['/api/orders*'] }],
  }], { kind: 'workloads', selector: { app: 'orders' }, namespace: 'shop', services: ['shop/orders'] });
  const paymentAuth = policy('production/payment-auth', 'ALLOW', [{
    from: [{ principals: ['cluster.local/ns/production/sa/order-service'] }],
    to: [{ methods: ['POST'], paths: ['/process-payment'] }],
  }], { kind: 'workloads', selector: { app: 'payment-service' }, namespace: 'production', services: ['production/payment-service'] });

  it('orders-policy: frontend may GET and POST /api/orders*, nothing else, nobody else', () => {
    assert.equal(authorizeRequest([ordersPolicy], request()).allowed, true);
    assert.equal(authorizeRequest([ordersPolicy], request({ method: 'POST', path: '/api/orders' })).allowed, true);
    assert.equal(authorizeRequest([ordersPolicy], request({ method: 'DELETE' })).allowed, false);
    assert.equal(authorizeRequest([ordersPolicy], request({ path: '/api/users' })).allowed, false);
    assert.equal(authorizeRequest([ordersPolicy], request({ sourcePrincipal: 'cluster.local/ns/default/sa/other' })).allowed, false);
    assert.equal(authorizeRequest([ordersPolicy], request({ sourcePrincipal: undefined })).allowed, false, 'no mTLS identity');
  });

  it('orders-policy: a header cannot claim the frontend identity, and a dot-segment path is judged after normalisation', () => {
    const spoof = request({ sourcePrincipal: 'cluster.local/ns/default/sa/evil', headers: { 'x-forwarded-client-cert': 'URI=spiffe://cluster.local/ns/default/sa/frontend' } });
    assert.equal(authorizeRequest([ordersPolicy], spoof).allowed, false);
    assert.equal(authorizeRequest([ordersPolicy], request({ path: '/api/orders?x=/../admin' })).allowed, true, 'the query is not part of the path');
  });

  it('payment-auth: only order-service, only POST /process-payment', () => {
    const base = { service: 'production/payment-service', sourcePrincipal: 'cluster.local/ns/production/sa/order-service', method: 'POST', path: '/process-payment' };
    assert.equal(authorizeRequest([paymentAuth, ordersPolicy], request(base)).allowed, true);
    assert.equal(authorizeRequest([paymentAuth], request({ ...base, method: 'GET' })).allowed, false);
    assert.equal(authorizeRequest([paymentAuth], request({ ...base, path: '/process-payment/x' })).allowed, false);
    assert.equal(authorizeRequest([paymentAuth], request({ ...base, sourcePrincipal: 'cluster.local/ns/default/sa/frontend' })).allowed, false);
  });
});

// ---------- sources ----------

describe('authorizeRequest: source fields', () => {
  it('principals: exact, prefix, suffix, presence; "spiffe://" in the peer id is dropped', () => {
    assert.ok(allows(from({ principals: ['cluster.local/ns/default/sa/frontend'] })));
    assert.ok(allows(from({ principals: ['cluster.local/ns/default/*'] })));
    assert.ok(allows(from({ principals: ['*/sa/frontend'] })));
    assert.ok(allows(from({ principals: ['*'] })));
    assert.ok(!allows(from({ principals: ['cluster.local/ns/default/sa/front'] })));
    assert.ok(allows(from({ principals: ['cluster.local/ns/default/sa/frontend'] }), request({ sourcePrincipal: 'spiffe://cluster.local/ns/default/sa/frontend' })));
  });

  it('a request without a peer identity: positive identity fields never match, not* fields always do', () => {
    const plain = request({ sourcePrincipal: undefined });
    assert.ok(!allows(from({ principals: ['*'] }), plain));
    assert.ok(!allows(from({ namespaces: ['*'] }), plain));
    assert.ok(!allows(from({ serviceAccounts: ['default/frontend'] }), plain));
    assert.ok(allows(from({ notPrincipals: ['*'] }), plain));
    assert.ok(denies(from({ notPrincipals: ['*'] }), plain), 'the usual "deny plaintext" policy');
    assert.ok(!denies(from({ notPrincipals: ['*'] })));
  });

  it('namespaces and notNamespaces, with wildcards', () => {
    assert.ok(allows(from({ namespaces: ['default'] })));
    assert.ok(allows(from({ namespaces: ['def*'] })));
    assert.ok(!allows(from({ namespaces: ['prod'] })));
    assert.ok(!allows(from({ notNamespaces: ['default'] })));
    assert.ok(allows(from({ notNamespaces: ['prod', 'test'] })));
  });

  it('serviceAccounts are "ns/sa", exact', () => {
    assert.ok(allows(from({ serviceAccounts: ['default/frontend'] })));
    assert.ok(!allows(from({ serviceAccounts: ['frontend'] })));
    assert.ok(!allows(from({ serviceAccounts: ['other/frontend'] })));
    assert.ok(!allows(from({ notServiceAccounts: ['default/frontend'] })));
  });

  it('ipBlocks use the source address, remoteIpBlocks the remote one; IPv4, IPv6, CIDR, single address, mapped IPv4', () => {
    const r = request({ sourceIp: '10.0.1.5', remoteIp: '203.0.113.9' });
    assert.ok(allows(from({ ipBlocks: ['10.0.0.0/8'] }), r));
    assert.ok(allows(from({ ipBlocks: ['10.0.1.5'] }), r));
    assert.ok(!allows(from({ ipBlocks: ['203.0.113.0/24'] }), r));
    assert.ok(allows(from({ remoteIpBlocks: ['203.0.113.0/24'] }), r));
    assert.ok(!allows(from({ remoteIpBlocks: ['10.0.0.0/8'] }), r));
    assert.ok(!allows(from({ notRemoteIpBlocks: ['203.0.113.9'] }), r));
    assert.ok(allows(from({ notIpBlocks: ['192.168.0.0/16'] }), r));
    assert.ok(allows(from({ ipBlocks: ['fd00::/8'] }), request({ sourceIp: 'fd00::17' })));
    assert.ok(!allows(from({ ipBlocks: ['::/0'] }), request({ sourceIp: '10.0.1.5' })), 'IPv6 blocks never match IPv4');
    assert.ok(allows(from({ ipBlocks: ['10.0.0.0/8'] }), request({ sourceIp: '::ffff:10.1.2.3' })));
  });

  it('requestPrincipals: evaluated against a supplied JWT principal; without one, fail-closed', () => {
    assert.ok(!allows(from({ requestPrincipals: ['*'] })), 'ALLOW on a JWT field never matches without JWT support');
    assert.ok(denies(from({ requestPrincipals: ['issuer/bad'] })), 'DENY on a JWT field matches');
    assert.ok(denies(from({ notRequestPrincipals: ['*'] })), 'the usual "require a JWT" DENY denies');
    assert.ok(allows(from({ requestPrincipals: ['iss/*'] }), request({ requestPrincipal: 'iss/alice' })));
    assert.ok(!allows(from({ requestPrincipals: ['iss/bob'] }), request({ requestPrincipal: 'iss/alice' })));
    assert.ok(!denies(from({ notRequestPrincipals: ['*'] }), request({ requestPrincipal: 'iss/alice' })));
  });
});

// ---------- operations ----------

describe('authorizeRequest: operation fields', () => {
  it('hosts: case-insensitive, wildcards, against the Host as sent, port included', () => {
    assert.ok(allows(to({ hosts: ['ORDERS.shop.svc.cluster.local:8080'] })));
    assert.ok(!allows(to({ hosts: ['orders.shop.svc.cluster.local'] })), 'the port is part of the Host');
    assert.ok(allows(to({ hosts: ['orders.shop.svc.cluster.local:*'] })));
    assert.ok(allows(to({ hosts: ['*.svc.cluster.local:8080'] })));
    assert.ok(!allows(to({ notHosts: ['orders*'] })));
  });

  it('ports are the service port, as strings; methods are case-sensitive', () => {
    assert.ok(allows(to({ ports: ['8080'] })));
    assert.ok(!allows(to({ ports: ['80'] })));
    assert.ok(!allows(to({ notPorts: ['8080'] })));
    assert.ok(allows(to({ methods: ['GET', 'HEAD'] })));
    assert.ok(!allows(to({ methods: ['get'] })));
    assert.ok(!allows(to({ notMethods: ['GET'] })));
  });

  it('paths: exact, prefix, suffix, presence; the query is not part of the path', () => {
    assert.ok(allows(to({ paths: ['/api/orders/17'] }), request({ path: '/api/orders/17?debug=1' })));
    assert.ok(allows(to({ paths: ['/api/*'] })));
    assert.ok(allows(to({ paths: ['*/17'] })));
    assert.ok(allows(to({ paths: ['*'] })));
    assert.ok(!allows(to({ paths: ['*.html'] })));
    assert.ok(allows(to({ paths: ['*.html'] }), request({ path: '/index.html' })));
    assert.ok(!allows(to({ notPaths: ['/api/*'] })));
  });

  it('path templates: {*} is one segment, {**} any rest (zero or more characters) after a "/"', () => {
    const one = to({ paths: ['/api/{*}/17'] });
    assert.ok(allows(one));
    assert.ok(!allows(one, request({ path: '/api/a/b/17' })));
    assert.ok(!allows(one, request({ path: '/api//17' })), '{*} needs at least one character');
    const rest = to({ paths: ['/api/{**}'] });
    assert.ok(allows(rest, request({ path: '/api/a/b/c' })));
    assert.ok(allows(rest, request({ path: '/api/' })));
    assert.ok(!allows(rest, request({ path: '/api' })));
    assert.ok(!allows(rest, request({ path: '/apix/a' })));
    assert.ok(allows(to({ paths: ['/{*}/orders/{**}'] }), request({ path: '/api/orders/1/items' })));
    assert.ok(allows(to({ paths: ['/api/{**}/edit'] }), request({ path: '/api/a/b/edit' })));
    assert.ok(!allows(to({ notPaths: ['/api/{**}'] })));
  });
});

describe('compilePathTemplate', () => {
  it('refuses what Istio\'s validation refuses', () => {
    assert.match(compilePathTemplate('/api/{**}/{*}') as string, /after \{\*\*\}/);
    assert.match(compilePathTemplate('/api/x{*}') as string, /allowed only as a whole/);
    assert.match(compilePathTemplate('/api/*/{*}') as string, /allowed only as a whole/);
    assert.match(compilePathTemplate('api/{*}') as string, /must start with/);
    assert.match(compilePathTemplate('/a//{*}') as string, /empty segment/);
    assert.match(compilePathTemplate('/a b/{*}') as string, /pchar/);
    assert.ok(compilePathTemplate('/v1.2/{*}') instanceof RegExp);
    assert.ok(!(compilePathTemplate('/v1.2/{*}') as RegExp).test('/v1x2/a'), 'literal "." is not a wildcard');
  });
});

// ---------- when ----------

describe('authorizeRequest: when conditions', () => {
  it('request.headers[...]: name case-insensitive, Istio string matching, absent header only matches notValues', () => {
    const r = request({ headers: { 'x-env': 'prod-eu' } });
    assert.ok(allows(when('request.headers[X-Env]', ['prod-*']), r));
    assert.ok(!allows(when('request.headers[x-env]', ['prod']), r));
    assert.ok(!allows(when('request.headers[x-env]', undefined, ['*-eu']), r));
    assert.ok(!allows(when('request.headers[x-missing]', ['*']), r));
    assert.ok(allows(when('request.headers[x-missing]', undefined, ['x']), r));
  });

  it('source.ip, remote.ip, source.namespace, source.principal, destination.port', () => {
    assert.ok(allows(when('source.ip', ['10.0.0.0/8'])));
    assert.ok(!allows(when('remote.ip', ['192.168.0.0/16'])));
    assert.ok(allows(when('remote.ip', undefined, ['192.168.0.0/16'])));
    assert.ok(allows(when('source.namespace', ['default'])));
    assert.ok(allows(when('source.principal', ['*/sa/frontend'])));
    assert.ok(allows(when('destination.port', ['8080', '9090'])));
    assert.ok(!allows(when('destination.port', undefined, ['8080'])));
  });

  it('request.auth.* and unknown keys fail closed: never in ALLOW, always in DENY', () => {
    for (const key of ['request.auth.claims[iss]', 'request.auth.principal', 'destination.ip', 'connection.sni', 'experimental.x']) {
      assert.ok(!allows(when(key, ['anything'])), `ALLOW ${key}`);
      assert.ok(!allows(when(key, undefined, ['anything'])), `ALLOW not ${key}`);
      assert.ok(denies(when(key, ['anything'])), `DENY ${key}`);
    }
  });
});

// ---------- values that do not compile ----------

describe('authorizeRequest: values that do not parse fail closed and are reported', () => {
  it('a bad CIDR, port or path template never matches in ALLOW and always matches in DENY', () => {
    for (const rules of [from({ ipBlocks: ['10.0.0.0/33'] }), from({ notIpBlocks: ['nope'] }), to({ ports: ['http'] }), to({ notPorts: ['70000'] }), to({ paths: ['/a/{x}'] }), when('source.ip', ['1.2.3'])]) {
      assert.ok(!allows(rules), JSON.stringify(rules));
      assert.ok(denies(rules), JSON.stringify(rules));
    }
  });

  it('authzPolicyProblems names each such field once, with where it is and what it does', () => {
    const p = policy('shop/p', 'ALLOW', [{ from: [{ ipBlocks: ['10.0.0.0/8', 'x'] }], when: [{ key: 'request.auth.claims[iss]', values: ['a'] }] }, { to: [{ notPaths: ['/{**}/{*}'] }] }]);
    assert.deepEqual(authzPolicyProblems(p), [
      'shop/p rules[0] from[0]: ipBlocks: "x" is not an IP address or CIDR block; it never matches (ALLOW)',
      'shop/p rules[0] when[0] request.auth.claims[iss]: key: needs a validated JWT (RequestAuthentication), which Strait does not implement; it never matches (ALLOW)',
      'shop/p rules[1] to[0]: notPaths: path template "/{**}/{*}" has an operator after {**} ({**} must be the last operator); it never matches (ALLOW)',
    ]);
    assert.deepEqual(authzPolicyProblems(policy('shop/ok', 'DENY', to({ paths: ['/a/{*}'] }))), []);
    assert.match(authzPolicyProblems(policy('shop/d', 'DENY', when('destination.ip', ['1.2.3.4'])))[0]!, /always matches \(DENY\/AUDIT\)$/);
  });

  it('compiles a policy once: later decisions reuse it', () => {
    let reads = 0;
    const base = policy('shop/p', 'ALLOW', to({ methods: ['GET'] }));
    const counted = { ...base, get rules() { reads++; return base.rules; } } as L7PolicyResource;
    for (let i = 0; i < 5; i++) authorizeRequest([counted], request());
    assert.equal(reads, 1);
  });
});
