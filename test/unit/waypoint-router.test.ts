import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { matchRoute, routeTableProblems, segmentPrefix, type RouteInput } from '../../src/waypoint/router.js';
import { compileRe2 } from '../../src/waypoint/re2.js';
import { normalizePath } from '../../src/waypoint/path.js';
import type { RequestMatch, RouteRule, ServiceRoutesResource } from '../../src/common/xds/waypoint-resources.js';

// ---------- fixtures ----------

function rule(name: string, match: RequestMatch): RouteRule {
  return { name, match, action: { kind: 'forward', backends: [{ service: 'shop/api', weight: 1 }] } };
}

function table(...rules: RouteRule[]): ServiceRoutesResource {
  return { service: 'shop/api', hostname: 'api.shop.svc.cluster.local', origin: { kind: 'VirtualService', objects: ['shop/api'] }, rules };
}

function req(over: Partial<Omit<RouteInput, 'header'>> & { headers?: Record<string, string> } = {}): RouteInput {
  const headers = over.headers ?? {};
  return {
    method: over.method ?? 'GET',
    path: over.path ?? '/',
    authority: over.authority ?? 'api.shop:8080',
    port: over.port ?? 8080,
    header: (name) => headers[name],
  };
}

/** Name of the rule that wins for `r`, or undefined. */
function winner(t: ServiceRoutesResource, r: RouteInput): string | undefined {
  return matchRoute(t, r)?.name;
}

/** Whether a one-rule table with `match` matches `r`. */
function hits(match: RequestMatch, r: RouteInput): boolean {
  return winner(table(rule('only', match)), r) === 'only';
}

// ---------- order ----------

describe('matchRoute: order', () => {
  it('returns the first rule that matches, in table order, and undefined when none does', () => {
    const t = table(
      rule('canary', { headers: [{ name: 'x-canary', type: 'exact', value: 'true' }] }),
      rule('api', { path: { type: 'prefix', value: '/api', segments: true } }),
      rule('rest', {}),
    );
    assert.equal(winner(t, req({ path: '/api/x', headers: { 'x-canary': 'true' } })), 'canary');
    assert.equal(winner(t, req({ path: '/api/x' })), 'api');
    assert.equal(winner(t, req({ path: '/other' })), 'rest');
    assert.equal(winner(table(rule('api', { path: { type: 'exact', value: '/api' } })), req({ path: '/nope' })), undefined);
  });

  it('routes the product example: x-canary "true" → v2, everything else to the weighted rule', () => {
    const canary: RouteRule = { name: 'VirtualService/shop/api/http[0]', match: { headers: [{ name: 'x-canary', type: 'exact', value: 'true' }] }, action: { kind: 'forward', backends: [{ service: 'shop/api', subset: 'v2', weight: 100 }] } };
    const split: RouteRule = { name: 'VirtualService/shop/api/http[1]', match: {}, action: { kind: 'forward', backends: [{ service: 'shop/api', subset: 'v1', weight: 90 }, { service: 'shop/api', subset: 'v2', weight: 10 }] } };
    const t = table(canary, split);
    assert.equal(matchRoute(t, req({ headers: { 'x-canary': 'true' } })), canary);
    assert.equal(matchRoute(t, req({ headers: { 'x-canary': 'TRUE' } })), split, 'header values are case-sensitive');
    assert.equal(matchRoute(t, req()), split);
  });

  it('an empty table routes nothing', () => {
    assert.equal(matchRoute(table(), req()), undefined);
  });
});

// ---------- path ----------

describe('matchRoute: path', () => {
  it('exact matches the whole path, ignoring the query, case-sensitively unless ignoreCase', () => {
    const m: RequestMatch = { path: { type: 'exact', value: '/api/orders' } };
    assert.ok(hits(m, req({ path: '/api/orders' })));
    assert.ok(hits(m, req({ path: '/api/orders?page=2' })));
    assert.ok(!hits(m, req({ path: '/api/orders/' })));
    assert.ok(!hits(m, req({ path: '/API/orders' })));
    assert.ok(hits({ path: { type: 'exact', value: '/api/orders', ignoreCase: true } }, req({ path: '/API/Orders' })));
  });

  it('a Gateway API PathPrefix matches whole path elements only', () => {
    const m: RequestMatch = { path: { type: 'prefix', value: '/foo', segments: true } };
    for (const p of ['/foo', '/foo/', '/foo/bar', '/foo?x=1', '/foo/bar/baz']) assert.ok(hits(m, req({ path: p })), p);
    for (const p of ['/foobar', '/fo', '/', '/bar/foo']) assert.ok(!hits(m, req({ path: p })), p);
  });

  it('a PathPrefix ignores a trailing slash in its value, and "/" matches every path', () => {
    const m: RequestMatch = { path: { type: 'prefix', value: '/foo/', segments: true } };
    assert.ok(hits(m, req({ path: '/foo' })));
    assert.ok(hits(m, req({ path: '/foo/bar' })));
    assert.ok(!hits(m, req({ path: '/foobar' })));
    const root: RequestMatch = { path: { type: 'prefix', value: '/', segments: true } };
    for (const p of ['/', '/a', '/a/b']) assert.ok(hits(root, req({ path: p })), p);
  });

  it('a VirtualService prefix is a plain string prefix', () => {
    const m: RequestMatch = { path: { type: 'prefix', value: '/foo' } };
    assert.ok(hits(m, req({ path: '/foobar' })));
    assert.ok(hits(m, req({ path: '/foo/x' })));
    assert.ok(!hits(m, req({ path: '/fo' })));
    assert.ok(hits({ path: { type: 'prefix', value: '/FOO', ignoreCase: true } }, req({ path: '/foo/x' })));
    assert.ok(hits({ path: { type: 'prefix', value: '/Foo', segments: true, ignoreCase: true } }, req({ path: '/fOO/x' })));
    assert.ok(!hits({ path: { type: 'prefix', value: '/Foo', segments: true, ignoreCase: true } }, req({ path: '/fOOx' })));
  });

  it('a regex must match the whole path (RE2 full match), not a part of it', () => {
    const m: RequestMatch = { path: { type: 'regex', value: '/api/v[0-9]+/.*' } };
    assert.ok(hits(m, req({ path: '/api/v2/users' })));
    assert.ok(!hits(m, req({ path: '/x/api/v2/users' })));
    assert.ok(!hits({ path: { type: 'regex', value: '/api' } }, req({ path: '/api/more' })));
    assert.ok(hits({ path: { type: 'regex', value: 'a|ab' } }, req({ path: 'ab' })), 'alternation is anchored as a whole');
    assert.ok(hits({ path: { type: 'regex', value: '/API', ignoreCase: true } }, req({ path: '/api' })));
  });

  it('matches the path normalizePath produced, so a dot-segment detour cannot dodge an exact route', () => {
    const t = table(rule('admin', { path: { type: 'prefix', value: '/admin', segments: true } }), rule('rest', {}));
    const n = normalizePath('/public/../admin/%2e/users');
    assert.ok(!('error' in n));
    assert.equal(winner(t, req({ path: n.path + n.query })), 'admin');
  });
});

// ---------- headers, method, authority, query, port ----------

describe('matchRoute: headers, method, authority, query parameters, port', () => {
  it('header exact / prefix / regex / present, names looked up in lower case', () => {
    const seen: string[] = [];
    const r: RouteInput = { ...req(), header: (n) => { seen.push(n); return n === 'x-user' ? 'jason' : undefined; } };
    assert.ok(hits({ headers: [{ name: 'X-User', type: 'exact', value: 'jason' }] }, r));
    assert.deepEqual(seen, ['x-user']);
    assert.ok(hits({ headers: [{ name: 'x-user', type: 'prefix', value: 'ja' }] }, r));
    assert.ok(hits({ headers: [{ name: 'x-user', type: 'regex', value: 'j.*n' }] }, r));
    assert.ok(!hits({ headers: [{ name: 'x-user', type: 'regex', value: 'j' }] }, r));
    assert.ok(hits({ headers: [{ name: 'x-user', type: 'present' }] }, r));
    assert.ok(!hits({ headers: [{ name: 'x-other', type: 'present' }] }, r));
  });

  it('the product example end-user: jason → its rule; other users and no header fall through', () => {
    const t = table(rule('jason', { headers: [{ name: 'end-user', type: 'exact', value: 'jason' }] }), rule('rest', {}));
    assert.equal(winner(t, req({ headers: { 'end-user': 'jason' } })), 'jason');
    assert.equal(winner(t, req({ headers: { 'end-user': 'jasonx' } })), 'rest');
    assert.equal(winner(t, req()), 'rest');
  });

  it('invert: a header without the value, or absent, matches; present+invert means absent', () => {
    const m: RequestMatch = { headers: [{ name: 'x-env', type: 'exact', value: 'prod', invert: true }] };
    assert.ok(hits(m, req({ headers: { 'x-env': 'dev' } })));
    assert.ok(hits(m, req()));
    assert.ok(!hits(m, req({ headers: { 'x-env': 'prod' } })));
    const absent: RequestMatch = { headers: [{ name: 'x-debug', type: 'present', invert: true }] };
    assert.ok(hits(absent, req()));
    assert.ok(!hits(absent, req({ headers: { 'x-debug': '' } })));
  });

  it('a repeated header is matched as the caller joined it ("a,b")', () => {
    assert.ok(hits({ headers: [{ name: 'x-tag', type: 'exact', value: 'a,b' }] }, req({ headers: { 'x-tag': 'a,b' } })));
  });

  it('all conditions must hold (AND)', () => {
    const m: RequestMatch = { method: { type: 'exact', value: 'POST' }, path: { type: 'exact', value: '/pay' }, headers: [{ name: 'x-a', type: 'present' }] };
    assert.ok(hits(m, req({ method: 'POST', path: '/pay', headers: { 'x-a': '1' } })));
    assert.ok(!hits(m, req({ method: 'GET', path: '/pay', headers: { 'x-a': '1' } })));
    assert.ok(!hits(m, req({ method: 'POST', path: '/pay' })));
  });

  it('method and authority are ValueMatches', () => {
    assert.ok(hits({ method: { type: 'regex', value: 'GET|HEAD' } }, req({ method: 'HEAD' })));
    assert.ok(!hits({ method: { type: 'exact', value: 'GET' } }, req({ method: 'get' })));
    assert.ok(hits({ authority: { type: 'prefix', value: 'api.shop' } }, req({ authority: 'api.shop:8080' })));
    assert.ok(!hits({ authority: { type: 'exact', value: 'api.shop' } }, req({ authority: 'api.shop:8080' })));
  });

  it('query parameters: first value of a name, URLSearchParams decoding, present even when empty', () => {
    assert.ok(hits({ queryParams: [{ name: 'v', type: 'exact', value: '2' }] }, req({ path: '/x?v=2&v=3' })));
    assert.ok(!hits({ queryParams: [{ name: 'v', type: 'exact', value: '3' }] }, req({ path: '/x?v=2&v=3' })));
    assert.ok(hits({ queryParams: [{ name: 'q', type: 'exact', value: 'a b/c' }] }, req({ path: '/x?q=a+b%2Fc' })));
    assert.ok(hits({ queryParams: [{ name: 'flag', type: 'present' }] }, req({ path: '/x?flag' })));
    assert.ok(!hits({ queryParams: [{ name: 'flag', type: 'present' }] }, req({ path: '/x?other=1' })));
    assert.ok(hits({ queryParams: [{ name: 'id', type: 'regex', value: '[0-9]+' }] }, req({ path: '/x?id=42' })));
    assert.ok(!hits({ queryParams: [{ name: 'id', type: 'regex', value: '[0-9]+' }] }, req({ path: '/x?id=42a' })));
  });

  it('port: the service port the request arrived for', () => {
    assert.ok(hits({ port: 8080 }, req({ port: 8080 })));
    assert.ok(!hits({ port: 9090 }, req({ port: 8080 })));
  });
});

// ---------- invalid regexes ----------

describe('matchRoute: regexes that do not compile', () => {
  it('a rule with a bad regex never matches, the next rule does, and the problem is reported once per rule', () => {
    const bad = rule('HTTPRoute/shop/r/rules[0]/matches[0]', { headers: [{ name: 'x', type: 'regex', value: '(unclosed' }] });
    const lookahead = rule('HTTPRoute/shop/r/rules[1]/matches[0]', { path: { type: 'regex', value: '/(?=a).*' } });
    const t = table(bad, lookahead, rule('rest', {}));
    assert.equal(winner(t, req({ path: '/a', headers: { x: '(unclosed' } })), 'rest');
    const problems = routeTableProblems(t);
    assert.equal(problems.length, 2);
    assert.match(problems[0]!, /^HTTPRoute\/shop\/r\/rules\[0\]\/matches\[0\]: header x: regex "\(unclosed": .*; the rule never matches$/);
    assert.match(problems[1]!, /lookarounds are not RE2 syntax/);
    assert.deepEqual(routeTableProblems(table(rule('ok', { path: { type: 'regex', value: '/.*' } }))), []);
  });

  it('compiles each rule once: the compiled matcher is cached per rule object', () => {
    let reads = 0;
    const r = rule('r', {});
    const withGetter = { ...r, get match() { reads++; return r.match; } } as RouteRule;
    const t = table(withGetter);
    for (let i = 0; i < 5; i++) matchRoute(t, req());
    assert.equal(reads, 1);
  });
});

// ---------- RE2 ----------

describe('compileRe2', () => {
  const full = (p: string, s: string): boolean => {
    const r = compileRe2(p);
    assert.ok('regex' in r, `${p}: ${JSON.stringify(r)}`);
    return r.regex.test(s);
  };
  const problem = (p: string): string => {
    const r = compileRe2(p);
    assert.ok('problem' in r, `${p} should be refused`);
    return r.problem;
  };

  it('translates RE2-only syntax: leading flags, (?P<name>), \\A \\z, \\Q..\\E, POSIX classes, \\pL', () => {
    assert.ok(full('(?i)abc', 'ABC'));
    assert.ok(full('(?P<id>[0-9]+)-x', '12-x'));
    assert.ok(full('\\Aab\\z', 'ab'));
    assert.ok(full('\\Qa.b*\\E', 'a.b*'));
    assert.ok(!full('\\Qa.b\\E', 'axb'));
    assert.ok(full('[[:digit:]]+[[:alpha:]]', '123z'));
    assert.ok(!full('[[:digit:]]+', '12a'));
    assert.ok(full('\\pL+', 'héllo'));
    assert.ok(full('[]a]+', ']a]'));
  });

  it('refuses what RE2 refuses: lookarounds, backreferences, \\C, (?U), flags in the middle', () => {
    assert.match(problem('a(?!b)'), /lookarounds/);
    assert.match(problem('(?<=a)b'), /lookarounds/);
    assert.match(problem('(a)\\1'), /backreferences/);
    assert.match(problem('(?P<x>a)(?P=x)'), /backreferences/);
    assert.match(problem('a\\C'), /\\C/);
    assert.match(problem('(?U)a+'), /ungreedy/);
    assert.match(problem('a(?i)b'), /only at the start/);
    assert.match(problem('[[:nope:]]'), /unknown class/);
    assert.match(problem('a\\'), /trailing backslash/);
  });
});

describe('segmentPrefix', () => {
  it('drops trailing slashes; "/" becomes the empty prefix', () => {
    assert.equal(segmentPrefix('/foo/'), '/foo');
    assert.equal(segmentPrefix('/foo//'), '/foo');
    assert.equal(segmentPrefix('/'), '');
    assert.equal(segmentPrefix('/a/b'), '/a/b');
  });
});
